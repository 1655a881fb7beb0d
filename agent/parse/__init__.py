"""parse: RawLine -> Event | ParseFailure, for JSON lines, regex-read text and syslog.

``build_parser(spec)`` validates the spec once (bad regex, unknown field names, unknown
timezone -> ValueError with a message the config layer can show next to the file and key) and
returns a Parser whose ``parse(raw)`` never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from agent.parse.base import Parser
from agent.parse.json_lines import JsonParser
from agent.parse.regex_lines import RegexParser
from agent.parse.spec import FORMATS, READABLE_FIELDS, ParseSpec
from agent.parse.syslog_lines import SyslogParser

__all__ = ["FORMATS", "READABLE_FIELDS", "ParseSpec", "Parser", "build_parser"]

_PARSERS: dict[str, type[Parser]] = {
    "json": JsonParser,
    "regex": RegexParser,
    "syslog": SyslogParser,
}


def build_parser(spec: ParseSpec, clock: Callable[[], datetime] | None = None) -> Parser:
    """Build the parser for ``spec.format``; everything per-source is precomputed here.

    ``clock`` returns the current time (aware, or naive in ``spec.timezone``); it is used to
    refuse timestamps more than ``spec.max_future`` ahead and to give year-less syslog stamps a
    year. Defaults to the wall clock. Raises ValueError if the spec cannot work.
    """
    try:
        kind = _PARSERS[spec.format]
    except KeyError:
        raise ValueError(
            f"format: unknown format {spec.format!r}; expected one of {', '.join(FORMATS)}"
        ) from None
    return kind(spec, clock)
