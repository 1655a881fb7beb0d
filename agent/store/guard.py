"""Opening the daemon's state safely.

- One daemon per state folder: an exclusive lock (`agent.lock`, flock), so a second `run` on
  the same state is refused with the pid of the first instead of counting every line twice.
- A database that cannot be read (not a database, truncated, malformed) is moved aside as
  `agent.db.corrupt-<time>` and a fresh one started, with a loud log line and a notification,
  rather than a traceback at every restart. The cheap probe (the header, the schema, the tables
  read at start) runs at every start; the full `PRAGMA quick_check` after an unclean stop, when
  damage is most likely, so a large healthy database does not slow every start.
- A database that cannot be written (a full or read-only folder) is not damage: it is kept
  as it is and the start fails, saying so.
- A database deleted from a folder that had one (`agent.db.created` stays behind) is said
  loudly before every file is read again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from agent.store import DB_NAME, Store

log = logging.getLogger("invoice_agent")

LOCK_NAME = "agent.lock"
MARKER_NAME = "agent.db.created"


class StateLocked(RuntimeError):
    """Another process holds the state folder."""


class StateUnwritable(RuntimeError):
    """The state database cannot be written (full or read-only folder): not damage."""


class StateLock:
    """An exclusive lock on a state folder, held as long as the process runs (the kernel
    drops it when the process dies, even by kill -9)."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / LOCK_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateUnwritable(
                f"cannot use the state folder {state_dir} ({exc.strerror or exc}): is it "
                f"read-only, full, or owned by another user?") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise StateLocked(
                f"another invoice-agent (pid {holder}) is running on the state folder "
                f"{state_dir}: two would read and count every line twice. Stop it first "
                f"(systemctl stop invoice-agent), or give this one its own state_dir") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_state(state_dir: Path) -> tuple[Store, list[str]]:
    """The daemon's store, and what went wrong with the previous one (to log and notify)."""
    db = state_dir / DB_NAME
    marker = state_dir / MARKER_NAME
    notes: list[str] = []
    if marker.exists() and not db.exists():
        notes.append(f"the state database {db} is gone (deleted?): starting a fresh one; "
                     f"every log file is read again as for a first start (start_at), and "
                     f"alerts already sent may be sent again")
    try:
        store = _probe(db)
    except sqlite3.OperationalError as exc:
        # a full or read-only folder, a lock, an I/O error: the database itself is fine and
        # moving it aside would lose every offset and alert; the start fails, loudly
        raise StateUnwritable(
            f"cannot open the state database {db} for writing ({exc}): is the state folder "
            f"{state_dir} full or read-only? Nothing was changed; start again once it is "
            f"writable") from exc
    except sqlite3.DatabaseError as exc:
        moved = _move_aside(db)
        notes.append(f"the state database {db} cannot be read ({exc}): moved aside to "
                     f"{moved}, starting a fresh one; every log file is read again as for a "
                     f"first start (start_at)")
        store = Store(db)
    if not marker.exists():
        os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o600))
    for n in notes:
        log.error("%s", n)
    return store, notes


def state_unwritable(state_dir: Path, exc: Exception) -> str:
    """What an operator is told when the running daemon cannot write its state."""
    return (f"cannot write the state database {state_dir / DB_NAME} ({exc}): is the state "
            f"folder {state_dir} full or read-only? Stopping without a checkpoint: nothing is "
            f"lost, the lines read since the last one are read again at the next start")


def _probe(db: Path) -> Store:
    store = Store(db)  # reads the header and the schema, applies migrations
    try:
        for sql in ("SELECT count(*) FROM file_offsets", "SELECT count(*) FROM alerts",
                    "SELECT value FROM engine_state"):
            store.db.execute(sql).fetchall()
        info = store.engine_state().get("daemon")
        if isinstance(info, dict) and not info.get("stopped"):
            # the last run did not stop cleanly: look at every page once
            result = store.db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result}")
    except BaseException:
        store.close()
        raise
    return store


def _move_aside(db: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    moved = db.with_name(f"{db.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(db) + suffix)
        if part.exists():
            part.rename(Path(str(moved) + suffix))
    return moved
