"""Notebook 04, distance metrics × architectures: graded triplets, their ranks, success rates with
intervals, pair ROC AUC, mAP, McNemar tests, and the identities between metrics.

The protocol of Wang et al. (CVPR 2014) as Efrat & Semiat (2017) used it: for a triplet (query q,
positive p+, negative p−) the whole database is ranked by a distance to q; the triplet succeeds when
p+ is closer than p− (`cbir.evaluation.triplets`: ranks count the items strictly closer, ties ½).
Queries come from the held-out split, p+ and p− from the database. Figures, regions and galleries
are in `cbir.experiments.metric_comparison_views`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbir.data.fashion_mnist import FASHION_MNIST_SUPERCLASSES
from cbir.evaluation.retrieval import retrieval_metrics
from cbir.evaluation.triplets import (
    TripletRanks,
    Triplets,
    bootstrap_interval,
    holm,
    label_triplets,
    mcnemar_exact,
    triplet_ranks,
)
from cbir.evaluation.verification import distance_roc_auc, make_pairs, pair_distances
from cbir.experiments.representations import Representation
from cbir.retrieval.distances import get_distance
from cbir.retrieval.ranking import l2_normalize

METRICS = (
    "sqeuclidean",
    "euclidean",
    "cosine",
    "correlation",
    "cityblock",
    "chebyshev",
    "canberra",
    "braycurtis",
    "minkowski",
    "hamming",
    "jaccard",
    "dice",
)
"""The metrics compared, by their scipy names (`cbir.retrieval.distances`); minkowski has p = 3."""
BLAS_METRICS = ("sqeuclidean", "euclidean", "cosine", "correlation")
"""The metrics computed as matrix products (fast): mAP uses every query with them."""


def superclass_mapping(dataset: str, superclasses: Mapping | None = None) -> dict[str, tuple[int, ...]] | None:
    """The super-classes that grade triplets: `superclasses` when given (non-empty), Fashion-MNIST's
    own (`FASHION_MNIST_SUPERCLASSES`) for ``"fashion_mnist"``, else None (easy triplets only)."""
    if superclasses:
        return {str(name): tuple(int(c) for c in members) for name, members in superclasses.items()}
    return dict(FASHION_MNIST_SUPERCLASSES) if dataset == "fashion_mnist" else None


def graded_triplets(
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    n_triplets: int,
    superclasses: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> dict[str, Triplets]:
    """Hard and easy triplets (`label_triplets`): p+ of the query's class; p− of a sibling class in
    the same super-class (hard, seed `seed`) or of another super-class (easy, seed `seed` + 1).

    Queries of a super-class with a single class have no sibling: they are left out of the hard
    triplets. Without super-classes (None or empty) only easy triplets are drawn, p− from any other class.

    Returns:
        ``{"hard": ..., "easy": ...}``, or ``{"easy": ...}`` without super-classes.
    Raises:
        ValueError: a database class in no super-class, or no query with a negative.
    """
    if not superclasses:
        classes = np.union1d(np.unique(query_labels), np.unique(database_labels))
        own = {str(c): (int(c),) for c in classes if c >= 0}
        return {"easy": label_triplets(query_labels, database_labels, n_triplets, "easy", own, seed + 1)}
    return {
        difficulty: label_triplets(query_labels, database_labels, n_triplets, difficulty, superclasses, seed + offset)
        for offset, difficulty in enumerate(("hard", "easy"))
    }


def triplet_overview(
    triplets: Mapping[str, Triplets], query_labels: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per difficulty: ``triplets``, distinct ``queries``, and the query classes ``left out``."""
    rows = []
    for difficulty, drawn in triplets.items():
        present = set(np.unique(query_labels[drawn.queries]).tolist())
        missing = [class_names[c] for c in np.unique(query_labels[query_labels >= 0]) if c not in present]
        rows.append(
            {
                "difficulty": difficulty,
                "triplets": len(drawn),
                "queries": len(np.unique(drawn.queries)),
                "left out": ", ".join(missing) or "none",
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class TripletScores:
    """Ranks of p+ and p− of every triplet, for every architecture × metric.

    Attributes:
        triplets: difficulty → `Triplets` (queries into the query set, p+ / p− into the database).
        ranks: (architecture, metric) → difficulty → `TripletRanks`.
        n_database: the number of items ranked.
    """

    triplets: dict[str, Triplets]
    ranks: dict[tuple[str, str], dict[str, TripletRanks]]
    n_database: int

    @property
    def architectures(self) -> list[str]:
        return list(dict.fromkeys(architecture for architecture, _ in self.ranks))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(metric for _, metric in self.ranks))


def _join(triplets: Sequence[Triplets]) -> Triplets:
    return Triplets(
        *(np.concatenate([getattr(t, part) for t in triplets]) for part in ("queries", "positives", "negatives"))
    )


def _slice(ranks: TripletRanks, start: int, stop: int) -> TripletRanks:
    return TripletRanks(*(getattr(ranks, field)[start:stop] for field in TripletRanks.__dataclass_fields__))


def score_triplets(
    representations: Mapping[str, Representation],
    triplets: Mapping[str, Triplets],
    metrics: Sequence[str] = METRICS,
    chunk_size: int = 256,
) -> TripletScores:
    """Rank p+ and p− of every triplet among the whole database (`triplet_ranks`, raw features, the
    binary version for hamming / jaccard / dice), every difficulty in one pass per architecture × metric.

    Raises:
        ValueError: an unknown metric (before any distance is computed).
    """
    for metric in metrics:
        get_distance(metric)
    joined = _join(list(triplets.values()))
    bounds = np.cumsum([0, *(len(t) for t in triplets.values())])
    ranks = {}
    for name, representation in representations.items():
        for metric in metrics:
            query, database = representation.features(metric)
            ranked = triplet_ranks(query, database, joined, metric, chunk_size=chunk_size)
            ranks[(name, metric)] = {d: _slice(ranked, bounds[i], bounds[i + 1]) for i, d in enumerate(triplets)}
    n_database = len(next(iter(representations.values())).database) if representations else 0
    return TripletScores(dict(triplets), ranks, n_database)


def success_table(
    scores: TripletScores, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Success rate (ties ½) of every architecture × metric × difficulty, with its percentile bootstrap
    interval resampling queries (`bootstrap_interval`), and the median ranks of p+ and p−.

    Returns:
        columns ``architecture``, ``metric``, ``difficulty``, ``success``, ``low``, ``high``,
        ``triplets``, ``median rank p+``, ``median rank p−``.
    """
    rows = []
    for (architecture, metric), by_difficulty in scores.ranks.items():
        for difficulty, ranks in by_difficulty.items():
            queries = scores.triplets[difficulty].queries
            low, high = bootstrap_interval(ranks.success, queries, n_resamples, confidence, seed)
            rows.append(
                {
                    "architecture": architecture,
                    "metric": metric,
                    "difficulty": difficulty,
                    "success": float(ranks.success.mean()),
                    "low": low,
                    "high": high,
                    "triplets": len(queries),
                    "median rank p+": float(np.median(ranks.positive_rank)),
                    "median rank p−": float(np.median(ranks.negative_rank)),
                }
            )
    return pd.DataFrame(rows)


def roc_auc_table(
    representations: Mapping[str, Representation],
    labels: np.ndarray,
    n_pairs: int,
    metrics: Sequence[str] = METRICS,
    seed: int = 0,
) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Pair ROC AUC of every architecture × metric on the same balanced pairs of query images
    (`make_pairs`): same class against different class, scored by −distance (`roc_auc_score`);
    a NaN distance (Dice of two empty codes) counts as the farthest.

    Args:
        labels: the queries' labels, (n_queries,); the pairs index the query features.
    Returns:
        (table with ``architecture``, ``metric``, ``roc_auc``; the pairs (first, second, is_match)).
    Raises:
        ValueError: too few images for `n_pairs` pairs (`make_pairs`).
    """
    first, second, is_match = make_pairs(labels, n_pairs, seed=seed)
    rows = []
    for name, representation in representations.items():
        for metric in metrics:
            features = representation.features(metric)[0]
            auc = distance_roc_auc(is_match, pair_distances(features, first, second, metric))
            rows.append({"architecture": name, "metric": metric, "roc_auc": auc})
    return pd.DataFrame(rows), (first, second, is_match)


def map_table(
    representations: Mapping[str, Representation],
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    metrics: Sequence[str] = METRICS,
    slow_queries: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """mAP of the ranking of the whole database under every metric (`retrieval_metrics`, raw features).

    The `BLAS_METRICS` use every query; the others a seeded subset of `slow_queries` queries (0: all),
    the same for every architecture and metric.

    Returns:
        columns ``architecture``, ``metric``, ``mAP``, ``queries``.
    """
    n = len(query_labels)
    subset = (
        np.sort(np.random.default_rng(seed).choice(n, slow_queries, replace=False)) if 0 < slow_queries < n else None
    )
    rows = []
    for name, representation in representations.items():
        for metric in metrics:
            query, database = representation.features(metric)
            rows_used = np.arange(n) if metric in BLAS_METRICS or subset is None else subset
            result = retrieval_metrics(
                query[rows_used],
                query_labels[rows_used],
                database,
                database_labels,
                ks=(),
                normalize=metric == "cosine",
                metric=metric,
            )
            rows.append({"architecture": name, "metric": metric, "mAP": result["map"], "queries": len(rows_used)})
    return pd.DataFrame(rows)


def comparison_table(success: pd.DataFrame, roc_auc: pd.DataFrame, maps: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture × metric: success and interval per difficulty (``success hard``,
    ``low hard``, ``high hard``, ...), ``ROC AUC``, ``mAP`` and its ``mAP queries``; sorted by the
    success on hard triplets (easy when there are none), best first."""
    wide = success.pivot_table(
        index=["architecture", "metric"], columns="difficulty", values=["success", "low", "high"], sort=False
    )
    wide.columns = [f"{value} {difficulty}" for value, difficulty in wide.columns]
    difficulties = [d for d in ("hard", "easy") if f"success {d}" in wide.columns]
    columns = [f"{value} {d}" for d in difficulties for value in ("success", "low", "high")]
    table = wide[columns].reset_index()
    table = table.merge(roc_auc.rename(columns={"roc_auc": "ROC AUC"}), on=["architecture", "metric"], how="left")
    table = table.merge(maps.rename(columns={"queries": "mAP queries"}), on=["architecture", "metric"], how="left")
    return table.sort_values(f"success {difficulties[0]}", ascending=False, kind="stable").reset_index(drop=True)


def mcnemar_table(scores: TripletScores, difficulty: str = "hard", alpha: float = 0.05) -> pd.DataFrame:
    """Per architecture, its best metric (highest success) against each other one on the same
    triplets: exact McNemar (`mcnemar_exact`; a tie counts as a failure), Holm's correction over the
    architecture's comparisons.

    Returns:
        columns ``architecture``, ``best``, ``other``, ``best only`` / ``other only`` (triplets only
        that metric gets right), ``p``, ``p Holm``, ``differs`` (p Holm < `alpha`).
    """
    rows = []
    for architecture in scores.architectures:
        outcomes = {m: scores.ranks[(architecture, m)][difficulty].success for m in scores.metrics}
        best = max(outcomes, key=lambda m: outcomes[m].mean())
        others = [m for m in outcomes if m != best]
        p_values = [mcnemar_exact(outcomes[best], outcomes[m]) for m in others]
        for other, p, adjusted in zip(others, p_values, holm(p_values) if others else []):
            won, lost = outcomes[best] >= 1.0, outcomes[other] >= 1.0
            rows.append(
                {
                    "architecture": architecture,
                    "best": best,
                    "other": other,
                    "best only": int(np.sum(won & ~lost)),
                    "other only": int(np.sum(~won & lost)),
                    "p": p,
                    "p Holm": float(adjusted),
                    "differs": bool(adjusted < alpha),
                }
            )
    return pd.DataFrame(rows)


IDENTITIES = (
    ("sqeuclidean and euclidean rank alike", "sqeuclidean", "euclidean", None),
    ("cosine = euclidean on L2-normalised features", "cosine", "euclidean", "l2"),
    ("correlation = cosine on centred features", "correlation", "cosine", "centre"),
)
"""(statement, metric on the raw features, metric on the transformed features, transform)."""


def identity_table(representation: Representation, triplets: Triplets) -> pd.DataFrame:
    """The `IDENTITIES` checked on one representation's triplet ranks: the share of triplets whose
    p+ and p− ranks agree exactly, the largest rank difference and the share of equal outcomes.

    Transforms: ``l2`` divides each row by its norm; ``centre`` subtracts each row's own mean (over
    its dimensions, as Pearson's correlation does).
    """
    transforms = {
        None: lambda x: x,
        "l2": l2_normalize,
        "centre": lambda x: x - x.mean(axis=1, keepdims=True),
    }
    rows = []
    for statement, left, right, transform in IDENTITIES:
        a = triplet_ranks(representation.query, representation.database, triplets, left)
        q, d = (
            transforms[transform](np.asarray(x, np.float64)) for x in (representation.query, representation.database)
        )
        b = triplet_ranks(q, d, triplets, right)
        same = (a.positive_rank == b.positive_rank) & (a.negative_rank == b.negative_rank)
        largest = max(np.abs(a.positive_rank - b.positive_rank).max(), np.abs(a.negative_rank - b.negative_rank).max())
        rows.append(
            {
                "identity": statement,
                "identical ranks": float(same.mean()),
                "max |Δ rank|": int(largest),
                "same outcome": float(np.mean(a.success == b.success)),
            }
        )
    return pd.DataFrame(rows)
