"""Retrieval metrics: AP / mAP, mAP@k, precision@k, recall@k, precision–recall curves.

Conventions (stated once, used by every notebook):

* **Relevance** is given per (query, database item), usually "same class".
* **AP over the whole ranking** divides by *all* relevant items in the database, R:
  ``AP = (1/R) Σ_k P@k · rel_k``. mAP is the mean over queries that have at least one relevant
  item (the others have no defined AP and are left out).
* **Ties** (equal scores, common with Hamming distances) are handled the way
  `sklearn.metrics.average_precision_score` handles them: tied items enter the ranking together,
  so AP, precision@k and recall@k do not depend on the order of ties. Precision@k and recall@k
  with a tie group straddling position k take its expected value over orderings of the group
  (McSherry & Najork, ECIR 2008).
* **mAP@k** follows the deep-hashing literature (DLBHC, DPSH, and the papers that compare with
  them): AP over the top-k list of the ranking (ties by lower database index), divided by the
  number of relevant items *retrieved in the top k*; queries with none score 0.
* **11-point interpolated mAP** (TREC / VOC 2007 style): mean over recall levels 0, 0.1, …, 1 of
  the maximal precision at recall ≥ level.

Scores are "larger is better" (similarities); pass ``-distance`` for distances.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cbir.pooling import l2_normalize

__all__ = ["average_precision", "choose_threshold", "confusion_at_threshold", "interpolated_precision",
           "make_pairs", "pair_scores", "precision_at_k", "recall_at_k", "roc_report",
           "retrieval_metrics", "ranking_statistics"]


def ranking_statistics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Tie-aware cumulative counts of ranked lists, the basis of every metric here.

    Args:
        scores: float, shape (n_queries, n_items); larger ranks first.
        relevant: bool, same shape.
    Returns:
        dict of arrays, shape (n_queries, n_items), in ranked order (score descending, ties by
        item index): ``relevant`` (bool), ``cumulative`` (relevant items up to and including each
        position), ``group_start`` / ``group_end`` (first / last position of the tie group of
        each position), and ``n_relevant`` (n_queries,).
    """
    scores = np.atleast_2d(np.asarray(scores))
    relevant = np.atleast_2d(np.asarray(relevant, dtype=bool))
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must have the same shape")
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked_scores = np.take_along_axis(scores, order, axis=1)
    ranked_relevant = np.take_along_axis(relevant, order, axis=1)
    n_items = scores.shape[1]
    positions = np.broadcast_to(np.arange(n_items), scores.shape)
    boundary = np.ones(scores.shape, dtype=bool)
    boundary[:, :-1] = ranked_scores[:, :-1] != ranked_scores[:, 1:]  # last of its tie group
    first = np.ones(scores.shape, dtype=bool)
    first[:, 1:] = boundary[:, :-1]
    group_end = np.minimum.accumulate(np.where(boundary, positions, n_items)[:, ::-1], axis=1)[:, ::-1]
    group_start = np.maximum.accumulate(np.where(first, positions, 0), axis=1)
    return {"relevant": ranked_relevant, "cumulative": np.cumsum(ranked_relevant, axis=1),
            "group_start": group_start, "group_end": group_end, "n_relevant": ranked_relevant.sum(axis=1)}


