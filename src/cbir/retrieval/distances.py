"""The one registry of distances, keyed by the names scipy uses (`scipy.spatial.distance.cdist`).

Search (`cbir.retrieval.exact.exact_search`), evaluation (`cbir.evaluation.retrieval`) and — through
the differentiable twin `cbir.models.distances` — the metric-learning losses all look distances up
here, so a name means the same thing everywhere and an unknown name fails the same way.

Each entry says whether smaller means closer (rankers never hard-code a sign) and how a value maps
to a similarity score in [0, 1] (1 = identical), the score every search reports:

=================  ========================  ===========================================  ===============
name (scipy)       aliases                   value                                        score
=================  ========================  ===========================================  ===============
``cosine``         ``angular``               1 − cos(a, b), in [0, 2]                     1 − d / 2
``sqeuclidean``    ``squared-L2``            ‖a − b‖², in [0, 4] for unit vectors         1 / (1 + d)
``euclidean``      ``L2``                    ‖a − b‖                                      1 / (1 + d)
``cityblock``      ``L1``, ``manhattan``     ‖a − b‖₁                                     1 / (1 + d)
``hamming``        —                         fraction of coordinates that differ          1 − d
``correlation``    —                         1 − Pearson correlation, in [0, 2]           1 − d / 2
other scipy names  —                         as `scipy.spatial.distance.cdist` computes   1 / (1 + d)
=================  ========================  ===========================================  ===============

Every name `cdist` accepts for float vectors is in the registry (``canberra``, ``chebyshev``,
``braycurtis``, ``jensenshannon``, ``minkowski``, and the boolean ``dice``, ``jaccard``, ``matching``,
``rogerstanimoto``, ``russellrao``, ``sokalsneath``, ``yule``). The cosine and
Euclidean family use BLAS matrix products; the rest are computed by scipy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["ALIASES", "DISTANCES", "Distance", "get_distance", "pairwise_distances", "resolve_name"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - _unit(x) @ _unit(y).T, 0.0)


def _sqeuclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    squared = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ y.T) + (y * y).sum(axis=1)[None, :]
    return np.maximum(squared, 0.0)


def _euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(_sqeuclidean(x, y))


def _half_range(d: np.ndarray) -> np.ndarray:
    return 1.0 - d / 2.0


def _complement(d: np.ndarray) -> np.ndarray:
    return 1.0 - d


def _inverse(d: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + d)


@dataclass(frozen=True)
class Distance:
    """A distance between row vectors.

    Attributes:
        name: scipy's name.
        pairwise: ``(x (n, d), y (m, d)) -> (n, m)`` distances, float.
        to_score: maps distances to similarity scores in [0, 1], monotonically decreasing.
        smaller_is_closer: True for every distance here; kept so rankers never assume the sign.
    """

    name: str
    pairwise: Callable[[np.ndarray, np.ndarray], np.ndarray]
    to_score: Callable[[np.ndarray], np.ndarray] = _inverse
    smaller_is_closer: bool = True


def _scipy(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return cdist(x, y, name)

    pairwise.__name__ = f"cdist_{name}"
    return pairwise


_SCIPY_ONLY = (
    "braycurtis",
    "canberra",
    "chebyshev",
    "jensenshannon",
    "minkowski",
    "seuclidean",
    "dice",
    "jaccard",
    "matching",
    "rogerstanimoto",
    "russellrao",
    "sokalsneath",
    "yule",
)

DISTANCES: dict[str, Distance] = {
    "cosine": Distance("cosine", _cosine, _half_range),
    "sqeuclidean": Distance("sqeuclidean", _sqeuclidean),
    "euclidean": Distance("euclidean", _euclidean),
    "cityblock": Distance("cityblock", _scipy("cityblock")),
    "hamming": Distance("hamming", _scipy("hamming"), _complement),
    "correlation": Distance("correlation", _scipy("correlation"), _half_range),
    **{name: Distance(name, _scipy(name)) for name in _SCIPY_ONLY},
}
ALIASES = {
    "L2": "euclidean",
    "squared-L2": "sqeuclidean",
    "angular": "cosine",
    "L1": "cityblock",
    "manhattan": "cityblock",
}


def resolve_name(name: str) -> str:
    """The registry name of `name` (a scipy name or an alias).

    Raises:
        ValueError: unknown name; the message lists the valid names and aliases.
    """
    key = ALIASES.get(name, name)
    if key not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; expected one of {sorted(DISTANCES) + sorted(ALIASES)}")
    return key


def get_distance(name: str) -> Distance:
    """Look up a distance by scipy name or alias (see `resolve_name` for the error)."""
    return DISTANCES[resolve_name(name)]


def pairwise_distances(x: np.ndarray, y: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Distances between every row of `x` and every row of `y`.

    Args:
        x: float, shape (n, dim); y: float, shape (m, dim).
        metric: a registry name or alias.
    Returns:
        float64 array, shape (n, m).
    Raises:
        ValueError: unknown metric, inputs not 2-D, or different dimensions.
    """
    distance = get_distance(metric)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected (n, dim) and (m, dim) arrays, got {x.shape} and {y.shape}")
    return distance.pairwise(x, y)
