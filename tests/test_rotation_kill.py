"""kill -9 and logrotate under a running `invoice-agent run`: every line counted exactly once.

A writer thread appends JSON lines (each with its own invoice number) to logs/upload.log while
the test rotates it the two ways logrotate does (copytruncate and rename, keeping 3 copies) and
kills the agent with SIGKILL at several points, rotating also while it is down.  The glob
matches the rotated copies, so each line is in several files at once: the agent's `lines`
counter must still end at exactly the number of lines written.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

from tests.test_daemon import Agent, layout, lines_counted, wait_for

KEEP = 3  # logrotate `rotate 3`: upload.log.1 .. upload.log.3


class Writer(threading.Thread):
    """Appends a line every millisecond or so, opening the file by name for each burst (so a
    rename rotation is followed at once); `lock` is held across a burst, and by the test across
    a rotation, so no line is written between a copy and its truncation."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock, open(self.log, "a", encoding="utf-8") as f:
                for _ in range(5):
                    f.write(json.dumps({"time": datetime.now().astimezone().isoformat(),
                                        "result": "成功", "cost": 120,
                                        "fphm": f"{self.written:08}"}) + "\n")
                    self.written += 1
            time.sleep(0.005)


def rotate(log: Path, how: str) -> None:
    """One logrotate run: shift the kept copies (the oldest is deleted), then copytruncate or
    rename the live file (the writer creates a new one at its next burst)."""
    for k in range(KEEP - 1, 0, -1):
        older = log.with_name(f"{log.name}.{k}")
        if older.exists():
            os.replace(older, log.with_name(f"{log.name}.{k + 1}"))
    first = log.with_name(f"{log.name}.1")
    if how == "copytruncate":
        shutil.copyfile(log, first)
        os.truncate(log, 0)
    else:
        os.rename(log, first)


def test_kill_9_and_rotations_count_every_line_exactly_once(tmp_path, agents):
    # no rules: only the counters; small batches: a restart catches up in several commits
    config = layout(tmp_path, rules="rules: []\n", paths="logs/upload.log*", batch_lines=300)
    log = tmp_path / "logs" / "upload.log"
    seed = int(os.environ.get("ROTATION_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    writer = Writer(log)
    agent = Agent(config)
    agents.append(agent)
    writer.start()
    kills = rotations = 0
    try:
        for step in range(16):
            time.sleep(rnd.uniform(0.1, 0.4))
            how = "copytruncate" if step % 3 else "rename"
            with writer.lock:
                rotate(log, how)
            rotations += 1
            if step % 4 == 1:  # kill at a random moment, rotate once while down, restart
                time.sleep(rnd.uniform(0, 0.3))
                agent.proc.kill()
                agent.proc.wait()
                kills += 1
                time.sleep(rnd.uniform(0.05, 0.3))
                with writer.lock:
                    rotate(log, "rename" if how == "copytruncate" else "copytruncate")
                rotations += 1
                agent = Agent(config)
                agents.append(agent)
    finally:
        writer.stop.set()
        writer.join()
    written = writer.written
    # generous: a wrong count shows as a timeout here and as the exact numbers below
    try:
        wait_for(lambda: lines_counted(config) >= written, timeout=15, proc=agent.proc,
                 what=f"{written} lines counted")
    except AssertionError:
        pass
    time.sleep(1.5)  # past the agent's rotate grace: a rotated file read twice would show
    assert agent.stop() == 0
    assert kills == 4 and rotations == 20
    assert lines_counted(config) == written, (seed, [a.stderr()[-3000:] for a in agents])
