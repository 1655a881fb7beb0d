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
* delete and recreate: like rename; the deleted inode stays readable through our handle.
"""

from __future__ import annotations

import codecs
import glob
import logging
import os
import re
import stat
import time
from collections import deque
from collections.abc import Iterable
from itertools import count, repeat

from agent.sources.position import (
    PROBE,
    FileCheckpoint,
    Tail,
    copy_candidates,
    last_line_end,
    locate,
    same_content,
)
from agent.types import RawLine

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes per read: large enough to amortise syscalls, small enough to bound memory
# Upper bound of encoded bytes per character (utf-8, gb18030): a line of n characters is at most
# n * 4 bytes, so blocks whose lines are all short can skip the exact byte-length check.
_MAX_CHAR_BYTES = 4
_MAGIC = re.compile(r"[*?[]")


class FileSource:
    """Tails every regular file matched by `patterns` (absolute globs), yielding RawLines.

    `start_at` ("beginning" or "end") applies only to files present on the first poll of a first
    run that have no checkpoint; files appearing later are always read from the beginning.
    `rotate_grace` is how long (seconds) a rotated-away file is kept open after it stopped
    growing, because writers usually add a few lines to the old file before reopening.
    """

    def __init__(self, name: str, patterns: list[str], *, encoding: str = "utf-8",
                 start_at: str = "beginning", max_line_bytes: int = 65536,
                 first_run: bool = True, rotate_grace: float = 1.0) -> None:
        try:
            codec = codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}") from None
        try:
            ascii_newline = b"\r\n".decode(codec.name) == "\r\n"
        except UnicodeDecodeError:
            ascii_newline = False
        if not ascii_newline:
            raise ValueError(f"encoding {encoding!r} is not ASCII-compatible (newline is not "
                             "the byte 0x0A); lines are split on bytes, so utf-16/utf-32 "
                             "logs cannot be tailed: convert them or log in utf-8")
        if start_at not in ("beginning", "end"):
            raise ValueError(f"start_at must be 'beginning' or 'end', not {start_at!r}")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        relative = [p for p in patterns if not os.path.isabs(p)]
        if relative:
            raise ValueError(f"file patterns must be absolute: {relative}")
        self.name = name
        self.patterns = list(patterns)
        self._enc = codec.name
        self._start_at_end = start_at == "end" and first_run
        self._max = max_line_bytes
        self._grace = rotate_grace
        self._tails: dict[str, Tail] = {}
        self._restore: dict[str, FileCheckpoint] = {}
        # Positions of truncated content whose copy was not found at once: a copy of it that
        # shows up later under a matching name resumes there instead of being read again.
        self._orphans: deque[FileCheckpoint] = deque(maxlen=32)
        self._polled = False
        self._warned: set[str] = set()
        self._stats = dict.fromkeys(
            ("lines", "truncated", "replaced", "rotations", "truncations", "files"), 0)

    # -- public -------------------------------------------------------------------------------

    def restore(self, checkpoints: Iterable[FileCheckpoint]) -> None:
        """Resume from stored positions; call before the first poll."""
        self._restore = {cp.file_id: cp for cp in checkpoints}

    def poll(self, max_lines: int = 20000) -> list[RawLine]:
        """New complete lines in file order, at most `max_lines`; the next poll continues."""
        first = not self._polled
        self._polled = True
        found = self._scan()
        for t in self._tails.values():
            hit = found.pop(t.file_id, None)
            if hit is None:
                if not t.detached:
                    t.detached, t.grew_at = True, time.monotonic()
                    self._stats["rotations"] += 1
                    new = locate(t.file_id, os.path.dirname(t.path))
                    log.info("%s: %s was %s; draining it", self.name, t.path,
                             f"renamed to {new}" if new else "deleted or moved away")
                    t.path = new or t.path
            elif hit != t.path:
                if not t.detached:
                    self._stats["rotations"] += 1
                log.info("%s: %s is now %s; not reading it again", self.name, t.path, hit)
                t.path, t.detached = hit, False
            else:
                t.detached = False
        for t in list(self._tails.values()):
            self._check_truncation(t, found)
        # Files with a checkpoint first, so a failed resume can be matched by its copy.
        for fid, path in sorted(found.items(), key=lambda kv: kv[0] not in self._restore):
            if fid not in self._tails:  # not already taken as the copy of a truncated file
                self._open(fid, path, first, found)
        if first:
            self._restore_rotated()
        out: list[RawLine] = []
        order = sorted(self._tails.values(), key=lambda t: not t.detached)
        for t in order:
            if len(out) >= max_lines:
                break
            try:
                self._read(t, max_lines - len(out), out)
            except OSError as e:
                log.warning("%s: reading %s failed: %s", self.name, t.path, e)
                continue
            if t.detached and t.read_pos >= t.size and len(out) < max_lines \
                    and time.monotonic() - t.grew_at >= self._grace:
                self._finish(t, out)
        return out

    def flush(self) -> list[RawLine]:
        """The held last line of every tracked file that does not end with a newline, as
        complete lines; each file's checkpoint moves past its line, so no later poll returns it
        again and text appended afterwards starts a new line.  For one-shot reading (replay),
        once poll() returns nothing; the daemon does not call it (it waits for the newline)."""
        out: list[RawLine] = []
        for t in sorted(self._tails.values(), key=lambda t: not t.detached):
            if t.pending or t.overlong:
                self._emit_pending(t, out)
                try:
                    t.commit_read()
                except OSError as e:  # the next truncation check decides
                    log.warning("%s: cannot read %s back: %s", self.name, t.path, e)
        return out

    def checkpoints(self) -> list[FileCheckpoint]:
        """Positions after everything poll() has returned, including rotated files still open."""
        return [t.checkpoint() for t in self._tails.values()]

    def watch_dirs(self) -> set[str]:
        """Existing directories whose changes may concern this source (for the Waker)."""
        dirs: set[str] = set()
        for pattern in self.patterns:
            parent = os.path.dirname(pattern)
            dirs.update(glob.glob(parent, recursive=True) if _MAGIC.search(parent) else [parent])
        dirs.update(os.path.dirname(t.path) for t in self._tails.values())
        return {d for d in dirs if os.path.isdir(d)}

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counters: lines, truncated, replaced, rotations, truncations, files opened."""
        return dict(self._stats)

    def close(self) -> None:
        """Close every open file; the source is not usable afterwards."""
        for t in self._tails.values():
            os.close(t.fd)
        self._tails.clear()

    # -- discovery ----------------------------------------------------------------------------

    def _scan(self) -> dict[str, str]:
        """Identity -> path of every regular file the globs match, oldest (by mtime) first."""
        hits: dict[str, tuple[float, str]] = {}
        for pattern in self.patterns:
            for path in glob.iglob(pattern, recursive=True):
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # vanished between listing and stat
                if stat.S_ISREG(st.st_mode):
                    hits.setdefault(f"{st.st_dev}:{st.st_ino}", (st.st_mtime, path))
        return {fid: path for fid, (_, path) in sorted(hits.items(), key=lambda kv: kv[1])}

    def _new_tail(self, fid: str, path: str) -> Tail | None:
        """Open `path` if it still is identity `fid`; None (after a warning) if it cannot be."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("%s: cannot open %s: %s", self.name, path, e)
            return None
        st = os.fstat(fd)
        if f"{st.st_dev}:{st.st_ino}" != fid:
            os.close(fd)  # replaced between stat and open: the next poll sees the new one
            return None
        return Tail(fid, path, fd, st.st_size, time.monotonic())

    def _open(self, fid: str, path: str, first: bool, found: dict[str, str]) -> None:
        t = self._new_tail(fid, path)
        if t is None:
            return
        cp = self._restore.pop(fid, None)
        if cp is not None and same_content(t.fd, t.size, cp):
            t.seek(cp.offset, cp.line_no)
        elif cp is not None:
            self._stats["truncations"] += 1
            log.info("%s: %s changed while we were down; reading it from the start",
                     self.name, path)
            if cp.offset and not self._resume_copy(cp, path, found):
                self._orphans.append(cp)
        elif first and self._start_at_end:
            t.seek(last_line_end(t.fd, t.size, self._max), 0)
        else:
            for o in self._orphans:
                if same_content(t.fd, t.size, o):
                    # A copy of truncated content: continue where the original was.
                    self._orphans.remove(o)
                    t.seek(o.offset, o.line_no)
                    log.info("%s: %s is a copy of truncated %s; resuming at byte %d",
                             self.name, path, o.path, o.offset)
                    break
        self._track(t)

    def _track(self, t: Tail) -> None:
        self._tails[t.file_id] = t
        self._stats["files"] += 1

    def _restore_rotated(self) -> None:
        """Find checkpointed files renamed while we were down (same directory, same inode)."""
        for cp in self._restore.values():
            path = locate(cp.file_id, os.path.dirname(cp.path))
            t = self._new_tail(cp.file_id, path) if path else None
            if t is None:
                continue
            if same_content(t.fd, t.size, cp):
                t.seek(cp.offset, cp.line_no)
                t.detached = True
                self._track(t)
                self._stats["rotations"] += 1
                log.info("%s: %s was rotated to %s while we were down; draining it",
                         self.name, cp.path, t.path)
            else:
                os.close(t.fd)
        self._restore.clear()

    def _check_truncation(self, t: Tail, found: dict[str, str]) -> None:
        try:
            t_size = os.fstat(t.fd).st_size
            if t_size != t.size:
                t.size, t.grew_at = t_size, time.monotonic()
            n = len(t.fp)
            same = t_size >= t.read_pos and (not n or os.pread(t.fd, n, t.offset - n) == t.fp)
        except OSError as e:
            log.warning("%s: cannot check %s: %s", self.name, t.path, e)
            return
        if not same:
            self._stats["truncations"] += 1
            log.info("%s: %s was truncated (copytruncate?); reading it from the start",
                     self.name, t.path)
            cp = t.checkpoint()
            t.rewind()
            if cp.offset and self._resume_copy(cp, t.path, found):
                del self._tails[t.file_id]  # re-added after the copy, so the copy is read first
                self._tails[t.file_id] = t
            elif cp.offset:
                self._orphans.append(cp)

    def _resume_copy(self, cp: FileCheckpoint, path: str, found: dict[str, str]) -> bool:
        """Truncated content (`cp`, of the file now at `path`): find its copy in the same folder
        and track it from cp's offset, so the lines written between our last read and the
        truncation are not lost.  Whether a copy was found."""
        skip = {cp.file_id, *self._tails, *self._restore}
        directory, name = os.path.split(path)
        for fid, copy in copy_candidates(directory, name, cp.offset, skip):
            c = self._new_tail(fid, copy)
            if c is None:
                continue
            if not same_content(c.fd, c.size, cp):  # head checked first: nothing else is read
                os.close(c.fd)
                continue
            c.seek(cp.offset, cp.line_no)
            c.detached = found.pop(fid, None) is None  # kept as a tracked file if matched
            self._track(c)
            log.info("%s: %s is a copy of truncated %s; reading it on from byte %d",
                     self.name, copy, path, cp.offset)
            return True
        return False

    # -- reading ------------------------------------------------------------------------------

    def _read(self, t: Tail, budget: int, out: list[RawLine]) -> None:
        """Read t up to its known size, appending at most `budget` lines to `out`."""
        limit = len(out) + budget
        while len(out) < limit and t.read_pos < t.size:
            chunk = os.pread(t.fd, min(CHUNK, t.size - t.read_pos), t.read_pos)
            if not chunk:
                break
            start = t.read_pos
            t.read_pos += len(chunk)
            if t.overlong:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue  # still inside the overlong line: drop bytes, keep memory bounded
                self._emit_pending(t, out)
                t.offset = start + nl + 1
                t.fp = chunk[nl + 1 - PROBE:nl + 1] if nl + 1 >= PROBE else os.pread(
                    t.fd, min(PROBE, t.offset), max(0, t.offset - PROBE))
                data = chunk[nl + 1:]
            else:
                data = t.pending + chunk if t.pending else chunk
            t.pending = b""
            self._split(t, data, limit - len(out), out)
        if len(t.head) < PROBE and t.offset > len(t.head):
            t.head = os.pread(t.fd, min(PROBE, t.offset), 0)

    def _split(self, t: Tail, data: bytes, budget: int, out: list[RawLine]) -> None:
        """Hand out the complete lines of `data` (which starts at t.offset); hold the rest."""
        last = data.rfind(b"\n")
        end = last + 1
        if end:
            n = data.count(b"\n", 0, end)
            stop = n > budget
            if stop:  # cut after the budget-th newline; the next poll re-reads from there
                n = budget
                end = len(data) - len(data.split(b"\n", budget)[-1]) if budget else 0
            if n:
                self._emit(t, data[:end], n, out)
                t.offset += end
                t.fp = data[end - PROBE:end] if end >= PROBE else (t.fp + data[:end])[-PROBE:]
            if stop:
                t.read_pos = t.offset
                return
        rest = data[end:]
        if len(rest) > self._max:
            t.pending, t.overlong = rest[:self._max], True
        else:
            t.pending = rest

    def _emit(self, t: Tail, block: bytes, n: int, out: list[RawLine]) -> None:
        """Decode `block` (n lines, each ending in newline) in bulk; per line only if needed."""
        try:
            text = block.decode(self._enc)
        except UnicodeDecodeError:
            text = None
        if text is not None:
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            texts = text.split("\n")
            texts.pop()
            fits = len(block) <= self._max or \
                max(map(len, texts)) * _MAX_CHAR_BYTES <= self._max
            if fits and len(texts) == n:
                out.extend(map(RawLine, repeat(self.name), repeat(t.path),
                               count(t.line_no + 1), texts))
                t.line_no += n
                self._stats["lines"] += n
                return
        for raw in block[:-1].split(b"\n"):
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            cut = len(raw) > self._max
            self._add(t, *self._decode(raw[:self._max] if cut else raw, cut), cut, out)

    def _add(self, t: Tail, text: str, replaced: bool, truncated: bool,
             out: list[RawLine]) -> None:
        t.line_no += 1
        out.append(RawLine(self.name, t.path, t.line_no, text, truncated, replaced))
        self._stats["lines"] += 1
        self._stats["truncated"] += truncated
        self._stats["replaced"] += replaced

    def _decode(self, raw: bytes, prefix: bool = False) -> tuple[str, bool]:
        """Text and whether bytes were replaced; strict first because it is the fast common
        case.  A `prefix` (cut at max_line_bytes) drops a character cut in half."""
        if prefix:
            try:
                return codecs.getincrementaldecoder(self._enc)().decode(raw), False
            except UnicodeDecodeError:
                return codecs.getincrementaldecoder(self._enc)("replace").decode(raw), True
        try:
            return raw.decode(self._enc), False
        except UnicodeDecodeError:
            return raw.decode(self._enc, "replace"), True

    def _emit_pending(self, t: Tail, out: list[RawLine]) -> None:
        """Hand out the held line as it is (an overlong line's prefix, or a dangling last line)."""
        raw = t.pending[:-1] if not t.overlong and t.pending.endswith(b"\r") else t.pending
        self._add(t, *self._decode(raw, t.overlong), t.overlong, out)
        t.pending, t.overlong = b"", False

    def _finish(self, t: Tail, out: list[RawLine]) -> None:
        """Let go of a rotated-away file that is fully read, returning its dangling line."""
        if t.pending or t.overlong:
            self._emit_pending(t, out)
        os.close(t.fd)
        del self._tails[t.file_id]
        log.info("%s: finished rotated file %s (%d lines)", self.name, t.path, t.line_no)
