"""Differentiable twins of the registry distances (`cbir.retrieval.distances`), for the losses.

Names and aliases are the registry's (`cbir.retrieval.distances.resolve_name`); this module adds,
for the distances a loss can train with, a `keras.ops` version of the (n, n) matrix between the
rows of one batch, on backend tensors and NumPy arrays alike.

=================  =========================  ===========================================
name (scipy)       aliases                    value
=================  =========================  ===========================================
``euclidean``      ``L2`` (TFA's default)     ||a - b||₂, with a zero-safe gradient
``sqeuclidean``    ``squared-L2``             ||a - b||₂²
``cosine``         ``angular`` (TFA)          1 - cos(a, b), clipped at 0
``cityblock``      ``L1``, ``manhattan``      ||a - b||₁
``hamming``        —                          fraction of coordinates that differ
=================  =========================  ===========================================

The diagonal of every pairwise matrix is exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keras import ops

from cbir.retrieval.distances import resolve_name

__all__ = ["DISTANCES", "Distance", "get_distance", "pairwise_distance"]


def _zero_diagonal(matrix):
    n = ops.shape(matrix)[0]
    return matrix * (1.0 - ops.eye(n, dtype=matrix.dtype))


def _squared_euclidean(embeddings):
    squared_norms = ops.sum(ops.square(embeddings), axis=1, keepdims=True)
    distances = squared_norms - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings)) + ops.transpose(squared_norms)
    return _zero_diagonal(ops.maximum(distances, 0.0))


def _euclidean(embeddings):
    squared = _squared_euclidean(embeddings)
    # sqrt has an infinite gradient at 0 (identical embeddings, the diagonal): take the root of a
    # value kept away from 0 there, then zero those entries.
    zero = ops.cast(squared <= 0.0, squared.dtype)
    return ops.sqrt(squared + zero * 1e-16) * (1.0 - zero)


def _cosine(embeddings):
    unit = embeddings / ops.maximum(ops.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return _zero_diagonal(ops.maximum(1.0 - ops.matmul(unit, ops.transpose(unit)), 0.0))


def _cityblock(embeddings):
    return ops.sum(ops.abs(embeddings[:, None, :] - embeddings[None, :, :]), axis=-1)


def _hamming(embeddings):
    return ops.mean(ops.cast(ops.not_equal(embeddings[:, None, :], embeddings[None, :, :]), "float32"), axis=-1)


@dataclass(frozen=True)
class Distance:
    """A pairwise distance: ``function(embeddings (n, d)) -> (n, n)``, and its direction."""

    name: str
    function: Callable
    smaller_is_closer: bool = True


DISTANCES: dict[str, Distance] = {
    "euclidean": Distance("euclidean", _euclidean),
    "sqeuclidean": Distance("sqeuclidean", _squared_euclidean),
    "cosine": Distance("cosine", _cosine),
    "cityblock": Distance("cityblock", _cityblock),
    "hamming": Distance("hamming", _hamming),
}


def get_distance(name: str) -> Distance:
    """Look up the differentiable version of a registry distance by scipy name or alias.

    Raises:
        ValueError: unknown name (listing the valid ones), or a registry distance without a
            differentiable version here (listing those that have one).
    """
    key = resolve_name(name)
    if key not in DISTANCES:
        raise ValueError(f"distance {name!r} has no differentiable version; a loss can use {sorted(DISTANCES)}")
    return DISTANCES[key]


def pairwise_distance(embeddings, distance: str | Callable = "euclidean"):
    """The (n, n) matrix of distances between the rows of `embeddings` (n, d).

    Args:
        distance: a registry name / alias, or a callable returning the pairwise matrix.
    """
    function = distance if callable(distance) else get_distance(distance).function
    return function(ops.convert_to_tensor(embeddings))
