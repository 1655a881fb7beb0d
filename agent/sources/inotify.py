"""Linux inotify(7) without a thread, through inotify_simple: folder watches whose events are
read by whoever waits on the descriptor (the daemon's loop, in poll()).

watchdog's observer hands every event through three threads (the inotify reader, the emitter
and the dispatcher) before a handler sees it; on a log written 200 times a second those
hand-offs cost about as much CPU as the agent's own wake-ups. Here one write costs one
wake-up. Elsewhere (no inotify) the Waker falls back to watchdog.
"""

from __future__ import annotations

from collections.abc import Iterator

try:
    from inotify_simple import INotify, flags
except (ImportError, OSError, AttributeError):  # not Linux, or a libc without inotify
    AVAILABLE = False
else:
    AVAILABLE = True

MODIFY = 0x2
ATTRIB = 0x4
CLOSE_WRITE = 0x8
MOVED_FROM = 0x40
MOVED_TO = 0x80
CREATE = 0x100
DELETE = 0x200
DELETE_SELF = 0x400
MOVE_SELF = 0x800
UNMOUNT = 0x2000
Q_OVERFLOW = 0x4000
IGNORED = 0x8000
ONLYDIR = 0x01000000
ISDIR = 0x40000000

# What a log folder's watch asks for: writes, names coming and going, the folder itself going.
# Not IN_OPEN, IN_ACCESS or IN_CLOSE_NOWRITE: our own listing and reading make those.
FOLDER = MODIFY | ATTRIB | CLOSE_WRITE | MOVED_FROM | MOVED_TO | CREATE | DELETE \
    | DELETE_SELF | MOVE_SELF


class Inotify:
    """One inotify instance: `add` folders, `read` what happened (never blocks), `close`.
    `fd` is readable (poll) while events wait."""

    def __init__(self) -> None:
        if not AVAILABLE:
            raise OSError("inotify is not available here")
        # OSError when the kernel refuses, e.g. EMFILE: max_user_instances reached
        self._inotify = INotify(nonblocking=True)
        self.fd = self._inotify.fileno()

    def add(self, folder: str, mask: int = FOLDER) -> int:
        """Watch `folder` (following a symlink to it); its watch descriptor. OSError when the
        kernel refuses, e.g. ENOSPC: max_user_watches reached."""
        return int(self._inotify.add_watch(folder, mask | ONLYDIR))

    def remove(self, wd: int) -> None:
        """Stop watching `wd` (an IGNORED event follows); a watch already gone is no error."""
        try:
            self._inotify.rm_watch(wd)
        except OSError:
            pass

    def read(self) -> Iterator[tuple[int, int, str]]:
        """(watch descriptor, mask, name) of every event queued now; the name is "" for an
        event of the watched folder itself, and the descriptor -1 for Q_OVERFLOW."""
        for event in self._inotify.read(timeout=0):
            yield event.wd, event.mask, event.name

    def close(self) -> None:
        self._inotify.close()


if AVAILABLE:  # the kernel's numbers, as inotify_simple has them
    assert flags.MODIFY == MODIFY and flags.Q_OVERFLOW == Q_OVERFLOW and flags.ISDIR == ISDIR
