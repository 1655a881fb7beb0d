"""The trained scaler + IsolationForest as plain numpy arrays, and their scoring: what the
agent uses to score, so that running it never imports scikit-learn, skops or scipy (~110 MiB
of RSS for a forest of under 1 MiB).

`forest.export` takes the arrays from a fitted pipeline at training time; `files` stores them
in NAME.npz beside the canonical NAME.skops (np.savez_compressed, read back with
np.load(allow_pickle=False): numbers only, never objects). ForestArrays computes what
scikit-learn's `Pipeline.score_samples` computes (sklearn 1.9, ensemble/_iforest.py):

    x' = float32((x - center) / scale)        RobustScaler, then IsolationForest's float32 cast
    leaf: at a node, go left when x'[feature] <= threshold (NaN: missing_go_to_left)
    h_t(x) = depth(leaf) + c(n_node_samples[leaf])      depth of the root 0
    c(n) = 0 for n <= 1, 1 for n == 2, else 2 (ln(n - 1) + euler_gamma) - 2 (n - 1) / n
    score_samples(x) = -2 ** (-(sum_t h_t(x)) / (trees * c(max_samples)))
    decision_function(x) = score_samples(x) - offset        (offset_ is only used there)

in the same order of floating-point operations (sklearn adds node depth counted from 1 and
c(n) per tree, minus 1.0, and sums the trees in order), so scores agree to the last bits
(tests/test_model_trees.py: within 1e-9). The traversal runs over all rows and all trees at
once, one step per tree level.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

ARRAYS_VERSION = 1
# name -> (kind of number, dimensions); node arrays are the trees' concatenated in order,
# children numbered within their tree as sklearn numbers them (-1: a leaf)
FIELDS: dict[str, tuple[str, int]] = {
    "version": ("i", 0), "n_features": ("i", 0), "max_samples": ("i", 0), "offset": ("f", 0),
    "center": ("f", 1), "scale": ("f", 1), "tree_nodes": ("i", 1),
    "children_left": ("i", 1), "children_right": ("i", 1), "feature": ("i", 1),
    "threshold": ("f", 1), "n_node_samples": ("i", 1), "missing_go_to_left": ("i", 1),
}
LEAF = -1
MAX_NODES = 4_000_000  # far above what `train` allows (trees x 2 max_samples)
MAX_ARRAY_BYTES = 256 << 20  # MAX_NODES nodes take ~170 MB
CHUNK_ROWS = 1024  # rows traversed together: (rows x trees) index arrays of ~1 MiB


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average depth of an unsuccessful search in a binary search tree of n keys,
    as sklearn.ensemble._iforest._average_path_length computes it."""
    n = np.asarray(n)
    out = np.zeros(n.shape)
    one, two = n <= 1, n == 2
    rest = ~np.logical_or(one, two)
    out[two] = 1.0
    out[rest] = (2.0 * (np.log(n[rest] - 1.0) + np.euler_gamma)
                 - 2.0 * (n[rest] - 1.0) / n[rest])
    return out


