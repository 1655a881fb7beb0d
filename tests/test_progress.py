"""Progress of long `replay` and `train` runs: a line on a terminal (bytes of the total, lines,
MB/s, time left), nothing in a pipe or with --quiet, and a reading cost of one update per
batch of lines."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from agent.demo import prepare
from agent.replay import configured_files, replay
from agent.wiring import load_all

BAR = re.compile(r"replay: +100%\|.*\| (?P<done>[\d.]+k)/(?P<total>[\d.]+k) "
                 r"\[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kM]?B/s, (?P<lines>[\d,]+) lines\]")


def on_terminal(*args: str, stdout_tty: bool = False) -> tuple[int, str, str]:
    """Run `invoice-agent ARGS` with stderr on a pseudo-terminal of 120 columns (stdout on
    it too with `stdout_tty`, else a pipe); its exit code, what the terminal showed and the
    piped stdout."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    shown = bytearray()

    def read() -> None:  # drained while the child runs: a full terminal would block it
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every slave end closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "agent", *args], stderr=slave,
                              stdout=slave if stdout_tty else subprocess.PIPE, timeout=120,
                              check=False)
    finally:
        os.close(slave)
    reader.join(10)
    os.close(master)
    out = proc.stdout.decode() if proc.stdout is not None else ""
    return proc.returncode, shown.decode("utf-8", "replace"), out


def piped(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def demo(tmp_path: Path) -> tuple[Path, Path]:
    config, _ = prepare(tmp_path)
    return config, config.parent / "logs" / "upload.log"


def test_replay_on_a_terminal_shows_bytes_lines_rate_and_time_left(tmp_path):
    config, log = demo(tmp_path)
    lines = log.read_bytes().count(b"\n")
    code, terminal, stdout = on_terminal("replay", "-c", str(config), "--format", "jsonl",
                                         str(log))
    assert code == 1, terminal  # the demo day's incidents fire
    bar = BAR.search(terminal)
    assert bar is not None, terminal
    assert bar["done"] == bar["total"]  # all of the file's bytes (994k: it is ~1 MB)
    assert bar["lines"] == f"{lines:,}"
    # the bar stays above the summary, and stdout (a pipe) holds only the transitions
    assert terminal.index("100%") < terminal.index("replayed 1 file(s)")
    assert [json.loads(line)["rule"] for line in stdout.splitlines()]
    assert "B/s" not in stdout


def test_transitions_on_the_same_terminal_are_printed_clear_of_the_bar(tmp_path):
    config, log = demo(tmp_path)
    code, terminal, _ = on_terminal("replay", "-c", str(config), "--language", "en",
                                    str(log), stdout_tty=True)
    assert code == 1
    # what each line of the terminal ends up showing: the text after its last carriage
    # return (the bar is redrawn over itself, and wiped with spaces before a transition)
    visible = [line.split("\r")[-1] for line in terminal.split("\r\n")]
    fired = [line for line in visible if "FIRING" in line]
    assert len(fired) >= 3, terminal
    for line in fired:  # a transition alone on its line, not written after a bar
        assert "B/s" not in line
        assert re.match(r"(\x1b\[[\d;]*m)?2026-11-02 ", line), line
    assert any("100%" in line and "lines]" in line for line in visible)


def test_replay_into_a_pipe_or_with_quiet_shows_no_progress(tmp_path):
    config, log = demo(tmp_path)
    result = piped("replay", "-c", str(config), str(log))
    assert result.returncode == 1
    assert "replayed 1 file(s)" in result.stderr
    assert "B/s" not in result.stderr and "\r" not in result.stderr

    code, terminal, _ = on_terminal("replay", "-q", "-c", str(config), str(log))
    assert code == 1
    assert "replayed 1 file(s)" in terminal
    assert "B/s" not in terminal and "100%" not in terminal


def test_progress_is_told_once_per_file_read_with_its_bytes_and_lines(tmp_path):
    config, _ = demo(tmp_path)
    loaded, rules = load_all(config, notify=False, batch=True, model=False)
    pairs = configured_files(loaded)
    calls: list[tuple[int, int]] = []
    result = replay(loaded, rules, pairs, progress=lambda b, n: calls.append((b, n)))
    # every demo file is under one batch (50,000 lines): one call each, never one per line
    assert len(calls) == len(pairs) == 4
    assert sum(b for b, _ in calls) == sum(os.path.getsize(p) for _, p in pairs)
    assert sum(n for _, n in calls) == result.lines > 10_000


def test_train_shows_its_status_on_a_terminal_and_nothing_with_quiet(tmp_path):
    config, _ = demo(tmp_path)
    logs = sorted(str(p) for p in (config.parent / "logs").iterdir())
    out = str(tmp_path / "m.skops")
    # the demo's half day is too little to learn from: refused after reading and fitting
    code, terminal, _ = on_terminal("train", "-c", str(config), "--out", out, *logs)
    assert code == 1 and "training refused" in terminal
    # reading: a bar of the bytes read, its rate and the time left; then the fitting line
    assert "train: reading" in terminal and "100%" in terminal
    assert "fitting the model on" in terminal
    code, terminal, _ = on_terminal("train", "--quiet", "-c", str(config), "--out", out, *logs)
    assert code == 1 and "training refused" in terminal
    assert "train: reading" not in terminal and "fitting" not in terminal
