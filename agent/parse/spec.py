"""What a parser needs to know about one source: plain, immutable data built by the config layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from agent.types import READABLE_FIELDS

__all__ = ["FORMATS", "READABLE_FIELDS", "ParseSpec"]

FORMATS = ("json", "regex", "syslog")

@dataclass(frozen=True, slots=True)
class ParseSpec:
    """How to read one source's lines into canonical events.

    Example (the upload service's JSON log)::

        ParseSpec(name="upload", format="json",
                  fields={"ts": "time", "event": "action", "invoice_no": "fphm",
                          "status": "result", "latency_ms": "cost", "error_code": "code"},
                  values={"status": {"成功": "ok", "失败": "failed", "超时": "timeout"}})
    """

    name: str
    """Source name; becomes ``Event.source``."""
    format: str
    """``json`` (one object per line), ``regex`` (named groups) or ``syslog`` (RFC 3164/5424)."""
    fields: Mapping[str, str] = field(default_factory=dict)
    """Canonical field -> the log's key or regex group, e.g. ``{"invoice_no": "fphm"}``.
    JSON keys may be dotted paths into nested objects (``"meta.cost"``). Unmapped canonical
    fields are read from a key of their own name."""
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Canonical field -> {log word: canonical value}, e.g. ``{"status": {"成功": "ok"}}``.
    Words are matched exactly, then ignoring case; unmapped words pass through."""
    pattern: str | None = None
    """regex: a Python regex with named groups, searched in each line (anchor it with ``^``).
    syslog: optional; searched in the message and its groups added to the event."""
    timestamp_format: str | None = None
    """A strptime format, tried before the built-in recognition (ISO-8601, epoch s/ms,
    syslog ``Nov  2 09:00:01``). Without a year directive the year is inferred like syslog's."""
    event: str | None = None
    """Event kind for lines that do not carry one (syslog lines default to ``system``)."""
    timezone: str = "Asia/Shanghai"
    """IANA zone for timestamps without an offset; every event time is expressed in it."""
    max_future: timedelta = timedelta(days=1)
    """Lines stamped further than this after now are refused (a wrong clock or year)."""