class ForestArrays:
    """A scaler + IsolationForest as numpy arrays, scored without scikit-learn. Raises
    ValueError (with what is wrong) for arrays that do not form such a forest."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self.arrays = _checked(arrays)
        a = self.arrays
        self.n_features = int(a["n_features"])
        self.max_samples = int(a["max_samples"])
        self.offset = float(a["offset"])
        self.center, self.scale = a["center"], a["scale"]
        sizes = a["tree_nodes"]
        self.n_trees = len(sizes)
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        base = np.repeat(first, sizes)
        leaf = a["children_left"] == LEAF
        left = np.where(leaf, -1, a["children_left"] + base)
        right = np.where(leaf, -1, a["children_right"] + base)
        # renumbered level by level, each node's children side by side: a row steps from
        # node i to child[i] + (goes right); the roots are 0 .. trees-1; a leaf is its own
        # child and never goes right (threshold +inf, NaN to the left)
        old, depth = _levels(left, right, leaf, first)
        new = np.empty_like(old)
        new[old] = np.arange(len(old))
        inner = ~leaf[old]
        self._child = np.arange(len(old))
        self._child[inner] = new[left[old[inner]]]
        self._feature = np.where(inner, a["feature"][old], 0).astype(np.intp)
        self._threshold = np.where(inner, a["threshold"][old], np.inf)
        self._nan_right = inner & (a["missing_go_to_left"][old] == 0)
        self.depth = int(depth.max())
        # per node as sklearn adds it per tree: node depth counted from 1, plus c(n), - 1.0
        self._path = (depth + 1).astype(np.float64) + average_path_length(
            a["n_node_samples"][old]) - 1.0
        self._denominator = float(self.n_trees * average_path_length(
            np.array([self.max_samples]))[0])

    # -- scoring ------------------------------------------------------------------------------
    def score(self, x: np.ndarray) -> np.ndarray:
        """Anomaly scores in (0, 1], higher is more abnormal: -score_samples (what
        agent.model.forest.score returns for the pipeline)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} inputs, got shape {x.shape}")
        # the scaler in float64, then the forest's float32 inputs (compared as float64 with
        # the float64 thresholds, as sklearn's tree does); beyond float32's range is inf
        with np.errstate(over="ignore", invalid="ignore"):
            x = ((x - self.center) / self.scale).astype(np.float32).astype(np.float64)
        depths = np.empty(len(x))
        for lo in range(0, len(x), CHUNK_ROWS):
            depths[lo:lo + CHUNK_ROWS] = self._path_sum(x[lo:lo + CHUNK_ROWS])
        if self._denominator == 0:  # one training sample: sklearn takes the ratio as 1
            return np.full(len(x), 0.5)
        return np.asarray(2.0 ** (-(depths / self._denominator)), dtype=np.float64)

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Pipeline.score_samples: lower is more abnormal."""
        return -self.score(x)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Pipeline.decision_function: below 0 is an outlier by the forest's contamination."""
        return self.score_samples(x) - self.offset

    def _path_sum(self, x: np.ndarray) -> np.ndarray:
        """Sum over the trees, in tree order, of each row's path length."""
        n = len(x)
        if n == 0:
            return np.zeros(0)
        node = np.broadcast_to(np.arange(self.n_trees), (n, self.n_trees)).copy()
        at = (np.arange(n) * self.n_features)[:, None]
        flat = x.ravel()
        nan = bool(np.isnan(x).any())
        for _ in range(self.depth):
            v = flat[at + self._feature[node]]
            right = v > self._threshold[node]
            if nan:
                right = np.where(np.isnan(v), self._nan_right[node], right)
            node = self._child[node] + right
        # sklearn adds the trees one after the other: a running sum keeps that order
        return np.cumsum(self._path[node], axis=1)[:, -1]

    # -- files ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays)  # type: ignore[arg-type]  # allow_pickle kw
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ForestArrays:
        """Arrays from .npz bytes: numbers only (allow_pickle=False refuses object arrays)."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:  # a small file that inflates to GiBs
                if sum(i.file_size for i in z.infolist()) > MAX_ARRAY_BYTES:
                    raise ValueError(f"over {MAX_ARRAY_BYTES >> 20} MiB of arrays")
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # noqa: BLE001  a broken zip, a pickle, ...: one answer
            raise ValueError(f"not a numpy .npz of the forest's arrays ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from None
        return cls(arrays)


def _checked(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays, each of its kind and shape, forming trees whose children come after their
    parent (so every path ends at a leaf), or ValueError."""
    missing = sorted(set(FIELDS) - set(arrays))
    extra = sorted(set(arrays) - set(FIELDS))
    if missing or extra:
        raise ValueError(f"forest arrays: missing {missing}, unknown {extra}")
    out: dict[str, np.ndarray] = {}
    for name, (kind, ndim) in FIELDS.items():
        a = np.asarray(arrays[name])
        if a.dtype.kind not in ("f" if kind == "f" else "iu") or a.ndim != ndim:
            raise ValueError(f"forest arrays: {name} is {a.dtype}[{a.ndim} dims], expected "
                             f"{'float' if kind == 'f' else 'integer'}[{ndim} dims]")
        out[name] = a.astype(np.float64 if kind == "f" else np.int64)
    if int(out["version"]) != ARRAYS_VERSION:
        raise ValueError(f"forest arrays version {int(out['version'])}, this agent reads "
                         f"{ARRAYS_VERSION}")
    width, sizes = int(out["n_features"]), out["tree_nodes"]
    if width < 1 or out["center"].shape != (width,) or out["scale"].shape != (width,):
        raise ValueError("forest arrays: the scaler's arrays do not match n_features")
    if int(out["max_samples"]) < 1 or not np.isfinite(out["offset"]):
        raise ValueError("forest arrays: max_samples or offset out of range")
    total = int(sizes.sum()) if len(sizes) else 0
    if not len(sizes) or (sizes < 1).any() or total > MAX_NODES:
        raise ValueError("forest arrays: no trees, an empty tree, or too many nodes")
    for name in ("children_left", "children_right", "feature", "threshold", "n_node_samples",
                 "missing_go_to_left"):
        if out[name].shape != (total,):
            raise ValueError(f"forest arrays: {name} has {out[name].size} nodes, the trees "
                             f"{total}")
    cl, cr, feat = out["children_left"], out["children_right"], out["feature"]
    local = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    size = np.repeat(sizes, sizes)
    leaf = cl == LEAF
    inner = ~leaf
    if ((cr == LEAF) != leaf).any():
        raise ValueError("forest arrays: a node with one child")
    if (inner & ((cl <= local) | (cr <= local) | (cl >= size) | (cr >= size)
                 | (feat < 0) | (feat >= width))).any():
        raise ValueError("forest arrays: a child outside its tree or before its parent, or "
                         "a feature outside the inputs")
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)[inner]
    parents = np.bincount(np.concatenate([cl[inner] + start, cr[inner] + start]),
                          minlength=total)
    if (parents != (local != 0)).any():  # a forest: one parent for each node but the roots
        raise ValueError("forest arrays: a node with no parent or with two")
    return out


def _levels(left: np.ndarray, right: np.ndarray, leaf: np.ndarray,
            roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(old node numbers in the new order, their depths): the roots, then level by level
    each inner node's left and right child side by side."""
    order, depths = [], []
    level, d = roots, 0
    while len(level):
        order.append(level)
        depths.append(np.full(len(level), d, dtype=np.int64))
        inner = level[~leaf[level]]
        level = np.stack([left[inner], right[inner]], axis=1).ravel()
        d += 1
    return np.concatenate(order), np.concatenate(depths)
