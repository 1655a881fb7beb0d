"""FileSource when the file system misbehaves: odd names, odd file types, no file descriptors."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from agent.sources.files import FileSource
from tests.test_daemon import db_rows


def append(path: str | bytes | Path, data: bytes | str) -> None:
    with open(path, "ab") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# -- file names that are not valid UTF-8 ------------------------------------------------------


def test_undecodable_file_name_is_read_and_shown_escaped(tmp_path):
    bad = os.path.join(os.fsencode(tmp_path), b"bad\xff.log")
    append(bad, "one\ntwo\n")
    pattern = str(tmp_path / "*.log")
    src = FileSource("up", [pattern])
    lines = src.poll()
    assert [ln.text for ln in lines] == ["one", "two"]
    shown = str(tmp_path / "bad\\xff.log")
    assert {ln.path for ln in lines} == {shown}
    for ln in lines:
        ln.path.encode("utf-8")
    [cp] = src.checkpoints()
    assert cp.path == shown and cp.path.encode("utf-8")
    src.close()
    append(bad, "three\n")
    again = FileSource("up", [pattern], first_run=False)
    again.restore([cp])  # as stored: the shown name, not the real one
    assert [(ln.text, ln.line_no, ln.path) for ln in again.poll()] == [("three", 3, shown)]
    # A file renamed away while the agent was down is still found by its identity.
    stored = again.checkpoints()
    again.close()
    append(bad, "four\n")
    os.rename(bad, os.path.join(os.fsencode(tmp_path), b"bad\xff.log.1"))
    third = FileSource("up", [pattern], first_run=False, rotate_grace=0)
    third.restore(stored)
    assert [(ln.text, ln.path) for ln in third.poll()] == [("four", shown + ".1")]


# `python -m agent run` in a subprocess (the helpers follow tests/test_daemon.py)


def agent_config(tmp: Path) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text("rules: []\n", encoding="utf-8")
    cfg = {"state_dir": "state", "window": "2s", "lateness": "1s", "poll_interval": "200ms",
           "sources": [{"name": "upload", "paths": ["logs/*.log"],
                        "fields": {"ts": "time", "status": "result"}}],
           "rules": ["rules/*.yaml"], "notify": {"urls": [], "language": "en"}}
    path = tmp / "agent.yaml"
    path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
    return path


def wait_for(cond: Callable[[], object], what: str, proc: subprocess.Popen,
             timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the agent exited ({proc.returncode}) waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_agent(config: Path, until: Callable[[], object]) -> tuple[int, str]:
    """Start the agent, wait for `until`, SIGTERM it: (exit code, stderr)."""
    err = config.parent / f"err-{time.monotonic_ns()}.txt"
    with open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=e)
    try:
        wait_for(until, "the lines to be read", proc)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, err.read_text(encoding="utf-8", errors="replace")


def json_lines(n: int) -> str:
    now = datetime.now().astimezone().isoformat()
    return "".join(json.dumps({"time": now, "result": "ok"}) + "\n" for _ in range(n))


def test_agent_with_an_undecodable_file_name_runs_stops_and_restarts(tmp_path):
    config = agent_config(tmp_path)
    bad = os.path.join(os.fsencode(tmp_path / "logs"), b"bad\xff.log")
    append(bad, json_lines(3))

    def offset_rows() -> list[tuple]:
        return db_rows(config, "SELECT path, line_no FROM file_offsets")

    shown = str(tmp_path / "logs" / "bad\\xff.log")
    code, err = run_agent(config, lambda: offset_rows() == [(shown, 3)])
    assert code == 0, err
    append(bad, json_lines(2))
    code, err = run_agent(config, lambda: offset_rows() == [(shown, 5)])
    assert code == 0, err
    assert "Traceback" not in err


# -- FIFOs, folders and symlink loops matched by a glob ----------------------------------------


def test_fifo_directory_and_symlink_loop_are_reported_once_and_never_block(tmp_path, caplog):
    os.mkfifo(tmp_path / "pipe.log")  # opening it would block until a writer comes
    (tmp_path / "folder.log").mkdir()
    os.symlink(tmp_path / "loop.log", tmp_path / "loop.log")
    append(tmp_path / "real.log", "line\n")
    src = FileSource("up", [str(tmp_path / "*.log"), str(tmp_path / "pipe.log")])
    with caplog.at_level(logging.WARNING, logger="agent.sources"):
        assert [ln.text for ln in src.poll()] == ["line"]
        for _ in range(3):
            assert src.poll() == []
    messages = [r.getMessage() for r in caplog.records]
    for name, kind in [("pipe.log", "FIFO"), ("folder.log", "directory"),
                       ("loop.log", "symlink loop")]:
        hits = [m for m in messages if str(tmp_path / name) in m]
        assert len(hits) == 1 and kind in hits[0], messages
    assert len(messages) == 3


def test_symlink_loop_matching_a_folder_wildcard_is_reported_once(tmp_path, caplog):
    (tmp_path / "app").mkdir()
    append(tmp_path / "app" / "a.log", "line\n")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    src = FileSource("up", [str(tmp_path / "*" / "a.log")])
    with caplog.at_level(logging.WARNING, logger="agent.sources"):
        assert [ln.text for ln in src.poll()] == ["line"]
        assert src.poll() == []
    [message] = [r.getMessage() for r in caplog.records]
    assert str(tmp_path / "loop") in message and "symlink loop" in message


# -- out of file descriptors --------------------------------------------------------------------

FD_SCRIPT = textwrap.dedent("""
    import json, logging, os, resource, sys
    from agent.sources.files import FileSource

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    folder = sys.argv[1]
    names = [os.path.join(folder, f"f{i:04}.log") for i in range(1100)]
    written, got = [], []
    writer_slot = os.open(os.devnull, os.O_RDONLY)  # kept free for the writer (this script)

    def write(rnd):
        global writer_slot
        os.close(writer_slot)
        for n in names:
            text = f"{os.path.basename(n)} round {rnd}"
            with open(n, "a") as f:
                f.write(text + "\\n")
            written.append(text)
        writer_slot = os.open(os.devnull, os.O_RDONLY)

    def poll(times):
        for _ in range(times):
            got.extend(ln.text for ln in src.poll())

    src = FileSource("up", [os.path.join(folder, "*.log")], rotate_grace=0)
    write(0)
    poll(3)
    write(1)
    poll(3)
    hog = []  # the rest of the process takes every free descriptor
    try:
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    write(2)
    poll(5)
    for fd in hog:
        os.close(fd)
    write(3)
    poll(5)
    print(json.dumps({"written": written, "got": got, "stats": src.stats}))
