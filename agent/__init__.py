"""invoice-agent: monitoring agent for e-invoice upload/sync systems."""

__version__ = "0.1.0"
