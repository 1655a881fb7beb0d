"""Wake the ingest loop as soon as a watched log directory changes.

The daemon polls its sources about once a second anyway; the Waker only cuts the latency of a
new line to the inotify delivery time.  Events are a wake-up signal, never a source of truth:
inotify coalesces them and may overflow, so after a wake the sources read to EOF.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

# Events that can mean new data or a rotation.  "opened" and "closed_no_write" are left out
# on purpose: our own reading (listing the directory, opening a new file) produces them, and
# reacting to them would make every poll wake the next one.
_WAKING = frozenset({"modified", "created", "moved", "deleted", "closed"})


class _Handler(FileSystemEventHandler):
    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self._event = event

    def dispatch(self, event: FileSystemEvent) -> None:
        # An exception escaping a handler silently kills watchdog's observer thread, after which
        # nothing would ever wake us again: log it and carry on.
        try:
            if event.event_type in _WAKING:
                self._event.set()
        except Exception:
            log.exception("file event handler failed on %r", event)


class Waker:
    """Sets a flag whenever a file in one of `dirs` (not recursive) is written, created,
    moved or deleted."""

    def __init__(self, dirs: Iterable[str]) -> None:
        self.dirs = sorted(set(dirs))
        self._event = threading.Event()
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        """Start watching; directories that are missing or cannot be watched are skipped
        (logged), the fallback poll covers them."""
        if self._observer is not None:
            return
        observer = Observer()
        observer.daemon = True
        handler = _Handler(self._event)
        for d in self.dirs:
            if not os.path.isdir(d):
                log.debug("not watching %s: no such directory", d)
                continue
            try:
                observer.schedule(handler, d, recursive=False)
            except OSError as e:  # e.g. inotify watch limit reached
                log.warning("cannot watch %s (%s); relying on polling", d, e)
        observer.start()
        self._observer = observer

    def wake(self) -> None:
        """Wake a pending `wait` from another thread (e.g. a finished delivery)."""
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if a file event arrived (since the last wait)."""
        woken = self._event.wait(timeout)
        # Clearing after waking is safe: a change that lands before the clear is seen by the
        # poll that follows; one that lands after sets the flag again for the next wait.
        self._event.clear()
        return woken

    def alive(self) -> bool:
        """True while the observer and every directory watch still work.  A watch ends when
        its directory is deleted; recreate the Waker then."""
        obs = self._observer
        return obs is not None and obs.is_alive() and all(e.is_alive() for e in obs.emitters)

    def stop(self) -> None:
        """Stop watching; safe to call more than once."""
        obs, self._observer = self._observer, None
        if obs is not None:
            obs.stop()
            obs.join(timeout=5)
