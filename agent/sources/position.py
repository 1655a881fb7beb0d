"""Which file is which: identities, positions and their checks, for the file tailer.

A file is known by ``dev:inode`` plus digests of its first bytes and of the bytes just before
the read position, so a renamed file is recognised, a reused inode is not mistaken for it, and a
truncated file that regrew past the old position is still noticed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Container
from dataclasses import dataclass

PROBE = 64  # bytes hashed for the head and fingerprint digests


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class FileCheckpoint:
    """Where reading of one file identity stands; stored by the daemon, given back to restore().

    ``head`` is the digest of the first ``min(64, offset)`` bytes and ``fingerprint`` that of the
    ``min(64, offset)`` bytes just before ``offset``; both are digests of nothing when offset is 0.
    """

    file_id: str  # "dev:inode": survives renames
    path: str  # last path the file was seen at
    offset: int  # byte offset just after the last complete line handed out
    line_no: int  # lines handed out from this file so far
    fingerprint: str  # digest of the bytes just before offset (copytruncate detection)
    head: str  # digest of the first bytes of the file (inode-reuse detection)


@dataclass(slots=True)
class Tail:
    """Reading state of one open file identity."""

    file_id: str
    path: str
    fd: int
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

    def checkpoint(self) -> FileCheckpoint:
        return FileCheckpoint(self.file_id, self.path, self.offset, self.line_no,
                              digest(self.fp), digest(self.head))


def same_content(fd: int, size: int, cp: FileCheckpoint) -> bool:
    """Whether the open file holds the content `cp` was taken from, up to its offset."""
    if size < cp.offset:
        return False
    n = min(PROBE, cp.offset)
    return (digest(os.pread(fd, n, 0)) == cp.head
            and digest(os.pread(fd, n, cp.offset - n)) == cp.fingerprint)


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
