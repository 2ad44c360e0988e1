"""Exact (brute-force) cosine search in bounded memory, and the fused gather-and-dot of re-ranking.

Scores and ties follow `cbir.retrieval.ranking`.
"""

from __future__ import annotations

import numpy as np

from cbir.retrieval.distances import Distance, get_distance
from cbir.retrieval.ranking import cosine_to_score, l2_normalize, top_k


def _block_similarity(distance: Distance, queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Larger-is-closer values of a block: cosines of unit rows, or negated distances."""
    if distance.name == "cosine":
        return queries @ database.T
    values = distance.pairwise(queries, database)
    return -values if distance.smaller_is_closer else values


def exact_search(
    query_features: np.ndarray,
    database_features: np.ndarray,
    k: int = 10,
    query_chunk: int = 1024,
    database_chunk: int = 16384,
    normalize: bool = True,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of every query over the database under a registry distance, in bounded memory.

    The default, cosine, ranks by the inner product of L2-normalised rows (one BLAS product per
    block) and scores ``(1 + cos) / 2``. Any other name of `cbir.retrieval.distances` ranks by
    increasing distance and scores with that distance's ``to_score``.

    Only a (query_chunk × database_chunk) block of similarities exists at any time (64 MiB with
    the defaults); a running top-k is merged block by block, so a 100 000 × 512 database never
    builds a 100 000² matrix.

    Args:
        query_features: float, shape (n_queries, dim).
        database_features: float, shape (n_database, dim).
        k: results per query (capped at n_database).
        normalize: L2-normalise both sides first (set False when they already are; required
            for cosine).
        metric: a name or alias of the distance registry.
    Returns:
        (scores, indices), each shape (n_queries, min(k, n_database)); scores float32 in [0, 1]
        (see `cbir.retrieval.ranking`), indices int64 into the database, best first; equal
        scores by increasing index.
    Raises:
        ValueError: the dimensions differ, an input is not 2-D, k < 1, or an unknown metric.
    """
    distance = get_distance(metric)
    query_features = np.asarray(query_features, dtype=np.float32)
    database_features = np.asarray(database_features, dtype=np.float32)
    if query_features.ndim != 2 or database_features.ndim != 2:
        raise ValueError(f"features must be 2-D (n, dim); got {query_features.shape} and {database_features.shape}")
    if query_features.shape[1] != database_features.shape[1]:
        raise ValueError(f"query dim {query_features.shape[1]} != database dim {database_features.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if normalize:
        query_features, database_features = l2_normalize(query_features), l2_normalize(database_features)
    n_queries, n_database = len(query_features), len(database_features)
    k = min(k, n_database)
    all_scores = np.empty((n_queries, k), np.float32)
    all_indices = np.empty((n_queries, k), np.int64)
    for q0 in range(0, n_queries, query_chunk):
        queries = query_features[q0 : q0 + query_chunk]
        best_scores = np.empty((len(queries), 0), np.float32)
        best_indices = np.empty((len(queries), 0), np.int64)
        for d0 in range(0, n_database, database_chunk):
            block = _block_similarity(distance, queries, database_features[d0 : d0 + database_chunk])
            block_scores, block_columns = top_k(block, k)
            # Earlier blocks hold lower indices, so a stable sort keeps index order among ties.
            merged_scores = np.concatenate([best_scores, block_scores], axis=1)
            merged_indices = np.concatenate([best_indices, block_columns + d0], axis=1)
            order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(merged_scores, order, axis=1)
            best_indices = np.take_along_axis(merged_indices, order, axis=1)
        all_scores[q0 : q0 + len(queries)] = (
            cosine_to_score(best_scores) if distance.name == "cosine" else distance.to_score(-best_scores)
        )
        all_indices[q0 : q0 + len(queries)] = best_indices
    return all_scores, all_indices


def subset_inner_products(
    query_features: np.ndarray, database_features: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """Inner products of each query with its own candidate rows of the database.

    ``out[i, j] = query_features[i] · database_features[candidates[i, j]]``. This is the
    re-ranking step of a shortlist search; it is memory-bound (each candidate row is a random
    read), so it runs as faiss's fused gather-and-dot (``faiss.fvec_inner_products_by_idx``,
    OpenMP over queries): no (n_queries, m, dim) copy of the rows is made, 3-5× faster than
    NumPy's ``database[candidates[i]] @ query`` on two cores.

    Args:
        query_features: float, shape (n_queries, dim).
        database_features: float32, shape (n_database, dim) (other dtypes are copied).
        candidates: integer, shape (n_queries, m), each in [0, n_database).
    Returns:
        float32, shape (n_queries, m).
    Raises:
        ValueError: shapes that do not match, or a candidate index out of range.
    """
    import faiss  # lazily: only shortlist search needs it

    query_features = np.ascontiguousarray(query_features, dtype=np.float32)
    database_features = np.ascontiguousarray(database_features, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    if query_features.ndim != 2 or database_features.ndim != 2 or query_features.shape[1] != database_features.shape[1]:
        raise ValueError(f"features must be (n, dim) alike; got {query_features.shape} and {database_features.shape}")
    if candidates.shape[:1] != query_features.shape[:1] or candidates.ndim != 2:
        raise ValueError(f"candidates must be (n_queries={len(query_features)}, m), got {candidates.shape}")
    out = np.empty(candidates.shape, np.float32)
    if candidates.size == 0:
        return out
    if candidates.min() < 0 or candidates.max() >= len(database_features):
        raise ValueError(
            f"candidate indices must lie in [0, {len(database_features)}), got [{candidates.min()}, {candidates.max()}]"
        )
    faiss.fvec_inner_products_by_idx(
        faiss.swig_ptr(out),
        faiss.swig_ptr(query_features),
        faiss.swig_ptr(database_features),
        faiss.swig_ptr(candidates),
        database_features.shape[1],
        len(query_features),
        candidates.shape[1],
    )
    return out
