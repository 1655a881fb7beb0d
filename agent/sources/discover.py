"""Which files a source's globs match, listing folders so that errors are seen.

``glob.iglob`` swallows OSError: a folder it cannot list (out of file descriptors, permission
denied, I/O error) looks empty, so every file in it would look rotated away, be let go and be
read again from the start once the error clears.  Here each folder is listed with
``os.scandir`` and matched with fnmatch; a listing error names the folder, whose files are then
unknown rather than gone.  Matches that are not regular files are reported, once each.

Semantics follow ``glob(pattern, recursive=True)``: hidden names match only a component that
starts with a dot, and ``**`` is zero or more folders.  Unlike glob, ``**`` does not follow
symlinked folders (a link loop would recurse until the path is too long).

A scan also records the folders it matched file names in, with the name patterns used there
(``Finder.folders``), so that a file event can be told to concern the source or not
(``Finder.concerns``) without listing anything.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import glob
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agent.sources.position import display

log = logging.getLogger(__name__)

MAGIC = re.compile(r"[*?[]")
_MISSING = (errno.ENOENT, errno.ENOTDIR)  # not there (yet): not an error


@dataclass(frozen=True, slots=True)
class Entry:
    """A matched regular file as listed: where, and what stat said (to notice a change)."""

    path: str
    size: int
    mtime_ns: int


Failure = tuple[str, OSError]  # a folder that could not be listed, or a file not stat'ed


def unknown(path: str, failed: list[Failure]) -> bool:
    """Whether `path` is at or under something that could not be listed: not known gone."""
    return any(path == f or path.startswith(os.path.join(f, "")) for f, _ in failed)


@functools.lru_cache(maxsize=256)
def _matcher(part: str) -> Callable[[str], object]:
    return re.compile(fnmatch.translate(part)).match


def _name_matches(part: str, name: str) -> bool:
    """Whether file name `name` matches pattern component `part` as a scan matches it."""
    if name.startswith(".") and not part.startswith("."):
        return False
    return part == "**" or bool(_matcher(part)(name))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


class Finder:
    """Lists the files `patterns` (absolute globs) match, for the source called `name`."""

    def __init__(self, name: str, patterns: list[str]) -> None:
        self.name = name
        self.patterns = patterns
        self._parts = [[p for p in pattern.split(os.sep) if p] for pattern in patterns]
        self._odd: set[str] = set()  # non-regular matches already reported
        self._failing: set[str] = set()  # failures reported, until that path works again
        # As of the last scan: each existing folder file names were matched in (normalised),
        # and the name patterns matched there ("**": any name that is not hidden).
        self.folders: dict[str, set[str]] = {}

    def scan(self) -> tuple[dict[str, Entry], list[Failure]]:
        """Identity (``dev:inode``) -> entry of every regular file matched, oldest (by mtime)
        first, and what could not be listed or stat'ed: files under those are unknown."""
        hits: dict[str, tuple[int, Entry]] = {}
        failed: list[Failure] = []
        self.folders = {}
        for parts in self._parts:
            for path in self._walk(os.sep, parts, failed):
                try:
                    st = os.stat(path)
                except OSError as e:
                    self._stat_failed(path, e, failed)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self._report_odd(path, _kind(st.st_mode))
                    continue
                if self._failing:
                    self._failing.discard(path)
                hits.setdefault(f"{st.st_dev}:{st.st_ino}",
                                (st.st_mtime_ns, Entry(path, st.st_size, st.st_mtime_ns)))
        found = {fid: e for fid, (_, e) in sorted(hits.items(), key=lambda kv: kv[1][0])}
        return found, failed

    def roots(self) -> list[str]:
        """The fixed folder of each pattern: its path up to the first wildcard."""
        roots: dict[str, None] = {}
        for parts in self._parts:
            fixed = []
            for p in parts[:-1]:
                if MAGIC.search(p):
                    break
                fixed.append(p)
            roots[os.path.join(os.sep, *fixed)] = None
        return list(roots)

    def watch_dirs(self) -> set[str]:
        """Existing folders the files may appear in, normalised (errors do not matter: polling
        covers)."""
        dirs: set[str] = set()
        for pattern in self.patterns:
            parent = os.path.dirname(pattern)
            dirs.update(glob.glob(parent, recursive=True) if MAGIC.search(parent) else [parent])
        return {os.path.normpath(d) for d in dirs if os.path.isdir(d)}

    def concerns(self, folder: str, name: str) -> bool:
        """Whether `name` in `folder` (normalised) is or was a file the last scan would have
        matched: its folder was scanned and the name matches a pattern used there."""
        parts = self.folders.get(folder)
        return parts is not None and any(_name_matches(p, name) for p in parts)

    def _folder(self, folder: str, part: str) -> None:
        self.folders.setdefault(os.path.normpath(folder), set()).add(part)

    def _walk(self, base: str, parts: list[str], failed: list[Failure]) -> Iterator[str]:
        """Paths below `base` matching `parts`; a path without wildcards is not checked here
        (stat'ing it tells whether it exists)."""
        if not parts:
            yield base
            return
        part, rest = parts[0], parts[1:]
        if part == "**":
            if rest:
                yield from self._walk(base, rest, failed)
            listed = self._list(base, failed)
            if listed is None:
                return
            if not rest:
                self._folder(base, part)
            for e in listed:
                if e.name.startswith("."):
                    continue
                if self._is_dir(e, follow=False):
                    yield from self._walk(e.path, parts, failed)
                elif not rest:
                    yield e.path
        elif MAGIC.search(part):
            match, hidden = _matcher(part), part.startswith(".")
            listed = self._list(base, failed)
            if listed is None:
                return
            if not rest:
                self._folder(base, part)
            for e in listed:
                if match(e.name) and (hidden or not e.name.startswith(".")) \
                        and (not rest or self._is_dir(e)):
                    yield from self._walk(e.path, rest, failed)
        else:
            if not rest and os.path.isdir(base):
                self._folder(base, part)
            yield from self._walk(os.path.join(base, part), rest, failed)

    def _list(self, folder: str, failed: list[Failure]) -> list[os.DirEntry[str]] | None:
        """The entries of `folder`; None if it is missing or cannot be listed."""
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            if e.errno not in _MISSING:
                failed.append((folder, e))
                self._report_failure(folder, "cannot list", e)
            return None
        if self._failing:
            self._failing.discard(folder)
        return entries

    def _is_dir(self, e: os.DirEntry[str], follow: bool = True) -> bool:
        try:
            return e.is_dir(follow_symlinks=follow)
        except OSError as err:  # a symlink loop, or gone
            if err.errno == errno.ELOOP:
                self._report_odd(e.path, "a symlink loop")
            return False

    def _stat_failed(self, path: str, e: OSError, failed: list[Failure]) -> None:
        if e.errno == errno.ELOOP:
            self._report_odd(path, "a symlink loop")
        elif e.errno in _MISSING:
            if os.path.islink(path):
                self._report_odd(path, "a broken symlink")
            # else: not there, or gone between listing and stat
        else:
            failed.append((path, e))
            self._report_failure(path, "cannot stat", e)

    def _report_odd(self, path: str, kind: str) -> None:
        if path not in self._odd:
            self._odd.add(path)
            log.warning("%s: %s is %s, not a regular file: not reading it", self.name,
                        display(path), kind)

    def _report_failure(self, path: str, what: str, e: OSError) -> None:
        if path not in self._failing:
            self._failing.add(path)
            log.warning("%s: %s %s (%s); keeping its files as they were until it works",
                        self.name, what, display(path), e.strerror or e)
