"""Crash safety: `kill -9` of `invoice-agent run` at random moments while lines are appended.

A writer thread appends a line every few milliseconds (bursts of failures in every other
second, so the threshold rule fires and resolves again and again) while the agent, notifying a
real webhook on 127.0.0.1, is killed with SIGKILL at random points and restarted. At the end:

- every line written is counted exactly once (the offsets are committed with the batch that
  read them; an uncommitted batch is read again);
- no notification was decided twice: the outbox's messages alternate firing and resolved (an
  alert notified again after a restart would show as two firings in a row);
- the outbox is delivered, and a message reaches the webhook more than once only within the
  documented at-least-once window (the kill fell between the target taking a message and the
  agent recording it as sent): at most one repeat per kill.

`run_crash` is shared with `bench/reliability.py`, which runs it for hundreds of rounds.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.conftest import Receiver
from tests.test_daemon import Agent, db_rows, layout, lines_counted, wait_for

FLAPPING = """
rules:
  - name: upload_failed
    type: threshold
    source: upload
    when: "failed >= 3"
    severity: critical
    summary: {en: "{failed} uploads failed"}
"""


class FlappingWriter(threading.Thread):
    """Appends one line every ~5 ms, failures in even seconds and successes in odd ones, each
    line with its own number; opens the file by name for each line, as a logger would."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        while not self.stop.is_set():
            now = datetime.now().astimezone()
            result = "失败" if now.second % 2 == 0 else "成功"
            line = json.dumps({"time": now.isoformat(), "result": result, "cost": 100,
                               "fphm": f"{self.written:09}"}, ensure_ascii=False)
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            self.written += 1
            time.sleep(0.005)


@dataclass
class CrashResult:
    """What one crash run measured."""

    rounds: int
    written: int
    counted: int
    outbox_rows: int  # notifications the agent decided
    twice: int  # of those, decided twice (the same state as the message before)
    pending: int  # still undelivered at the end
    posts: int  # deliveries the webhook received
    repeats: int  # deliveries beyond one per outbox row (the at-least-once window)
    in_order: bool  # the webhook got the outbox's messages in order (repeats aside)
    seconds: float


def run_crash(tmp: Path, rounds: int, seed: int, receiver: Receiver,
              started: list[Agent]) -> CrashResult:
    """Run the writer, kill -9 and restart the agent `rounds` times, then let it catch up."""
    t0 = time.monotonic()
    rnd = random.Random(seed)
    config = layout(tmp, urls=[receiver.url()], window="1s", rules=FLAPPING, batch_lines=50)
    log = tmp / "logs" / "upload.log"
    writer = FlappingWriter(log)
    agent = Agent(config)
    started.append(agent)
    writer.start()
    try:
        for _ in range(rounds):
            time.sleep(rnd.uniform(0.05, 0.35))
            agent.proc.kill()
            agent.proc.wait()
            if rnd.random() < 0.3:  # sometimes stay down a moment: a backlog to catch up on
                time.sleep(rnd.uniform(0.05, 0.5))
            agent = Agent(config)
            started.append(agent)
        time.sleep(1.2)  # the last burst's window closes with the agent running
    finally:
        writer.stop.set()
        writer.join()
    written = writer.written
    try:
        wait_for(lambda: lines_counted(config) >= written, timeout=30, proc=agent.proc,
                 what=f"{written} lines counted")
        wait_for(lambda: db_rows(config, "SELECT count(*) FROM outbox WHERE status = "
                                         "'pending'") == [(0,)], timeout=30, proc=agent.proc,
                 what="the outbox to drain")
    except AssertionError:
        pass  # the numbers below tell what is missing
    assert agent.stop() == 0
    rows = db_rows(config, "SELECT title, body, status FROM outbox ORDER BY id")
    states = [title.split()[0] for title, _, _ in rows]
    made = [(title, body) for title, body, _ in rows]
    posts = [(b.get("title", ""), b.get("message", "")) for _, b in receiver.posts]
    return CrashResult(
        rounds=rounds, written=written, counted=lines_counted(config), outbox_rows=len(rows),
        twice=sum(a == b for a, b in zip(states, states[1:], strict=False)),
        pending=sum(1 for *_, status in rows if status == "pending"),
        posts=len(posts), repeats=len(posts) - len(made),
        in_order=[p for i, p in enumerate(posts) if i == 0 or posts[i - 1] != p] == made,
        seconds=time.monotonic() - t0)


def test_kill_9_at_random_moments_counts_every_line_once_and_delivers_the_outbox(
        tmp_path, agents, receiver):
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    r = run_crash(tmp_path, rounds=20, seed=seed, receiver=receiver, started=agents)
    assert r.counted == r.written, (seed, r)
    assert r.outbox_rows >= 10, (seed, r)  # the rule fired and resolved throughout the run
    assert r.twice == 0, (seed, r)  # no alert decided twice across the restarts
    assert r.pending == 0, (seed, r)
    # each message delivered, in order; a repeat only right after itself, at most one a kill
    assert r.in_order and 0 <= r.repeats <= r.rounds, (seed, r)
