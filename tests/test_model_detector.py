"""The model as a detector: its alerts explain themselves in plain words, `for:` counts
windows, and run (live, slot by slot, restarted half way) decides as replay (batches) does."""

from __future__ import annotations

import glob
import heapq
import json
from datetime import date, datetime, time, timedelta
from operator import itemgetter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from agent.model import synthetic
from agent.model.features import FeatureSpec, slots_from_windows
from agent.model.train import fit_model
from agent.simulator import simulate
from agent.sources.files import FileSource
from agent.training.evaluate import run_windows
from agent.training.history import windows_from_logs
from tests.test_model_helpers import TEST_DAY, WINDOW, ZONE, config, context, detector

REPO = Path(__file__).resolve().parent.parent


def at(hh: int, mm: int, day: date = TEST_DAY) -> datetime:
    return datetime.combine(day, time(hh, mm), synthetic.TZ)


def incident_day(kind: str, start: datetime, minutes: int) -> list:
    inc = synthetic.Incident(kind, start, start + timedelta(minutes=minutes))
    return synthetic.generate(TEST_DAY, 1, [inc], seed=11, quirks=False)


def firing(transitions):
    return [t for t in transitions if t.state == "firing"]


@pytest.mark.parametrize("kind, words_en, words_zh", [
    ("latency", "upload latency", "上传延迟"),
    ("partial_outage", "ERP sync events 0 per 5 min", "ERP 同步数量 0"),
    ("error_burst", "upload failure rate", "上传失败率"),
])
def test_the_alert_names_the_injected_measurement_in_plain_words(kind, words_en, words_zh):
    (tr, *_) = firing(run_windows([detector()], incident_day(kind, at(10, 30), 30)))
    assert tr.kind == "model" and at(10, 30) < tr.ts <= at(10, 40)  # within two windows
    en, zh = tr.summary["en"], tr.summary["zh"]
    assert words_en in en and "normally" in en and "at this hour" in en
    assert words_zh in zh and "此时段通常" in zh
    for internal in ("z:", "upload.", "erp.", "_p95", "_rate", "distinct_error_codes"):
        assert internal not in en and internal not in zh
    assert tr.values["unusual"][0]["source"] in ("upload", "erp")


def test_for_counts_windows():
    day = incident_day("latency", at(10, 30), 30)
    (two,) = firing(run_windows([detector()], day))
    (three,) = firing(run_windows([detector(**{"for": 3})], day))
    assert three.ts - two.ts == WINDOW
    assert detector(**{"for": 3}).pending_for == 2 * WINDOW


def test_batches_and_live_scoring_and_a_restart_give_the_same_alerts():
    day = incident_day("outage", at(9, 30), 30) + incident_day("latency", at(14, 0), 60)
    day.sort(key=lambda w: (w.end, w.source))
    live, batch = detector(), detector(batch=True, batch_size=50)
    assert live.watch().ticks and live.watch().sources == frozenset(synthetic.SOURCES)
    a = run_windows([live], day)
    b = run_windows([batch], day)
    half = len(day) // 2
    first = detector()
    c = run_windows([first], day[:half])
    second = detector()  # a restart: the state goes through JSON like the daemon's checkpoint
    second.restore(json.loads(json.dumps(first.state())))
    c += run_windows([second], day[half:])
    key = [(t.ts, t.state, t.summary["en"]) for t in a]
    assert key and key == [(t.ts, t.state, t.summary["en"]) for t in b]
    assert [(t.ts, t.state) for t in c if t.state == "firing"] == [
        (t.ts, t.state) for t in a if t.state == "firing"]


# -- run vs replay on real log files ---------------------------------------------------------
def _config(tmp: Path) -> Path:
    demo = yaml.safe_load((REPO / "config" / "agent.yaml").read_text(encoding="utf-8"))
    demo.pop("ledger", None)
    demo["rules"] = ["rules.yaml"]
    for src in demo["sources"]:
        src["paths"] = [p.replace("logs/", "logs/*/") for p in src["paths"]]
    (tmp / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    return path


def _daemon_like(loaded, det, pairs, per_poll: int = 700):
    """Events through the Engine the way the daemon's loop pushes them: a bounded poll per
    source, merged by confirmed time, time held at the slowest backlogged source."""
    from agent.pipeline import Engine

    engine = Engine(loaded, [det])
    sources = [FileSource(s.name, [glob.escape(p)], encoding=s.encoding) for s, p in pairs]
    out, last = [], None
    while True:
        streams, limit, backlog = [], None, False
        for fs in sources:
            got = fs.poll(per_poll) or fs.flush()
            events = list(engine.events(got))
            streams.append(events)
            if len(got) >= per_poll:
                backlog = True
                mark = events[-1][0] if events else engine.watermarks.get(fs.name)
                if mark is not None and (limit is None or mark < limit):
                    limit = mark
        merged = list(heapq.merge(*streams, key=itemgetter(0)))
        for confirmed, ev in merged:
            engine.push(confirmed, ev, limit)
            last = confirmed
        if not merged and not backlog:
            break
        if limit is not None:
            engine.advance(limit)
        out += engine.take()
    engine.advance(last + loaded.config.window + loaded.config.lateness)
    for fs in sources:
        fs.close()
    return out + engine.take()


def test_run_and_replay_give_the_same_model_alerts_on_log_files(tmp_path: Path):
    from agent.detect.model import ModelDetector
    from agent.replay import match_files, replay
    from agent.wiring import load_all

    cfg_path = _config(tmp_path)
    history = []
    for i, day in enumerate((date(2026, 10, 30), date(2026, 11, 1))):
        sim = simulate(tmp_path / "logs" / day.isoformat(), day=day, seed=40 + i,
                       incidents=False)
        history += [str(f) for f in sim.files.values()]
    loaded, rules = load_all(cfg_path, notify=False, batch=True)
    spec = FeatureSpec.for_sources([s.name for s in loaded.config.sources])
    windows, _ = windows_from_logs(loaded, rules, spec.watched, history)
    cfg = config(min_days=1.5)
    model, _ = fit_model(slots_from_windows(windows, spec), spec, cfg, WINDOW, ZONE)

    test_day = simulate(tmp_path / "logs" / "2026-11-02", seed=7)  # the demo's incidents
    pairs = match_files(loaded, [str(f) for f in test_day.files.values()])
    zone = ZoneInfo(ZONE)
    replayed = replay(loaded, [ModelDetector(cfg, model, context(True, spec.sources), zone)],
                      pairs).transitions
    live = _daemon_like(loaded, ModelDetector(cfg, model, context(False, spec.sources), zone),
                        pairs)
    assert [(t.ts, t.state, t.summary["en"]) for t in live] == [
        (t.ts, t.state, t.summary["en"]) for t in replayed]
    fired = [t for t in replayed if t.state == "firing"]
    for inc in test_day.incidents:  # each of the demo's incidents, within two windows
        assert any(inc.start < t.ts <= inc.start + 2 * WINDOW for t in fired), inc.name
