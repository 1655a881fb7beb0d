"""Model files: the forest in a skops file, the arrays scoring needs in an .npz file, and
everything else in a JSON file beside them.

    models/isolation_forest.skops       the scaler + IsolationForest pipeline (skops zip): the
                                        canonical model, for training tools and inspection
    models/isolation_forest.npz         the same scaler and trees as numpy arrays
                                        (agent.model.trees): what the agent scores with
    models/isolation_forest.json        metadata: features and their version, window length,
                                        time zone, training period, versions, threshold,
                                        hourly profile, per-feature median/MAD, probe rows,
                                        and the sha256 of the .skops and .npz files
    models/isolation_forest.prev.*      the files before the last save (rollback)

Loading for scoring (`load_model`: the daemon, replay, evaluate) imports numpy only: the .npz
is read with np.load(allow_pickle=False), so it holds numbers and nothing else, and the arrays
must score the probe rows as scikit-learn did at training, within SAME_SCORE. The .skops file
is hashed, not read. `load_pipeline` reads it for inspection; it never unpickles: skops
builds only the types it trusts by default plus TRUSTED_TYPES (fixed here, never taken from
the file: `get_untrusted_types()` would trust whatever a file asks for).

A model is also refused when its metadata does not describe this config: another feature
version, other sources, another window length or time zone. The caller logs the refusal and
the agent keeps running on its rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.model.core import Model, input_names
from agent.model.features import FEATURE_VERSION, FeatureSpec
from agent.model.profile import Profile
from agent.model.trees import ForestArrays

FORMAT = "invoice-agent-model"
FORMAT_VERSION = 2  # 2: the .npz arrays beside the .skops file
MAX_MODEL_BYTES = 64 << 20  # a forest of the sizes `train` allows is well under 10 MiB
MAX_META_BYTES = 16 << 20
SAME_SCORE = 1e-9  # how far the arrays' forest score may be from scikit-learn's


class ModelRefused(ValueError):
    """A model file that cannot or must not be used; the message says why and what to do."""


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def arrays_path(path: Path) -> Path:
    return path.with_suffix(".npz")


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def model_files(path: Path) -> list[Path]:
    """The files of the model at `path`, in the order a save replaces them (metadata last)."""
    return [path, arrays_path(path), meta_path(path)]


# -- saving --------------------------------------------------------------------------------
def save_model(model: Model, path: Path, keep_previous: bool = True) -> None:
    """Write the three files atomically enough for a running agent: each is written beside
    its target and renamed into place, the metadata last; the files they replace are kept as
    `.prev`. A reader between the renames sees a hash mismatch, refuses, and keeps its
    current model."""
    import skops.io as sio  # type: ignore[import-untyped]

    if model.pipeline is None:
        raise ValueError("a model loaded for scoring has no scikit-learn pipeline to save: "
                         "save the one `fit_model` returns")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".model-") as tmp:
        new = [Path(tmp) / f.name for f in model_files(path)]
        # deflate: a forest's node arrays compress ~4x; the repository ships one
        sio.dump(model.pipeline, new[0], compression=zipfile.ZIP_DEFLATED)
        new[1].write_bytes(model.forest.to_bytes())
        meta = dict(model.meta, skops_sha256=_sha256(new[0].read_bytes()),
                    npz_sha256=_sha256(new[1].read_bytes()))
        new[2].write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                          encoding="utf-8")
        for f in new:
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if keep_previous and path.exists() and meta_path(path).exists():
            for cur, prev in zip(model_files(path), model_files(previous_path(path)),
                                 strict=True):
                if cur.exists():
                    shutil.copy2(cur, prev)
                else:
                    prev.unlink(missing_ok=True)
        for a, b in zip(new, model_files(path), strict=True):
            os.replace(a, b)


def model_meta(model_fields: dict[str, Any]) -> dict[str, Any]:
    """The metadata header every model file starts with."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **model_fields}


