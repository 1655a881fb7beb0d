"""What the model costs `replay` and `run`, against the same pipeline without it.

    python bench/model_replay.py [--days 7] [--repeat 3] [--json PATH]

Simulates DAYS days of the demo's logs (agent.simulator; healthy days, then the demo day with
its incidents), then times `replay` in-process with the shipped demo config and rules, without
and with the shipped demo model (models/demo.skops, scored in batches), best of --repeat,
alternating, and prints the ratio. Then the live cost: one slot scored at a time, as `run`
does every window, in ms per slot and as a share of one CPU at 5-minute windows. Then the
memory: peak RSS (ru_maxrss) of fresh processes that load config and rules and replay the
demo day, with rules only, with the model as the agent loads it (numpy arrays), and with
the model's scikit-learn pipeline read too (what loading cost before the arrays), in the same
run. Results: docs/model.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchjson  # noqa: E402

from agent.alerts import REPEAT  # noqa: E402
from agent.demo import prepare  # noqa: E402
from agent.detect.base import BuildContext  # noqa: E402
from agent.detect.model import build_model_detector  # noqa: E402
from agent.replay import configured_files, match_files, replay  # noqa: E402
from agent.simulator import simulate  # noqa: E402
from agent.training.commands import model_config  # noqa: E402
from agent.training.demo_model import DEMO_DAY  # noqa: E402
from agent.wiring import load_all  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "demo.skops"

RSS = """
import resource, sys
from datetime import timedelta
from pathlib import Path
from agent.wiring import load_all
config, mode, model, work = sys.argv[1:5]
loaded, rules = load_all(config, notify=False, batch=True)
dets, det = list(rules), None
if mode != "rules":
    from agent.detect.base import BuildContext
    from agent.training.commands import model_config
    from agent.detect.model import build_model_detector
    c = loaded.config
    ctx = BuildContext(tuple(s.name for s in c.sources), c.window, batch=work == "replay",
                       ledger=c.ledger, timezone=c.timezone)
    det = build_model_detector(model_config(loaded), ctx, loaded.base, path=model)
    if mode == "model+sklearn":
        from agent.model.files import load_pipeline
        det.model.pipeline = load_pipeline(Path(model))
    dets.append(det)
if work == "replay":
    from agent.replay import configured_files, match_files, replay
    replay(loaded, dets, match_files(loaded, [str(p) for _, p in configured_files(loaded)]))
elif det is not None:  # a slot of typical values at noon, then a replay-sized batch
    from datetime import datetime
    from zoneinfo import ZoneInfo
    from agent.model.features import Slot
    stats = det.model.meta["feature_stats"]
    raw = tuple(stats[n]["median"] for n in det.spec.measured_names)
    end = datetime(2026, 11, 3, 12, 0, tzinfo=ZoneInfo(loaded.config.timezone))
    det.score([Slot(end - loaded.config.window, end, raw)])
    det.score([Slot(end + i * loaded.config.window, end + (i + 1) * loaded.config.window, raw)
               for i in range(512)])
scored = det.scored if det is not None else 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "skops"})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, scored, ",".join(heavy) or "-",
      "numpy" in sys.modules)
