"""Real journal files for tests, written by systemd-journal-remote from the export format."""

from __future__ import annotations

import shutil
import struct
import subprocess
from datetime import datetime
from pathlib import Path

REMOTE = next((p for p in ("/lib/systemd/systemd-journal-remote",
                           "/usr/lib/systemd/systemd-journal-remote") if Path(p).exists()), None)
JOURNALCTL = shutil.which("journalctl")
MISSING = ("needs journalctl and systemd-journal-remote (Debian: apt-get install "
           "systemd-journal-remote; .ci/run installs it where it can)")


def export_entry(n: int, ts: datetime, fields: dict[str, str | bytes | None]) -> bytes:
    """One entry in the journal export format; bytes values are written as binary fields."""
    out = [f"__CURSOR=s=0;i={n}\n".encode(),
           f"__REALTIME_TIMESTAMP={int(ts.timestamp() * 1e6)}\n".encode(),
           f"__MONOTONIC_TIMESTAMP={n}\n".encode(),
           b"_BOOT_ID=0123456789abcdef0123456789abcdef\n"]
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, bytes):
            out.append(k.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n")
        else:
            out.append(f"{k}={v}\n".encode())
    return b"".join(out) + b"\n"


def write_journal(path: Path, entries: list[bytes]) -> None:
    """Append entries to the journal file at `path` (created when missing)."""
    assert REMOTE is not None
    subprocess.run([REMOTE, "-o", str(path), "-"], input=b"".join(entries), check=True,
                   capture_output=True, timeout=60)
