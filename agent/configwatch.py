"""Noticing an edited config or rules file while the daemon runs.

Every file the running config was built from is stat'ed every couple of seconds: the config
and its conf.d layers, the rule files its globs match (globbed again, so a new or deleted rule
file counts), the notify URL and Apprise files. Comparing (mtime, size, inode) sees an edit
in place, an editor's save by rename and a `git checkout` alike; a few dozen stats cost
microseconds. SIGHUP still reloads at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from agent.config import LoadedConfig
from agent.detect.loader import rule_files

CHECK_SECONDS = 2.0

Snapshot = tuple[tuple[str, tuple[int, int, int] | None], ...]


def watched_files(loaded: LoadedConfig) -> list[str]:
    """The files a reload would read."""
    files = [str(f) for f in loaded.files]
    confd = loaded.path.parent / "conf.d"
    files += [str(p) for p in sorted(confd.glob("*.yaml"))] if confd.is_dir() else []
    files += rule_files(loaded.rule_globs())
    n = loaded.config.notify
    files += [loaded.resolve(f) for f in (n.urls_file, n.config) if f]
    return sorted(set(files))


def snapshot(loaded: LoadedConfig) -> Snapshot:
    out: list[tuple[str, tuple[int, int, int] | None]] = []
    for f in watched_files(loaded):
        try:
            st = os.stat(f)
        except OSError:
            out.append((f, None))
        else:
            out.append((f, (st.st_mtime_ns, st.st_size, st.st_ino)))
    return tuple(out)


class ConfigWatch:
    """`changed()` is True once after any file of the config changed (checked at most every
    `interval` seconds)."""

    def __init__(self, loaded: LoadedConfig, interval: float = CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.reset(loaded)

    def reset(self, loaded: LoadedConfig) -> None:
        """Start comparing against the files of `loaded` as they are now."""
        self.loaded = loaded
        self.seen = snapshot(loaded)
        self._checked = self.clock()

    def changed(self) -> bool:
        now = self.clock()
        if now - self._checked < self.interval:
            return False
        self._checked = now
        current = snapshot(self.loaded)
        if current == self.seen:
            return False
        self.seen = current
        return True

    def folders(self) -> list[str]:
        """The folders holding the watched files (for the inotify wake-up)."""
        return sorted({str(Path(f).parent) for f, _ in self.seen})
