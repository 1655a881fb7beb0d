"""Plain-text lines read with an operator's regular expression (named groups).

Operator patterns run in the `regex` package (the same syntax as `re`) because `re` cannot be
stopped: a pattern like ``(a|aa)+$`` on a line that almost matches backtracks for hours, holds
the GIL and makes the daemon deaf to SIGTERM. Every match gets ``MATCH_TIMEOUT`` seconds and
sees at most ``MATCH_CHARS`` characters of the line; a line that runs out of time is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import regex

from agent.parse.base import Parser
from agent.parse.spec import ParseSpec

__all__ = ["MATCH_CHARS", "MATCH_TIMEOUT", "TOO_SLOW", "RegexParser", "compile_pattern",
           "nested_quantifier", "search"]

# Ordinary lines match in microseconds; 0.1 s is generous for them and still bounds a bad
# pattern to ten lines a second instead of one line forever.
MATCH_TIMEOUT = 0.1
# Backtracking grows with the text searched: past this the rest of a line is not looked at.
MATCH_CHARS = 16384
TOO_SLOW = f"pattern took too long (over {MATCH_TIMEOUT:g} s on this line)"

# {n}, {n,}, {,m}, {n,m}: only a maximum above 1 lets a group match more than once
_BRACES = regex.compile(r"\{(\d*)(,?)(\d*)\}")


def compile_pattern(pattern: str | None) -> regex.Pattern[str]:
    """Compile an operator's pattern, or raise ValueError saying what is wrong and where."""
    if not pattern:
        raise ValueError("pattern: required for format 'regex'")
    try:
        return regex.compile(pattern)
    except regex.error as exc:  # its text says where: "... at position 9"
        raise ValueError(f"pattern: invalid regular expression: {exc}") from None


def search(compiled: regex.Pattern[str], text: str) -> regex.Match[str] | None | str:
    """The match in `text`, None, or TOO_SLOW when the pattern ran out of time."""
    try:
        return compiled.search(text, endpos=MATCH_CHARS, timeout=MATCH_TIMEOUT)
    except TimeoutError:
        return TOO_SLOW


def _repeat_at(pattern: str, i: int) -> tuple[bool, int]:
    """Whether a quantifier allowing more than one repetition starts at `i`, and where it ends."""
    if i >= len(pattern):
        return False, i
    c = pattern[i]
    if c in "*+?":
        many, end = c != "?", i + 1
    elif c == "{" and (m := _BRACES.match(pattern, i)) is not None:
        low, comma, high = m.groups()
        if not (low or high):
            return False, i  # "{}" and "{,}" are literal text
        many = bool(comma and not high) or int(high or low) > 1
        end = m.end()
    else:
        return False, i
    if end < len(pattern) and pattern[end] in "?+":  # lazy or possessive suffix
        end += 1
    return many, end


def nested_quantifier(pattern: str) -> str | None:
    """The first repeated group that itself holds a repetition (``(a+)+``, ``(\\w+\\s?)*``):
    the shape that backtracks exponentially on a line that almost matches. None if none.

    A plain scan, not a full parser: it only feeds a load warning, the time limit is what
    protects the daemon.
    """
    stack: list[tuple[int, bool]] = []  # per open group: where it starts, enclosing `holds`
    holds = False  # the group being scanned contains a repetition
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "(":
            if pattern.startswith("(?#", i):
                i = pattern.find(")", i) + 1 or n
                continue
            stack.append((i, holds))
            holds = False
            i += 1
            continue
        if c == ")" and stack:
            start, outer = stack.pop()
            many, end = _repeat_at(pattern, i + 1)
            if many and holds:
                return pattern[start:end]
            holds = outer or holds or many
            i = end
            continue
        if c == "\\":
            i += 2
        elif c == "[":
            i = _class_end(pattern, i)
        else:
            i += 1
        many, i = _repeat_at(pattern, i)
        holds = holds or many
    return None


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class opening at `i` (``[]a]`` and ``[^]a]`` included)."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


class RegexParser(Parser):
    """Reads lines such as ``2026-11-02 09:00:05 INFO 同步 发票号码=2431... 金额=1234.50``.

    The pattern is searched in the line; group names are canonical field names unless
    ``fields`` maps a canonical field to another group. Other named groups go to ``extra``.
    """

    def __init__(self, spec: ParseSpec, clock: Callable[[], datetime] | None = None) -> None:
        compiled = compile_pattern(spec.pattern)
        self._search = compiled.search
        groups = set(compiled.groupindex)
        # regex's groupdict() costs ~1 us more than re's; zipping groups() gives the same dict
        # when every group is named, the usual case
        by_number = sorted(compiled.groupindex, key=compiled.groupindex.__getitem__)
        self._names = tuple(by_number) if len(by_number) == compiled.groups else None
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
        # inlined `search`: this runs once per line
        try:
            match = self._search(text, endpos=MATCH_CHARS, timeout=MATCH_TIMEOUT)
        except TimeoutError:
            return TOO_SLOW
        if match is None:
            if len(text) > MATCH_CHARS:
                return f"does not match pattern (only the first {MATCH_CHARS} characters are tried)"
            return "does not match pattern"
        if self._names is not None:
            return dict(zip(self._names, match.groups(), strict=True))
        return match.groupdict()
