"""Wake the ingest loop as soon as a watched log folder changes, and note what changed.

The daemon polls its sources about once a second anyway; the Waker only cuts the latency of a
new line to the inotify delivery time.  Events are a wake-up signal and a hint, never a source
of truth: inotify coalesces them and may overflow, so after a wake the sources read to EOF.
Each event is also noted in `changes.CHANGES` (folder, name, kind), so that a source lists its
folders again only when something happened there that concerns it (changes.py).

On Linux the Waker reads inotify itself (inotify.py): `wait` sleeps in poll() on the inotify
descriptor and on a pipe that `wake` writes to, then reads every queued event, so a write to a
log costs one wake-up of the waiting thread and no other.  Where inotify is missing, watchdog's
observer (its threads set a flag that `wait` waits for) does the same.  Either way only the
events that can mean new data or a rotation are asked for: our own listing and reading (opens,
closes without writing) would otherwise wake every poll's successor.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.sources import inotify
from agent.sources.changes import CHANGES, DATA, DIR, NAME, Changes

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)
_told: set[str] = set()  # inotify failures already logged as warnings (once per process)

_DATA = inotify.MODIFY | inotify.ATTRIB | inotify.CLOSE_WRITE
_NAME = inotify.CREATE | inotify.DELETE | inotify.MOVED_FROM | inotify.MOVED_TO
_GONE = inotify.DELETE_SELF | inotify.MOVE_SELF | inotify.IGNORED | inotify.UNMOUNT

# watchdog's names of the events that can mean new data or a rotation.
_WAKING = frozenset({"modified", "created", "moved", "deleted", "closed"})


class Waker:
    """Wakes `wait` whenever a file in one of `dirs` (not recursive) is written, created,
    moved or deleted, and notes each such event in `changes` (by default the process's, which
    every FileSource reads).  `wait` and `alive` belong to the thread that polls the sources;
    `wake` may be called from any thread.  `use_inotify=False` takes watchdog's observer."""

    def __init__(self, dirs: Iterable[str], changes: Changes | None = None,
                 use_inotify: bool = inotify.AVAILABLE) -> None:
        self.dirs = sorted(set(dirs))
        self._changes = CHANGES if changes is None else changes
        self._use_inotify = use_inotify
        self._lock = threading.Lock()  # the descriptors against `wake` from other threads
        self._started = False
        self._ino: inotify.Inotify | None = None
        self._folders: dict[int, str] = {}  # watch descriptor -> folder (normalised)
        self._lost = False  # a watch ended (folder deleted, moved away, unmounted)
        self._pipe: tuple[int, int] | None = None  # wake-up pipe (read end, write end)
        self._poller: select.poll | None = None  # the pipe and the inotify descriptor
        # a second inotify instance told only of names coming (created, moved in), and a
        # poller of it and the pipe: what `pace` waits on
        self._names: inotify.Inotify | None = None
        self._name_poller: select.poll | None = None
        self._event = threading.Event()  # watchdog's threads set it
        self._observer: BaseObserver | None = None  # watchdog's, without inotify

    # -- public ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching; directories that are missing or cannot be watched are skipped
        (logged), the fallback poll covers them."""
        if self._started:
            return
        self._started = True
        self._changes.start(id(self))
        if self._use_inotify:
            self._start_inotify()
        else:
            self._start_observer()

    def wake(self) -> None:
        """Wake a pending `wait` from another thread (e.g. a finished delivery)."""
        with self._lock:
            if self._pipe is None:
                self._event.set()
                return
            try:
                os.write(self._pipe[1], b"\0")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if a file event (or `wake`) arrived since the
        last wait.  The events are noted before it returns."""
        if self._pipe is None:
            woken = self._event.wait(timeout)
            # Clearing after waking is safe: a change that lands before the clear is seen by
            # the poll that follows; one that lands after sets the flag again for the next wait.
            self._event.clear()
            return woken
        poller = self._poller
        if poller is None:  # stopped meanwhile
            return False
        # poll(), not select(): descriptors past 1023 (many open logs) are fine
        if not poller.poll(max(0, math.ceil(timeout * 1000))):
            return False
        with self._lock:
            if self._pipe is not None:
                try:
                    while os.read(self._pipe[0], 4096):
                        pass
                except BlockingIOError:
                    pass
            self._read_events()
        return True

    def pace(self, timeout: float) -> None:
        """Block up to `timeout` seconds, unless a file is created or moved into a watched
        folder (or `wake` is called): writes to files alone do not end it, their events wait
        for the next `wait`. Returns at once without inotify, and once after any name came
        since the last call."""
        names, poller = self._names, self._name_poller
        if names is None or poller is None:
            return
        if poller.poll(max(0, math.ceil(timeout * 1000))):
            with self._lock:
                if self._names is not None:
                    for _ in self._names.read():  # noted by the other instance, for `wait`
                        pass

    def alive(self) -> bool:
        """True while every directory watch still works.  A watch ends when its directory is
        deleted or moved away; recreate the Waker then."""
        if not self._started:
            return False
        obs = self._observer
        if obs is not None:
            if not obs.is_alive():
                self._changes.stop(id(self))
                return False
            dead = [e for e in obs.emitters if not e.is_alive()]
            for e in dead:  # perhaps before the handler heard of it
                self._changes.unwatch(id(self), os.fsdecode(e.watch.path))
            return not dead
        with self._lock:
            self._read_events()
            return self._ino is not None and not self._lost

    def stop(self) -> None:
        """Stop watching; safe to call more than once."""
        if not self._started:
            return
        self._started = False
        self._changes.stop(id(self))  # first: the sources list everything from now on
        obs, self._observer = self._observer, None
        if obs is not None:
            obs.stop()
            obs.join(timeout=5)
        with self._lock:
            self._poller = self._name_poller = None
            if self._names is not None:
                self._names.close()
                self._names = None
            ino, self._ino = self._ino, None
            pipe, self._pipe = self._pipe, None
            if ino is not None:
                ino.close()
            if pipe is not None:
                os.close(pipe[0])
                os.close(pipe[1])

    # -- inotify --------------------------------------------------------------------------

    def _start_inotify(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._pipe = (r, w)
        self._poller = select.poll()
        self._poller.register(r, select.POLLIN)
        try:
            self._ino = inotify.Inotify()
        except OSError as e:  # e.g. fs.inotify.max_user_instances reached: tried again later
            _warn_once("init", "cannot watch log folders (%s); relying on polling",
                       e.strerror or e)
            return
        self._poller.register(self._ino.fd, select.POLLIN)
        for d in self.dirs:
            if not os.path.isdir(d):
                log.debug("not watching %s: no such directory", d)
                continue
            try:
                wd = self._ino.add(d)
            except OSError as e:  # e.g. inotify watch limit reached
                log.warning("cannot watch %s (%s); relying on polling", d, e.strerror or e)
                continue
            folder = os.path.normpath(d)
            self._folders[wd] = folder
            self._changes.watch(id(self), folder)
        self._changes.reads(id(self), self._catch_up)
        self._watch_names(r)

    def _watch_names(self, pipe: int) -> None:
        """The instance `pace` waits on, watching the folders the main one watches; none when
        the kernel refuses any of it (then `pace` does not wait)."""
        try:
            names = inotify.Inotify()
        except OSError:
            return
        try:
            for folder in self._folders.values():
                names.add(folder, inotify.CREATE | inotify.MOVED_TO)
        except OSError:
            names.close()
            return
        self._names = names
        self._name_poller = select.poll()
        self._name_poller.register(pipe, select.POLLIN)
        self._name_poller.register(names.fd, select.POLLIN)

    def _catch_up(self) -> None:
        """Note the events queued now, without waiting (for the sources, before they decide
        whether to list)."""
        with self._lock:
            self._read_events()

    def _read_events(self) -> None:
        """Note every queued inotify event (under the lock)."""
        if self._ino is None:
            return
        note, folders = self._changes.note, self._folders
        for wd, mask, name in self._ino.read():
            if mask & inotify.Q_OVERFLOW:
                log.warning("inotify queue overflowed: every source lists its folders again")
                self._changes.everything()
                continue
            folder = folders.get(wd)
            if folder is None:
                continue
            if mask & _GONE and not name:
                self._lose(wd, folder, mask)
            elif mask & inotify.ISDIR:
                if mask & _NAME:
                    note(folder, name, DIR)
            elif mask & _NAME:
                note(folder, name, NAME)
            elif mask & _DATA:
                note(folder, name, DATA)

    def _lose(self, wd: int, folder: str, mask: int) -> None:
        """The watch of `folder` ended or no longer follows that path."""
        if not mask & inotify.IGNORED and self._ino is not None:
            self._ino.remove(wd)  # a folder moved away: its watch would follow it
        del self._folders[wd]
        self._lost = True
        self._changes.unwatch(id(self), folder)
        parent, name = os.path.split(folder)
        self._changes.note(parent, name, DIR)

    # -- watchdog (no inotify) ------------------------------------------------------------

    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        observer = Observer()
        observer.daemon = True
        handler = _Handler(self._event, self._changes, id(self))
        for d in self.dirs:
            if not os.path.isdir(d):
                log.debug("not watching %s: no such directory", d)
                continue
            try:
                _schedule(observer, handler, d)
            except OSError as e:  # e.g. inotify watch limit reached
                log.warning("cannot watch %s (%s); relying on polling", d, e)
                continue
            handler.roots.add(os.path.normpath(d))
            self._changes.watch(id(self), d)
        observer.start()
        self._observer = observer


def _warn_once(key: str, msg: str, *args: object) -> None:
    if key in _told:
        log.debug(msg, *args)
    else:
        _told.add(key)
        log.warning(msg, *args)


def _schedule(observer: BaseObserver, handler: _Handler, folder: str) -> None:
    """Watch `folder` for the events asked for only (watchdog 4 and later filter them where
    the platform can); a watchdog that does not take a filter gets every event."""
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    asked = [FileModifiedEvent, FileClosedEvent, FileCreatedEvent, DirCreatedEvent,
             FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent]
    try:
        observer.schedule(handler, folder, recursive=False,  # type: ignore[arg-type]
                          event_filter=asked)
    except TypeError:
        observer.schedule(handler, folder, recursive=False)  # type: ignore[arg-type]


class _Handler:
    """watchdog's handler: wakes the waiting thread and notes each event."""

    def __init__(self, event: threading.Event, changes: Changes | None = None,
                 watcher: int = 0) -> None:
        self._event = event
        self._changes = changes
        self._watcher = watcher
        self.roots: set[str] = set()  # the watched folders: their own deletion ends a watch

    def dispatch(self, event: FileSystemEvent) -> None:
        # An exception escaping a handler silently kills watchdog's observer thread, after which
        # nothing would ever wake us again: log it and carry on.
        try:
            kind = event.event_type
            if kind not in _WAKING:
                return
            if self._changes is not None:
                self._note(event, kind)
            self._event.set()
        except Exception:
            log.exception("file event handler failed on %r", event)

    def _note(self, event: FileSystemEvent, kind: str) -> None:
        changes = self._changes
        assert changes is not None
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if kind in ("modified", "closed"):
                return  # a folder's own listing changed: its entries' events say how
            if kind == "deleted" and os.path.normpath(src) in self.roots:
                changes.unwatch(self._watcher, src)  # the watch ends with its folder
            what = DIR
        else:
            what = DATA if kind in ("modified", "closed") else NAME
        folder, name = os.path.split(src)
        changes.note(folder, name, what)
        if kind == "moved":
            folder, name = os.path.split(os.fsdecode(event.dest_path))
            changes.note(folder, name, what)
