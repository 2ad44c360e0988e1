"""Retrieval metrics: AP / mAP, mAP@k, precision@k, recall@k, precision–recall curves, precision within a
Hamming radius.

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

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cbir.retrieval.distances import get_distance
from cbir.retrieval.hamming import hamming_distances
from cbir.retrieval.ranking import l2_normalize, top_k

METRIC_LABELS = {"map": "mAP", "map11": "11-pt mAP", "p": "P@{k}", "r": "R@{k}", "map_at": "mAP@{k}"}
"""Display label of each metric key: ``map`` mAP, ``map11`` 11-pt mAP, ``p<k>`` P@k, ``r<k>`` R@k,
``map<k>`` mAP@k. The keys are what `retrieval_metrics` returns and what ``metrics.json`` records."""


def metric_label(key: str) -> str:
    """The display label of a metric key (``"p10"`` → ``"P@10"``, ``"map1000"`` → ``"mAP@1000"``).

    Raises:
        ValueError: a key that is not a retrieval metric name.
    """
    if key in ("map", "map11"):
        return METRIC_LABELS[key]
    match = re.fullmatch(r"(map|p|r)(\d+)", key)
    if not match:
        raise ValueError(f"unknown metric key {key!r}; expected map, map11, p<k>, r<k> or map<k>")
    family = "map_at" if match[1] == "map" else match[1]
    return METRIC_LABELS[family].format(k=match[2])


def ranking_statistics(scores: np.ndarray, relevant: np.ndarray, stable: bool = True) -> dict[str, np.ndarray]:
    """Tie-aware cumulative counts of ranked lists, the basis of every metric here.

    Args:
        scores: float, shape (n_queries, n_items); larger ranks first.
        relevant: bool, same shape.
        stable: keep index order inside tie groups; with False the order inside a tie group is
            arbitrary, which none of the tie-aware metrics depends on (and the sort is faster).
    Returns:
        dict of arrays in ranked order (score descending): ``relevant`` (bool), ``cumulative``
        (relevant items up to and including each position), ``group_end`` (last position of the
        tie group of each position), ``at_group_end`` (``cumulative`` at that position),
        ``n_relevant`` (n_queries,), and the tie groups of more than one item as ``runs``:
        (row, first position, last position) int arrays.
    """
    scores = np.atleast_2d(np.asarray(scores))
    relevant = np.atleast_2d(np.asarray(relevant, dtype=bool))
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must have the same shape")
    n_queries, n_items = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable" if stable else None)
    ranked_scores = np.take_along_axis(scores, order, axis=1)
    ranked_relevant = np.take_along_axis(relevant, order, axis=1)
    cumulative = np.cumsum(ranked_relevant, axis=1, dtype=np.int32)
    group_end = np.empty(scores.shape, dtype=np.int32)
    group_end[:] = np.arange(n_items, dtype=np.int32)
    at_group_end = cumulative.copy()
    # Tie groups are usually rare (float scores): find the tied neighbours and fix only those.
    tie_rows, tie_columns = np.nonzero(ranked_scores[:, 1:] == ranked_scores[:, :-1])
    flat = tie_rows.astype(np.int64) * n_items + tie_columns
    if flat.size:
        new_run = np.ones(flat.size, dtype=bool)
        new_run[1:] = flat[1:] != flat[:-1] + 1
        run_first = flat[new_run]
        run_last = flat[np.append(new_run[1:], True)] + 1
        lengths = run_last - run_first + 1
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        members = np.repeat(run_first, lengths) + offsets
        last_of_member = np.repeat(run_last, lengths)
        group_end.ravel()[members] = last_of_member % n_items
        at_group_end.ravel()[members] = cumulative.ravel()[last_of_member]
        runs = (run_first // n_items, run_first % n_items, run_last % n_items)
    else:
        runs = (np.empty(0, np.int64),) * 3
    return {
        "relevant": ranked_relevant,
        "cumulative": cumulative,
        "group_end": group_end,
        "at_group_end": at_group_end,
        "n_relevant": ranked_relevant.sum(axis=1),
        "runs": runs,
    }


def _average_precision(stats: dict) -> np.ndarray:
    precision_at_group_end = stats["at_group_end"] / (stats["group_end"] + 1.0)
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
    """Expected number of relevant items in the top k over the orders of tied items."""
    cumulative = stats["cumulative"]
    n_queries, n_items = cumulative.shape
    k = min(k, n_items)
    start = np.full(n_queries, k - 1)
    end = np.full(n_queries, k - 1)
    rows, firsts, lasts = stats["runs"]
    straddling = (firsts <= k - 1) & (lasts >= k - 1)  # the tie group holding position k - 1, if any
    start[rows[straddling]] = firsts[straddling]
    end[rows[straddling]] = lasts[straddling]
    every = np.arange(n_queries)
    before = np.where(start > 0, cumulative[every, np.maximum(start - 1, 0)], 0)
    in_group = cumulative[every, end] - before
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
    if "best_from_here" not in stats:  # shared by every call on the same statistics
        precision = stats["at_group_end"] / (stats["group_end"] + 1.0)
        stats["best_from_here"] = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    at_end, best = stats["at_group_end"], stats["best_from_here"]
    result = np.full((len(at_end), len(recall_levels)), np.nan)
    targets = np.asarray(recall_levels, dtype=np.float64)
    for row, n_relevant in enumerate(stats["n_relevant"]):
        if n_relevant == 0:
            continue
        # relevant items found at a group end are non-decreasing along the ranking
        first = np.searchsorted(at_end[row], targets * n_relevant - 1e-9, side="left")
        result[row] = best[row, np.minimum(first, at_end.shape[1] - 1)]
    return result


def _map_at_k(ranked_relevant: np.ndarray) -> np.ndarray:
    """Hashing-convention AP of top-k lists (n_queries, k) of relevance, best first."""
    hits = np.cumsum(ranked_relevant, axis=1)
    precision = hits / np.arange(1, ranked_relevant.shape[1] + 1)
    retrieved = ranked_relevant.sum(axis=1)
    return np.where(retrieved > 0, (precision * ranked_relevant).sum(axis=1) / np.maximum(retrieved, 1), 0.0)


def _chunk_from_scores(scores, relevant, ks, map_at, levels) -> dict:
    stats = ranking_statistics(scores, relevant, stable=False)
    n_items = scores.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        result = {
            "ap": _average_precision(stats),
            "hits": {k: _expected_relevant_in_top(stats, k) for k in ks},
            "n_relevant": stats["n_relevant"].astype(np.float64),
            "curve": interpolated_precision(stats, levels),
            "eleven": interpolated_precision(stats, np.linspace(0.0, 1.0, 11)),
        }
    result["map_at"] = {}
    for k in map_at:  # ties by lower database index, as a search returns them
        _, columns = top_k(scores, min(k, n_items))
        result["map_at"][k] = _map_at_k(np.take_along_axis(relevant, columns, axis=1))
    return result


def _chunk_from_levels(ranks, relevant, n_levels, ks, map_at, levels) -> dict:
    """Metrics of rankings given as small integer levels (0 best; equal levels are ties),
    by counting items per level instead of sorting: O(n_items) per query."""
    n_queries, n_items = ranks.shape
    flat = (np.arange(n_queries)[:, None] * n_levels + ranks).ravel()
    total = np.bincount(flat, minlength=n_queries * n_levels).reshape(n_queries, n_levels)
    hits = np.bincount(flat, weights=relevant.ravel().astype(np.float64), minlength=n_queries * n_levels).reshape(
        n_queries, n_levels
    )
    cum_total, cum_hits = np.cumsum(total, axis=1), np.cumsum(hits, axis=1)
    n_relevant = cum_hits[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cum_total > 0, cum_hits / np.maximum(cum_total, 1), 0.0)
        ap = (hits * precision).sum(axis=1) / n_relevant
        recall = cum_hits / n_relevant[:, None]
    result = {"ap": ap, "n_relevant": n_relevant, "hits": {}, "map_at": {}}
    rows = np.arange(n_queries)
    for requested in ks:
        k = min(requested, n_items)
        level = (cum_total < k).sum(axis=1)  # the level holding the k-th item
        before_total = np.where(level > 0, cum_total[rows, np.maximum(level - 1, 0)], 0)
        before_hits = np.where(level > 0, cum_hits[rows, np.maximum(level - 1, 0)], 0.0)
        result["hits"][requested] = before_hits + hits[rows, level] * (k - before_total) / total[rows, level]
    best_from_here = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for name, recall_levels in (("curve", levels), ("eleven", np.linspace(0.0, 1.0, 11))):
        curve = np.full((n_queries, len(recall_levels)), np.nan)
        for j, target in enumerate(recall_levels):
            reached = recall >= target - 1e-12
            first, ok = reached.argmax(axis=1), reached.any(axis=1)
            curve[ok, j] = best_from_here[ok, first[ok]]
        result[name] = curve
    small = ranks.astype(np.uint16) if n_levels <= np.iinfo(np.uint16).max else ranks  # radix sort
    for k in map_at:
        order = np.argsort(small, axis=1, kind="stable")[:, :k]  # ties by lower database index
        result["map_at"][k] = _map_at_k(np.take_along_axis(relevant, order, axis=1))
    return result


def retrieval_metrics(
    query_features: np.ndarray | None,
    query_labels: np.ndarray,
    database_features: np.ndarray | None,
    database_labels: np.ndarray,
    ks: Sequence[int] = (1, 10, 100),
    map_at: Sequence[int] = (),
    exclude_self: bool = False,
    chunk_size: int = 256,
    curve_points: int = 11,
    normalize: bool = True,
    scores_fn=None,
    levels_fn=None,
    n_levels: int | None = None,
    workers: int | None = None,
    metric: str = "cosine",
) -> dict[str, float | np.ndarray]:
    """Evaluate the ranking of the whole database for every query ("same label" = relevant).

    The ranking is given by one of:

    * a registry distance between the features (`metric`; default cosine similarity, ranking
      by decreasing cosine; other distances rank by increasing distance), or ``scores_fn(rows) -> (len(rows),
      n_database)`` similarities (larger first); ranked by sorting;
    * ``levels_fn(rows) -> (len(rows), n_database)`` small non-negative integers, smaller
      first, equal values tied (Hamming distances; two-phase ranks), with `n_levels` their
      bound; ranked by counting, O(n_database) per query.

    Rows are processed `chunk_size` queries at a time: memory is O(chunk_size · n_database).

    Args:
        query_labels, database_labels: int, (n_queries,) and (n_database,).
        ks: cut-offs for precision@k and recall@k (tie-aware).
        map_at: cut-offs for mAP@k (hashing convention, see module docstring).
        exclude_self: the queries are the database (same order); drop each query's own item.
        normalize: L2-normalise both feature sets first. With False, "cosine" ranks by the raw inner
            product (pass already normalised features), and other metrics see the raw features.
        curve_points: recall levels of the interpolated precision–recall curve (11: TREC).
        workers: threads evaluating chunks in parallel (default: the number of CPUs); the
            callables must be thread-safe (pure NumPy functions are).
    Returns:
        ``map``, ``map11``, ``p<k>`` (precision@k), ``r<k>`` (recall@k), ``map<k>`` (mAP@k) (floats; the
        names of `METRIC_LABELS`, which `metrics.json` keys also use), ``pr_curve``
        (recall levels, mean interpolated precision: two float arrays) and ``average_precision``
        (per-query float64 array, NaN for queries without relevant items).
    Raises:
        ValueError: `levels_fn` without `n_levels`, or an unknown `metric`.
    """
    query_labels = np.asarray(query_labels)
    database_labels = np.asarray(database_labels)
    if levels_fn is not None and not n_levels:
        raise ValueError("levels_fn needs n_levels (an upper bound of its values + 1)")
    if scores_fn is None and levels_fn is None:
        if normalize:
            query_features, database_features = l2_normalize(query_features), l2_normalize(database_features)
        query_features = np.asarray(query_features, np.float32)
        database_features = np.asarray(database_features, np.float32)
        distance = get_distance(metric)

        def scores_fn(rows):
            if distance.name == "cosine":
                return query_features[rows] @ database_features.T
            values = distance.pairwise(query_features[rows], database_features)
            return -values if distance.smaller_is_closer else values

    levels = np.linspace(0.0, 1.0, curve_points)
    n_queries = len(query_labels)

    def evaluate(start: int) -> dict:
        rows = np.arange(start, min(start + chunk_size, n_queries))
        values = np.asarray(levels_fn(rows)) if levels_fn is not None else np.asarray(scores_fn(rows), np.float32)
        relevant = query_labels[rows, None] == database_labels[None, :]
        if exclude_self:
            keep = np.ones(relevant.shape, dtype=bool)
            keep[np.arange(len(rows)), rows] = False
            values = values[keep].reshape(len(rows), -1)
            relevant = relevant[keep].reshape(len(rows), -1)
        if levels_fn is not None:
            return _chunk_from_levels(values.astype(np.int64), relevant, n_levels, ks, map_at, levels)
        return _chunk_from_scores(values, relevant, ks, map_at, levels)

    # NumPy releases the GIL in its sorts and reductions: chunks run in parallel threads.
    with ThreadPoolExecutor(max_workers=max(1, min(workers or os.cpu_count() or 1, 8))) as pool:
        chunks = list(pool.map(evaluate, range(0, n_queries, chunk_size)))
    ap = np.concatenate([c["ap"] for c in chunks])
    n_relevant = np.concatenate([c["n_relevant"] for c in chunks])
    n_items = len(database_labels) - int(exclude_self)
    result: dict[str, float | np.ndarray] = {
        "map": float(np.nanmean(ap)),
        "map11": float(np.nanmean(np.nanmean(np.concatenate([c["eleven"] for c in chunks]), axis=1))),
    }
    for k in ks:
        hits = np.concatenate([c["hits"][k] for c in chunks])
        result[f"p{k}"] = float(np.mean(hits / min(k, n_items)))
        with np.errstate(invalid="ignore", divide="ignore"):
            result[f"r{k}"] = float(np.nanmean(hits / n_relevant))
    for k in map_at:
        result[f"map{k}"] = float(np.mean(np.concatenate([c["map_at"][k] for c in chunks])))
    result["pr_curve"] = (levels, np.nanmean(np.concatenate([c["curve"] for c in chunks]), axis=0))
    result["average_precision"] = ap
    return result


def precision_within_radius(
    query_words: np.ndarray,
    query_labels: np.ndarray,
    database_words: np.ndarray,
    database_labels: np.ndarray,
    radius: int = 2,
    query_chunk: int = 256,
) -> float:
    """Mean precision of the codes within Hamming `radius` of each query (DLBHC, Table 1 of many
    hashing papers). A query that retrieves nothing scores 0, the usual convention.

    Returns:
        float in [0, 1].
    """
    query_labels, database_labels = np.asarray(query_labels), np.asarray(database_labels)
    precisions = []
    for start in range(0, len(query_words), query_chunk):
        within = hamming_distances(query_words[start : start + query_chunk], database_words) <= radius
        relevant = query_labels[start : start + query_chunk, None] == database_labels[None, :]
        retrieved = within.sum(axis=1)
        precisions.append(np.where(retrieved > 0, (within & relevant).sum(axis=1) / np.maximum(retrieved, 1), 0.0))
    return float(np.mean(np.concatenate(precisions)))
