"""Rotation torture: continuous writes while the log is rotated hundreds of times, by rename,
by copytruncate and by delete-and-recreate, under a running `invoice-agent run`.

A writer thread appends numbered lines, opening the file by name for each one (as a logger
that reopens after rotation does); the test rotates every few tens of milliseconds, without
coordinating with the writer. Rotated copies get names of their own (logrotate's `dateext`)
and are kept, so afterwards the lines that still exist anywhere can be counted:

- rename and delete/recreate: every line written is counted, exactly once;
- copytruncate has a race no reader can close: a line written after the copy was taken and
  before the truncation is in neither file. Those lines are measured (written minus the lines
  found in the copies and the live file) and the agent must count every line that survived,
  once.

`run_rotation` is shared with `bench/reliability.py` (hundreds of rotations of each kind).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_daemon import Agent, layout, lines_counted, wait_for


class NumberedWriter(threading.Thread):
    """Appends a numbered line every ~2 ms, opening the file by name for each line."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        while not self.stop.is_set():
            line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                               "result": "成功", "fphm": f"{self.written:09}"},
                              ensure_ascii=False)
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            self.written += 1
            time.sleep(0.002)


def rotate(log: Path, how: str, n: int) -> None:
    """One rotation; the rotated copy is named `upload.log.<n>` (unique, kept)."""
    copy = log.with_name(f"{log.name}.{n:04}")
    try:
        if how == "rename":
            os.rename(log, copy)
        elif how == "copytruncate":
            shutil.copyfile(log, copy)
            os.truncate(log, 0)  # lines written since the copy was taken are gone
        else:  # delete and recreate: the writer creates the file again at its next line
            os.unlink(log)
    except FileNotFoundError:
        pass  # deleted a moment ago and not written to since


def surviving(folder: Path) -> int:
    """Distinct numbered lines still present in any file of the folder."""
    seen: set[str] = set()
    for path in folder.iterdir():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                seen.add(json.loads(line)["fphm"])
            except (ValueError, KeyError):
                pass
    return len(seen)


@dataclass
class RotationResult:
    """What one torture run of one kind measured."""

    how: str
    rotations: int
    written: int
    surviving: int  # lines a reader could still get (copytruncate's race takes the rest)
    counted: int
    seconds: float

    @property
    def race_lost(self) -> int:
        """Lines no reader could have read: truncated away before any copy held them."""
        return self.written - self.surviving

    @property
    def agent_lost(self) -> int:
        """Lines that existed in a file and the agent did not count (negative: counted twice)."""
        return self.surviving - self.counted


def run_rotation(tmp: Path, how: str, rotations: int, seed: int,
                 started: list[Agent]) -> RotationResult:
    t0 = time.monotonic()
    rnd = random.Random(seed)
    config = layout(tmp, rules="rules: []\n", paths="logs/upload.log*")
    log = tmp / "logs" / "upload.log"
    agent = Agent(config)
    started.append(agent)
    writer = NumberedWriter(log)
    writer.start()
    try:
        for n in range(rotations):
            time.sleep(rnd.uniform(0.01, 0.04))
            rotate(log, how, n)
        time.sleep(0.1)
    finally:
        writer.stop.set()
        writer.join()
    # a deleted file's lines are still readable through the descriptor the agent holds: only
    # copytruncate destroys lines
    left = surviving(tmp / "logs") if how == "copytruncate" else writer.written
    try:
        wait_for(lambda: lines_counted(config) >= left, timeout=20, proc=agent.proc,
                 what=f"{left} lines counted")
    except AssertionError:
        pass  # the numbers tell what is missing
    time.sleep(1.2)  # past the rotate grace: a copy read twice would show now
    assert agent.stop() == 0
    return RotationResult(how, rotations, writer.written, left, lines_counted(config),
                          time.monotonic() - t0)


@pytest.mark.parametrize("how", ["rename", "delete", "copytruncate"])
def test_rotation_torture_counts_every_surviving_line_once(tmp_path, agents, how):
    seed = int(os.environ.get("ROTATION_SEED", random.randrange(1 << 30)))
    r = run_rotation(tmp_path, how, rotations=100, seed=seed, started=agents)
    assert r.written > 1000, r
    assert r.agent_lost == 0, (seed, r)
    if how != "copytruncate":
        assert r.race_lost == 0, (seed, r)  # every line written is still somewhere
        assert r.counted == r.written, (seed, r)
    else:
        # the race exists (measured in docs/benchmarks.md) but is small: between the copy
        # and the truncation a few lines at most each time
        assert r.race_lost <= 5 * r.rotations, (seed, r)