"""

# Linux counts in ru_maxrss the RSS of the process that exec'd: a child started from this
# (large) process would report at least this process's RSS. A small Python in between
# starts it instead, so the floor is ~10 MiB.
CLEAN = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]


def detector(loaded, batch: bool):
    c = loaded.config
    ctx = BuildContext(tuple(s.name for s in c.sources), c.window, batch=batch,
                       ledger=c.ledger, timezone=c.timezone)
    return build_model_detector(model_config(loaded), ctx, loaded.base, path=MODEL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    benchjson.add_argument(ap)
    a = ap.parse_args()
    report = benchjson.Report("model_replay", a.json)
    work = Path(tempfile.mkdtemp(prefix="ia-model-bench-"))
    try:
        config, _ = prepare(work)  # the demo day, with incidents, in config/logs
        files = [str(p) for _, p in configured_files(load_all(config, notify=False)[0])]
        for i in range(a.days - 1):
            day = DEMO_DAY - timedelta(days=a.days - 1 - i)
            sim = simulate(work / "days" / day.isoformat(), day=day, seed=500 + i,
                           incidents=False)
            files += [str(f) for f in sim.files.values()]
        loaded, _ = load_all(config, notify=False, batch=True)
        pairs = match_files(loaded, files)
        best = {"rules": float("inf"), "rules+model": float("inf")}
        lines = alerts = scored = 0
        for _ in range(a.repeat):
            for name in best:
                loaded, rules = load_all(config, notify=False, batch=True)
                dets = list(rules)
                if name == "rules+model":
                    det = detector(loaded, batch=True)  # loaded before the clock starts
                    dets.append(det)
                t = time.perf_counter()
                r = replay(loaded, dets, pairs)
                best[name] = min(best[name], time.perf_counter() - t)
                lines = r.lines
                if name == "rules+model":
                    scored = det.scored
                    alerts = sum(1 for tr in r.transitions if tr.kind == "model"
                                 and tr.state == "firing" and tr.reason != REPEAT)
        base, with_model = best["rules"], best["rules+model"]
        print(f"replay of {a.days} days, {lines:,} lines, best of {a.repeat}:")
        print(f"  rules only        {base:7.2f}s  {lines / base:9,.0f} lines/s")
        print(f"  rules + model     {with_model:7.2f}s  {lines / with_model:9,.0f} lines/s  "
              f"({scored} slots scored, {alerts} model alerts)")
        print(f"  ratio with/without: {with_model / base:.3f} "
              f"(+{(with_model / base - 1) * 100:.1f}%)")
        report.add(f"replay of {a.days} demo days ({lines:,} lines), rules + model",
                   lines / with_model, "lines/s", "the same replay, rules only", lines / base)

        live = detector(loaded, batch=False)
        from agent.model.features import slots_from_windows
        from agent.training.history import windows_from_logs

        wins, _ = windows_from_logs(loaded, [], live.spec.watched, files[:4])
        slots = slots_from_windows(wins, live.spec)
        t = time.perf_counter()
        for s in slots:
            live.score([s])
        per = (time.perf_counter() - t) / len(slots)
        window = loaded.config.window.total_seconds()
        print(f"live: {per * 1000:.2f} ms per slot scored alone = {per / window * 100:.4f}% "
              f"of one CPU at {window / 60:g}-minute windows")
        report.add("live scoring, one slot at a time: time per slot", per * 1000, "ms",
                   f"one {window / 60:g}-minute window", window * 1000)

        for task, what in (("score", "loads config and rules, the model, and scores a slot "
                                     "and a batch of 512"),
                           ("replay", "loads config and rules, the model, and replays the "
                                      "demo day")):
            print(f"peak RSS (ru_maxrss) of a process that {what}:")
            rss: dict[str, float] = {}
            for mode in ("rules", "model", "model+sklearn"):
                out = subprocess.run([*CLEAN, sys.executable, "-c", RSS, str(config), mode,
                                      str(MODEL), task], capture_output=True, text=True,
                                     check=True, cwd=REPO)
                kib, n, heavy, numpy = out.stdout.split()
                rss[mode] = int(kib) / 1024
                extra = f" (+{rss[mode] - rss['rules']:.1f} MiB)" if mode != "rules" else ""
                print(f"  {mode:<14} {rss[mode]:6.1f} MiB{extra}; {n} slots scored; "
                      f"imported: {heavy}; numpy: {numpy}")
                if mode != "rules":
                    doing = ("load, score 1 + 512 slots" if task == "score" else
                             "load, replay the demo day")
                    report.add(f"peak RSS ({doing}), rules + {mode}", rss[mode], "MiB",
                               "the same process, rules only", rss["rules"])
        report.write()
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
