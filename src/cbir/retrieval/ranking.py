"""Ranking primitives: L2 normalisation, top-k with a fixed tie rule, and the [0, 1] similarity score.

Similarity score. Every search returns a score in [0, 1] obtained from the cosine similarity
of L2-normalised features by ``score = (1 + cos) / 2``: 1 for the same direction, 0.5 for
orthogonal features, 0 for opposite ones. The mapping is monotonic, so ranking by score is
ranking by cosine. (Post-ReLU CNN features are non-negative, so their cosines lie in [0, 1] and
their scores in [0.5, 1]; learned embeddings use the whole range.)

Ties. Results are ordered by decreasing score and, among equal scores, by increasing database
index, so a search is deterministic whatever the chunking.
"""

from __future__ import annotations

import numpy as np


def l2_normalize(features: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm (rows of zeros stay zero).

    Args:
        features: float array, shape (n, dim).
    Returns:
        float32, shape (n, dim), unit rows.
    """
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), eps)


def cosine_to_score(cosine: np.ndarray) -> np.ndarray:
    """Map cosine similarities in [-1, 1] to scores in [0, 1]: ``(1 + cos) / 2`` (clipped for rounding)."""
    return np.clip((1.0 + np.asarray(cosine, dtype=np.float32)) / 2.0, 0.0, 1.0)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` best entries of each row: decreasing score, ties by increasing column.

    Args:
        scores: float array, shape (n_rows, n_columns).
        k: 1 <= k; values above n_columns return every column.
    Returns:
        (values, columns), each shape (n_rows, min(k, n_columns)).
    """
    n_rows, n_columns = scores.shape
    k = min(k, n_columns)
    if k == n_columns:
        columns = np.argsort(-scores, axis=1, kind="stable")
    else:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, candidates, axis=1).min(axis=1, keepdims=True)
        above = scores > kth
        equal = scores == kth
        needed = k - above.sum(axis=1, keepdims=True)
        chosen = above | (equal & (np.cumsum(equal, axis=1) <= needed))  # lowest columns among the ties
        columns = np.nonzero(chosen)[1].reshape(n_rows, k)
        order = np.argsort(-np.take_along_axis(scores, columns, axis=1), axis=1, kind="stable")
        columns = np.take_along_axis(columns, order, axis=1)
    return np.take_along_axis(scores, columns, axis=1), columns
