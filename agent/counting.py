"""One counting path: every count the agent keeps, incremented where the thing happens.

Counts are keyed (source, name). The file reader counts what it reads, the engine what it
could not parse or came too late, a rule what it could not evaluate; the loop drains them into
each batch commit (cumulative in the store: `status`), and /metrics reads the same names.
"""

from __future__ import annotations

from collections import Counter

# name -> what it counts (per source, or per "rule:NAME" for evaluation errors)
COUNTS: dict[str, str] = {
    "lines": "complete lines read",
    "truncated": "lines longer than max_line_bytes, cut",
    "replaced": "lines with undecodable bytes (replaced with U+FFFD)",
    "unparsed": "lines that did not parse into an event (samples kept)",
    "late": "events whose window had already closed",
    "rotations": "files rotated away (renamed or deleted) while read",
    "truncations": "files truncated or replaced in place (copytruncate)",
    "files": "files opened",
    "list_errors": "failures listing a log folder or opening a file",
    "eval_errors": "rule evaluations that failed",
    "ledger_no_key": "events of a ledger stage without an invoice number (not ledgered)",
    "ledger_malformed": "events of a ledger stage with a malformed invoice number",
}


class Counts:
    """Increments since the last drain, by (source, name)."""

    __slots__ = ("_c",)

    def __init__(self) -> None:
        self._c: Counter[tuple[str, str]] = Counter()

    def add(self, source: str, name: str, n: int = 1) -> None:
        self._c[(source, name)] += n

    def get(self, source: str, name: str) -> int:
        return self._c[(source, name)]

    def drain(self) -> dict[tuple[str, str], int]:
        """What accumulated since the last call; starts again from zero."""
        out, self._c = dict(self._c), Counter()
        return out

    def __bool__(self) -> bool:
        return bool(self._c)
