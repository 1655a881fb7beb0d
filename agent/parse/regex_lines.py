"""Plain-text lines read with an operator's regular expression (named groups)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from agent.parse.base import Parser
from agent.parse.spec import ParseSpec

__all__ = ["RegexParser", "compile_pattern"]


def compile_pattern(pattern: str | None) -> re.Pattern[str]:
    """Compile an operator's pattern, or raise ValueError saying what is wrong and where."""
    if not pattern:
        raise ValueError("pattern: required for format 'regex'")
    try:
        return re.compile(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"pattern: invalid regular expression: {exc.msg}{where}") from None


class RegexParser(Parser):
    """Reads lines such as ``2026-11-02 09:00:05 INFO 同步 发票号码=2431... 金额=1234.50``.

    The pattern is searched in the line; group names are canonical field names unless
    ``fields`` maps a canonical field to another group. Other named groups go to ``extra``.
    """

    def __init__(self, spec: ParseSpec, clock: Callable[[], datetime] | None = None) -> None:
        compiled = compile_pattern(spec.pattern)
        self._search = compiled.search
        groups = set(compiled.groupindex)
        super().__init__(spec, clock)
        missing = sorted(
            f"{canonical} -> {key!r}" for canonical, key in spec.fields.items() if key not in groups
        )
        if missing:
            raise ValueError(f"fields: pattern has no group for {', '.join(missing)}")
        if self._ts_key not in groups:
            raise ValueError(
                f"pattern: needs a named group for the timestamp, (?P<{self._ts_key}>...)"
            )

    def _path(self, key: str) -> tuple[str, ...] | None:
        return None  # group names cannot contain dots

    def _record(self, text: str) -> Mapping[str, Any] | str:
        match = self._search(text)
        if match is None:
            return "does not match pattern"
        return match.groupdict()
