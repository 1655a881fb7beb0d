"""Commits grouped by time and size (`commit_interval`, `commit_lines`), never at the cost of
a line counted twice or lost: the daemon driven in-process on real files and a real SQLite
state, and real `invoice-agent run` subprocesses that alert a webhook, get SIGTERM and kill -9.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.daemon import Daemon
from agent.store import Batch
from agent.store.group import CommitGroup
from tests.conftest import free_port
from tests.test_daemon import Agent, append, db_rows, layout, lines_counted, upload_line, wait_for


def configure(tmp: Path, **settings: Any) -> Path:
    """tests.test_daemon's layout (one upload source, `failed >= 3` fires) plus `settings`."""
    config = layout(tmp)
    data = json.loads(config.read_text(encoding="utf-8"))
    data.update(settings)
    config.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return config


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def recording(daemon: Daemon) -> list[Batch]:
    """The batches the daemon commits with offsets (its line commits), as they are written."""
    seen: list[Batch] = []
    commit = daemon.store.commit

    def record(batch: Batch) -> None:
        commit(batch)
        if batch.offsets:
            seen.append(batch)

    daemon.store.commit = record  # type: ignore[method-assign]
    return seen


def lines_in(batch: Batch) -> int:
    return sum(n for (_, name), n in batch.counters.items() if name == "lines")


def test_lines_read_in_several_steps_within_the_interval_go_into_one_commit(tmp_path):
    config = configure(tmp_path, commit_interval="10s")
    log = tmp_path / "logs" / "upload.log"
    log.touch()
    daemon = Daemon(config, out=io.StringIO())
    clock = Clock()
    daemon.group = CommitGroup(10.0, 20000, clock=clock)
    commits = recording(daemon)
    t0 = datetime.now().astimezone()
    now = t0 + timedelta(seconds=1)  # event time: no window closes during the test
    try:
        daemon.step(now=now)  # the files' first positions, committed at once
        assert len(commits) == 1
        for _ in range(3):  # three batches, a second apart
            append(log, "".join(upload_line("成功", ts=t0) for _ in range(4)))
            daemon.step(now=now)
            clock.t += 1.0
        assert len(commits) == 1 and lines_counted(config) == 0  # read, not committed yet
        clock.t += 10.0
        daemon.step(now=now)  # nothing new to read: the interval alone makes the commit
        assert len(commits) == 2 and lines_in(commits[1]) == 12
        assert lines_counted(config) == 12
        stored = db_rows(config, "SELECT offset FROM file_offsets")
        assert stored == [(log.stat().st_size,)]  # the offsets after the last of the 12
        clock.t += 60.0
        daemon.step(now=now)  # idle: nothing read, nothing written
        assert len(commits) == 2
    finally:
        daemon.shutdown()


def test_commit_lines_read_commit_before_the_interval(tmp_path):
    config = configure(tmp_path, commit_interval="1m", commit_lines=10)
    log = tmp_path / "logs" / "upload.log"
    log.touch()
    daemon = Daemon(config, out=io.StringIO())
    daemon.group = CommitGroup(60.0, 10, clock=Clock())  # time stands still
    commits = recording(daemon)
    t0 = datetime.now().astimezone()
    now = t0 + timedelta(seconds=1)
    try:
        daemon.step(now=now)
        append(log, "".join(upload_line("成功", ts=t0) for _ in range(6)))
        daemon.step(now=now)
        assert len(commits) == 1 and lines_counted(config) == 0
        append(log, "".join(upload_line("成功", ts=t0) for _ in range(6)))
        daemon.step(now=now)
        assert len(commits) == 2 and lines_in(commits[1]) == 12
        assert lines_counted(config) == 12
    finally:
        daemon.shutdown()


def start(config: Path, agents: list[Agent]) -> Agent:
    """An agent on the config's empty upload log, once it has committed the file's first
    position (its first batch commits at once: lines appended later wait for the interval)."""
    (config.parent / "logs" / "upload.log").touch()
    agent = Agent(config)
    agents.append(agent)
    wait_for(lambda: db_rows(config, "SELECT count(*) FROM file_offsets") == [(1,)],
             what="the first position committed", proc=agent.proc)
    return agent


