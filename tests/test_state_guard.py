"""The daemon's state folder: one daemon at a time, a damaged database moved aside rather than
a crash loop, a deleted one said loudly; `status` survives a damaged file."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

from tests.test_daemon import Agent, append, layout, lines_counted, upload_line, wait_for


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_a_second_daemon_on_the_same_state_is_refused(tmp_path, agents):
    config = layout(tmp_path)
    first = Agent(config)
    agents.append(first)
    second = run_cli("run", "-c", str(config), timeout=30)
    assert second.returncode == 2
    assert f"another invoice-agent (pid {first.proc.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    append(tmp_path / "logs" / "upload.log", upload_line("成功"))
    wait_for(lambda: lines_counted(config) == 1, what="the first daemon still counting")
    assert first.stop() == 0
    # the lock goes with the process: a new daemon starts
    again = Agent(config)
    agents.append(again)
    assert again.stop() == 0


def test_a_garbage_database_is_moved_aside_and_told(tmp_path, agents, hooks):
    hook = hooks()
    config = layout(tmp_path, urls=[hook.url()])
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "agent.db").write_bytes(b"this is not a database\n" * 100)
    append(tmp_path / "logs" / "upload.log", upload_line("成功") * 2)
    agent = Agent(config)
    agents.append(agent)
    assert "cannot be read" in agent.stderr() and "Traceback" not in agent.stderr()
    moved = list((tmp_path / "state").glob("agent.db.corrupt-*[0-9]"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not")
    wait_for(lambda: lines_counted(config) == 2, what="the lines read into the fresh state")
    wait_for(lambda: hook.posts, what="the notification")
    assert "[STATE]" in json.dumps(hook.posts[0][1], ensure_ascii=False)
    assert agent.stop() == 0


def test_a_truncated_database_after_a_crash_is_moved_aside_and_status_does_not_crash(
        tmp_path, agents):
    config = layout(tmp_path)
    log = tmp_path / "logs" / "upload.log"
    append(log, "".join(upload_line("成功") for _ in range(3000)))
    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: lines_counted(config) == 3000, what="the lines counted")
    agent.signal(signal.SIGKILL)
    agent.proc.wait()
    db = tmp_path / "state" / "agent.db"
    conn = sqlite3.connect(db)  # everything into the main file, which is then cut in half
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    assert len(data) > 8192
    db.write_bytes(data[: len(data) // 2])
    status = run_cli("status", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr and "cannot be read" in status.stdout
    again = Agent(config)
    agents.append(again)
    assert "cannot be read" in again.stderr()
    assert len(list((tmp_path / "state").glob("agent.db.corrupt-*[0-9]"))) == 1
    # a fresh state reads the file again from its start (start_at: beginning)
    append(log, upload_line("成功"))
    wait_for(lambda: lines_counted(config) == 3001, what="counting into the fresh state")
    assert again.stop() == 0


def test_a_deleted_database_is_said_loudly(tmp_path, agents):
    config = layout(tmp_path)
    agent = Agent(config)
    agents.append(agent)
    assert agent.stop() == 0
    (tmp_path / "state" / "agent.db").unlink()
    again = Agent(config)
    agents.append(again)
    assert "is gone (deleted?)" in again.stderr()
    assert again.stop() == 0
