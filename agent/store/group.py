"""Grouping the daemon's batches into commits: what was read since the last commit, and when
the next one is due.

A commit costs the same whether it holds ten lines or ten thousand (the offsets, the engine's
state, one transaction), so the daemon commits at most every `commit_interval`, or once
`commit_lines` lines were read, and at once when something a person waits for is decided (an
alert transition, a message for the outbox, a rotation, an operator's silence). Everything the
lines since the last commit caused goes into that one transaction with their offsets; a crash
before it means those lines are read again from the last committed offsets and state, as after
a crash in the middle of a single batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.types import Notice, Transition

# counts that mean a file was rotated, truncated or newly opened: its offsets are committed at
# once, so a restart finds the files where the source last saw them
ROTATION_COUNTS = frozenset({"rotations", "truncations", "files"})


class CommitGroup:
    """Batches read since the last commit (their counters, transitions and notices; the
    engine keeps the rest until it is drained at the commit)."""

    def __init__(self, interval: float, max_lines: int,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.max_lines = max_lines
        self.clock = clock  # monotonic seconds; replaced in tests
        self.last = clock()  # when the last commit was written (or the group started)
        self.counters: dict[tuple[str, str], int] = {}
        self.transitions: list[Transition] = []
        self.notices: list[Notice] = []
        self.lines = 0  # lines read since the last commit
        self.urgent: str | None = None  # why the group must be committed now

    def add(self, counters: Mapping[tuple[str, str], int], lines: int,
            transitions: list[Transition], notices: list[Notice]) -> None:
        """One batch's share: the lines it read, what it counted and decided."""
        for key, n in counters.items():
            self.counters[key] = self.counters.get(key, 0) + n
            if key[1] in ROTATION_COUNTS and self.urgent is None:
                self.urgent = "rotation"
        self.lines += lines
        if transitions:
            self.transitions.extend(transitions)
            self.urgent = self.urgent or "alert transition"
        if notices:
            self.notices.extend(notices)
            self.urgent = self.urgent or "notification"

    def urge(self, why: str) -> None:
        """Commit at the next check, whatever the time."""
        self.urgent = self.urgent or why

    def due(self, pending: bool) -> str | None:
        """Why the group must be committed now, or None. `pending`: the engine holds changes
        of its own (closed windows, alert states, samples) besides the lines read."""
        if self.urgent is not None:
            return self.urgent
        if self.lines >= self.max_lines:
            return "lines"
        if (pending or self.lines or self.counters) and \
                self.clock() - self.last >= self.interval:
            return "interval"
        return None

    def wait(self, pending: bool, poll: float) -> float:
        """How long the loop may sleep waiting for lines: until the next poll, or less when
        something read waits for its commit."""
        if self.urgent is not None:
            return 0.0
        if pending or self.lines or self.counters:
            return max(0.0, min(poll, self.last + self.interval - self.clock()))
        return poll

    def committed(self) -> None:
        """The group was written (or found empty): a new one starts."""
        self.counters = {}
        self.transitions = []
        self.notices = []
        self.lines = 0
        self.urgent = None
        self.last = self.clock()
