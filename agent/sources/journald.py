"""The systemd journal as a source: `journalctl -o json --all --follow` as a subprocess.

Each journal entry becomes one RawLine holding a small JSON object of the canonical fields,
parsed by the ordinary JSON parser (agent/parse, format `journald`):

    ts        __REALTIME_TIMESTAMP (microseconds since the epoch), as ISO-8601 UTC
    host      _HOSTNAME
    unit      _SYSTEMD_UNIT (else the unit a user unit or coredump names)
    program   SYSLOG_IDENTIFIER (else _COMM), as a syslog line's program
    level     PRIORITY as a syslog level name (emerg ... debug)
    message   MESSAGE: text; a byte array (binary, or not UTF-8) decoded with U+FFFD for what
              does not decode (counted as `replaced`); null or missing -> ""

The journal's cursor of the last entry handed out is the checkpoint: stored with the file
offsets in the same transaction (a FileCheckpoint whose `head` holds the cursor), and given to
`--after-cursor` at the next start, so an entry is neither lost nor read twice across
restarts. A journalctl that exits (journal rotated away, killed, OOM) is started again after
a pause, from the last cursor handed out.

The agent's user needs to read the journal: the `systemd-journal` group (README).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from agent.sources.position import FileCheckpoint
from agent.types import LineBatch, RawLine

log = logging.getLogger(__name__)

JOURNAL_ID = "journal"  # the checkpoint's file_id
RESTART_SECONDS = 5.0
_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_READ = 1 << 16


def entry_to_line(entry: dict[str, object], max_message: int = 32768) -> tuple[str, bool, bool]:
    """The canonical JSON text of one journal entry; whether undecodable bytes were replaced;
    whether the message was cut to `max_message` characters."""
    replaced = False
    raw = entry.get("MESSAGE")
    if isinstance(raw, list):  # journalctl -o json: a byte array for binary or non-UTF-8
        data = bytes(b for b in raw if isinstance(b, int) and 0 <= b < 256)
        message = data.decode("utf-8", errors="replace")
        replaced = "\ufffd" in message
    elif isinstance(raw, str):
        message = raw
    else:
        message = ""
    ts = ""
    usec = entry.get("__REALTIME_TIMESTAMP")
    if isinstance(usec, str) and usec.isdigit():
        ts = datetime.fromtimestamp(int(usec) / 1e6, timezone.utc).isoformat()
    prio = entry.get("PRIORITY")
    level = _LEVELS[int(prio)] if isinstance(prio, str) and prio.isdigit() and \
        int(prio) < len(_LEVELS) else None
    out = {"ts": ts, "host": _text(entry.get("_HOSTNAME")),
           "unit": _text(entry.get("_SYSTEMD_UNIT") or entry.get("_SYSTEMD_USER_UNIT")
                         or entry.get("UNIT") or entry.get("COREDUMP_UNIT")),
           "program": _text(entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM")),
           "level": level, "message": message.rstrip("\n")[:max_message]}
    return json.dumps(out, ensure_ascii=False), replaced, len(message) > max_message


def _text(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return bytes(b for b in v if isinstance(b, int) and 0 <= b < 256).decode(
            "utf-8", errors="replace")
    return None


def journalctl_args(units: Sequence[str] = (), identifiers: Sequence[str] = (),
                    priority: str | None = None, files: Sequence[str] = (),
                    directory: str | None = None, cursor: str | None = None,
                    start_at: str = "end", journalctl: str = "journalctl") -> list[str]:
    args = [journalctl, "-o", "json", "--all", "--follow", "--no-pager", "-q"]
    for f in files:
        args += ["--file", f]
    if directory:
        args += ["--directory", directory]
    if cursor:
        args += ["--after-cursor", cursor]
    elif start_at == "end":
        args += ["--lines", "0"]  # a first start follows from now on
    else:
        args += ["--lines", "all"]
    if priority:
        args += ["--priority", priority]
    # journalctl ORs matches of the same field and ANDs different fields; `+` ORs groups,
    # so units and identifiers each widen what is read
    matches = [f"_SYSTEMD_UNIT={u}" for u in units]
    idents = [f"SYSLOG_IDENTIFIER={i}" for i in identifiers]
    if matches and idents:
        args += matches + ["+"] + idents
    else:
        args += matches + idents
    return args


class JournalSource:
    """A source reading the journal; the daemon drives it like a FileSource."""

    def __init__(self, name: str, *, units: Sequence[str] = (), identifiers: Sequence[str] = (),
                 priority: str | None = None, files: Sequence[str] = (),
                 directory: str | None = None, start_at: str = "end",
                 journalctl: str = "journalctl", max_line_bytes: int = 65536):
        self.name = name
        self._spec = dict(units=list(units), identifiers=list(identifiers), priority=priority,
                          files=list(files), directory=directory, start_at=start_at,
                          journalctl=journalctl)
        self.max_line_bytes = max_line_bytes
        self.cursor: str | None = None  # of the last entry handed out
        self.entries = 0
        self._read_cursor: str | None = None  # of the last entry read from journalctl
        self._proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._buf = bytearray()
        self._next_start = 0.0
        self._stats = dict.fromkeys(("lines", "replaced", "truncated", "restarts",
                                     "unreadable"), 0)
        self._taken: dict[str, int] = {}
        # read beyond the last poll's limit, each with its cursor
        self._pending: list[tuple[RawLine, str | None]] = []

    # -- the FileSource protocol the daemon uses --------------------------------------------
    def restore(self, checkpoints: Iterable[FileCheckpoint]) -> None:
        for c in checkpoints:
            if c.file_id == JOURNAL_ID and c.head:
                self.cursor, self.entries = c.head, c.line_no

    def checkpoints(self) -> list[FileCheckpoint]:
        if self.cursor is None:
            return []
        return [FileCheckpoint(JOURNAL_ID, "journald", self.entries, self.entries, "",
                               self.cursor)]

    def read(self, max_lines: int = 20000) -> LineBatch:
        """poll() as a LineBatch, as FileSource.read gives."""
        out = LineBatch()
        for line in self.poll(max_lines):
            out.append(line)
        return out

    def poll(self, max_lines: int = 20000) -> list[RawLine]:
        """Entries as lines; the cursor moves to the last one handed out (what the daemon
        checkpoints after processing them)."""
        self._ensure_running()
        while len(self._pending) < max_lines and self._proc is not None:
            assert self._sel is not None
            if not self._sel.select(0):
                break
            chunk = os.read(self._proc.stdout.fileno(), _READ)  # type: ignore[union-attr]
            if not chunk:  # journalctl exited: restarted later after the last cursor read
                self._reap()
                break
            self._buf += chunk
            self._split()
        got, self._pending = self._pending[:max_lines], self._pending[max_lines:]
        for _, cursor in got:
            if cursor is not None:
                self.cursor = cursor
        return [line for line, _ in got]

    def _split(self) -> None:
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return
            raw = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            got = self._entry(raw)
            if got is not None:
                self._pending.append(got)

    def _entry(self, raw: bytes) -> tuple[RawLine, str | None] | None:
        try:
            entry = json.loads(raw)
        except ValueError:
            self._stats["unreadable"] += 1
            return None
        if not isinstance(entry, dict):
            self._stats["unreadable"] += 1
            return None
        # a character is at most 4 bytes: the line stays within max_line_bytes
        text, replaced, truncated = entry_to_line(entry, self.max_line_bytes // 4)
        self._stats["truncated"] += truncated
        self._stats["replaced"] += replaced
        self._stats["lines"] += 1
        self.entries += 1
        cursor = entry.get("__CURSOR")
        if isinstance(cursor, str):
            self._read_cursor = cursor
        return (RawLine(self.name, "journald", self.entries, text, truncated, replaced),
                cursor if isinstance(cursor, str) else None)

    def _ensure_running(self) -> None:
        if self._proc is not None or time.monotonic() < self._next_start:
            return
        # after the last entry read (entries read and not yet handed out stay pending)
        args = journalctl_args(cursor=self._read_cursor or self.cursor,
                               **self._spec)  # type: ignore[arg-type]
        try:
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("source %s: cannot start journalctl (%s); trying again in %.0fs",
                      self.name, exc, RESTART_SECONDS)
            self._next_start = time.monotonic() + RESTART_SECONDS
            return
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        if proc is not None:
            code = proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            self._stats["restarts"] += 1
            log.warning("source %s: journalctl exited (%s); starting it again in %.0fs from "
                        "the last entry read", self.name, code, RESTART_SECONDS)
        self._buf.clear()  # a partial entry: read again after the last whole one
        self._next_start = time.monotonic() + RESTART_SECONDS

    def backlog(self) -> bool:
        return bool(self._pending)

    def take_counts(self) -> dict[str, int]:
        out = {k: v - self._taken.get(k, 0) for k, v in self._stats.items()
               if v != self._taken.get(k, 0)}
        self._taken = dict(self._stats)
        return out

    def watch_dirs(self) -> set[str]:
        return set()  # polled: journalctl's pipe is read at every batch

    def missing_dirs(self) -> list[str]:
        return []

    def encoding_hint(self) -> str | None:
        return None

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._sel is not None:
            self._sel.close()
            self._sel = None