def _average_precision(stats: dict) -> np.ndarray:
    cumulative, end = stats["cumulative"], stats["group_end"]
    precision_at_group_end = np.take_along_axis(cumulative, end, axis=1) / (end + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (stats["relevant"] * precision_at_group_end).sum(axis=1) / stats["n_relevant"]


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray | float:
    """Average precision over the whole ranking, tie-aware (equal to scikit-learn's).

    Args:
        scores: float, shape (n_items,) or (n_queries, n_items).
        relevant: bool, same shape.
    Returns:
        float for one query, else float64 (n_queries,); NaN where a query has no relevant item.
    """
    result = _average_precision(ranking_statistics(scores, relevant))
    return float(result[0]) if np.ndim(scores) == 1 else result


def _expected_relevant_in_top(stats: dict, k: int) -> np.ndarray:
    n_items = stats["cumulative"].shape[1]
    k = min(k, n_items)
    start = stats["group_start"][:, k - 1]
    end = stats["group_end"][:, k - 1]
    cumulative = stats["cumulative"]
    before = np.where(start > 0, np.take_along_axis(cumulative, np.maximum(start - 1, 0)[:, None], 1)[:, 0], 0)
    in_group = np.take_along_axis(cumulative, end[:, None], 1)[:, 0] - before
    return before + in_group * (k - start) / (end - start + 1)


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray | float:
    """Fraction of relevant items among the top k, tie-aware (expected value over tied orders).

    Shapes as `average_precision`; k is capped at the number of items.
    """
    stats = ranking_statistics(scores, relevant)
    result = _expected_relevant_in_top(stats, k) / min(k, stats["cumulative"].shape[1])
    return float(result[0]) if np.ndim(scores) == 1 else result


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray | float:
    """Fraction of all relevant items found in the top k, tie-aware. NaN without relevant items."""
    stats = ranking_statistics(scores, relevant)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = _expected_relevant_in_top(stats, k) / stats["n_relevant"]
    return float(result[0]) if np.ndim(scores) == 1 else result


def interpolated_precision(stats: dict, recall_levels: np.ndarray) -> np.ndarray:
    """Interpolated precision (max precision at recall ≥ level) at each level, per query.

    Returns:
        float64 (n_queries, n_levels); NaN for queries without relevant items.
    """
    cumulative, end = stats["cumulative"], stats["group_end"]
    at_end = np.take_along_axis(cumulative, end, axis=1)
    precision = at_end / (end + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = at_end / stats["n_relevant"][:, None]
    best_from_here = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    result = np.full((len(precision), len(recall_levels)), np.nan)
    for j, level in enumerate(recall_levels):
        reached = recall >= level - 1e-12
        first = reached.argmax(axis=1)
        ok = reached.any(axis=1)
        result[ok, j] = best_from_here[ok, first[ok]]
    return result


def _map_at_k(stats: dict, k: int) -> np.ndarray:
    top = stats["relevant"][:, :k]
    hits = np.cumsum(top, axis=1)
    precision = hits / np.arange(1, top.shape[1] + 1)
    retrieved = top.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(retrieved > 0, (precision * top).sum(axis=1) / np.maximum(retrieved, 1), 0.0)


def retrieval_metrics(query_features: np.ndarray, query_labels: np.ndarray, database_features: np.ndarray,
                      database_labels: np.ndarray, ks: Sequence[int] = (1, 10, 100), map_at: Sequence[int] = (),
                      exclude_self: bool = False, chunk_size: int = 256, curve_points: int = 11,
                      normalize: bool = True, scores_fn=None) -> dict[str, float | np.ndarray]:
    """Evaluate cosine retrieval of every query over the whole database ("same label" = relevant).

    Similarities are computed and ranked `chunk_size` queries at a time, so memory is
    O(chunk_size · n_database).

    Args:
        query_features: float (n_queries, dim); database_features: float (n_database, dim).
        query_labels, database_labels: int, (n_queries,) and (n_database,).
        ks: cut-offs for precision@k and recall@k.
        map_at: cut-offs for mAP@k (hashing convention, see module docstring).
        exclude_self: the queries are the database (same order); drop each query's own row.
        curve_points: recall levels of the interpolated precision–recall curve (11: TREC).
        scores_fn: optional ``f(query_chunk_indices) -> (chunk, n_database)`` similarities
            replacing cosine (e.g. negative Hamming distances); features are then ignored.
    Returns:
        ``map``, ``map_11point``, ``precision@k``, ``recall@k``, ``map@k`` (floats), ``pr_curve``
        (recall levels, mean interpolated precision: two float arrays) and ``average_precision``
        (per-query float64 array).
    """
    query_labels = np.asarray(query_labels)
    database_labels = np.asarray(database_labels)
    if scores_fn is None:
        if normalize:
            query_features, database_features = l2_normalize(query_features), l2_normalize(database_features)
        query_features = np.asarray(query_features, np.float32)
        database_features = np.asarray(database_features, np.float32)

        def scores_fn(rows):
            return query_features[rows] @ database_features.T

    levels = np.linspace(0.0, 1.0, curve_points)
    eleven_point = []
    per_query_ap, precision, recall, map_k, curves = [], {k: [] for k in ks}, {k: [] for k in ks}, {k: [] for k in map_at}, []
    n_queries = len(query_labels)
    for start in range(0, n_queries, chunk_size):
        rows = np.arange(start, min(start + chunk_size, n_queries))
        scores = np.asarray(scores_fn(rows), dtype=np.float64)
        relevant = query_labels[rows, None] == database_labels[None, :]
        if exclude_self:
            keep = np.ones_like(relevant)
            keep[np.arange(len(rows)), rows] = False
            scores = scores[keep].reshape(len(rows), -1)
            relevant = relevant[keep].reshape(len(rows), -1)
        stats = ranking_statistics(scores, relevant)
        per_query_ap.append(_average_precision(stats))
        for k in ks:
            hits = _expected_relevant_in_top(stats, k)
            precision[k].append(hits / min(k, scores.shape[1]))
            with np.errstate(invalid="ignore", divide="ignore"):
                recall[k].append(hits / stats["n_relevant"])
        for k in map_at:
            map_k[k].append(_map_at_k(stats, k))
        curves.append(interpolated_precision(stats, levels))
        eleven_point.append(np.mean(interpolated_precision(stats, np.linspace(0.0, 1.0, 11)), axis=1))
    ap = np.concatenate(per_query_ap)
    curve = np.nanmean(np.concatenate(curves), axis=0)
    result: dict[str, float | np.ndarray] = {"map": float(np.nanmean(ap)),
                                             "map_11point": float(np.nanmean(np.concatenate(eleven_point)))}
    for k in ks:
        result[f"precision@{k}"] = float(np.mean(np.concatenate(precision[k])))
        result[f"recall@{k}"] = float(np.nanmean(np.concatenate(recall[k])))
    for k in map_at:
        result[f"map@{k}"] = float(np.mean(np.concatenate(map_k[k])))
    result["pr_curve"] = (levels, curve)
    result["average_precision"] = ap
    return result



# --------------------------------------------------------------------------------------------
# Verification: pairs, ROC, thresholds
# --------------------------------------------------------------------------------------------


def make_pairs(labels: np.ndarray, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced positive / negative pairs of distinct images from one split.

    Half the pairs share a label, half do not; no image is paired with itself and no pair
    appears twice. Indices refer to `labels`, so pairs built from separate splits cannot leak.

    Args:
        labels: int array, shape (n,), at least one class with two images and two classes.
        n_pairs: total number of pairs (even; odd numbers are rounded down).
    Returns:
        (first, second, is_match): int64, int64 and bool arrays of shape (n_pairs // 2 * 2,).
    Raises:
        ValueError: not enough distinct positive or negative pairs exist.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    half = n_pairs // 2
    classes, counts = np.unique(labels, return_counts=True)
    n_positive_available = int((counts * (counts - 1) // 2).sum())
    n_negative_available = int((len(labels) ** 2 - (counts ** 2).sum()) // 2)
    if half > n_positive_available or half > n_negative_available:
        raise ValueError(f"{half} positive and negative pairs requested; {n_positive_available} positive and "
                         f"{n_negative_available} negative distinct pairs exist")
    members = {c: np.flatnonzero(labels == c) for c in classes}
    weights = counts * (counts - 1) / max(n_positive_available * 2, 1)

    def draw(positive: bool, count: int) -> set[tuple[int, int]]:
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < count:
            need = count - len(chosen)
            if positive:
                picked = rng.choice(classes, size=need, p=weights / weights.sum())
                for c in picked:
                    i, j = rng.choice(members[c], size=2, replace=False)
                    chosen.add((min(i, j), max(i, j)))
            else:
                i, j = rng.integers(0, len(labels), need), rng.integers(0, len(labels), need)
                for a, b in zip(i, j):
                    if labels[a] != labels[b]:
                        chosen.add((min(a, b), max(a, b)))
        return set(list(chosen)[:count])

    pairs = [(i, j, True) for i, j in sorted(draw(True, half))] + [(i, j, False) for i, j in sorted(draw(False, half))]
    order = rng.permutation(len(pairs))
    first = np.array([pairs[o][0] for o in order], np.int64)
    second = np.array([pairs[o][1] for o in order], np.int64)
    is_match = np.array([pairs[o][2] for o in order], bool)
    return first, second, is_match


def pair_scores(vectors: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Match scores ``(1 + cos) / 2`` ∈ [0, 1] of the pairs (first[i], second[i]) of rows of `vectors` (n, dim)."""
    unit = l2_normalize(vectors)
    return np.clip((1.0 + np.sum(unit[first] * unit[second], axis=1)) / 2.0, 0.0, 1.0)


def roc_report(scores: np.ndarray, is_match: np.ndarray, target_fprs: Sequence[float] = (0.01, 0.001)) -> dict:
    """ROC curve, ROC AUC (`sklearn.metrics.roc_auc_score`) and TPR at fixed FPRs.

    Args:
        scores: float (n_pairs,), larger = more likely a match.
        is_match: bool (n_pairs,).
    Returns:
        ``auc``; ``fpr``, ``tpr``, ``thresholds`` (from `sklearn.metrics.roc_curve`); and
        ``tpr@fpr=<f>``: the highest TPR whose FPR does not exceed f.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, thresholds = roc_curve(is_match, scores)
    report = {"auc": float(roc_auc_score(is_match, scores)), "fpr": fpr, "tpr": tpr, "thresholds": thresholds}
    for target in target_fprs:
        report[f"tpr@fpr={target:g}"] = float(tpr[fpr <= target].max(initial=0.0))
    return report


def choose_threshold(scores: np.ndarray, is_match: np.ndarray, method: str | float = "youden") -> float:
    """A decision threshold chosen on validation pairs (predict a match when score ≥ threshold).

    Args:
        method: "youden" (maximise TPR − FPR, Youden's J) or a float target FPR (the threshold
            with the highest TPR whose FPR ≤ target).
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(is_match, scores)
    finite = np.isfinite(thresholds)
    if method == "youden":
        best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    else:
        allowed = finite & (fpr <= float(method))
        if not allowed.any():
            raise ValueError(f"no threshold reaches FPR <= {method}")
        best = int(np.flatnonzero(allowed)[np.argmax(tpr[allowed])])
    return float(thresholds[best])


def confusion_at_threshold(scores: np.ndarray, is_match: np.ndarray, threshold: float) -> np.ndarray:
    """2×2 confusion matrix (`sklearn.metrics.confusion_matrix`), rows true [non-match, match],
    columns predicted, predicting a match when score ≥ `threshold`."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(np.asarray(is_match, bool), np.asarray(scores) >= threshold, labels=[False, True])
