"""The only module that imports scikit-learn: a scaler + IsolationForest pipeline, fitted,
scored and exported as numpy arrays (agent.model.trees). Imported lazily, by training and by
inspecting a .skops file only: importing sklearn and skops costs ~1.6 s and ~110 MiB of RSS,
so the agent scores with the exported arrays and never imports them (docs/model.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.model.trees import ARRAYS_VERSION, ForestArrays

# What a model file may contain besides the types skops trusts by default (numpy, builtins,
# sklearn estimators): the compiled tree structure of each of the forest's trees. Anything
# else in a file (a function, an unknown class) makes skops refuse it before building it.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def fit(x: np.ndarray, trees: int, max_samples: int, seed: int) -> Any:
    """A RobustScaler + IsolationForest pipeline fitted on rows x."""
    from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]
    from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import RobustScaler  # type: ignore[import-untyped]

    # the robust scaler: z-scores have heavy tails by design (incidents in the history), and
    # a standard deviation would let one of them set every column's scale
    pipe = Pipeline([("scale", RobustScaler()),
                     ("forest", IsolationForest(n_estimators=trees,
                                                max_samples=min(max_samples, len(x)),
                                                random_state=seed))])
    pipe.fit(x)
    return pipe


def score(pipe: Any, x: np.ndarray) -> np.ndarray:
    """Anomaly scores in (0, 1]: higher is more abnormal (about 0.5 is ordinary)."""
    return -np.asarray(pipe.score_samples(x), dtype=float)


def export(pipe: Any) -> ForestArrays:
    """What scoring needs from a fitted pipeline, as numpy arrays (agent.model.trees)."""
    scaler, iso = pipe.steps[0][1], pipe.steps[1][1]
    width = int(iso.n_features_in_)
    center, scale = _scaler_arrays(scaler, width)
    subsampled = iso._max_features != width  # each tree saw its own columns: map them back
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "children_left", "children_right", "feature", "threshold", "n_node_samples",
        "missing_go_to_left")}
    for est, cols in zip(iso.estimators_, iso.estimators_features_, strict=True):
        t = est.tree_
        feature = np.asarray(t.feature, dtype=np.int64)
        if subsampled:
            feature = np.where(feature >= 0, np.asarray(cols)[np.maximum(feature, 0)], feature)
        parts["feature"].append(feature)
        for k in ("children_left", "children_right", "threshold", "n_node_samples",
                  "missing_go_to_left"):
            parts[k].append(np.asarray(getattr(t, k)))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays["feature"] = np.where(arrays["children_left"] == -1, -2, arrays["feature"])
    return ForestArrays({
        "version": np.array(ARRAYS_VERSION), "n_features": np.array(width),
        "max_samples": np.array(int(iso._max_samples)), "offset": np.array(float(iso.offset_)),
        "center": center, "scale": scale,
        "tree_nodes": np.array([e.tree_.node_count for e in iso.estimators_], dtype=np.int64),
        **arrays})


def _scaler_arrays(scaler: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale): the scaler's transform is (x - center) / scale, in that order, for
    RobustScaler and StandardScaler alike; subtracting 0 and dividing by 1 change nothing."""
    robust = hasattr(scaler, "with_centering")  # else a StandardScaler
    center, scale = np.zeros(width), np.ones(width)
    if scaler.with_centering if robust else scaler.with_mean:
        center = np.asarray(scaler.center_ if robust else scaler.mean_, dtype=np.float64)
    if scaler.with_scaling if robust else scaler.with_std:
        scale = np.asarray(scaler.scale_, dtype=np.float64)
    return center, scale


def check_pipeline(pipe: Any, width: int) -> str | None:
    """Why `pipe` is not the pipeline this agent trains, or None when it is."""
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler, StandardScaler

    if not isinstance(pipe, Pipeline) or len(pipe.steps) != 2:
        return f"expected a scaler + IsolationForest pipeline, found {type(pipe).__name__}"
    scaler, forest = pipe.steps[0][1], pipe.steps[1][1]
    if not isinstance(scaler, (RobustScaler, StandardScaler)) or not isinstance(
            forest, IsolationForest):
        return (f"expected a scaler + IsolationForest pipeline, found "
                f"{type(scaler).__name__} + {type(forest).__name__}")
    n = getattr(forest, "n_features_in_", None)
    if n != width:
        return f"the forest takes {n} inputs, its metadata names {width}"
    return None


def versions() -> dict[str, str]:
    import sklearn  # type: ignore[import-untyped]
    import skops  # type: ignore[import-untyped]

    return {"sklearn": sklearn.__version__, "skops": skops.__version__,
            "numpy": np.__version__}