def rollback(path: Path) -> None:
    """Put the previous files back (the current ones become `.prev`, so a rollback can be
    undone the same way)."""
    path, prev = Path(path), previous_path(Path(path))
    if not prev.exists() or not meta_path(prev).exists():
        raise ModelRefused(f"{prev}: no previous model to roll back to")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".model-") as tmp:
        for i, (cur, old) in enumerate(zip(model_files(path), model_files(prev), strict=True)):
            keep = Path(tmp) / str(i)
            if cur.exists():
                shutil.copy2(cur, keep)
            if old.exists():
                os.replace(old, cur)
            else:
                cur.unlink(missing_ok=True)
            if keep.exists():
                os.replace(keep, old)


# -- loading -------------------------------------------------------------------------------
def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of the model at `path`, checked for shape (not yet for fitness)."""
    mp = meta_path(Path(path))
    try:
        if mp.stat().st_size > MAX_META_BYTES:
            raise ModelRefused(f"{mp}: metadata file over {MAX_META_BYTES >> 20} MiB")
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelRefused(f"{mp}: the model's metadata file is missing (it is written "
                           "beside the .skops file by `invoice-agent train`)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelRefused(f"{mp}: not a readable model metadata file: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelRefused(f"{mp}: not an invoice-agent model metadata file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelRefused(f"{mp}: model format {meta.get('format_version')}, this agent "
                           f"reads format {FORMAT_VERSION}: retrain with `invoice-agent train`")
    return meta


def load_model(path: Path, with_pipeline: bool = False) -> Model:
    """Load and check a model for scoring, with numpy alone; ModelRefused says what is wrong
    with it. `with_pipeline`: also read the .skops file (imports scikit-learn and skops: for
    training tools and inspection, never the agent)."""
    path = Path(path)
    if not path.exists():
        raise ModelRefused(f"{path}: no model file; train one with `invoice-agent train -c "
                           "CONFIG`")
    meta = read_meta(path)
    # the pair must belong together even though scoring reads only the arrays
    _read_checked(path, meta, "skops_sha256")
    data = _read_checked(arrays_path(path), meta, "npz_sha256")
    try:
        arrays = ForestArrays.from_bytes(data)
    except ValueError as exc:
        raise ModelRefused(f"{arrays_path(path)}: not a forest this agent scores ({exc}); "
                           "retrain with `invoice-agent train`") from None
    try:
        spec = FeatureSpec(tuple(meta["sources"]), bool(meta["ledger"]),
                           int(meta["feature_version"]))
        profile = Profile.from_json(spec, meta["profile"])
        model = Model(spec, arrays, profile, float(meta["forest_norm"]),
                      float(meta["deviation_norm"]), float(meta["threshold"]), meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelRefused(f"{meta_path(path)}: incomplete model metadata ({exc})") from None
    width = len(input_names(spec))
    if arrays.n_features != width:
        raise ModelRefused(f"{arrays_path(path)}: the forest takes {arrays.n_features} "
                           f"inputs, its metadata names {width}")
    _probe(meta, path, arrays.score, "the forest's arrays (.npz)")
    if with_pipeline:
        model.pipeline = load_pipeline(path, meta)
    return model


def load_pipeline(path: Path, meta: dict[str, Any] | None = None) -> Any:
    """The scikit-learn pipeline of the .skops file, read safely and checked: for training
    tools and inspection (imports scikit-learn and skops, ~110 MiB)."""
    import skops.io as sio

    from agent.model import forest

    path = Path(path)
    meta = meta if meta is not None else read_meta(path)
    data = _read_checked(path, meta, "skops_sha256")
    try:
        pipe = sio.loads(data, trusted=forest.TRUSTED_TYPES)
    except Exception as exc:  # noqa: BLE001  any failure to read is a refusal, never a crash
        raise ModelRefused(f"{path}: not a model this agent loads safely ({type(exc).__name__}:"
                           f" {str(exc)[:300]}); only skops files written by `invoice-agent "
                           "train` are read, never pickles") from None
    why = forest.check_pipeline(pipe, len(meta.get("model_inputs") or []))
    if why:
        raise ModelRefused(f"{path}: {why}")
    versions = meta.get("versions", {})
    _probe(meta, path, lambda x: forest.score(pipe, x),
                f"the forest read by scikit-learn {forest.versions()['sklearn']} (trained "
                f"with {versions.get('sklearn') if isinstance(versions, dict) else None})")
    return pipe


def _read_checked(file: Path, meta: dict[str, Any], key: str) -> bytes:
    """The bytes of a model file whose sha256 the metadata records under `key`."""
    try:
        if file.stat().st_size > MAX_MODEL_BYTES:
            raise ModelRefused(f"{file}: over {MAX_MODEL_BYTES >> 20} MiB, not a model "
                               "this agent trains")
        data = file.read_bytes()
    except FileNotFoundError:
        raise ModelRefused(f"{file}: missing; a model is the .skops, .npz and .json files "
                           "`invoice-agent train` writes together") from None
    except OSError as exc:
        raise ModelRefused(f"{file}: cannot read the model: {exc}") from None
    if _sha256(data) != meta.get(key):
        raise ModelRefused(f"{file}: the model files and their metadata do not belong together "
                           "(a copy of only some of them, a changed file, or a save under way)")
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _probe(meta: dict[str, Any], path: Path, score: Any, what: str) -> None:
    """Score the rows saved at training and compare: a forest that no longer computes what
    scikit-learn computed when it was trained (another version, a changed file) is refused,
    not trusted."""
    probe = meta.get("probe") or {}
    try:
        x = np.array(probe["inputs"], dtype=float)
        want = np.array(probe["forest"], dtype=float)
        got = np.asarray(score(x), dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelRefused(f"{meta_path(path)}: probe rows unusable ({exc})") from None
    if got.shape != want.shape or not len(want):
        raise ModelRefused(f"{meta_path(path)}: probe rows unusable (no scores to compare)")
    off = float(np.abs(got - want).max())
    if not off <= SAME_SCORE:
        raise ModelRefused(f"{path}: {what} no longer scores the probe rows as the forest did "
                           f"when trained ({off:.3g} off, at most {SAME_SCORE:g}): retrain "
                           "with `invoice-agent train`")


def check_fits(model: Model, spec: FeatureSpec, window_seconds: float, zone: str,
               path: Path) -> None:
    """Refuse a model that does not describe this config (features, window, time zone)."""
    check_meta(model.meta, spec, window_seconds, zone, path)


def check_meta(meta: dict[str, Any], spec: FeatureSpec, window_seconds: float, zone: str,
               path: Path) -> None:
    """check_fits on the metadata alone: what `check` can say without importing sklearn."""
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelRefused(f"{path}: trained on feature version {meta.get('feature_version')}, "
                           f"this agent computes version {FEATURE_VERSION}: retrain with "
                           "`invoice-agent train`")
    if float(meta.get("window_seconds", 0)) != float(window_seconds):
        raise ModelRefused(f"{path}: trained on {_minutes(meta.get('window_seconds'))} "
                           f"windows, the config uses {_minutes(window_seconds)} windows: "
                           "retrain with `invoice-agent train`")
    if meta.get("feature_names") != spec.names:
        have, want = set(meta.get("feature_names") or []), set(spec.names)
        missing, extra = sorted(want - have)[:6], sorted(have - want)[:6]
        parts = ([f"the config adds {', '.join(missing)}"] if missing else []) + (
            [f"the config no longer has {', '.join(extra)}"] if extra else [])
        raise ModelRefused(f"{path}: the model's features do not match the configured sources "
                           f"({'; '.join(parts) or 'other order'}): retrain with "
                           "`invoice-agent train`")
    if meta.get("timezone") != zone:
        raise ModelRefused(f"{path}: trained with hours of day in {meta.get('timezone')}, the "
                           f"config's timezone is {zone}: retrain with `invoice-agent train`")


def _minutes(seconds: Any) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "unknown"
    return f"{s / 60:g}-minute" if s >= 60 else f"{s:g}-second"
