"""Config sections beside the core ones of agent/config.py: where notifications go (`notify:`),
the journald source's options and the HTTP endpoint (/healthz, /metrics, /status)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.configtypes import Duration
from agent.routing.config import Grouping

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


class UrlTarget(_Model):
    url: str
    tags: list[str] = Field(default_factory=list)
    password_file: str | None = Field(None, description="The URL user's password, from a file")


class NotifyConfig(Grouping):
    """Where alerts go, grouped how (agent/routing). With no target, alerts are printed to the
    console."""

    urls: list[str | UrlTarget] = Field(
        default_factory=list, description="Apprise URLs; ${ENV} is expanded")
    urls_file: str | None = Field(None, description="File with one Apprise URL per line (secrets)")
    config: str | None = Field(None, description="Apprise config file (YAML/TEXT) with tags")
    routes: dict[Literal["info", "warning", "critical"], list[str]] = Field(
        default_factory=dict, description="severity -> Apprise tags")
    language: Literal["zh", "en"] = "zh"
    repeat_interval: Duration = Field(timedelta(hours=4), description="Re-notify a firing alert")
    timeout: Duration = Field(timedelta(seconds=10), description="Per-delivery timeout")
    templates: str | None = Field(
        None, description="Folder overriding the shipped message templates (zh/wecom.j2, "
                          "en/email.j2, ...); relative to the config file")
