"""Triplet evaluation: (query, positive, negative) cases ranked against the whole database.

The protocol of Wang et al. (CVPR 2014, "similarity precision") as used by Efrat & Semiat (2017):
for a query q, a positive p+ and a negative p−, both in the database, the database is ranked by a
registry distance to q. The rank of an item is the number of database items *strictly* closer to q
(0 = nearest; equal distances share a rank). A triplet succeeds when p+ is closer than p−; a tie
counts ½. Ranks are counted chunk by chunk against each query's distance row, never by sorting.

Also here: triplets drawn from labels with graded difficulty, triplets read from Wang et al.'s CSV
layout, a bootstrap interval that resamples queries (triplets of one query are not independent),
the exact McNemar test of two methods on the same triplets, and Holm's step-down correction.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from cbir.retrieval.distances import get_distance
from cbir.retrieval.ranking import l2_normalize


@dataclass(frozen=True)
class Triplets:
    """Triplets as index arrays: ``queries[t]`` into the query set, ``positives[t]`` and
    ``negatives[t]`` into the database; all int64, shape (n_triplets,)."""

    queries: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    def __len__(self) -> int:
        return len(self.queries)


@dataclass(frozen=True)
class TripletRanks:
    """Ranks (int64) and distances (float64) of p+ and p−, each shape (n_triplets,)."""

    positive_rank: np.ndarray
    negative_rank: np.ndarray
    positive_distance: np.ndarray
    negative_distance: np.ndarray

    @property
    def success(self) -> np.ndarray:
        """Per triplet: 1.0 when p+ is closer than p−, 0.5 on a tie, 0.0 otherwise."""
        return 0.5 * (np.sign(self.negative_distance - self.positive_distance) + 1.0)


def triplet_ranks(
    query_features: np.ndarray,
    database_features: np.ndarray,
    triplets: Triplets,
    metric: str = "sqeuclidean",
    normalize: bool = False,
    chunk_size: int = 256,
) -> TripletRanks:
    """Rank of p+ and p− among the whole database for every triplet, under a registry distance.

    Args:
        query_features: float, (n_queries, dim); database_features: float, (n_database, dim).
        triplets: indices into both; queries may repeat (each query's row is computed once).
        metric: a name or alias of `cbir.retrieval.distances`.
        normalize: L2-normalise both sides first.
        chunk_size: queries whose distance rows exist at once: memory O(chunk_size · n_database).
    Returns:
        `TripletRanks`; a NaN distance (e.g. Dice between all-zero codes) counts as the farthest.
    Raises:
        ValueError: unknown metric, or indices out of range.
    """
    distance = get_distance(metric)
    if normalize:
        query_features, database_features = l2_normalize(query_features), l2_normalize(database_features)
    n_database = len(database_features)
    for name, rows, bound in (("queries", triplets.queries, len(query_features)),
                              ("positives", triplets.positives, n_database),
                              ("negatives", triplets.negatives, n_database)):  # fmt: skip
        if len(rows) and (rows.min() < 0 or rows.max() >= bound):
            raise ValueError(f"triplet {name} must lie in [0, {bound}), got [{rows.min()}, {rows.max()}]")
    n = len(triplets)
    result = {
        key: np.empty(n, dtype) for key, dtype in (("pr", np.int64), ("nr", np.int64), ("pd", float), ("nd", float))
    }
    unique_queries, inverse = np.unique(triplets.queries, return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # triplets grouped by query
    boundaries = np.searchsorted(inverse[order], np.arange(0, len(unique_queries) + chunk_size, chunk_size))
    for chunk, start in enumerate(range(0, len(unique_queries), chunk_size)):
        rows = unique_queries[start : start + chunk_size]
        block = distance.pairwise(
            np.asarray(query_features[rows], np.float64), np.asarray(database_features, np.float64)
        )
        block = np.where(np.isnan(block), np.inf, block)
        members = order[boundaries[chunk] : boundaries[chunk + 1]]
        local = inverse[members] - start
        for key_rank, key_distance, targets in (("pr", "pd", triplets.positives), ("nr", "nd", triplets.negatives)):
            target_distance = block[local, targets[members]]
            result[key_distance][members] = target_distance
            result[key_rank][members] = (block[local] < target_distance[:, None]).sum(axis=1)
    return TripletRanks(result["pr"], result["nr"], result["pd"], result["nd"])


def bootstrap_interval(
    values: np.ndarray, groups: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`, resampling whole groups (queries).

    Args:
        values: float, (n,), e.g. per-triplet success; groups: int, (n,), e.g. the query of each.
    Returns:
        (low, high) of the mean over `n_resamples` resamples of the groups with replacement.
    """
    values, groups = np.asarray(values, float), np.asarray(groups)
    labels, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(labels))
    counts = np.bincount(inverse, minlength=len(labels))
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(labels), (n_resamples, len(labels)))
    means = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def mcnemar_exact(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of two methods' outcomes on the same cases.

    Outcomes are successes (True / 1); a tie's ½ counts as failure. Only discordant cases matter:
    b = first right and second wrong, c = the reverse; p = two-sided binomial test of b out of
    b + c at ½ (`scipy.stats.binomtest`), 1.0 when there is no discordant case.
    """
    first, second = np.asarray(first) >= 1.0, np.asarray(second) >= 1.0
    b, c = int(np.sum(first & ~second)), int(np.sum(~first & second))
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order, capped at 1."""
    p_values = np.asarray(p_values, float)
    order = np.argsort(p_values, kind="stable")
    scaled = (len(p_values) - np.arange(len(p_values))) * p_values[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    result = np.empty_like(adjusted)
    result[order] = adjusted
    return result


def label_triplets(
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    n_triplets: int,
    difficulty: str,
    superclasses: Mapping[str, Sequence[int]],
    seed: int = 0,
) -> Triplets:
    """Triplets from labels: p+ shares the query's class; p− is "easy" or "hard".

    Easy: p− from another super-class. Hard: p− from a sibling class of the same super-class;
    queries whose super-class has a single class have no sibling and are left out of hard
    triplets (there is no harder negative the labels can name).

    Args:
        superclasses: super-class name → class indices; every labelled class in exactly one.
        difficulty: "easy" or "hard".
    Returns:
        `Triplets`, seeded, queries drawn uniformly among the eligible ones.
    Raises:
        ValueError: unknown difficulty, a class in no super-class, or no eligible query.
    """
    if difficulty not in ("easy", "hard"):
        raise ValueError(f"difficulty must be 'easy' or 'hard', got {difficulty!r}")
    group_of = {c: name for name, members in superclasses.items() for c in members}
    missing = sorted(set(np.unique(database_labels).tolist()) - set(group_of))
    if missing:
        raise ValueError(f"classes {missing} belong to no super-class")
    by_class = {c: np.flatnonzero(database_labels == c) for c in group_of}
    negatives_of = {}
    for c, group in group_of.items():
        siblings = (
            [d for d in superclasses[group] if d != c]
            if difficulty == "hard"
            else [d for d in group_of if group_of[d] != group]
        )
        negatives_of[c] = np.concatenate([by_class[d] for d in siblings]) if siblings else np.empty(0, np.int64)
    eligible = np.flatnonzero(
        [label in group_of and len(negatives_of[label]) > 0 and len(by_class[label]) > 0 for label in query_labels]
    )
    if not len(eligible):
        raise ValueError(f"no query has a {difficulty} negative in the database")
    rng = np.random.default_rng(seed)
    queries = rng.choice(eligible, n_triplets, replace=n_triplets > len(eligible))
    positives = np.array([rng.choice(by_class[query_labels[q]]) for q in queries], np.int64)
    negatives = np.array([rng.choice(negatives_of[query_labels[q]]) for q in queries], np.int64)
    return Triplets(queries.astype(np.int64), positives, negatives)


def read_triplets_csv(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[tuple[Path, Path, Path]]:
    """Read ``query,positive,negative`` rows of image paths (Wang et al.'s layout; a header is optional).

    Relative paths are resolved against `root` (default: the CSV's folder).

    Raises:
        FileNotFoundError: the CSV or an image it names does not exist (line number given).
        ValueError: a row without exactly three fields (line number given), or no rows.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    if not path.is_file():
        raise FileNotFoundError(f"triplet file {path} does not exist")
    triplets = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if number == 1 and [cell.strip().lower() for cell in row] == ["query", "positive", "negative"]:
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected query,positive,negative, got {len(row)} fields")
            files = tuple(root / cell.strip() for cell in row)
            for file in files:
                if not file.is_file():
                    raise FileNotFoundError(f"{path}:{number}: image {file} does not exist")
            triplets.append(files)
    if not triplets:
        raise ValueError(f"{path}: no triplets")
    return triplets
