"""The state folder full or read-only, and clocks that jump.

Disk: the state folder is a small tmpfs mounted for the test (as root; otherwise the agent runs
under a file-size limit, RLIMIT_FSIZE, set in the child, which makes the same writes fail).
The agent must say loudly which folder cannot be written, keep the database and its offsets as
they were (never move it aside as damaged), and count every line exactly once when started
again with space.

Clock: the daemon runs in-process and is driven with `Daemon.step(now=...)`, as its loop drives
it with the wall clock; lines carry timestamps that jump back and forward.
"""

from __future__ import annotations

import io
import resource
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.daemon import Daemon
from tests.test_daemon import append, db_rows, layout, lines_counted, upload_line, wait_for


def mount_small(folder: Path) -> bool:
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def fill(folder: Path) -> Path:
    """Take every free byte of the folder's file system."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def start(config: Path, fsize: int | None) -> subprocess.Popen:
    def limit() -> None:  # in the child: writes past `fsize` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))  # type: ignore[arg-type]

    with open(config.parent / "err.txt", "ab") as err:  # the child keeps its own copy
        return subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=limit if fsize is not None else None)


def test_a_full_state_folder_is_said_loses_no_offset_and_recovers_when_space_returns(tmp_path):
    config = layout(tmp_path)
    state = tmp_path / "state"
    mounted = mount_small(state)
    log = tmp_path / "logs" / "upload.log"
    try:
        append(log, "".join(upload_line("成功") for _ in range(10)))
        agent = start(config, None)
        wait_for(lambda: lines_counted(config) == 10, what="the first lines", proc=agent)
        if mounted:
            filler: Path | None = fill(state)
        else:  # no mount here: the next start may not grow any file past its size now
            agent.terminate()
            agent.wait(timeout=15)
            filler = None
        append(log, "".join(upload_line("失败", "1001") for _ in range(3000)))
        if filler is None:
            agent = start(config, (state / "agent.db-wal").stat().st_size)
        assert agent.wait(timeout=20) == 1
        err = (tmp_path / "err.txt").read_text(encoding="utf-8")
        assert f"cannot write the state database {state / 'agent.db'}" in err
        assert "full or read-only" in err and "nothing is lost" in err
        assert "Traceback" not in err
        assert lines_counted(config) == 10  # the committed offsets are intact
        assert not list(state.glob("agent.db.corrupt-*"))  # not mistaken for damage
        if filler is not None:
            filler.unlink()  # space returns
        agent = start(config, None)
        wait_for(lambda: lines_counted(config) == 3010, what="every line once", proc=agent)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
        assert lines_counted(config) == 3010
        assert db_rows(config, "SELECT rule FROM alert_log") == []  # no window closed yet
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(state)], capture_output=True)


def test_a_read_only_state_folder_is_refused_at_start_and_kept(tmp_path):
    config = layout(tmp_path)
    state = tmp_path / "state"
    if not mount_small(state):
        pytest.skip("needs a tmpfs mount (root) to make the state folder read-only")
    try:
        append(tmp_path / "logs" / "upload.log", upload_line("成功"))
        agent = start(config, None)
        wait_for(lambda: lines_counted(config) == 1, what="the first line", proc=agent)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        agent = start(config, None)
        assert agent.wait(timeout=20) != 0
        err = (tmp_path / "err.txt").read_text(encoding="utf-8")
        # refused at the lock file, before the database is touched (a traceback from the
        # command line; see the report for a plain message there)
        assert "Read-only file system" in err and str(state) in err
        subprocess.run(["mount", "-o", "remount,rw", str(state)], check=True)
        assert not list(state.glob("agent.db.corrupt-*")) and lines_counted(config) == 1
        append(tmp_path / "logs" / "upload.log", upload_line("成功"))
        agent = start(config, None)
        wait_for(lambda: lines_counted(config) == 2, what="the next line", proc=agent)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)


# -- clocks ----------------------------------------------------------------------------------

FAILED_EVERY = """
rules:
  - name: upload_failed
    type: threshold
    source: upload
    when: "failed >= 3"
    severity: critical
"""


def alerts_told(out: io.StringIO) -> int:
    return out.getvalue().count("FIRING") + out.getvalue().count("RESOLVED")


def test_line_timestamps_jumping_back_and_forward_raise_no_storm_and_no_stuck_window(tmp_path):
    config = layout(tmp_path, window="1m", rules=FAILED_EVERY)
    log = tmp_path / "logs" / "upload.log"
    out = io.StringIO()
    daemon = Daemon(config, out=out)
    t = datetime.now().astimezone().replace(second=0, microsecond=0) - timedelta(hours=1)
    try:
        append(log, "".join(upload_line("成功", ts=t + timedelta(seconds=i)) for i in range(5)))
        daemon.step(now=t + timedelta(seconds=10))
        # one host's clock goes a day ahead for a line, then back an hour for a few
        append(log, upload_line("失败", ts=t + timedelta(days=1)))
        append(log, "".join(upload_line("失败", ts=t - timedelta(hours=1)) for _ in range(3)))
        daemon.step(now=t + timedelta(seconds=20))
        assert alerts_told(out) == 0  # neither jump closed a window nor fired
        # time goes on normally: the windows are not stuck, the next burst alerts once
        burst = t + timedelta(minutes=2)
        append(log, "".join(upload_line("失败", ts=burst + timedelta(seconds=i))
                            for i in range(3)))
        daemon.step(now=burst + timedelta(seconds=5))
        daemon.step(now=burst + timedelta(minutes=1, seconds=2))
        assert out.getvalue().count("FIRING") == 1
        daemon.step(now=burst + timedelta(minutes=10))
        assert out.getvalue().count("FIRING") == 1 and out.getvalue().count("RESOLVED") == 1
        assert daemon.engine.windows_closed <= 15  # one a minute, no catch-up storm
    finally:
        daemon.shutdown()
    assert lines_counted(config) == 12


def test_wall_clock_jumping_a_day_ahead_and_back_does_not_blind_the_rules(tmp_path):
    config = layout(tmp_path, window="1m", rules=FAILED_EVERY)
    log = tmp_path / "logs" / "upload.log"
    out = io.StringIO()
    daemon = Daemon(config, out=out)
    t = datetime.now().astimezone().replace(second=0, microsecond=0)
    # the boot clock counts the seconds really elapsed since t; the wall clock is `now`
    try:
        append(log, upload_line("成功", ts=t))
        daemon.step(now=t + timedelta(seconds=5), boot=5.0)
        daemon.step(now=t + timedelta(days=1), boot=6.0)  # the wall clock leaps a day ahead...
        assert alerts_told(out) == 0  # ...with no alert storm over the empty day
        assert daemon.engine.windows_closed <= 2
        assert daemon.clock.diverged and daemon.clock.jumps == 1
        back = t + timedelta(minutes=1)  # ...and is set right again
        append(log, "".join(upload_line("失败", ts=back + timedelta(seconds=i))
                            for i in range(3)))
        daemon.step(now=back + timedelta(seconds=5), boot=65.0)
        assert not daemon.clock.diverged
        daemon.step(now=back + timedelta(minutes=1, seconds=2), boot=122.0)
        assert "FIRING" in out.getvalue()  # the failures were judged, not late
    finally:
        daemon.shutdown()
    late = db_rows(config, "SELECT value FROM source_counters WHERE name = 'late'")
    assert sum(r[0] for r in late) == 0
    assert lines_counted(config) == 4
