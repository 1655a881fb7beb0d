"""Which file is which: identities, positions and their checks, for the file tailer.

A file is known by ``dev:inode`` plus digests of its first bytes and of the bytes just before
the read position, so a renamed file is recognised, a reused inode is not mistaken for it, and a
truncated file that regrew past the old position is still noticed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Container, Iterable
from dataclasses import dataclass

PROBE = 64  # bytes hashed for the head and fingerprint digests


def display(path: str) -> str:
    """`path` as valid UTF-8 text, for lines, checkpoints and logs: bytes of a file name that
    are not UTF-8 (kept by Python as lone surrogates, which SQLite and UTF-8 encoders refuse)
    shown as backslash escapes.  The file itself is always opened by its real name."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class FileCheckpoint:
    """Where reading of one file identity stands; stored by the daemon, given back to restore().

    ``head`` is the digest of the first ``min(64, offset)`` bytes and ``fingerprint`` that of the
    ``min(64, offset)`` bytes just before ``offset``; both are digests of nothing when offset is 0.
    """

    file_id: str  # "dev:inode": survives renames
    path: str  # last path the file was seen at, as shown (see display())
    offset: int  # byte offset just after the last complete line handed out
    line_no: int  # lines handed out from this file so far
    fingerprint: str  # digest of the bytes just before offset (copytruncate detection)
    head: str  # digest of the first bytes of the file (inode-reuse detection)


@dataclass(slots=True)
class Tail:
    """Reading state of one file identity."""

    file_id: str
    path: str  # the real name, to open it by
    fd: int  # -1 while parked: closed for want of descriptors, reopened when it changes
    size: int = 0  # as of the last fstat; reading stops there
    grew_at: float = 0.0  # monotonic time the size last changed
    detached: bool = False  # identity no longer matched by the globs (rotated or deleted)
    offset: int = 0  # committed: just after the last line handed out
    read_pos: int = 0  # next byte to read; bytes [offset, read_pos) are held in `pending`
    pending: bytes = b""  # incomplete last line (only its first max_line_bytes if overlong)
    overlong: bool = False  # the pending line exceeded max_line_bytes: skipping to its newline
    line_no: int = 0
    fp: bytes = b""  # raw bytes [offset - min(64, offset), offset)
    head: bytes = b""  # raw bytes [0, min(64, offset))
    shown: str = ""  # path as text (display())
    copy_of: str | None = None  # identity whose read content this file is a copy of: not read
    stamp: tuple[int, int] = (0, 0)  # (size, mtime_ns) when parked

    def __post_init__(self) -> None:
        self.shown = display(self.path)

    def move(self, path: str) -> None:
        self.path, self.shown = path, display(path)

    def rewind(self) -> None:
        self.offset = self.read_pos = self.line_no = 0
        self.pending, self.overlong, self.fp, self.head = b"", False, b"", b""

    def seek(self, offset: int, line_no: int) -> None:
        """Position after a known line boundary; reads the probe bytes back from the file."""
        self.rewind()
        self.offset = self.read_pos = offset
        self.line_no = line_no
        n = min(PROBE, offset)
        self.head = os.pread(self.fd, n, 0)
        self.fp = os.pread(self.fd, n, offset - n)

    def commit_read(self) -> None:
        """Count every byte read as handed out (after the held line was returned as it is)."""
        self.offset = self.read_pos
        self.pending, self.overlong = b"", False
        n = min(PROBE, self.offset)
        self.fp = os.pread(self.fd, n, self.offset - n)
        if len(self.head) < n:
            self.head = os.pread(self.fd, n, 0)

    def take_over(self, cp: FileCheckpoint) -> None:
        """This file, followed as a copy, goes on after what was read of the content `cp` was
        taken at (its original was truncated): at cp's offset, or past its end if it holds only
        lines read already (line_no is then cp's: close enough for a copy nobody appends to).
        Else it was no copy after all, and goes on where it last matched."""
        self.copy_of = None
        self.size = os.fstat(self.fd).st_size
        if same_content(self.fd, self.size, cp):
            self.seek(cp.offset, cp.line_no)
        elif self.size < cp.offset:
            self.seek(self.size, cp.line_no)

    def checkpoint(self) -> FileCheckpoint:
        return FileCheckpoint(self.file_id, self.shown, self.offset, self.line_no,
                              digest(self.fp), digest(self.head))


