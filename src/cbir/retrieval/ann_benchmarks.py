"""Feature sets as ann-benchmarks data files, so that any ANN library can be run on them.

The format is that of ann-benchmarks' ``datasets.py`` (Aumüller et al. 2020): one HDF5 file with the
datasets ``train`` (the database, float32 (n, dim)), ``test`` (the queries, float32 (m, dim)),
``neighbors`` (int32 (m, k): the exact nearest neighbours of each query in ``train``, nearest first)
and ``distances`` (float32 (m, k): their distances), and the attributes ``distance`` (``"angular"``
or ``"euclidean"``), ``point_type`` (``"float"``) and ``dimension``. The angular distance is
``1 − cos``, as in ann-benchmarks' metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from cbir._io import atomic_path
from cbir.retrieval.exact import exact_search
from cbir.retrieval.ranking import l2_normalize

ANN_BENCHMARKS_DISTANCES = {"angular": "cosine", "euclidean": "euclidean"}
"""ann-benchmarks' distance names and the registry distance each one is."""


def write_ann_benchmarks_hdf5(
    path: str | os.PathLike,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 100,
    distance: str = "angular",
) -> Path:
    """Write `train` / `test` with their exact `k` nearest neighbours as an ann-benchmarks HDF5 file.

    The neighbours come from `cbir.retrieval.exact.exact_search` (ties by increasing index); their
    distances are recomputed from the vectors: ``1 − cos`` for angular, ``‖a − b‖`` for euclidean. The file is
    written atomically: an interrupted run leaves no partial file.

    Args:
        path: the ``.hdf5`` file to write (parents are created).
        train: float, (n, dim); test: float, (m, dim).
        k: neighbours per query (capped at n).
        distance: ``"angular"`` or ``"euclidean"``.
    Returns:
        `path`.
    Raises:
        ValueError: an unknown distance, inputs that are not 2-D of one dimension, or k < 1.
    """
    if distance not in ANN_BENCHMARKS_DISTANCES:
        raise ValueError(f"distance must be one of {sorted(ANN_BENCHMARKS_DISTANCES)}, got {distance!r}")
    train, test = np.asarray(train, np.float32), np.asarray(test, np.float32)
    metric = ANN_BENCHMARKS_DISTANCES[distance]
    _, neighbors = exact_search(test, train, k=k, metric=metric, normalize=distance == "angular")
    distances = _neighbor_distances(test, train, neighbors, distance)
    path = Path(path)
    with atomic_path(path, suffix=".hdf5") as temporary, h5py.File(temporary, "w") as file:
        file.attrs["distance"] = distance
        file.attrs["point_type"] = "float"
        file.attrs["dimension"] = train.shape[1]
        file.create_dataset("train", data=train)
        file.create_dataset("test", data=test)
        file.create_dataset("neighbors", data=neighbors.astype(np.int32))
        file.create_dataset("distances", data=distances)
    return path


def _neighbor_distances(test: np.ndarray, train: np.ndarray, neighbors: np.ndarray, distance: str) -> np.ndarray:
    """float32 (m, k): the distance of each query to each of its neighbours, 256 queries at a time."""
    if distance == "angular":
        test, train = l2_normalize(test), l2_normalize(train)
    out = np.empty(neighbors.shape, np.float32)
    for start in range(0, len(test), 256):
        rows = slice(start, start + 256)
        differences = train[neighbors[rows]] - test[rows, None, :]
        if distance == "angular":  # 1 − cos = ‖a − b‖² / 2 for unit vectors, without cancellation
            out[rows] = 0.5 * np.einsum("qkd,qkd->qk", differences, differences)
        else:
            out[rows] = np.linalg.norm(differences, axis=2)
    return out


def read_ann_benchmarks_hdf5(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    """The arrays and the distance name of an ann-benchmarks HDF5 file.

    Returns:
        ``train``, ``test``, ``neighbors``, ``distances`` (arrays) and ``distance`` (str).
    Raises:
        FileNotFoundError: no such file; ValueError: a dataset or the distance attribute is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ann-benchmarks file at {path}")
    with h5py.File(path, "r") as file:
        missing = [name for name in ("train", "test", "neighbors", "distances") if name not in file]
        if missing or "distance" not in file.attrs:
            raise ValueError(f"{path} is not an ann-benchmarks file: missing {missing or ['attribute distance']}")
        result: dict[str, np.ndarray | str] = {
            name: file[name][()] for name in ("train", "test", "neighbors", "distances")
        }
        result["distance"] = str(file.attrs["distance"])
    return result
