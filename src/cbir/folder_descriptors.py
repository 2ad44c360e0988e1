"""Classic descriptors (`cbir.descriptors`) applied to image files: what ``cbir index --features hog``
runs instead of a CNN.

Each image is decoded (shrunk while decoding, as the CNN path does), resized to a square of
``image_size`` pixels and described. Descriptors with a vocabulary (``sift_bow``, ``sift_vlad``,
``sift_fisher``) are fitted once, on the images of the first indexing run (a seeded sample of at most
`FIT_SAMPLE`); the fitted state is attached to the index (``"descriptor"``) and reused by every later
run and by every search, so database and queries are always described alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from cbir.data.images import read_image
from cbir.data.pipeline import DECODE_HEADROOM
from cbir.descriptors import DESCRIPTORS, make_descriptor
from cbir.retrieval.storage import IndexFormatError

FOLDER_DESCRIPTORS = ("color_hist", "hog", "lbp", "sift_bow", "sift_vlad", "sift_fisher")
"""The descriptors ``cbir index --features`` accepts (MOP-CNN needs a CNN: notebook 05 only)."""
FIT_SAMPLE = 5000
"""Images a vocabulary is fitted on, at most (a seeded sample of the first run's images)."""


def descriptor_settings(name: str, image_size: int = 128, params: dict | None = None) -> dict:
    """The settings an index of classic descriptors records and checks.

    Raises:
        ValueError: a name outside `FOLDER_DESCRIPTORS`, an image size outside [8, 2048], or a
            parameter the descriptor does not take.
    """
    if name not in FOLDER_DESCRIPTORS:
        raise ValueError(f"unknown descriptor {name!r}; expected one of {list(FOLDER_DESCRIPTORS)}")
    if not 8 <= image_size <= 2048:
        raise ValueError(f"the descriptor image size must be in [8, 2048] pixels, got {image_size}")
    descriptor = make_descriptor(name, **(params or {}))
    return {
        "features": name,
        "descriptor_params": dict(params or {}),
        "metric": descriptor.metric,
        "image_size": int(image_size),
        "decode_max_side": DECODE_HEADROOM * int(image_size),
    }


def is_descriptor_settings(settings: object) -> bool:
    """Whether index settings describe classic descriptors (rather than a CNN)."""
    return isinstance(settings, dict) and "features" in settings


def check_descriptor_settings(settings: dict, source: str = "settings") -> None:
    """Refuse descriptor settings that a hand-edited manifest broke.

    Raises:
        IndexFormatError: naming `source` and the field.
    """
    name, size = settings.get("features"), settings.get("image_size")
    if name not in FOLDER_DESCRIPTORS:
        raise IndexFormatError(
            f"{source}: field 'settings.features' must be one of {list(FOLDER_DESCRIPTORS)}, got {name!r}"
        )
    if type(size) is not int or not 8 <= size <= 2048:
        raise IndexFormatError(f"{source}: field 'settings.image_size' must be an integer in [8, 2048], got {size!r}")
    if not isinstance(settings.get("descriptor_params"), dict):
        raise IndexFormatError(f"{source}: field 'settings.descriptor_params' must be an object")
    expected_metric = make_descriptor(name, **settings["descriptor_params"]).metric
    if settings.get("metric") != expected_metric:
        raise IndexFormatError(f"{source}: field 'settings.metric' must be {expected_metric!r} for {name}")


class DescriptorExtractor:
    """A classic descriptor applied to image files.

    Args:
        settings: from `descriptor_settings`.
        descriptor: an already fitted descriptor (from `load`); None makes an unfitted one.
    """

    def __init__(self, settings: dict, descriptor=None):
        self.settings = settings
        self.descriptor = descriptor or make_descriptor(settings["features"], **settings["descriptor_params"])

    def images(self, paths: Sequence[Path]) -> np.ndarray:
        """uint8 (n, size, size, 3): each file decoded (shrunk while decoding) and resized (area)."""
        size = self.settings["image_size"]
        return np.stack(
            [
                cv2.resize(read_image(path, max_side=self.settings["decode_max_side"]), (size, size), cv2.INTER_AREA)
                for path in paths
            ]
        )

    def fit(self, paths: Sequence[Path], seed: int = 0, progress: bool = True) -> DescriptorExtractor:
        """Fit the descriptor's vocabulary on a seeded sample of at most `FIT_SAMPLE` of `paths`."""
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(paths), min(FIT_SAMPLE, len(paths)), replace=False))
        self.descriptor.fit(self.images([paths[i] for i in chosen]), progress=progress)
        return self

    def embed(self, paths: Sequence[Path], progress: bool = True, chunk: int = 512) -> np.ndarray:
        """float32 (len(paths), dim): the descriptors of the files, in order."""
        parts = []
        for start in tqdm(range(0, len(paths), chunk), desc="describing", unit="chunk", disable=not progress):
            parts.append(self.descriptor.transform(self.images(paths[start : start + chunk])))
        return np.concatenate(parts, dtype=np.float32)  # no second copy of a 60 000 × 8 192 result

    def save(self, path: Path) -> None:
        """Write the fitted state as one ``.npz`` (JSON parameters + arrays, no pickle)."""
        params, arrays = self.descriptor.get_state()
        np.savez(path, __params__=np.array(json.dumps(params)), **arrays)

    @classmethod
    def load(cls, settings: dict, path: Path) -> DescriptorExtractor:
        """The extractor whose fitted state `save` wrote to `path`.

        Raises:
            IndexFormatError: the file is not such a state.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                params = json.loads(str(data["__params__"]))
                arrays = {key: data[key] for key in data.files if key != "__params__"}
            descriptor = DESCRIPTORS[settings["features"]].from_state(params, arrays)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(f"{path}: not a fitted {settings['features']} descriptor ({error})") from error
        return cls(settings, descriptor)