def same_content(fd: int, size: int, cp: FileCheckpoint) -> bool:
    """Whether the open file holds the content `cp` was taken from, up to its offset."""
    if size < cp.offset:
        return False
    n = min(PROBE, cp.offset)
    return (digest(os.pread(fd, n, 0)) == cp.head
            and digest(os.pread(fd, n, cp.offset - n)) == cp.fingerprint)


def copy_extent(fd: int, size: int, head: bytes, t: Tail) -> int:
    """How much of what `t` has read the file open as `fd` (`size` bytes, starting with `head`)
    holds, judged by the first bytes and those before the end compared: t.offset if all of it
    (a copy), `size` if it is a prefix of it (a copy still being written), -1 if it differs or
    cannot tell."""
    k = min(size, t.offset)
    n = min(PROBE, k)
    if not k or head[:n] != t.head[:n]:
        return -1
    if k == t.offset:
        return k if os.pread(fd, n, k - n) == t.fp else -1
    if t.fd < 0:
        return -1
    return k if os.pread(fd, n, k - n) == os.pread(t.fd, n, k - n) else -1


def original_of(c: Tail, tails: Iterable[Tail], head: bytes | None = None) -> Tail | None:
    """The first of `tails` whose read content new file `c` holds all or a prefix of (see
    copy_extent); `c` then follows it (copy_of), at its offset if it holds all of it.  `head`:
    c's first PROBE bytes, if already read."""
    if head is None:
        head = os.pread(c.fd, PROBE, 0)
    for t in tails:
        extent = copy_extent(c.fd, c.size, head, t)
        if extent >= 0:
            c.copy_of = t.file_id
            if extent == t.offset:
                c.seek(t.offset, t.line_no)
            return t
    return None


def last_line_end(fd: int, size: int, max_line_bytes: int) -> int:
    """Offset just after the last newline, so a half-written last line is not cut."""
    start = max(0, size - max_line_bytes - 1)
    nl = os.pread(fd, size - start, start).rfind(b"\n")
    return start + nl + 1 if nl >= 0 else size


def locate(file_id: str, directory: str) -> str | None:
    """The name `file_id` now has in `directory` (a rotated file keeps its directory)."""
    dev, _, ino = file_id.partition(":")
    try:
        with os.scandir(directory) as entries:
            for e in entries:
                if str(e.inode()) == ino and e.is_file(follow_symlinks=False) \
                        and str(e.stat(follow_symlinks=False).st_dev) == dev:
                    return e.path
    except OSError:
        pass
    return None


def copy_candidates(directory: str, name: str, min_size: int,
                    skip: Container[str]) -> list[tuple[str, str]]:
    """(identity, path) of the regular files in `directory` that could be a copy of file `name`
    holding at least `min_size` bytes, identities in `skip` left out; most likely first: names
    starting with `name` (upload.log.1, upload.log-20261122), then the newest.  Only the
    directory is listed and stat'ed: the caller compares content."""
    found = []
    try:
        with os.scandir(directory) as entries:
            for e in entries:
                try:
                    if not e.is_file(follow_symlinks=False):
                        continue
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                fid = f"{st.st_dev}:{st.st_ino}"
                if st.st_size >= min_size and fid not in skip:
                    found.append((not e.name.startswith(name), -st.st_mtime, e.path, fid))
    except OSError:
        return []
    return [(fid, path) for _, _, path, fid in sorted(found)]
