"""`kind = "model"`: the trained model as a detector over closed windows.

It watches the closed windows of every source (and the ledger's, when configured) and the
ticks. A time slot is scored once every watched source has shown its window for that end,
or at the tick after them (the engine closes all windows with the same end in one `advance`,
then ticks). Live, each slot is scored as it completes: one forest call every window length.
In a replay (BuildContext.batch) slots wait and are scored `batch_size` at a time (one call
for a slot costs ~0.3 ms, for 512 slots ~1 ms in the forest); the model's findings keep their
order, and the last batch is handed over in `finish`. Scoring is numpy only
(agent.model.trees): the detector never imports scikit-learn.

The alert lifecycle is the rules': `for:` (in windows) becomes the pending time, severity
and labels come from config, the summary explains the slot (agent.model.explain).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from agent.detect.base import NO_FINDINGS, BuildContext, Detector, RuleConfig, Watch
from agent.model import explain
from agent.model.calendar import BusinessCalendar
from agent.model.config import ModelConfig
from agent.model.core import Model
from agent.model.features import FeatureSpec, Slot, SlotBuffer, raw_matrix
from agent.model.files import (
    ModelRefused,
    check_fits,
    check_meta,
    load_model,
    meta_path,
    read_meta,
)
from agent.model.train import calendar_of
from agent.types import Finding, Window

log = logging.getLogger(__name__)


class ModelDetector(Detector):
    kind = "model"

    def __init__(self, cfg: ModelConfig, model: Model, context: BuildContext, zone: tzinfo,
                 path: Path | None = None):
        rule = RuleConfig.model_validate({
            "name": cfg.name, "type": "model", "severity": cfg.severity,
            "labels": dict(cfg.labels), "for": cfg.pending_for(context.window),
            "repeat_interval": cfg.repeat_interval,
            "description": "IsolationForest model: a time slot unlike the training history "
                           "at this hour"})
        super().__init__(rule, cfg.labels)
        self.cfg = cfg
        self.model = model
        self.zone = zone
        self.path = path
        self.batch = context.batch
        self.window_minutes = context.window.total_seconds() / 60
        self.calendar: BusinessCalendar = calendar_of(cfg)
        self.buffer = SlotBuffer(model.spec)
        self._waiting: list[Slot] = []  # batch mode: complete slots not yet scored
        self._stamp = _stamp(path) if path is not None else None
        self.scored = 0  # slots scored (for `evaluate`, status and benchmarks)
        self.last_score: float | None = None  # of the newest slot, in thresholds (metrics)
        self.first_end: datetime | None = None  # ends of the first and last slot scored
        self.last_end: datetime | None = None

    @property
    def spec(self) -> FeatureSpec:
        return self.model.spec

    def watch(self) -> Watch:
        return Watch(sources=self.spec.watched, windows=True, ticks=True)

    # -- the engine's calls ------------------------------------------------------------------
    def on_window(self, window: Window) -> Collection[Finding]:
        slot = self.buffer.add(window.source, window.start, window.end, window.features)
        if slot is None:
            return NO_FINDINGS
        if self.batch:
            self._waiting.append(slot)
            return NO_FINDINGS
        return self.score([slot])

    def on_tick(self, now: datetime) -> Collection[Finding]:
        done = self.buffer.complete(now)
        if not self.batch:
            return self.score(done) if done else NO_FINDINGS
        self._waiting += done
        if len(self._waiting) < self.cfg.batch_size:
            return NO_FINDINGS
        return self._flush()

    def finish(self, now: datetime) -> Collection[Finding]:
        self._waiting += self.buffer.complete(now)
        return self._flush()

    def _flush(self) -> list[Finding]:
        slots, self._waiting = sorted(self._waiting, key=lambda s: s.end), []
        return self.score(slots)

    # -- scoring -----------------------------------------------------------------------------
    def score(self, slots: list[Slot]) -> list[Finding]:
        """Findings for complete slots, in their order: one forest call for all."""
        if not slots:
            return []
        model = self.model
        raw = raw_matrix(slots, len(model.spec.measured))
        bad = ~np.isfinite(raw)
        if bad.any():  # a NaN from a source must not poison the forest: count it as 0
            raw[bad] = 0.0
        s = model.score(raw, [x.start for x in slots], [x.end for x in slots], self.zone,
                        self.calendar)
        self.scored += len(slots)
        if self.first_end is None:
            self.first_end = slots[0].end
        self.last_end = slots[-1].end
        self.last_score = float(s.score[-1]) / model.threshold if model.threshold else 0.0
        out = []
        for i, slot in enumerate(slots):
            values = self.values(raw[i], s.z[i], float(s.score[i]), float(s.at[i]),
                                 int(s.kinds[i]), slot)
            out.append(Finding(self.name, bool(values["abnormal"]), slot.end, self.labels,
                               values, kind=self.kind, window_start=slot.start))
        return out

    def values(self, raw: np.ndarray, z: np.ndarray, score: float, at: float, kind: int,
               slot: Slot) -> dict[str, Any]:
        """What the message and `replay --format jsonl` need, JSON-ready."""
        model = self.model
        abnormal = score > model.threshold
        hour = slot.start.astimezone(self.zone).hour
        unusual = []
        for j in explain.top_deviations(z, self.cfg.explain):
            src, metric = model.spec.measured[j]
            lo, hi = model.profile.normal_range(kind, at, j)
            unusual.append({"source": src, "metric": metric, "value": _num(raw[j]),
                            "low": _num(lo), "high": _num(hi), "z": round(float(z[j]), 1)})
        return {"abnormal": abnormal, "score": round(score, 3),
                "threshold": model.threshold, "hour": hour, "day_kind": kind,
                "window_start": slot.start.isoformat(), "window_end": slot.end.isoformat(),
                "window_minutes": self.window_minutes, "unusual": unusual}

    def summary(self, values: Mapping[str, Any]) -> dict[str, str]:
        try:
            return explain.summary(values, self.cfg.names)
        except (KeyError, TypeError, ValueError):  # values from an older version's state
            return super().summary(values)

    # -- restart and hot reload --------------------------------------------------------------
    def state(self) -> Any:
        return {"slots": self.buffer.state(),
                "waiting": [[s.start.isoformat(), s.end.isoformat(), list(s.raw)]
                            for s in self._waiting]}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self.buffer.restore(state.get("slots", {}))
        self._waiting = [Slot(datetime.fromisoformat(a), datetime.fromisoformat(b), tuple(r))
                         for a, b, r in state.get("waiting", [])]

    def reload_if_changed(self) -> bool:
        """Take a model file replaced on disk (retraining, rollback) without a restart: True
        when the new model is in use. A refused file is logged and the current model kept.
        File I/O: the daemon calls this between batches, never inside a decision."""
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        try:
            model = load_model(self.path)
            check_fits(model, self.spec, self.window_minutes * 60, _zone_name(self.zone),
                       self.path)
        except ModelRefused as exc:
            log.error("new model refused, keeping the one in use: %s", exc)
            self._stamp = stamp  # once per change, not at every batch
            return False
        self.model, self._stamp = model, stamp
        log.info("model %s reloaded (trained %s on %s days)", self.path,
                 model.meta.get("trained_at"), model.meta.get("training", {}).get("days"))
        return True


def build_model_detector(cfg: ModelConfig, context: BuildContext, base_dir: Path | str,
                         path: str | Path | None = None,
                         timezone: str | None = None) -> ModelDetector:
    """The model detector for a config. `base_dir`: the config file's folder (relative model
    paths resolve there); `path` overrides cfg.path (`replay --model`); the time zone is the
    context's unless given. Raises ModelRefused with a message to log: the agent then runs
    on its rules alone."""
    file = Path(base_dir) / Path(path if path is not None else cfg.path).expanduser()
    zone = timezone or context.timezone
    model = load_model(file)
    check_fits(model, spec_of(context), context.window.total_seconds(), zone, file)
    return ModelDetector(cfg, model, context, ZoneInfo(zone), file)


def check_model_file(cfg: ModelConfig, context: BuildContext, base_dir: Path | str,
                     path: str | Path | None = None) -> Path:
    """For `check`: the model file's metadata fits the config (the forest is not read).
    Returns the file; raises ModelRefused like build_model_detector."""
    file = Path(base_dir) / Path(path if path is not None else cfg.path).expanduser()
    if not file.exists():
        raise ModelRefused(f"{file}: no model file; train one with `invoice-agent train -c "
                           "CONFIG`")
    check_meta(read_meta(file), spec_of(context), context.window.total_seconds(),
               context.timezone, file)
    return file


def spec_of(context: BuildContext) -> FeatureSpec:
    """The features a config's model has: its sources, and the ledger's when configured."""
    return FeatureSpec.for_sources(context.sources, ledger=context.ledger is not None)


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        a, b = path.stat(), meta_path(path).stat()
    except OSError:
        return None
    return a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", str(zone))


def _num(v: Any) -> float:
    return float(f"{float(v):.4g}")
