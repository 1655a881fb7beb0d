"""Retraining on a schedule from the windows a running agent stored.

The daemon owns the loop; this module gives it three calls:

    retrainer = Retrainer(state_db, spec, cfg, window, zone, pending, model_path)  # once
    retrainer.poll(now)            # every loop turn: starts a due retraining in a thread,
                                   # logs the outcome of a finished one
    detector.reload_if_changed()   # every loop turn: a new file on disk is taken, no restart

Retraining runs in a child process (`python -m agent.training.retrain`, at lower priority):
training needs scikit-learn, and importing it would stay in the daemon for good (~110 MiB of
RSS; the daemon scores with numpy alone, docs/model.md). The child reads the last
`retrain_days` of stored windows through its own read-only SQLite connection, leaves out
every window inside an alert the agent recorded, trains, and saves atomically with the
previous files kept as `.prev` (agent.model.files.rollback puts them back). It is also what
`invoice-agent train -c CONFIG` without log files does, so a systemd timer can run it
instead of the daemon.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.model.config import ModelConfig
from agent.model.features import FeatureSpec, slots_from_windows
from agent.model.files import ModelRefused, read_meta, save_model
from agent.model.train import TrainingRefused, TrainReport, fit_model
from agent.training.history import Span, stored_history

log = logging.getLogger(__name__)


def retrain_due(cfg: ModelConfig, path: Path, now: datetime) -> bool:
    """Retraining is configured and the model at `path` is older than `retrain_every` (by
    its `trained_at`, wall-clock UTC; a missing or unreadable model is due)."""
    if cfg.retrain_every is None:
        return False
    try:
        trained = datetime.fromisoformat(read_meta(path)["trained_at"])
    except (ModelRefused, KeyError, TypeError, ValueError):
        return True
    return now - trained >= cfg.retrain_every


def train_from_store(state_db: Path, spec: FeatureSpec, cfg: ModelConfig, window: timedelta,
                     zone: str, pending: Mapping[str, timedelta], now: datetime,
                     days: float | None = None, exclude: list[Span] | None = None
                     ) -> tuple[Any, TrainReport]:
    """(Model, report) from the stored windows of the last `days` (cfg.retrain_days)."""
    windows, spans = stored_history(state_db, days or cfg.retrain_days, now, pending, window)
    slots = slots_from_windows(windows, spec)
    return fit_model(slots, spec, cfg, window, zone, spans + list(exclude or []))


class Retrainer:
    """Background retraining for the daemon: one at a time, never blocking the loop."""

    def __init__(self, state_db: Path, spec: FeatureSpec, cfg: ModelConfig,
                 window: timedelta, zone: str, pending: Mapping[str, timedelta], path: Path):
        self.state_db, self.spec, self.cfg = state_db, spec, cfg
        self.window, self.zone, self.pending, self.path = window, zone, dict(pending), path
        self._thread: threading.Thread | None = None
        self._outcome: TrainReport | Exception | None = None
        self._last_try: datetime | None = None

    def poll(self, now: datetime) -> TrainReport | Exception | None:
        """Start a due retraining; return (and log) the outcome of one that finished."""
        if self._thread is not None:
            if self._thread.is_alive():
                return None
            self._thread = None
            outcome, self._outcome = self._outcome, None
            if isinstance(outcome, TrainReport):
                log.info("model retrained: %s", "; ".join(outcome.lines()))
            else:
                log.warning("model retraining failed, keeping the current model: %s", outcome)
            return outcome
        # after a failure, wait a retrain period's tenth before trying again, not every turn
        every = self.cfg.retrain_every
        if every is None or (self._last_try is not None and now - self._last_try < every / 10):
            return None
        if retrain_due(self.cfg, self.path, now):
            self._last_try = now
            self._thread = threading.Thread(target=self._run, args=(now,),
                                            name="model-retrain", daemon=True)
            self._thread.start()
        return None

    def _run(self, now: datetime) -> None:
        try:
            self._outcome = train_in_child(self.state_db, self.spec, self.cfg, self.window,
                                           self.zone, self.pending, self.path, now)
        except Exception as exc:  # noqa: BLE001  reported by poll(); the agent runs on
            self._outcome = exc

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


# -- the child process ---------------------------------------------------------------------
# what training reads of ModelConfig; the durations stay behind (they do not serialise back)
_NOT_FOR_TRAINING = {"repeat_interval", "retrain_every"}


def train_in_child(state_db: Path, spec: FeatureSpec, cfg: ModelConfig, window: timedelta,
                   zone: str, pending: Mapping[str, timedelta], path: Path,
                   now: datetime) -> TrainReport:
    """train_from_store + save_model in a child Python, so that scikit-learn is imported
    there and not here; its report, or TrainingRefused / RuntimeError with its reason."""
    job = {"state_db": str(state_db), "sources": list(spec.sources), "ledger": spec.ledger,
           "cfg": cfg.model_dump(mode="json", by_alias=True, exclude=_NOT_FOR_TRAINING),
           "window": window.total_seconds(), "zone": zone,
           "pending": {k: v.total_seconds() for k, v in pending.items()},
           "path": str(path), "now": now.isoformat()}
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([sys.executable, "-m", "agent.training.retrain"], input=json.dumps(job),
                          capture_output=True, text=True, env=env, check=False)
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"retraining process exited {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}") from None
    if "refused" in answer:
        raise TrainingRefused(answer["refused"])
    if "error" in answer:
        raise RuntimeError(answer["error"])
    fields = answer["report"]
    for k in ("start", "end"):
        fields[k] = datetime.fromisoformat(fields[k]) if fields[k] else None
    return TrainReport(**fields)


def _child() -> int:
    """`python -m agent.training.retrain`: the job as JSON on stdin, the answer on stdout."""
    try:
        os.nice(10)  # the daemon beside it keeps its CPU
    except OSError:
        pass
    job = json.loads(sys.stdin.read())
    try:
        model, report = train_from_store(
            Path(job["state_db"]), FeatureSpec.for_sources(job["sources"], ledger=job["ledger"]),
            ModelConfig.model_validate(job["cfg"]), timedelta(seconds=job["window"]),
            job["zone"], {k: timedelta(seconds=v) for k, v in job["pending"].items()},
            datetime.fromisoformat(job["now"]))
        save_model(model, Path(job["path"]), keep_previous=True)
    except TrainingRefused as exc:
        print(json.dumps({"refused": str(exc)}))
        return 1
    except Exception as exc:  # noqa: BLE001  the parent logs it; the agent runs on
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    fields = dataclasses.asdict(report)
    for k in ("start", "end"):
        fields[k] = fields[k].isoformat() if fields[k] else None
    print(json.dumps({"report": fields}))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
