"""Which watched folders had file events, for the file sources to skip listing the others.

A file source lists its folders and stats its files to notice new, renamed and deleted files;
doing that at every wake-up of a busy agent (a log written 100 lines at a time wakes it 200
times a second) costs more than reading the lines.  The Waker (watch.py) notes here each event
its inotify watches report: the folder, the name and what happened (`NAME`: a name came or
went; `DATA`: a file was written; `DIR`: a folder came or went).  Each source asks for what
happened since it last looked, by number, so sources sharing a folder do not take events from
one another, and lists its folders again only when an event concerns it.

Only the latest event per (folder, name, kind) is kept, under a bound: a burst of writes to one
file is one entry, and a reader that fell behind what was forgotten is told so (and lists).
A folder counts as watched while a running Waker holds an inotify watch on it; events are
still only a hint (inotify can overflow, miss writes from other hosts, or watch a folder that
was renamed away), which is why a source lists everything at least every poll interval anyway.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

NAME = "name"  # a file was created, deleted or renamed (from or to this name)
DATA = "data"  # a file was written, closed after writing, or its attributes changed
DIR = "dir"  # a folder was created, deleted or renamed

Change = tuple[str, str, str]  # (folder, name, kind)


class Changes:
    """The latest file events of the watched folders, numbered, for any number of readers."""

    def __init__(self, keep: int = 4096) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self.seq = 0  # number of the latest event noted; readers compare it without the lock
        self._latest: dict[Change, int] = {}  # in the order of their numbers, newest last
        self._floor = 0  # events numbered up to this were forgotten (more than `keep`)
        self._watched: dict[str, set[int]] = {}  # folder -> the watchers holding a watch on it
        self._watchers: set[int] = set()  # watchers running (with or without folders)
        self.version = 0  # changes when a watch starts or ends: readers may cache `watching`
        # Watchers whose events wait to be read (inotify read by the waiting thread): `refresh`
        # reads them, so that a reader never acts on events left unread.
        self._pending: tuple[Callable[[], None], ...] = ()
        self._readers: dict[int, Callable[[], None]] = {}

    def note(self, folder: str, name: str, kind: str) -> None:
        """One event (from the watcher's thread)."""
        key = (folder, name, kind)
        with self._lock:
            self.seq += 1
            latest = self._latest
            latest.pop(key, None)  # re-inserted last: the dict stays ordered by number
            latest[key] = self.seq
            if len(latest) > self._keep:
                oldest = next(iter(latest))
                self._floor = latest.pop(oldest)

    def everything(self) -> None:
        """Events were lost (the kernel's queue overflowed): every reader is told so."""
        with self._lock:
            self.seq += 1
            self._floor = self.seq
            self._latest.clear()

    def refresh(self) -> None:
        """Note the events the watchers have not read yet (costs a read each when none wait)."""
        for read in self._pending:
            read()

    def reads(self, watcher: int, read: Callable[[], None]) -> None:
        """`watcher` leaves its events queued until `read` is called (inotify, read by the
        thread that waits on it): `refresh` calls it."""
        with self._lock:
            self._readers[watcher] = read
            self._pending = tuple(self._readers.values())

    def since(self, seq: int) -> tuple[int, list[Change] | None]:
        """The number of the latest event, and the events after `seq` (the latest of each
        kind per name, newest first); None instead of the events when some of them were
        forgotten."""
        with self._lock:
            if seq >= self.seq:
                return self.seq, []
            if seq < self._floor:
                return self.seq, None
            out = []
            latest = self._latest
            for key in reversed(latest):
                if latest[key] <= seq:
                    break
                out.append(key)
            return self.seq, out

    def watching(self, folders: Iterable[str]) -> bool:
        """Whether a watcher runs and every one of `folders` is watched, so that a change in
        them is noted here."""
        watched = self._watched
        return bool(self._watchers) and all(f in watched for f in folders)

    def start(self, watcher: int) -> None:
        """A watcher (an id) runs: its folders are added with `watch`."""
        with self._lock:
            self._watchers.add(watcher)
            self.version += 1

    def watch(self, watcher: int, folder: str) -> None:
        """`watcher` holds an inotify watch on `folder`."""
        with self._lock:
            self._watched.setdefault(os.path.normpath(folder), set()).add(watcher)
            self.version += 1

    def unwatch(self, watcher: int, folder: str) -> None:
        """`watcher`'s watch on `folder` ended (the folder was deleted)."""
        with self._lock:
            self._drop(watcher, os.path.normpath(folder))
            self.version += 1

    def stop(self, watcher: int) -> None:
        """`watcher` stopped: none of its folders is watched by it any more."""
        with self._lock:
            self._watchers.discard(watcher)
            if self._readers.pop(watcher, None) is not None:
                self._pending = tuple(self._readers.values())
            for folder in [f for f, w in self._watched.items() if watcher in w]:
                self._drop(watcher, folder)
            self.version += 1

    def _drop(self, watcher: int, folder: str) -> None:
        holders = self._watched.get(folder)
        if holders is not None:
            holders.discard(watcher)
            if not holders:
                del self._watched[folder]


CHANGES = Changes()  # the process's: every Waker notes into it, every FileSource reads it
