"""The agent scores with numpy arrays exported from the forest (agent.model.trees): they score
as scikit-learn does to 1e-9, a process that loads a model and scores never imports
scikit-learn, scipy or skops, and changed arrays are refused."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.model import forest
from agent.model.files import (
    SAME_SCORE,
    ModelRefused,
    arrays_path,
    load_model,
    load_pipeline,
    meta_path,
    save_model,
)
from agent.model.trees import ForestArrays, average_path_length
from tests.test_model_helpers import trained

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "demo.skops"


def _fit(x: np.ndarray, seed: int, **iso: object):
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler, StandardScaler

    scaler = StandardScaler() if seed % 2 else RobustScaler()
    return Pipeline([("scale", scaler), ("forest", IsolationForest(random_state=seed, **iso))]
                    ).fit(x)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # sklearn's
@pytest.mark.parametrize("seed,rows,width,iso", [
    (0, 3000, 36, {"n_estimators": 50, "max_samples": 256}),
    (1, 500, 5, {"n_estimators": 20, "max_samples": 64, "contamination": 0.05}),
    (2, 2000, 12, {"n_estimators": 30, "max_features": 0.5}),  # trees on column subsets
    (3, 40, 3, {"n_estimators": 10}),  # max_samples 40: leaves of 2 and more
    (4, 300, 7, {"n_estimators": 25, "max_samples": 300, "bootstrap": True}),
    (5, 1, 2, {"n_estimators": 5}),  # one training row: every score 0.5
])
def test_the_arrays_score_as_scikit_learn_on_random_data(seed, rows, width, iso):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, size=(rows, width)) * rng.uniform(0.1, 50, width)
    x[:, 0] = np.round(x[:, 0])  # ties: values on a threshold
    pipe = _fit(x, seed, **iso)
    arrays = forest.export(pipe)
    test = np.vstack([x[:200], rng.standard_t(2, size=(3000, width)) * 30,
                      np.zeros((1, width)), np.full((1, width), 1e39)])  # beyond float32
    assert np.abs(arrays.score_samples(test) - pipe.score_samples(test)).max() <= SAME_SCORE
    assert np.abs(arrays.score(test) - forest.score(pipe, test)).max() <= SAME_SCORE
    assert np.abs(arrays.decision_function(test) - pipe.decision_function(test)
                  ).max() <= SAME_SCORE
    test[::3, width // 2] = np.nan  # missing values go where the tree sends them
    assert np.abs(arrays.score_samples(test) - pipe.score_samples(test)).max() <= SAME_SCORE
    assert arrays.score(test[:0]).shape == (0,)
    again = ForestArrays.from_bytes(arrays.to_bytes())  # through the file format
    assert np.array_equal(again.score(test), arrays.score(test))


def test_average_path_length_follows_scikit_learn():
    from sklearn.ensemble._iforest import _average_path_length

    n = np.array([0, 1, 2, 3, 4, 7, 100, 256, 10_000])
    assert np.array_equal(average_path_length(n), _average_path_length(n))


def test_the_shipped_model_scores_its_probe_rows_with_numpy_as_scikit_learn_did():
    model = load_model(SHIPPED)
    assert model.pipeline is None  # loaded for scoring: no scikit-learn
    meta = json.loads(meta_path(SHIPPED).read_text(encoding="utf-8"))
    x, want = np.array(meta["probe"]["inputs"]), np.array(meta["probe"]["forest"])
    assert np.abs(model.forest.score(x) - want).max() <= SAME_SCORE
    pipe = load_pipeline(SHIPPED)
    assert np.abs(model.forest.score_samples(x) - pipe.score_samples(x)).max() <= SAME_SCORE
    rng = np.random.default_rng(7)
    rows = x[rng.integers(len(x), size=2000)] + rng.normal(0, 2, (2000, x.shape[1]))
    assert np.abs(model.forest.score_samples(rows) - pipe.score_samples(rows)
                  ).max() <= SAME_SCORE


SCORE_IN_A_FRESH_PROCESS = """
import sys
from pathlib import Path
from zoneinfo import ZoneInfo
from agent.model import synthetic
from agent.detect.model import build_model_detector
from tests.test_model_helpers import TEST_DAY, config, context

path = Path(sys.argv[1])
det = build_model_detector(config(), context(), path.parent, path=path.name)
findings = []
for w in synthetic.generate(TEST_DAY, 1, seed=3)[:4 * 24]:
    findings += det.on_window(w)
    findings += det.on_tick(w.end)
assert det.scored == 24 and len(findings) == 24, (det.scored, len(findings))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'skops'))
assert not loaded, loaded
print("scored", det.scored, "without", loaded)
"""


def test_a_process_that_loads_and_scores_never_imports_sklearn_scipy_or_skops(tmp_path: Path):
    path = tmp_path / "m.skops"
    save_model(trained()[0], path)
    out = subprocess.run([sys.executable, "-c", SCORE_IN_A_FRESH_PROCESS, str(path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "scored 24 without []"


def _tampered(path: Path, change) -> None:
    """Rewrite the model's .npz with `change` applied to its arrays."""
    with np.load(arrays_path(path), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    arrays_path(path).write_bytes(buf.getvalue())


def _vouch(path: Path) -> None:
    import hashlib

    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    meta["npz_sha256"] = hashlib.sha256(arrays_path(path).read_bytes()).hexdigest()
    meta_path(path).write_text(json.dumps(meta), encoding="utf-8")


def test_changed_arrays_are_refused(tmp_path: Path):
    path = tmp_path / "m.skops"
    save_model(trained()[0], path)
    good = arrays_path(path).read_bytes()

    def shift(a):
        a["threshold"] = a["threshold"] + 0.5

    _tampered(path, shift)
    with pytest.raises(ModelRefused, match="do not belong together"):  # by its hash
        load_model(path)
    _vouch(path)  # the metadata vouches for it: the probe rows still catch it
    with pytest.raises(ModelRefused, match=r"arrays \(\.npz\) no longer scores the probe rows"):
        load_model(path)

    def cycle(a):  # a node its own child: a path that never ends
        i = int(np.flatnonzero(a["children_left"][1:] != -1)[0]) + 1
        a["children_left"][i] = i

    arrays_path(path).write_bytes(good)
    _tampered(path, cycle)
    _vouch(path)
    with pytest.raises(ModelRefused, match="before its parent"):
        load_model(path)
    arrays_path(path).write_bytes(b"\x80\x04pickled")  # not an .npz: never unpickled
    _vouch(path)
    with pytest.raises(ModelRefused, match="not a forest this agent scores"):
        load_model(path)
    buf = io.BytesIO()
    np.savez(buf, threshold=np.array([object()], dtype=object))  # object arrays: refused
    arrays_path(path).write_bytes(buf.getvalue())
    _vouch(path)
    with pytest.raises(ModelRefused, match="not a forest this agent scores"):
        load_model(path)
    arrays_path(path).unlink()
    with pytest.raises(ModelRefused, match=r"m\.npz: missing"):
        load_model(path)
    arrays_path(path).write_bytes(good)
    _vouch(path)
    assert load_model(path).forest.n_trees == 50
