"""Trained models on disk, keyed by the settings that made them: what notebooks 02 and 03 train,
notebook 04 re-uses.

A model is saved as ``CACHE_DIR/models/<kind>-<key>.keras`` beside ``<kind>-<key>.json``, where the
key hashes the kind, the settings and `MODEL_FORMAT_VERSION`. The settings say everything the
weights depend on: the training data (`training_data_fingerprint`: pixels and labels), the input
features (backbone, input size, pooling), the architecture, the optimisation and the seed. Both files
are written atomically, the model first: the JSON is the commit mark, so an interrupted save leaves
no entry that loads. `load_model` wants every setting to match; `find_model` only those asked for
(e.g. the training data and the input features), taking the newest such model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

from cbir import config
from cbir._io import atomic_path, atomic_write_text
from cbir.data.images import ImageSet
from cbir.features import dataset_fingerprint

MODEL_FORMAT_VERSION = 1


def training_data_fingerprint(image_set: ImageSet) -> str:
    """SHA-256 of an image set's pixels (or files, `dataset_fingerprint`) and labels: what a model trained on."""
    digest = hashlib.sha256(dataset_fingerprint(image_set).encode())
    digest.update(np.ascontiguousarray(image_set.labels, np.int64).data)
    return digest.hexdigest()


def _normalised(settings: Mapping) -> dict:
    """The settings as JSON gives them back (tuples become lists), so a request compares equal to a saved entry."""
    return json.loads(json.dumps(dict(settings), sort_keys=True))


def model_path(kind: str, settings: Mapping, root: Path | None = None) -> Path:
    """Where the model of `kind` (e.g. ``"dlbhc"``) made with `settings` is (or will be) saved.

    Raises:
        TypeError: settings that JSON cannot hold.
    """
    payload = json.dumps({"kind": kind, "settings": _normalised(settings), "format": MODEL_FORMAT_VERSION})
    key = hashlib.sha256(payload.encode()).hexdigest()[:20]
    return (root or config.CACHE_DIR / "models") / f"{kind}-{key}.keras"


def save_model(model: keras.Model, kind: str, settings: Mapping, root: Path | None = None) -> Path:
    """Save `model` (Keras ``.keras`` format) and its settings (``.json``) atomically; return the model's path."""
    path = model_path(kind, settings, root)
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)
    record = {
        "kind": kind,
        "format": MODEL_FORMAT_VERSION,
        "keras": keras.__version__,
        "settings": _normalised(settings),
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def load_model(kind: str, settings: Mapping, root: Path | None = None) -> tuple[keras.Model | None, Path]:
    """The saved model of `kind` made with exactly `settings`, uncompiled.

    Returns:
        (model, path): the model, or None when there is none, its JSON is missing (an interrupted
        save) or records other settings; and the path it is (or would be) saved at.
    """
    path = model_path(kind, settings, root)
    record_path = path.with_suffix(".json")
    if not (path.is_file() and record_path.is_file()):
        return None, path
    record = json.loads(record_path.read_text(encoding="utf-8"))
    expected = {"kind": kind, "format": MODEL_FORMAT_VERSION, "settings": _normalised(settings)}
    if any(record.get(field) != value for field, value in expected.items()):
        return None, path
    return keras.saving.load_model(path, compile=False), path


def find_model(
    kind: str, match: Mapping, root: Path | None = None
) -> tuple[keras.Model, Path, dict] | tuple[None, None, None]:
    """The newest saved model of `kind` whose settings include `match` (each key with that value),
    uncompiled: e.g. the DLBHC head of 48 bits trained on these images, whatever its epochs.

    Returns:
        (model, its path, its full settings), or (None, None, None) when no complete entry matches.
    """
    wanted = _normalised(match)
    candidates = []
    for record_path in (root or config.CACHE_DIR / "models").glob(f"{kind}-*.json"):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        settings = record.get("settings", {})
        path = record_path.with_suffix(".keras")
        if (
            record.get("kind") == kind
            and record.get("format") == MODEL_FORMAT_VERSION
            and all(settings.get(key) == value for key, value in wanted.items())
            and path.is_file()
        ):
            candidates.append((record_path.stat().st_mtime_ns, path, settings))
    if not candidates:
        return None, None, None
    _, path, settings = max(candidates, key=lambda candidate: candidate[0])
    return keras.saving.load_model(path, compile=False), path, settings