""")


def test_out_of_file_descriptors_reads_every_line_once(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    script = tmp_path / "fds.py"
    script.write_text(FD_SCRIPT, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    written, got = result["written"], result["got"]
    assert len(written) == 4400
    assert len(got) == len(set(got)) == len(written)  # every line, none twice
    assert sorted(got) == sorted(written)
    assert result["stats"]["list_errors"] > 0
    assert result["stats"]["lines"] == len(written)
    log_lines = proc.stderr.splitlines()
    assert sum("cannot list" in m for m in log_lines) == 1, proc.stderr[-3000:]


def test_more_files_than_the_budget_are_parked_and_read_once_also_after_a_restart(tmp_path):
    names = [tmp_path / f"f{i:02}.log" for i in range(20)]
    pattern = str(tmp_path / "*.log")
    written: list[str] = []

    def write(rnd: int) -> None:
        for n in names:
            written.append(f"{n.name} {rnd}")
            append(n, written[-1] + "\n")

    def drain(src: FileSource) -> list[str]:
        got: list[str] = []
        while batch := src.poll():
            got += [ln.text for ln in batch]
        return got

    src = FileSource("up", [pattern], max_open=4)
    write(0)
    got = drain(src)
    write(1)
    got += drain(src)
    assert src.stats["files"] == 20 and src.stats["list_errors"] == 0
    stored = src.checkpoints()
    assert len(stored) == 20
    src.close()
    write(2)  # every file has unread lines: more than the budget can hold open at once
    again = FileSource("up", [pattern], first_run=False, max_open=4)
    again.restore(stored)
    got += drain(again)
    assert sorted(got) == sorted(written)


# -- backlog() under the descriptor budget ----------------------------------------------------


def _daily_files(folder: Path, n: int = 40, lines: int = 10) -> list[str]:
    written = []
    for d in range(n):
        text = [f"day {d} line {i}" for i in range(lines)]
        append(folder / f"upload-{d:03}.log", "".join(t + "\n" for t in text))
        written += text
    return written


def _catch_up(src: FileSource, per_source: int = 20000) -> list[str]:
    """The daemon's catching up: poll again at once while a batch is full or backlog() says
    more is known to wait; bounded."""
    got: list[str] = []
    for _ in range(200):
        batch = src.poll(per_source)
        got += [ln.text for ln in batch]
        if not (len(batch) >= per_source or src.backlog()):
            return got
    raise AssertionError("still a backlog after 200 polls")


def test_files_waiting_for_a_descriptor_are_a_backlog(tmp_path):
    # 40 daily files over a budget of 8: a poll reads fewer lines than the batch allows, and
    # yet the older lines of most files are still to come
    written = _daily_files(tmp_path)
    src = FileSource("up", [str(tmp_path / "*.log")], max_open=8)
    first = src.poll()
    assert 0 < len(first) < len(written) and src.backlog()
    got = [ln.text for ln in first] + _catch_up(src)
    assert sorted(got) == sorted(written)  # all of it before the backlog ends, each once
    assert not src.backlog() and src.poll() == []


def test_parked_files_that_changed_are_a_backlog(tmp_path):
    written = _daily_files(tmp_path)
    src = FileSource("up", [str(tmp_path / "*.log")], max_open=8)
    got = _catch_up(src)
    more = [f"day {d} later" for d in range(40)]
    for d, text in enumerate(more):  # most of them are parked now
        append(tmp_path / f"upload-{d:03}.log", text + "\n")
    got += _catch_up(src)
    assert sorted(got) == sorted(written + more)
    assert src.stats["files"] == 40


def test_restored_checkpoints_waiting_for_a_descriptor_are_a_backlog_and_kept(tmp_path):
    # a restart with 40 files holding unread lines, 8 open at a time: the checkpoints not taken
    # up yet stay in checkpoints(), else a second kill -9 would read those files again
    written = _daily_files(tmp_path, lines=5)
    src = FileSource("up", [str(tmp_path / "*.log")], max_open=8)
    got = _catch_up(src)
    stored = src.checkpoints()
    src.close()
    more = [f"day {d} line {i}" for d in range(40) for i in range(5, 10)]
    for text in more:
        append(tmp_path / f"upload-{int(text.split()[1]):03}.log", text + "\n")
    again = FileSource("up", [str(tmp_path / "*.log")], first_run=False, max_open=8)
    again.restore(stored)
    batch = again.poll()  # committed with its checkpoints, then killed
    got += [ln.text for ln in batch]
    assert len(batch) < len(more) and again.backlog()
    kept = again.checkpoints()
    assert {cp.file_id for cp in kept} == {cp.file_id for cp in stored}
    again.close()
    third = FileSource("up", [str(tmp_path / "*.log")], first_run=False, max_open=8)
    third.restore(kept)
    got += _catch_up(third)
    assert sorted(got) == sorted(written + more)


def test_a_file_that_cannot_be_opened_is_no_backlog(tmp_path, monkeypatch):
    append(tmp_path / "a.log", "a\n")
    append(tmp_path / "b.log", "b\n")
    real_open = os.open

    def refuse_b(path, *args, **kwargs):
        if os.fspath(path).endswith("b.log"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_b)
    src = FileSource("up", [str(tmp_path / "*.log")], max_open=8)
    assert [ln.text for ln in src.poll()] == ["a"] and not src.backlog()
    monkeypatch.undo()
    assert [ln.text for ln in src.poll()] == ["b"] and not src.backlog()
