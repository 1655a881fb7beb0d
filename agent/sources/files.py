"""Tail log files matched by glob patterns, surviving rotation and restarts.

A file is tracked by identity (``dev:inode``), not by name, so a renamed file is never read
twice and a rotated-away file is drained before it is let go.  Positions are exact byte offsets
just after the last complete line handed out; the daemon stores them (``checkpoints()``) only
after processing the lines, and hands them back with ``restore()`` after a restart.

Rotation handled (no line lost, none repeated):

* rename (logrotate ``create``): the old identity leaves the glob (or shows up under a new
  matching name); its open handle is drained to EOF, a dangling last line is returned, and the
  new file is read from 0.
* copytruncate: same identity, content replaced.  Detected by ``size < position`` or by the
  64 bytes before the offset no longer matching (the file may have regrown past the old offset).
  Then (only then, also for a truncation while we were down) the folder is searched for the
  copy (upload.log.1, upload.log-20261122; matched by the globs or not): the file with the same
  head and fingerprint digests at the old offset.  It is read on from there, then the file from 0.
  A copy seen before the truncation (or while being written) holds what was read, or a prefix
  of it: it is followed, not read, until the original is truncated.
* delete and recreate: like rename; the deleted inode stays readable through our handle.
* a folder renamed away and back: files let go are remembered by identity and go on.

A folder that cannot be listed (no file descriptors, permission, I/O) leaves its files as they
were: unknown, not gone.  See discover.py (listing), descriptors.py (open file budget) and
copies.py (copytruncate copies).

Listing the folders is done only when it may find something (listing.py): after an event in
the source's folders that concerns it, at least every `rescan` seconds, and at every poll while
no Waker watches them.  Open files are read through their descriptors at every poll whatever
happened: their size comes from fstat, so new lines are seen at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable

from agent.sources.changes import CHANGES, Changes
from agent.sources.copies import Copies
from agent.sources.descriptors import NO_FDS, Descriptors
from agent.sources.discover import Entry, Finder, unknown
from agent.sources.lines import LineReader
from agent.sources.listing import Listing
from agent.sources.position import (
    PROBE,
    FileCheckpoint,
    Tail,
    display,
    last_line_end,
    locate,
    same_content,
)
from agent.types import LineBatch, RawLine

log = logging.getLogger(__name__)

_GONE = 4096  # files let go that are remembered, in case they come back


class FileSource(Copies):
    """Tails every regular file matched by `patterns` (absolute globs), yielding RawLines.

    `start_at` ("beginning" or "end") applies only to files present on the first poll of a first
    run that have no checkpoint; files appearing later are always read from the beginning.
    `rotate_grace` is how long (seconds) a rotated-away file is kept open after it stopped
    growing, because writers usually add a few lines to the old file before reopening.
    `max_open` caps the files kept open (default: half the descriptor limit).
    `rescan` is the longest time (seconds; the daemon's poll interval) between two listings
    of the folders while a Waker reports no event that concerns the source; `changes` the
    events noted by the Wakers (default: the process's).
    """

    def __init__(self, name: str, patterns: list[str], *, encoding: str = "utf-8",
                 start_at: str = "beginning", max_line_bytes: int = 65536,
                 first_run: bool = True, rotate_grace: float = 1.0,
                 max_open: int | None = None, rescan: float = 1.0,
                 changes: Changes | None = None) -> None:
        if start_at not in ("beginning", "end"):
            raise ValueError(f"start_at must be 'beginning' or 'end', not {start_at!r}")
        self._stats = dict.fromkeys(("lines", "truncated", "replaced", "rotations",
                                     "truncations", "files", "list_errors"), 0)
        self._taken: dict[str, int] = {}  # stats as of the last take_counts()
        self._lines = LineReader(name, encoding, max_line_bytes, self._stats)
        relative = [p for p in patterns if not os.path.isabs(p)]
        if relative:
            raise ValueError(f"file patterns must be absolute: {relative}")
        self.name = name
        self.patterns = list(patterns)
        self._finder = Finder(name, self.patterns)
        self._start_at_end = start_at == "end" and first_run
        self._max = max_line_bytes  # for start_at: end
        self._grace = rotate_grace
        self._tails: dict[str, Tail] = {}
        self._restore: dict[str, FileCheckpoint] = {}
        # Positions of truncated content whose copy was not found at once: a copy of it that
        # shows up later under a matching name resumes there instead of being read again.
        self._orphans: deque[FileCheckpoint] = deque(maxlen=32)
        # Files let go (rotated away, folder gone): one that comes back goes on where it was.
        self._gone: dict[str, FileCheckpoint] = {}
        self._polled = False
        self._fds = Descriptors(name, self._tails, max_open, self._stats)
        self._failed: set[str] = set()  # identities that could not be read in the last poll
        self._listing = Listing(self._finder, CHANGES if changes is None else changes, rescan)

    # -- public -------------------------------------------------------------------------------

    def restore(self, checkpoints: Iterable[FileCheckpoint]) -> None:
        """Resume from stored positions; call before the first poll."""
        self._restore = {cp.file_id: cp for cp in checkpoints}

    def poll(self, max_lines: int = 20000) -> list[RawLine]:
        """New complete lines in file order, at most `max_lines`; the next poll continues."""
        return self.read(max_lines).raw()

    def read(self, max_lines: int = 20000) -> LineBatch:
        """The same as poll(), as blocks of lines decoded together where it could (a consumer
        that needs no RawLine per line reads them without one)."""
        first = not self._polled
        self._polled = True
        forced = first or bool(self._restore) or self._fds.refused > 0
        relist = self._listing.due(forced, self._is_open)
        self._fds.begin_poll()
        self._failed.clear()
        if relist or not self._unchanged_in_place():
            self._list(first)
        self._follow_copies()
        out = LineBatch()
        # Files that had read nothing and read lines in this poll, by head (b"" if shorter).
        fresh: dict[bytes, list[Tail]] = {}
        order = sorted(self._tails.values(), key=lambda t: not t.detached)
        for t in order:
            if len(out) >= max_lines:
                break
            if t.fd < 0 or t.copy_of is not None:
                continue
            unread = not (t.offset or t.read_pos)
            if unread and fresh and t.read_pos < t.size and self._copy_of_fresh(t, fresh):
                if t.copy_of is None:
                    self._failed.add(t.file_id)  # could not tell: not read
                continue
            try:
                self._lines.read(t, max_lines - len(out), out)
            except OSError as e:
                log.warning("%s: reading %s failed: %s", self.name, t.shown, e)
                self._failed.add(t.file_id)
                continue
            if unread and t.offset:
                fresh.setdefault(t.head if len(t.head) == PROBE else b"", []).append(t)
            if t.detached and t.read_pos >= t.size and len(out) < max_lines \
                    and time.monotonic() - t.grew_at >= self._grace:
                self._finish(t, out)
        self._lines.warn_encoding()
        return out

    def _list(self, first: bool) -> None:
        """List the folders and stat the matches: new files are opened, renamed and deleted
        ones followed or let go, parked ones that changed reopened, truncations handled."""
        found, failed = self._finder.scan()
        self._listing.listed(bool(failed))
        if failed:
            self._stats["list_errors"] += len(failed)
            if any(e.errno in NO_FDS for _, e in failed):
                self._fds.shrink()
        self._fds.make_room()
        for t in list(self._tails.values()):
            hit = found.pop(t.file_id, None)
            if hit is None:
                if not t.detached and not unknown(t.path, failed):
                    self._detach(t)
                continue
            if hit.path != t.path:
                if not t.detached:
                    self._stats["rotations"] += 1
                log.info("%s: %s is now %s; not reading it again", self.name, t.shown,
                         display(hit.path))
                t.move(hit.path)
            t.detached = False
            if t.fd < 0 and (hit.size, hit.mtime_ns) != t.stamp:
                self._fds.reopen(t)
        for t in list(self._tails.values()):
            if t.fd >= 0 and t.copy_of is None:
                self._check_truncation(t, found)
        # Files with a checkpoint first, so a failed resume can be matched by its copy.
        for fid, entry in sorted(found.items(), key=lambda kv: kv[0] not in self._restore):
            if fid not in self._tails:  # not already taken as the copy of a truncated file
                self._open(fid, entry.path, first, found)
        if self._restore:
            self._restore_rotated(found)

    def _is_open(self, path: str) -> bool:
        """Whether the file at `path` (normalised) is read through an open descriptor."""
        return any(t.fd >= 0 and not t.detached and os.path.normpath(t.path) == path
                   for t in self._tails.values())

    def _unchanged_in_place(self) -> bool:
        """Fstat every open file (its size: what the next read stops at); False when one was
        truncated or replaced in place (copytruncate), which the listing then handles."""
        for t in self._tails.values():
            if t.fd >= 0 and t.copy_of is None and self._in_place(t) is False:
                return False
        return True

    def backlog(self) -> bool:
        """Whether the last poll left unread data it knows of, so the next poll should follow at
        once (and time not jump to the clock): an open file read short of its known size (the
        poll's line budget ran out), or files put off for want of a descriptor (found, restored
        or parked and changed) while an open file can be parked at the next poll to make room.
        Not files whose reading or opening failed: the regular poll interval retries those.
        Costs no I/O."""
        waiting = self._fds.refused > 0
        for t in self._tails.values():
            if t.fd < 0 or t.copy_of is not None or t.file_id in self._failed:
                continue
            if t.read_pos < t.size or (waiting and not t.detached):
                return True
        return False

    def flush(self) -> list[RawLine]:
        """The held last line of every tracked file that does not end with a newline, as
        complete lines; each file's checkpoint moves past its line, so no later poll returns it
        again and text appended afterwards starts a new line.  For one-shot reading (replay),
        once poll() returns nothing; the daemon does not call it (it waits for the newline)."""
        return self.flush_batch().raw()

    def flush_batch(self) -> LineBatch:
        """flush() as a LineBatch, as read() gives."""
        out = LineBatch()
        for t in sorted(self._tails.values(), key=lambda t: not t.detached):
            if (t.pending or t.overlong) and (t.fd >= 0 or self._fds.reopen(t)):
                self._lines.emit_pending(t, out)
                try:
                    t.commit_read()
                except OSError as e:  # the next truncation check decides
                    log.warning("%s: cannot read %s back: %s", self.name, t.shown, e)
        return out

    def checkpoints(self) -> list[FileCheckpoint]:
        """Positions after everything poll() has returned, including rotated files still open
        (not of copies being followed: they are matched again after a restart), and restored
        ones not taken up yet (their files wait for a descriptor): the daemon's store keeps
        only these, and a second restart must not read those files again."""
        return [t.checkpoint() for t in self._tails.values() if t.copy_of is None] + \
            [cp for fid, cp in self._restore.items() if fid not in self._tails]

    def watch_dirs(self) -> set[str]:
        """Existing directories whose changes may concern this source (for the Waker),
        normalised."""
        dirs = {os.path.normpath(os.path.dirname(t.path)) for t in self._tails.values()}
        return self._finder.watch_dirs() | {d for d in dirs if os.path.isdir(d)}

    def missing_dirs(self) -> list[str]:
        """Configured folders (each pattern's path up to its first wildcard) that do not exist;
        their files are picked up once they do."""
        return [d for d in self._finder.roots() if not os.path.isdir(d)]

    def encoding_hint(self) -> str | None:
        """A likelier encoding when most lines do not decode (at least 20 read, over half with
        replaced bytes): the first of gb18030, gbk, utf-16 that decodes the kept starts of
        recent bad lines.  None otherwise."""
        return self._lines.encoding_hint()

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counters, the authority for what this source read:

        * lines: lines handed out by poll() and flush()
        * truncated: of those, lines longer than max_line_bytes, cut there
        * replaced: of those, lines with undecodable bytes (replaced with U+FFFD)
        * rotations: tracked files renamed, moved or deleted away (drained, then let go)
        * truncations: files truncated or replaced in place (copytruncate), also while down
        * files: file identities opened for reading (reopening a parked one does not count)
        * list_errors: failures listing a folder, stat'ing a match or opening a file, one per
          attempt (each poll retries)
        """
        return dict(self._stats)

    def take_counts(self) -> dict[str, int]:
        """What `stats` gained since the last call (non-zero ones): the loop adds these to
        the agent's counts, so each thing a source counts reaches `status` once."""
        if self._stats == self._taken:  # most polls of a quiet source
            return {}
        out = {k: v - self._taken.get(k, 0) for k, v in self._stats.items()
               if v != self._taken.get(k, 0)}
        self._taken = dict(self._stats)
        return out

    def close(self) -> None:
        """Close every open file; the source is not usable afterwards."""
        self._fds.close_all()
        self._tails.clear()

    # -- following files ----------------------------------------------------------------------

    def _detach(self, t: Tail) -> None:
        t.detached, t.grew_at = True, time.monotonic()
        self._stats["rotations"] += 1
        new = locate(t.file_id, os.path.dirname(t.path))
        log.info("%s: %s was %s; draining it", self.name, t.shown,
                 f"renamed to {display(new)}" if new else "deleted or moved away")
        if new:
            t.move(new)
        if t.fd < 0 and not (new and self._fds.reopen(t)):
            self._drop(t)  # parked, so read to its end when it was parked

    def _open(self, fid: str, path: str, first: bool, found: dict[str, Entry]) -> None:
        t = self._new_tail(fid, path)
        if t is None:
            return
        cp = self._restore.pop(fid, None)
        back = self._gone.pop(fid, None)
        # At offset 0 nothing was read: a reused inode is a new file (maybe an orphan's copy).
        if back is not None and back.offset and same_content(t.fd, t.size, back):
            t.seek(back.offset, back.line_no)
            log.info("%s: %s is back; going on at byte %d", self.name, t.shown, back.offset)
        elif cp is not None and same_content(t.fd, t.size, cp):
            t.seek(cp.offset, cp.line_no)
        elif cp is None and first and self._start_at_end:
            t.seek(last_line_end(t.fd, t.size, self._max), 0)
        else:
            if cp is not None:  # truncated while we were down, or a reused inode
                self._stats["truncations"] += 1
                log.info("%s: %s changed while we were down; reading it from the start",
                         self.name, t.shown)
                if cp.offset and not self._resume_copy(cp, path, found):
                    self._orphans.append(cp)
            for o in self._orphans:
                if same_content(t.fd, t.size, o):
                    # A copy of truncated content: continue where the original was.
                    self._orphans.remove(o)
                    t.seek(o.offset, o.line_no)
                    log.info("%s: %s is a copy of truncated %s; resuming at byte %d",
                             self.name, t.shown, o.path, o.offset)
                    break
        self._track(t)

    def _drop(self, t: Tail) -> None:
        """Let go of `t`, remembering where it stood in case it comes back."""
        if t.fd >= 0:
            self._fds.close(t.fd)
        del self._tails[t.file_id]
        if t.copy_of is not None:
            return
        cp = t.checkpoint()
        for c in [c for c in self._tails.values() if c.copy_of == t.file_id]:
            self._release(c, cp)
        self._gone[t.file_id] = cp
        if len(self._gone) > _GONE:
            del self._gone[next(iter(self._gone))]

    def _restore_rotated(self, found: dict[str, Entry]) -> None:
        """Find checkpointed files renamed while we were down (same directory, same inode).
        A checkpoint whose file could not be opened yet (over the descriptor budget, an error)
        is kept for a later poll."""
        for cp in list(self._restore.values()):
            if cp.file_id in found:
                continue
            path = locate(cp.file_id, os.path.dirname(cp.path))
            t = self._new_tail(cp.file_id, path) if path else None
            if t is None:
                if not path:
                    del self._restore[cp.file_id]
                continue
            del self._restore[cp.file_id]
            if same_content(t.fd, t.size, cp):
                t.seek(cp.offset, cp.line_no)
                t.detached = True
                self._track(t)
                self._stats["rotations"] += 1
                log.info("%s: %s was rotated to %s while we were down; draining it",
                         self.name, cp.path, t.shown)
            else:
                self._fds.close(t.fd)

    def _in_place(self, t: Tail) -> bool | None:
        """Update `t`'s size from fstat; whether it still holds what was read (False: truncated
        or replaced in place), None if it could not be checked (logged)."""
        try:
            t_size = os.fstat(t.fd).st_size
            if t_size != t.size:
                t.size, t.grew_at = t_size, time.monotonic()
            n = len(t.fp)
            return t_size >= t.read_pos and (not n or os.pread(t.fd, n, t.offset - n) == t.fp)
        except OSError as e:
            log.warning("%s: cannot check %s: %s", self.name, t.shown, e)
            return None

    def _check_truncation(self, t: Tail, found: dict[str, Entry]) -> None:
        if self._in_place(t) is False:
            self._stats["truncations"] += 1
            log.info("%s: %s was truncated (copytruncate?); reading it from the start",
                     self.name, t.shown)
            cp = t.checkpoint()
            t.rewind()
            if not cp.offset:
                return
            copies = [c for c in self._tails.values() if c.copy_of == t.file_id]
            for c in copies:
                self._release(c, cp)
            if copies or self._resume_copy(cp, t.path, found):
                del self._tails[t.file_id]  # re-added after the copy, so the copy is read first
                self._tails[t.file_id] = t
            else:
                self._orphans.append(cp)

    def _finish(self, t: Tail, out: LineBatch) -> None:
        """Let go of a rotated-away file that is fully read, returning its dangling line."""
        if t.pending or t.overlong:
            self._lines.emit_pending(t, out)
        self._drop(t)
        log.info("%s: finished rotated file %s (%d lines)", self.name, t.shown, t.line_no)