def read_so_far(port: int) -> int:
    """Lines the running agent has read (its /status, counted at every batch)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            data = json.loads(r.read())
    except OSError:
        return -1
    return int(data["counters"].get("upload", {}).get("lines", 0))


def test_an_alert_is_committed_and_delivered_without_waiting_for_the_interval(
        tmp_path, agents, receiver):
    config = configure(tmp_path, commit_interval="1m")  # the most the config allows
    data = json.loads(config.read_text(encoding="utf-8"))
    data["notify"]["urls"] = [receiver.url()]
    config.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    agent = Agent(config)
    agents.append(agent)
    append(tmp_path / "logs" / "upload.log",
           "".join(upload_line("失败", "1001") for _ in range(3)))
    # the window closes 3 s later and the rule fires: well before a minute has passed
    wait_for(lambda: receiver.posts, what="the firing notification", proc=agent.proc)
    assert "[FIRING critical] upload_failed" in receiver.posts[0][1]["title"]
    assert db_rows(config, "SELECT rule, state FROM alert_log") == [("upload_failed", "firing")]
    assert lines_counted(config) == 3  # the lines went in with their alert
    assert agent.stop() == 0


def test_sigterm_commits_every_line_read_since_the_last_commit(tmp_path, agents):
    port = free_port()
    config = configure(tmp_path, commit_interval="1m", window="1h",
                       http={"listen": f"127.0.0.1:{port}"})
    agent = start(config, agents)
    append(tmp_path / "logs" / "upload.log", "".join(upload_line("成功") for _ in range(25)))
    wait_for(lambda: read_so_far(port) == 25, what="the lines read", proc=agent.proc)
    assert lines_counted(config) == 0  # read, waiting for the interval
    assert agent.stop() == 0
    assert lines_counted(config) == 25
    assert db_rows(config, "SELECT offset FROM file_offsets") == [
        ((tmp_path / "logs" / "upload.log").stat().st_size,)]


def test_kill_9_between_commits_reads_the_uncommitted_lines_again_exactly_once(
        tmp_path, agents):
    port = free_port()
    # an hour-long window: no alert forces a commit while the test looks
    config = configure(tmp_path, commit_interval="1m", commit_lines=10, window="1h",
                       http={"listen": f"127.0.0.1:{port}"})
    log = tmp_path / "logs" / "upload.log"
    agent = start(config, agents)
    append(log, "".join(upload_line("成功") for _ in range(12)))
    wait_for(lambda: lines_counted(config) == 12, what="the first commit (by lines)",
             proc=agent.proc)
    append(log, "".join(upload_line("成功") for _ in range(5)))
    wait_for(lambda: read_so_far(port) == 17, what="5 more lines read", proc=agent.proc)
    assert lines_counted(config) == 12  # the 5 wait for the interval...
    agent.proc.kill()  # ...and are lost with the process
    agent.proc.wait()
    again = Agent(config)
    agents.append(again)
    wait_for(lambda: lines_counted(config) == 17, what="the 5 lines read again",
             proc=again.proc)
    append(log, "".join(upload_line("成功") for _ in range(3)))
    wait_for(lambda: read_so_far(port) == 8, what="3 more lines read", proc=again.proc)
    assert again.stop() == 0
    assert lines_counted(config) == 20  # each line once: none lost, none twice


def test_a_broken_commit_setting_is_refused_naming_the_key(tmp_path):
    config = configure(tmp_path, commit_interval="soon", commit_lines=0)
    done = subprocess.run([sys.executable, "-m", "agent", "run", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{config}:1: commit_interval: expected a duration like 30s" in done.stderr
    assert "commit_lines: Input should be greater than or equal to 1 (got 0)" in done.stderr
    assert not (tmp_path / "state" / "agent.db").exists()  # refused before it started
    too_long = configure(tmp_path, commit_interval="10m")
    done = subprocess.run([sys.executable, "-m", "agent", "check", "-c", str(too_long)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "commit_interval: must be at most 1m" in done.stderr


def test_windows_past_retention_are_dropped_once_a_minute_not_at_every_commit(tmp_path):
    """A busy log commits several times a second: what retention drops goes in a transaction
    of its own at most once a minute (the first time at once), and then all of it goes."""
    config = configure(tmp_path, retention="10m", window="10m", commit_interval="200ms")
    log = tmp_path / "logs" / "upload.log"
    log.touch()
    daemon = Daemon(config, out=io.StringIO())
    clock = Clock()
    daemon.group = CommitGroup(0.2, 20000, clock=clock)
    prunes: list[datetime] = []
    prune = daemon.store.prune

    def record(before: datetime, *args: Any, **kwargs: Any) -> None:
        prunes.append(before)
        prune(before, *args, **kwargs)

    daemon.store.prune = record  # type: ignore[method-assign]
    monotonic = [5000.0]
    daemon.store._clock = lambda: monotonic[0]  # the store's own clock, for its prunes
    now = datetime.now().astimezone().replace(second=0, microsecond=0)
    t0 = now.replace(minute=now.minute - now.minute % 10) - timedelta(hours=2)

    def oldest() -> datetime:
        return datetime.fromisoformat(db_rows(config, "SELECT min(start) FROM windows")[0][0])

    try:
        for minute in range(0, 100, 20):  # a line every 20 minutes of event time
            ts = t0 + timedelta(minutes=minute)
            append(log, upload_line("成功", ts=ts))
            daemon.step(now=ts + timedelta(seconds=30))
            clock.t += 1.0  # each step commits
            monotonic[0] += 1.0
        assert len(prunes) == 1  # four commits with windows in 4 s: one prune, the first
        assert oldest() == t0  # the windows that ended over 10 minutes ago are still there
        monotonic[0] += 60.0
        append(log, upload_line("成功", ts=t0 + timedelta(minutes=100)))
        daemon.step(now=t0 + timedelta(minutes=100, seconds=30))
        assert len(prunes) == 2
        # a minute later: every window that ended 10 minutes before the newest closed one
        # ([90, 100)) is gone
        assert oldest() == t0 + timedelta(minutes=80)
    finally:
        daemon.shutdown()
