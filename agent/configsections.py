"""Config sections beside the core ones of agent/config.py: the journald source's options and
the HTTP endpoint (/healthz, /metrics, /status)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.configtypes import Duration

PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JournaldOptions(_Model):
    """What a `format: journald` source reads from the systemd journal (journalctl)."""

    units: list[str] = Field(default_factory=list,
                             description="systemd units, e.g. invoice-sync.service")
    identifiers: list[str] = Field(default_factory=list,
                                   description="SYSLOG_IDENTIFIERs, e.g. kernel")
    priority: Literal["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] | \
        None = Field(None, description="This priority and more severe only")
    files: list[str] = Field(default_factory=list,
                             description="Journal files to read instead of the system journal")
    directory: str | None = Field(None, description="A journal folder instead of the system's")
    journalctl: str = Field("journalctl", description="The journalctl to run")


class HttpConfig(_Model):
    """The daemon's local HTTP endpoint: /healthz, /metrics (Prometheus), /status."""

    listen: str = Field("127.0.0.1:9808", description="HOST:PORT; loopback unless a scraper "
                                                      "elsewhere needs it (then firewall it)")
    max_lag: Duration = Field(timedelta(minutes=10),
                              description="/healthz answers 503 when behind the logs longer")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9808, not {v!r}")
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if host != "localhost":
                raise ValueError(f"expected an IP address to listen on (127.0.0.1), not "
                                 f"{host!r}") from None
        return v

    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
