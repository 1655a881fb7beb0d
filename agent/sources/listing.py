"""When a file source must list its folders again, rather than read its open files only.

Listing the folders and stat'ing every match is most of the cost of a poll once a busy log
wakes the agent hundreds of times a second; most of those wake-ups are writes to a file the
source has open, which it reads through its descriptor whatever happened.  A listing is due:

* at the first poll, and at least every `rescan` seconds (inotify can miss events: queue
  overflow, writes from other hosts, a folder created later or renamed away);
* at every poll while a running Waker does not watch every folder the last listing matched
  names in (the polling fallback, and `replay`), or while the last listing failed somewhere;
* when the source asks for it (files waiting for a descriptor, checkpoints not taken up yet);
* when a Waker noted an event that concerns the source (changes.py): a folder came or went in
  one of its folders, a matching name came or went, or a matching file that is not open was
  written (a new one, a parked one, one refused before), or events were lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from agent.sources.changes import DATA, DIR, Change, Changes
from agent.sources.discover import Finder

_REMEMBERED = 4096  # events judged not to concern the source, kept until the next listing


class Listing:
    """Decides, for one source (its `finder`), whether a poll must list (`due`); the source
    says when it listed (`listed`)."""

    def __init__(self, finder: Finder, changes: Changes, rescan: float) -> None:
        self.finder = finder
        self.changes = changes
        self.rescan = rescan
        self._seen = 0  # the number of the last event of `changes` looked at
        self._at = 0.0  # monotonic time of the last listing
        self._failed = False  # the last listing could not list or stat something
        self._listings = 0
        # Events found not to concern the source since the last listing (which changes the
        # folders and the open files they were judged by); and whether a Waker watched every
        # folder, as of which change of the watches and which listing.
        self._unconcerned: set[Change] = set()
        self._watching: tuple[int, int, bool] = (-1, -1, False)

    def listed(self, failed: bool) -> None:
        """A listing was just made (`failed`: it could not list or stat something)."""
        self._at = time.monotonic()
        self._failed = failed
        self._listings += 1
        self._unconcerned.clear()

    def due(self, forced: bool, is_open: Callable[[str], bool]) -> bool:
        """Whether this poll must list; takes the events noted since the last call.
        `is_open(path)`: whether the source reads the file at `path` (normalised) through an
        open descriptor."""
        changes = self.changes
        changes.refresh()
        if changes.seq == self._seen:
            events: list[Change] | None = []
        else:
            self._seen, events = changes.since(self._seen)
        if forced or self._failed or time.monotonic() - self._at >= self.rescan \
                or not self._watched():
            return True
        if events is None:  # more events than are kept: some were forgotten
            return True
        return any(e not in self._unconcerned and self._concerns(e, is_open) for e in events)

    def _watched(self) -> bool:
        """Whether a running Waker watches every folder the last listing matched names in."""
        changes = self.changes
        version, listings, watching = self._watching
        now = changes.version  # read before looking: a change while looking is seen next time
        if version != now or listings != self._listings:
            watching = changes.watching(self.finder.folders)
            self._watching = (now, self._listings, watching)
        return watching

    def _concerns(self, event: Change, is_open: Callable[[str], bool]) -> bool:
        """Whether `event` may change what a listing finds (see the module's docstring);
        remembered until the next listing when it does not."""
        folder, name, kind = event
        if kind == DIR:
            concerns = folder in self.finder.folders
        elif not self.finder.concerns(folder, name):
            concerns = False
        else:
            concerns = kind != DATA or not is_open(os.path.join(folder, name))
        if not concerns:
            if len(self._unconcerned) >= _REMEMBERED:
                self._unconcerned.clear()
            self._unconcerned.add(event)
        return concerns
