"""Compare backbones × distance metrics on triplets of an image folder: the library behind ``cbir compare``.

The folder is the database (``root/<class>/**/<image>``). Triplets are either drawn from the class
subfolders — p+ from the query's folder (never the query itself), p− from another, seeded — or read
from a CSV of ``query,positive,negative`` paths relative to the folder (Wang et al.'s layout). For
each backbone the features of every image are extracted once and cached (`cbir.features`, keyed by
the files' identity like the index), then every metric of the registry is scored on the same
triplets: the success rate (ties ½) with a 95 % bootstrap interval resampled by query
(`cbir.evaluation.triplets`), and, when the folder has class subfolders, the pair ROC AUC.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbir.data.folder import scan_image_folder
from cbir.data.images import ImageSet, SkippedFile, list_image_files
from cbir.evaluation.triplets import Triplets, bootstrap_interval, read_triplets_csv, triplet_ranks
from cbir.evaluation.verification import pair_roc_auc
from cbir.indexing import extractor_settings, make_extractor
from cbir.retrieval.distances import get_distance
from cbir.retrieval.ranking import l2_normalize

Log = Callable[[str], None]


class ComparisonError(ValueError):
    """A comparison that cannot be made: the message names the folder, file or value and why."""


@dataclass
class FolderTriplets:
    """The database images of a folder, their class labels (-1 without classes), and the triplets."""

    paths: list[Path]
    labels: np.ndarray
    triplets: Triplets
    skipped: list[SkippedFile]


def folder_triplets(
    folder: str | os.PathLike, n_triplets: int = 1000, triplets_csv: str | os.PathLike | None = None, seed: int = 0
) -> FolderTriplets:
    """The database and triplets of `folder` (see the module docstring).

    Raises:
        ComparisonError: no class subfolders and no CSV, fewer than two classes with two images,
            or a CSV image outside the folder's images.
        FileNotFoundError / ValueError: from `read_triplets_csv` (bad rows, missing files).
    """
    folder = Path(folder)
    if triplets_csv is not None:
        paths, skipped = list_image_files(folder)
        position = {path.resolve(): row for row, path in enumerate(paths)}
        rows = []
        for number, triplet in enumerate(read_triplets_csv(triplets_csv, root=folder), start=1):
            missing = [str(p) for p in triplet if p.resolve() not in position]
            if missing:
                raise ComparisonError(f"{triplets_csv}: triplet {number} names {missing[0]}, not an image in {folder}")
            rows.append([position[p.resolve()] for p in triplet])
        table = np.asarray(rows, np.int64)
        labels = _folder_labels(folder, paths)
        return FolderTriplets(paths, labels, Triplets(table[:, 0], table[:, 1], table[:, 2]), list(skipped))
    try:
        paths, labels, _, skipped = scan_image_folder(folder, check_images=True)
    except FileNotFoundError as error:
        raise ComparisonError(f"{error}; or give --triplets triplets.csv") from error
    labels = np.asarray(labels, np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    if (counts >= 2).sum() < 1 or len(classes) < 2:
        raise ComparisonError(f"{folder}: need two classes, one with two images or more, to draw triplets")
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(counts[np.searchsorted(classes, labels)] >= 2)
    queries = rng.choice(eligible, n_triplets, replace=n_triplets > len(eligible))
    positives = np.array([rng.choice(np.setdiff1d(np.flatnonzero(labels == labels[q]), [q])) for q in queries])
    negatives = np.array([rng.choice(np.flatnonzero(labels != labels[q])) for q in queries])
    return FolderTriplets(list(paths), labels, Triplets(queries, positives, negatives), list(skipped))


def _folder_labels(folder: Path, paths: Sequence[Path]) -> np.ndarray:
    """Class index of each path by its first folder below `folder`; all -1 when images lie at the top."""
    names = [p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in paths]
    if any(name is None for name in names):
        return np.full(len(paths), -1, np.int64)
    classes = sorted(set(names))
    return np.array([classes.index(name) for name in names], np.int64)


def compare_folder(
    data: FolderTriplets,
    backbones: Sequence[str],
    metrics: Sequence[str],
    input_size: int | None = None,
    batch_size: int = 32,
    n_pairs: int = 2000,
    seed: int = 0,
    progress: bool = True,
    log: Log = lambda message: None,
) -> list[dict]:
    """Score every backbone × metric on the same triplets.

    Returns:
        one dict per pair: ``backbone``, ``metric``, ``success`` (ties ½), ``ci_low``, ``ci_high``
        (95 % bootstrap by query) and ``roc_auc`` (None without class labels).
    Raises:
        ValueError: unknown backbone or metric (before any feature is extracted).
        WeightsUnavailableError: a backbone's weights cannot be found or downloaded.
    """
    for metric in metrics:
        get_distance(metric)
    settings = {backbone: extractor_settings(backbone, input_size=input_size) for backbone in backbones}
    image_set = ImageSet(labels=data.labels, class_names=(), paths=tuple(map(str, data.paths)), name="compare")
    labelled = bool(np.all(data.labels >= 0)) and len(np.unique(data.labels)) > 1
    results = []
    for backbone in backbones:
        log(f"features of {len(data.paths)} images with {backbone}")
        features = l2_normalize(make_extractor(settings[backbone], batch_size).extract(image_set, progress=progress))
        for metric in metrics:
            ranks = triplet_ranks(features, features, data.triplets, metric)
            low, high = bootstrap_interval(ranks.success, data.triplets.queries, seed=seed)
            auc = _roc_auc(features, data.labels, metric, n_pairs, seed) if labelled else None
            results.append({"backbone": backbone, "metric": metric, "success": float(ranks.success.mean()),
                            "ci_low": low, "ci_high": high, "roc_auc": auc})  # fmt: skip
    return results


def _roc_auc(features: np.ndarray, labels: np.ndarray, metric: str, n_pairs: int, seed: int) -> float | None:
    """Pair ROC AUC on as many balanced pairs as the folder has, up to `n_pairs` (None if too few)."""
    counts = np.bincount(labels)
    available = min(int((counts * (counts - 1) // 2).sum()), int((len(labels) ** 2 - (counts**2).sum()) // 2))
    if available < 1:
        return None
    return pair_roc_auc(features, labels, metric, min(n_pairs, 2 * available), seed)
