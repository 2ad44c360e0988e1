"""Approximate nearest-neighbour quality as ann-benchmarks measures it: recall@k against exact search,
and the Pareto frontier of (recall, queries per second).

Aumüller, Bernhardsson & Faithfull, "ANN-Benchmarks: a benchmarking tool for approximate nearest
neighbor algorithms", Information Systems 2020. Recall@k here is the fraction of the exact k nearest
neighbours (by index) that an index returns among its k results, averaged over queries; an index
that returns fewer than k results (padding index −1) loses the missing ones. ann-benchmarks counts
instead every result within the k-th true distance (+ 10⁻³); the two agree unless the data hold exact
duplicates or ties at the k-th distance, where matching by index is stricter.
"""

from __future__ import annotations

import numpy as np

__all__ = ["knn_recall", "pareto_frontier"]


def knn_recall(found_indices: np.ndarray, true_indices: np.ndarray, k: int) -> float:
    """Mean recall@k of approximate results against the exact neighbours.

    Args:
        found_indices: int, (n_queries, ≥ k): an index's results, best first; −1 = no result.
        true_indices: int, (n_queries, ≥ k): the exact nearest neighbours, best first.
        k: the cut-off (≥ 1).
    Returns:
        float in [0, 1]: mean over queries of |found[:k] ∩ true[:k]| / k.
    Raises:
        ValueError: k < 1, fewer than k columns, or different numbers of queries.
    """
    found_indices, true_indices = np.asarray(found_indices), np.asarray(true_indices)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if found_indices.ndim != 2 or true_indices.ndim != 2 or len(found_indices) != len(true_indices):
        raise ValueError(f"expected two (n_queries, k) arrays, got {found_indices.shape} and {true_indices.shape}")
    if found_indices.shape[1] < k or true_indices.shape[1] < k:
        raise ValueError(f"need at least k={k} columns, got {found_indices.shape[1]} and {true_indices.shape[1]}")
    found, true = found_indices[:, :k], true_indices[:, :k]
    # Results are distinct per row, so counting matches row by row is the size of the intersection.
    hits = (found[:, :, None] == true[:, None, :]) & (found[:, :, None] >= 0)
    return float(hits.any(axis=2).sum(axis=1).mean() / k)


def pareto_frontier(recall: np.ndarray, qps: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both recall and queries per second.

    A point is on the frontier when no other point has recall ≥ and qps ≥ with one of them strictly
    greater (ann-benchmarks draws these points per algorithm, joined by a line).

    Args:
        recall, qps: float, (n_points,).
    Returns:
        int64 indices of the frontier, by increasing recall (decreasing qps).
    Raises:
        ValueError: the arrays differ in shape or are not 1-D.
    """
    recall, qps = np.asarray(recall, float), np.asarray(qps, float)
    if recall.ndim != 1 or recall.shape != qps.shape:
        raise ValueError(f"expected two 1-D arrays of one length, got {recall.shape} and {qps.shape}")
    order = np.lexsort((-qps, -recall))  # by recall descending, then qps descending
    frontier, best_qps = [], -np.inf
    for i in order:
        if qps[i] > best_qps:
            frontier.append(i)
            best_qps = qps[i]
    return np.asarray(frontier[::-1], dtype=np.int64)
