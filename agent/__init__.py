"""invoice-agent: monitoring agent for e-invoice upload/sync systems."""

__version__ = "0.1.0"

DEFAULT_CONFIG = "/etc/invoice-agent/agent.yaml"  # what every command's `-c` defaults to
