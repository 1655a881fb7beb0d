"""Training: clear refusals (too little history, NaN, no events), constant measurements named,
alerts and --exclude ranges left out, `.gz` logs through the `train` command, and scheduled
retraining from stored windows (in a child process) picked up by a running detector without
a restart."""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from agent.detect.model import build_model_detector
from agent.model import synthetic
from agent.model.features import Slot
from agent.model.files import meta_path, previous_path
from agent.model.train import TrainingRefused, fit_model
from agent.simulator import simulate
from agent.store import DB_NAME, Batch, Store
from agent.training import commands
from agent.training.retrain import Retrainer, retrain_due
from agent.types import Transition
from tests.test_model_helpers import SPEC, WINDOW, ZONE, config, context, trained

REPO = Path(__file__).resolve().parent.parent


def _slots(days: int = 14) -> list[Slot]:
    return list(trained()[2])[: days * 288]


def test_too_little_history_is_refused_saying_how_much_is_needed():
    with pytest.raises(TrainingRefused, match=r"only 864 time slots of 5 minutes \(3\.0 days\).*"
                                              r"at least 7 days \(2016 slots"):
        fit_model(_slots(3), SPEC, config(), WINDOW, ZONE)


def test_nan_values_are_dropped_when_rare_and_refused_when_not():
    slots = _slots(8)
    bad = [replace(s, raw=(math.nan,) + s.raw[1:]) if i % 50 == 0 else s
           for i, s in enumerate(slots)]
    with pytest.raises(TrainingRefused, match=r"NaN or infinite values \(in erp\.count\)"):
        fit_model(bad, SPEC, config(), WINDOW, ZONE)
    few = [replace(s, raw=(math.inf,) + s.raw[1:]) if i == 7 else s
           for i, s in enumerate(slots)]
    _, report = fit_model(few, SPEC, config(), WINDOW, ZONE)
    assert report.nonfinite == 1 and "1 slots with NaN/inf" in " ".join(report.lines())


def test_no_events_at_all_is_refused_and_constant_measurements_are_named():
    silent = [replace(s, raw=tuple(0.0 for _ in s.raw)) for s in _slots(8)]
    with pytest.raises(TrainingRefused, match="no events in any time slot"):
        fit_model(silent, SPEC, config(), WINDOW, ZONE)
    _, report, _ = trained()
    assert "platform.latency_p95" in report.constant and "upload.count" not in report.constant


def test_excluded_ranges_are_left_out():
    slots = _slots(9)
    day = slots[300].start
    _, report = fit_model(slots, SPEC, config(), WINDOW, ZONE,
                          exclude=[(day, day + timedelta(hours=2))])
    assert report.excluded == 24 and report.windows == len(slots) - 24


# -- the train command on .gz log files ------------------------------------------------------
def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="invoice-agent")
    commands.add_commands(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_train_learns_from_gz_logs_leaving_out_alerts_and_excluded_ranges(tmp_path, monkeypatch,
                                                                          capsys):
    demo = yaml.safe_load((REPO / "config" / "agent.yaml").read_text(encoding="utf-8"))
    demo.pop("ledger", None)
    demo["rules"] = ["rules/*.yaml"]
    (tmp_path / "rules").mkdir()
    for f in ("upload.yaml", "erp.yaml"):
        shutil.copy(REPO / "rules" / f, tmp_path / "rules" / f)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    files = []
    for day, incidents in ((date(2026, 11, 1), False), (date(2026, 11, 2), True)):
        sim = simulate(tmp_path / "raw" / day.isoformat(), day=day, seed=3, incidents=incidents)
        for f in sim.files.values():
            gz = tmp_path / "gz" / day.isoformat() / (f.name + ".gz")  # upload.log.gz
            gz.parent.mkdir(parents=True, exist_ok=True)
            with open(f, "rb") as src, gzip.open(gz, "wb") as dst:
                shutil.copyfileobj(src, dst)
            files.append(str(gz))
    out = tmp_path / "m.skops"
    monkeypatch.setattr(commands, "model_config", lambda loaded: config(min_days=3))
    assert _run(["train", "-c", str(cfg), "--out", str(out), *files]) == 1
    assert "training needs at least 3 days" in capsys.readouterr().err
    monkeypatch.setattr(commands, "model_config", lambda loaded: config(min_days=1.5))
    assert _run(["train", "-c", str(cfg), "--exclude", "2026-11-01..2026-11-01T06:00",
                 "--source", "system", files[3]]) == 1  # one source's file alone: too little
    assert _run(["train", "-c", str(cfg), "--out", str(out), "--exclude",
                 "2026-11-01T00:00..2026-11-01T06:00", *files]) == 0
    meta = json.loads(meta_path(out).read_text(encoding="utf-8"))
    # 6 hours excluded, plus the demo day's three incidents the rules alerted on
    assert meta["training"]["excluded"] >= 72 + 3 * 3
    assert meta["window_seconds"] == 300 and "upload.latency_p95" in meta["feature_names"]
    assert _run(["train", "-c", str(cfg), "--exclude", "yesterday", *files]) == 2


# -- retraining from stored windows ----------------------------------------------------------
def test_scheduled_retraining_from_stored_windows_is_picked_up_without_restart(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    windows = synthetic.generate(date(2026, 9, 7), 8, seed=21)
    store = Store(state / DB_NAME)
    fired = datetime(2026, 9, 9, 10, 30, tzinfo=synthetic.TZ)
    store.commit(Batch(windows=windows, transitions=[
        Transition(fired, "upload_latency", "rule", "warning", "firing", {}, {}, "fp", "first"),
        Transition(fired + timedelta(hours=1), "upload_latency", "rule", "warning", "resolved",
                   {}, {}, "fp", "resolved")]))
    store.close()
    now = windows[-1].end
    path = tmp_path / "models" / "model.skops"
    cfg = config(retrain_every="1d", retrain_days=8, min_days=6)
    assert retrain_due(cfg, path, now)  # no model yet
    pending = {"upload_latency": timedelta(minutes=10)}
    r = Retrainer(state / DB_NAME, SPEC, cfg, WINDOW, ZONE, pending, path)
    assert r.poll(now) is None
    r.join()
    report = r.poll(now)
    assert not isinstance(report, Exception), report
    assert report is not None and report.excluded == 12 + 2 + 1  # the alert, its for:, a window
    det = build_model_detector(cfg, context(), tmp_path, path=path)
    assert not det.reload_if_changed()
    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    # a day later (event time stands in for the wall clock: the stored windows are from 2026)
    later = now + timedelta(days=1, minutes=5)
    meta["trained_at"] = now.isoformat()
    meta_path(path).write_text(json.dumps(meta), encoding="utf-8")
    assert retrain_due(cfg, path, later) and not retrain_due(cfg, path, now)
    r.poll(later)
    r.join()
    assert isinstance(r.poll(later), type(report))
    assert previous_path(path).exists()
    assert det.reload_if_changed()  # the new file, taken between batches
    assert det.model.meta["trained_at"] != now.isoformat()
    # the child process said why when it refused: too little history for min_days 30
    r = Retrainer(state / DB_NAME, SPEC, config(retrain_every="1d", min_days=30), WINDOW, ZONE,
                  pending, tmp_path / "other.skops")
    r.poll(later)
    r.join()
    refused = r.poll(later)
    assert isinstance(refused, TrainingRefused) and "at least 30 days" in str(refused)
