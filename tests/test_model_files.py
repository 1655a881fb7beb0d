"""Model files: a saved model loads and scores the same; a pickle, a foreign skops file, a
corrupted or mismatched model is refused with a message, never unpickled; importing the
commands or asking for help never imports scikit-learn. (The .npz arrays the agent scores
with: tests/test_model_trees.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from agent.detect.base import BuildContext
from agent.detect.model import build_model_detector, check_model_file
from agent.model.files import (
    ModelRefused,
    arrays_path,
    load_model,
    load_pipeline,
    meta_path,
    previous_path,
    rollback,
    save_model,
)
from tests.test_model_helpers import SOURCES, WINDOW, ZONE, config, context, trained


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "m.skops"
    save_model(trained()[0], path)
    return path


class Boom:
    """Unpickling this creates a file: the proof that a loader ran code from the file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _forge(path: Path, data: bytes) -> None:
    """Put `data` in place of the model and make its metadata vouch for it (the hash check
    passes), so that only the loader itself stands between the file and the agent."""
    path.write_bytes(data)
    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    meta["skops_sha256"] = hashlib.sha256(data).hexdigest()
    meta_path(path).write_text(json.dumps(meta), encoding="utf-8")


def test_a_saved_model_loads_with_its_metadata_and_scores_the_same(saved: Path):
    model, _, slots = trained()
    loaded = load_model(saved)
    meta = json.loads(meta_path(saved).read_text(encoding="utf-8"))
    assert meta["feature_names"] == model.spec.names and meta["window_seconds"] == 300
    assert {"sklearn", "skops", "numpy"} <= set(meta["versions"])
    assert meta["format_version"] == 2 and len(meta["npz_sha256"]) == 64
    assert meta["training"]["windows"] == len(slots) and meta["threshold"] > 0
    assert set(meta["feature_stats"]["upload.count"]) == {"median", "mad"}
    assert saved.stat().st_size + arrays_path(saved).stat().st_size < 400_000  # to ship
    raw = np.array([s.raw for s in slots[:300]])
    starts, ends = [s.start for s in slots[:300]], [s.end for s in slots[:300]]
    det = build_model_detector(config(), context(), saved.parent, path=saved.name)
    a = model.score(raw, starts, ends, det.zone, det.calendar).score
    b = loaded.score(raw, starts, ends, det.zone, det.calendar).score
    assert np.array_equal(a, b)
    with_pipe = load_model(saved, with_pipeline=True)  # for inspection: the skops pipeline
    assert np.array_equal(with_pipe.forest.score(with_pipe.meta["probe"]["inputs"]),
                          -with_pipe.pipeline.score_samples(meta["probe"]["inputs"]))


def test_a_pickle_named_skops_is_refused_and_never_run(saved: Path, tmp_path: Path):
    marker = tmp_path / "unpickled"
    _forge(saved, pickle.dumps(Boom(str(marker))))
    load_model(saved)  # scoring never reads the .skops file beyond its hash
    with pytest.raises(ModelRefused, match="never pickles"):
        load_pipeline(saved)
    with pytest.raises(ModelRefused, match="never pickles"):
        load_model(saved, with_pipeline=True)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Boom(str(marker))))  # the control: unpickling does run it
    assert marker.exists()


def test_a_skops_file_holding_an_untrusted_type_is_refused(saved: Path, tmp_path: Path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    other = tmp_path / "other.skops"
    sio.dump(FunctionTransformer(func=os.system), other)  # a function: not in the list
    _forge(saved, other.read_bytes())
    with pytest.raises(ModelRefused, match="not a model this agent loads safely"):
        load_pipeline(saved)


def test_a_corrupted_or_unpaired_model_is_refused(saved: Path):
    good = saved.read_bytes()
    saved.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelRefused, match="do not belong together"):
        load_model(saved)
    _forge(saved, good[: len(good) // 2])
    with pytest.raises(ModelRefused, match="loads safely"):
        load_pipeline(saved)
    meta_path(saved).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelRefused, match="not a readable model metadata"):
        load_model(saved)
    meta_path(saved).unlink()
    with pytest.raises(ModelRefused, match="metadata file is missing"):
        load_model(saved)


def test_other_sources_window_or_time_zone_are_refused_with_the_reason(saved: Path):
    fewer = BuildContext(SOURCES[:3] + ("ledgerless",), WINDOW, timezone=ZONE)
    with pytest.raises(ModelRefused, match=r"features do not match.*adds ledgerless\.count.*no "
                                           r"longer has upload\.count"):
        build_model_detector(config(), fewer, saved.parent, path=saved)
    with pytest.raises(ModelRefused, match="trained on 5-minute windows, the config uses "
                                           "1-minute windows"):
        build_model_detector(config(), BuildContext(SOURCES, timedelta(minutes=1),
                                                  timezone=ZONE), saved.parent, path=saved)
    with pytest.raises(ModelRefused, match="config's timezone is UTC"):
        build_model_detector(config(), BuildContext(SOURCES, WINDOW, timezone="UTC"),
                             saved.parent, path=saved)
    with pytest.raises(ModelRefused, match="train one with"):
        build_model_detector(config(), context(), saved.parent, path="missing.skops")
    # `check` says the same from the metadata alone
    assert check_model_file(config(), context(), saved.parent, path=saved.name) == saved
    with pytest.raises(ModelRefused, match="features do not match"):
        check_model_file(config(), fewer, saved.parent, path=saved)


def test_a_save_keeps_the_previous_pair_and_rollback_restores_it(saved: Path):
    first = saved.read_bytes()
    meta = json.loads(meta_path(saved).read_text(encoding="utf-8"))
    model = trained()[0]
    model.meta = dict(meta, trained_at="2026-09-30T00:00:00+00:00")
    try:
        save_model(model, saved)
    finally:
        model.meta = meta
    assert previous_path(saved).read_bytes() == first
    assert arrays_path(previous_path(saved)).exists()
    assert load_model(saved).meta["trained_at"] == "2026-09-30T00:00:00+00:00"
    rollback(saved)
    assert load_model(saved).meta["trained_at"] == meta["trained_at"]
    assert load_model(previous_path(saved)).meta["trained_at"].startswith("2026-09-30")
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".model-")]


def test_commands_and_help_do_not_import_sklearn():
    code = ("import sys, argparse\n"
            "from agent.training.commands import add_commands\n"
            "p = argparse.ArgumentParser(prog='invoice-agent')\n"
            "add_commands(p.add_subparsers(), argparse.ArgumentParser(add_help=False))\n"
            "for c in ('train', 'evaluate'):\n"
            "    try:\n"
            "        p.parse_args([c, '--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "import agent.detect.model, agent.model.train\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skops')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=60, check=True)
    assert "usage: invoice-agent train" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_nothing_is_left_behind_by_a_refused_load(saved: Path, tmp_path: Path):
    before = sorted(p.name for p in saved.parent.iterdir())
    shutil.copy(saved, tmp_path / "copy.skops")  # a copy without its metadata
    with pytest.raises(ModelRefused):
        load_model(tmp_path / "copy.skops")
    assert sorted(p.name for p in saved.parent.iterdir()) == before
