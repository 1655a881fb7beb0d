"""Copies of tailed files, for copytruncate: the copy of truncated content is found and read on
after what was read of the original; a new file holding what a tracked file has read (a copy
made before the truncation, or still being written) is followed, not read, until then.

A base class of FileSource (files.py): it works on the source's own tails and descriptors.
"""

from __future__ import annotations

import logging
import os
import time

from agent.sources.descriptors import Descriptors
from agent.sources.discover import Entry
from agent.sources.position import (
    PROBE,
    FileCheckpoint,
    Tail,
    copy_candidates,
    copy_extent,
    original_of,
    same_content,
)

log = logging.getLogger("agent.sources.files")  # the source's own logger: one place to look


class Copies:
    """The copy handling of FileSource, on its tails (by identity), checkpoints not restored
    yet, descriptors and counters."""

    name: str
    _tails: dict[str, Tail]
    _restore: dict[str, FileCheckpoint]
    _fds: Descriptors
    _stats: dict[str, int]

    def _drop(self, t: Tail) -> None:  # FileSource's
        raise NotImplementedError

    def _new_tail(self, fid: str, path: str) -> Tail | None:
        opened = self._fds.open(path, fid)
        return None if opened is None else Tail(fid, path, opened[0], opened[1], time.monotonic())

    def _track(self, t: Tail) -> None:
        self._tails[t.file_id] = t
        self._stats["files"] += 1

    def _resume_copy(self, cp: FileCheckpoint, path: str, found: dict[str, Entry]) -> bool:
        """Truncated content (`cp`, of the file now at `path`): find its copy in the same folder
        and track it from cp's offset, so the lines written between our last read and the
        truncation are not lost.  A tracked file that read nothing yet may be the copy (seen
        after the copy was made, while the original had read nothing, and not reached for want
        of budget).  Whether a copy was found."""
        skip = {cp.file_id, *self._restore,
                *(fid for fid, c in self._tails.items()
                  if c.offset or c.read_pos or c.copy_of is not None or c.fd < 0)}
        directory, name = os.path.split(path)
        for fid, copy in copy_candidates(directory, name, cp.offset, skip):
            c = self._tails.get(fid)
            if c is not None:
                try:
                    c.size = os.fstat(c.fd).st_size
                    if not same_content(c.fd, c.size, cp):
                        continue
                    c.seek(cp.offset, cp.line_no)
                except OSError as e:
                    log.warning("%s: cannot check %s: %s", self.name, c.shown, e)
                    continue
                log.info("%s: %s is a copy of truncated %s; reading it on from byte %d",
                         self.name, c.shown, cp.path, cp.offset)
                return True
            c = self._new_tail(fid, copy)
            if c is None:
                continue
            if not same_content(c.fd, c.size, cp):  # head checked first: nothing else is read
                self._fds.close(c.fd)
                continue
            c.seek(cp.offset, cp.line_no)
            c.detached = found.pop(fid, None) is None  # kept as a tracked file if matched
            self._track(c)
            log.info("%s: %s is a copy of truncated %s; reading it on from byte %d",
                     self.name, c.shown, cp.path, cp.offset)
            return True
        return False

    def _follow_copies(self) -> None:
        """Tell copies of what was read from new files, and follow the copies: a new file that
        holds what a tracked file has read (or, being copied, a prefix of it) is not read while
        the original holds the same lines (copytruncate seen between copy and truncate)."""
        read: list[Tail] | None = None
        for c in list(self._tails.values()):
            try:
                if c.copy_of is not None:
                    self._follow(c)
                elif not (c.offset or c.read_pos) and c.size and c.fd >= 0:  # nothing read yet
                    if read is None:
                        read = [t for t in self._tails.values() if t.offset and not t.copy_of]
                    if t := original_of(c, read):
                        log.info("%s: %s is a copy of %s; following it, not reading it",
                                 self.name, c.shown, t.shown)
            except OSError as e:  # decided at the next poll
                log.warning("%s: cannot check %s: %s", self.name, c.shown, e)

    def _copy_of_fresh(self, c: Tail, fresh: dict[bytes, list[Tail]]) -> bool:
        """Whether unread `c` holds (a prefix of) what a file of `fresh` (by head) read in
        this poll: those had read nothing when copies were looked for (_follow_copies), so a
        copy made before this poll of the lines they just read was not recognised.  `c` then
        follows it, unread; on an error it is not read in this poll either."""
        try:
            head = os.pread(c.fd, PROBE, 0)
            if len(head) == PROBE:  # only files with the same head (or a shorter one) can match
                tails = [*fresh.get(head, ()), *fresh.get(b"", ())]
            else:
                tails = [t for ts in fresh.values() for t in ts]
            t = original_of(c, tails, head) if tails else None
        except OSError as e:  # decided at the next poll
            log.warning("%s: cannot check %s: %s", self.name, c.shown, e)
            return True
        if t is not None:
            log.info("%s: %s is a copy of %s; following it, not reading it",
                     self.name, c.shown, t.shown)
        return t is not None

    def _follow(self, c: Tail) -> None:
        if c.detached:
            self._drop(c)  # the copy went away
            return
        t = self._tails[c.copy_of or ""]  # an original let go releases its copies first
        if t.fd < 0:
            return  # parked original: unchanged since it was read
        c.size = os.fstat(c.fd).st_size
        extent = copy_extent(c.fd, c.size, os.pread(c.fd, PROBE, 0), t)
        if extent == t.offset and c.offset != extent:
            c.seek(t.offset, t.line_no)  # a copy up to here: if it ever differs, read on from here
        elif extent < 0:
            c.copy_of = None
            log.info("%s: %s is not a copy of %s after all; reading it from byte %d",
                     self.name, c.shown, t.shown, c.offset)

    def _release(self, c: Tail, cp: FileCheckpoint) -> None:
        """Followed copy `c` of content now truncated (or let go): read on after what was read
        of that content, that is, the lines written between our last read and the truncation."""
        try:
            c.take_over(cp)
        except OSError as e:  # read from where it last matched
            log.warning("%s: cannot check %s: %s", self.name, c.shown, e)
        log.info("%s: %s is a copy of %s; reading it on from byte %d", self.name, c.shown,
                 cp.path, c.offset)
