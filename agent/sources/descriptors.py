"""Open files of one source, kept under a budget of file descriptors.

A source may match more files than the process may hold open (1,100 daily logs under
``ulimit -n 1024``).  Past the budget the longest idle files (read to their end) are closed,
"parked", and reopened when the listing shows them changed; a new file waits for a later poll
rather than fail.  Running out anyway (the rest of the process holds descriptors too) lowers
the budget, so that parking frees some.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import time

from agent.sources.position import Tail, display

log = logging.getLogger("agent.sources.files")  # the source's own logger: one place to look

NO_FDS = (errno.EMFILE, errno.ENFILE)


def default_budget() -> int:
    """Half the descriptor limit: room for the rest of the process (SQLite, sockets, other
    sources)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 4096 if soft == resource.RLIM_INFINITY else max(16, soft // 2)


class Descriptors:
    """Opens and parks the files of `tails` (the source's own dict, by identity)."""

    def __init__(self, name: str, tails: dict[str, Tail], budget: int | None,
                 stats: dict[str, int]) -> None:
        self.name = name
        self.budget = budget or default_budget()
        self.held = 0  # descriptors of tracked files open
        self.refused = 0  # opens put off for want of budget in this poll
        self._reopened: set[str] = set()  # identities reopened in this poll: not parked again
        self._tails = tails
        self._stats = stats
        self._errors: set[str] = set()  # paths ("" for want of descriptors) logged

    def begin_poll(self) -> None:
        self.refused = 0
        self._reopened.clear()

    def open(self, path: str, fid: str) -> tuple[int, int] | None:
        """(descriptor, size) of `path` if it still is identity `fid`, else None: also when
        the budget is full of files not read to their end (a later poll opens it).  An error
        counts as a list error each time; it is logged once until that file (any file, for
        want of descriptors) opens again."""
        self.make_room()
        if self.held >= self.budget:
            self.refused += 1
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            self._stats["list_errors"] += 1
            key = "" if e.errno in NO_FDS else path
            if not key:
                self.shrink()
            if key not in self._errors:
                self._errors.add(key)
                log.warning("%s: cannot open %s: %s", self.name, display(path), e.strerror or e)
            return None
        self.held += 1
        if self._errors:
            self._errors.difference_update(("", path))
        st = os.fstat(fd)
        if f"{st.st_dev}:{st.st_ino}" != fid:
            self.close(fd)  # replaced between listing and open: the next poll sees the new one
            return None
        return fd, st.st_size

    def close(self, fd: int) -> None:
        os.close(fd)
        self.held -= 1

    def close_all(self) -> None:
        for t in self._tails.values():
            if t.fd >= 0:
                self.close(t.fd)
                t.fd = -1

    def reopen(self, t: Tail) -> bool:
        """Reopen parked `t`; False if it cannot be now (the next poll tries again)."""
        opened = self.open(t.path, t.file_id)
        if opened is not None:
            t.fd, t.grew_at = opened[0], time.monotonic()  # it changed: not the next to park
            self._reopened.add(t.file_id)  # nor parked before it is read (its size is old)
        return opened is not None

    def make_room(self) -> None:
        """At the budget, park the longest idle files down to 3/4 of it, so that a burst of
        reopens does not close and open one file at a time.  A held partial line stays in
        memory: reading goes on at read_pos."""
        if self.held < self.budget:
            return
        idle = sorted((t for t in self._tails.values() if t.fd >= 0 and not t.detached
                       and t.copy_of is None and t.read_pos >= t.size
                       and t.file_id not in self._reopened), key=lambda t: t.grew_at)
        for t in idle[:self.held - self.budget * 3 // 4]:
            try:
                mtime = os.fstat(t.fd).st_mtime_ns
            except OSError:
                continue
            self.close(t.fd)
            # read_pos, not the size now: a file that grew since it was read differs, reopens
            t.fd, t.stamp = -1, (t.read_pos, mtime)

    def shrink(self) -> None:
        """Out of descriptors: lower the budget under what we hold."""
        budget = max(8, self.held * 3 // 4)
        if budget < self.budget:
            self.budget = budget
            log.info("%s: out of file descriptors; keeping at most %d files open", self.name,
                     budget)
