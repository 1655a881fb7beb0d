"""The long runs of the reliability suite: kill -9 rounds and rotation torture.

    python bench/reliability.py [--crash-rounds 200] [--rotations 300] [--seed N] [--json PATH]

Runs the same scenarios as tests/test_reliability_crash.py and test_reliability_rotation.py
(real `invoice-agent run` subprocesses, a real webhook on 127.0.0.1) for many more rounds, and
prints what they measured: lines written and counted, notifications decided, repeats within the
at-least-once window; per rotation kind the lines lost to copytruncate's race and to the agent.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchjson  # noqa: E402

from tests.conftest import Receiver  # noqa: E402
from tests.test_daemon import Agent  # noqa: E402
from tests.test_reliability_crash import run_crash  # noqa: E402
from tests.test_reliability_rotation import run_rotation  # noqa: E402


def stop_all(started: list[Agent]) -> None:
    for a in started:
        if a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crash-rounds", type=int, default=200, help="kill -9 rounds (0: skip)")
    ap.add_argument("--rotations", type=int, default=300, help="rotations of each kind (0: skip)")
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    benchjson.add_argument(ap)
    args = ap.parse_args()
    report = benchjson.Report("reliability", args.json)
    print(f"seed {args.seed}")
    ok = True
    started: list[Agent] = []
    try:
        if args.crash_rounds:
            receiver = Receiver()
            tmp = tempfile.mkdtemp(prefix="reliability-crash-")  # kept: the agents' logs
            print(f"crash: agents' logs in {tmp}")
            try:
                r = run_crash(Path(tmp), args.crash_rounds, args.seed, receiver, started)
            finally:
                receiver.close()
            print(f"crash: {r.rounds} kills in {r.seconds:.0f}s: lines written {r.written}, "
                  f"counted {r.counted}; notifications {r.outbox_rows} (decided twice "
                  f"{r.twice}, undelivered {r.pending}); webhook posts {r.posts}, repeats "
                  f"{r.repeats}, in order {r.in_order}")
            ok &= r.counted == r.written and r.twice == 0 and r.pending == 0 and r.in_order
            report.add(f"kill -9 at random moments, {r.rounds} rounds: lines counted",
                       r.counted, "lines", "lines written", r.written)
            report.add("notifications decided twice", r.twice, "messages",
                       "notifications decided", r.outbox_rows)
            report.add("notifications undelivered at the end", r.pending, "messages",
                       "notifications decided", r.outbox_rows)
            report.add("webhook posts (repeats: the at-least-once window)", r.posts, "messages",
                       "notifications decided", r.outbox_rows)
        for how in ("rename", "delete", "copytruncate") if args.rotations else ():
            with tempfile.TemporaryDirectory() as tmp:
                rot = run_rotation(Path(tmp), how, args.rotations, args.seed, started)
            print(f"rotation {how}: {rot.rotations} rotations in {rot.seconds:.0f}s: written "
                  f"{rot.written}, counted {rot.counted}, lost to the copytruncate race "
                  f"{rot.race_lost}, lost by the agent {rot.agent_lost}")
            # never twice, never invented, nothing left in a file missed, no deleted file read
            # only in part; lines of a file deleted before anyone could open it, and the
            # copytruncate race, are measured (tests/test_reliability_rotation.py says why)
            ok &= (rot.twice == 0 and rot.unknown == 0 and rot.missed == 0
                   and (how != "rename" or rot.race_lost == 0)
                   and (how != "delete" or rot.partly_lost == 0))
            report.add(f"{how} rotation, {rot.rotations} times: lines counted", rot.counted,
                       "lines", "lines written" + (" less those lost to the copytruncate race"
                                                   if how == "copytruncate" else ""),
                       rot.written - rot.race_lost)
    finally:
        stop_all(started)
    print("ok" if ok else "FAILED")
    report.note(f"Seed {args.seed}" + ("." if ok else "; FAILED."))
    report.write()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
