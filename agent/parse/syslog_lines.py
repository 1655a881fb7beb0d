"""Syslog lines, RFC 3164 (``Nov  2 09:00:01 host prog[pid]: msg``) and RFC 5424, with or
without ``<PRI>``, as written to /var/log/messages or forwarded by rsyslog/journald."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from agent.parse.base import Parser
from agent.parse.regex_lines import compile_pattern, search
from agent.parse.spec import ParseSpec

__all__ = ["SyslogParser"]

_RFC5424 = re.compile(
    r"(?:<(\d{1,3})>)?1 (\S+) (\S+) (\S+) (\S+) (\S+) "
    # structured data: "-" or [id name="value" ...] elements, values may escape \" \] \\
    r'(-|(?:\[(?:[^\]"]|"(?:[^"\\]|\\.)*")*\])+)'
    r"(?: (.*))?",
    re.DOTALL,
)
_RFC3164 = re.compile(
    r"(?:<(\d{1,3})>)?"
    # the classic year-less stamp, or rsyslog's high-precision RFC 3339 one
    r"([A-Z][a-z]{2} +\d{1,2} \d{1,2}:\d\d:\d\d(?:\.\d{1,6})?|\d{4}-\d\d-\d\d[T ][\d:.]+\S*)"
    r" (\S+)(?: (.*))?",
    re.DOTALL,
)
_TAG = re.compile(r"([^\s\[\]:]+)(?:\[([^\]]*)\])?:(?: (.*))?", re.DOTALL)
_SD_ELEMENT = re.compile(r'\[([^\s\]=]+)((?: +[^\s=\]"]+="(?:[^"\\]|\\.)*")*) *\]')
_SD_PARAM = re.compile(r'([^\s=\]"]+)="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')

_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
_FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)
_NIL = "-"


def _structured_data(text: str) -> dict[str, dict[str, str]]:
    return {
        element.group(1): {
            name: _SD_UNESCAPE.sub(r"\1", value)
            for name, value in _SD_PARAM.findall(element.group(2))
        }
        for element in _SD_ELEMENT.finditer(text)
    }


class SyslogParser(Parser):
    """Reads syslog lines into ``system`` events: host, level (from PRI), message, and
    ``extra.program`` / ``extra.pid`` (plus ``facility``, ``msgid``, ``sd`` when present).

    An optional ``pattern`` is searched in the message and its named groups are read like a
    regex source's, so e.g. an invoice number logged by a daemon reaches the event.
    """

    default_event = "system"

    def __init__(self, spec: ParseSpec, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(spec, clock)
        self._message_pattern = compile_pattern(spec.pattern) if spec.pattern else None

    def _path(self, key: str) -> tuple[str, ...] | None:
        return None

    def _record(self, text: str) -> Mapping[str, Any] | str:
        record: dict[str, Any]
        match = _RFC3164.match(text)
        if match is not None:
            pri, ts, host, rest = match.groups()
            if host.endswith(":"):  # no host field: "Nov  2 09:00:01 prog[1]: msg"
                rest = f"{host} {rest}" if rest is not None else host
                host = None
            record = {"ts": ts, "host": host}
            tag = _TAG.match(rest) if rest is not None else None
            if tag is not None:
                record["program"], record["pid"], record["message"] = tag.groups()
            else:
                record["message"] = rest
        else:
            match = _RFC5424.match(text)
            if match is None:
                return "not a syslog line"
            pri, ts, host, app, procid, msgid, sd, message = match.groups()
            if ts == _NIL:
                return "no timestamp (syslog NILVALUE '-')"
            record = {
                "ts": ts,
                "host": None if host == _NIL else host,
                "program": None if app == _NIL else app,
                "pid": None if procid == _NIL else procid,
                "msgid": None if msgid == _NIL else msgid,
                "message": message.removeprefix("\ufeff") if message else None,
            }
            if sd != _NIL:
                record["sd"] = _structured_data(sd)
        if pri is not None:
            number = int(pri)
            if number < 192:
                record["facility"] = _FACILITIES[number >> 3]
                record["level"] = _SEVERITIES[number & 7]
        message = record.get("message")
        if self._message_pattern is not None and message:
            found = search(self._message_pattern, message)
            if isinstance(found, str):
                return found  # out of time: the line is refused like a regex source's
            if found is not None:
                record.update((k, v) for k, v in found.groupdict().items() if v is not None)
        return record
