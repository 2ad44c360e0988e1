"""The one registry of distances, keyed by the names scipy uses (`scipy.spatial.distance.cdist`), plus
two histogram distances scipy lacks (``chi2``, ``intersection``).

Search (`cbir.retrieval.exact.exact_search`), evaluation (`cbir.evaluation.retrieval`,
`cbir.evaluation.triplets`) and — through the differentiable twin `cbir.models.distances` — the
metric-learning losses all look distances up here, so a name means the same thing everywhere and an
unknown name fails the same way. Every value equals `cdist`'s (tested for every scipy name).

Each entry says whether smaller means closer (rankers never hard-code a sign) and how a value maps
to a similarity score in [0, 1] (1 = identical), the score every search reports:

=================  ========================  ===========================================  ===============
name (scipy)       aliases                   value                                        score
=================  ========================  ===========================================  ===============
``cosine``         ``angular``               1 − cos(a, b), in [0, 2]                     1 − d / 2
``correlation``    —                         1 − Pearson correlation, in [0, 2]           1 − d / 2
``sqeuclidean``    ``squared-L2``            ‖a − b‖²                                     1 / (1 + d)
``euclidean``      ``L2``                    ‖a − b‖                                      1 / (1 + d)
``cityblock``      ``L1``, ``manhattan``     ‖a − b‖₁                                     1 / (1 + d)
``chebyshev``      —                         max |a − b|                                  1 / (1 + d)
``minkowski``      —                         ‖a − b‖₃ (p = 3)                             1 / (1 + d)
``canberra``       —                         Σ |a − b| / (|a| + |b|)                      1 / (1 + d)
``braycurtis``     —                         Σ |a − b| / Σ |a + b|                        1 / (1 + d)
``hamming``        —                         fraction of coordinates that differ          1 − d
``jaccard``        —                         Jaccard dissimilarity of booleans (≠ 0)      1 − d
``dice``           —                         Dice dissimilarity of booleans (≠ 0)         1 − d
``chi2``           —                         ½ Σ (a − b)² / (a + b), 0/0 terms count 0    1 − d
``intersection``   —                         1 − Σ min(a, b)                              1 − d
=================  ========================  ===========================================  ===============

``chi2`` and ``intersection`` are not scipy names: they are the histogram distances of the classic
descriptors (`cbir.descriptors`), meant for L1-normalised, non-negative histograms, for which both lie
in [0, 1]: the χ² distance as Puzicha et al. (1997) and Zhang et al. (IJCV 2007) use it, histogram
intersection after Swain & Ballard (1991). Scores are clipped to [0, 1] for other inputs.

The cosine, correlation and Euclidean family are BLAS matrix products; cityblock, minkowski, canberra,
braycurtis, hamming, jaccard and dice run compiled, parallel kernels (`cbir.retrieval._distance_kernels`;
``benchmarks/bench_distances.py`` times them against `cdist`); chebyshev is scipy's (a kernel was
slower). The remaining `cdist` names (``jensenshannon``, ``seuclidean``, ``matching``,
``rogerstanimoto``, ``russellrao``, ``sokalsneath``, ``yule``) are computed by scipy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

from cbir.retrieval import _distance_kernels as kernels

__all__ = ["ALIASES", "DISTANCES", "Distance", "get_distance", "pairwise_distances", "resolve_name"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - _unit(x) @ _unit(y).T, 0.0)


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _cosine(x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True))


def _sqeuclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    squared = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ y.T) + (y * y).sum(axis=1)[None, :]
    return np.maximum(squared, 0.0)


def _euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(_sqeuclidean(x, y))


def _compiled(kernel, *options) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), len(y)), np.float64)
        x, y = np.ascontiguousarray(x, np.float64), np.ascontiguousarray(y, np.float64)
        kernel(x, y, out, *options)
        return out

    pairwise.__name__ = f"compiled_{kernel.__name__}"
    return pairwise


def _half_range(d: np.ndarray) -> np.ndarray:
    return 1.0 - d / 2.0


def _complement(d: np.ndarray) -> np.ndarray:
    return 1.0 - d


def _inverse(d: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + d)


def _clipped_complement(d: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - d, 0.0, 1.0)


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


MINKOWSKI_P = 3.0  # the p of the registry's "minkowski"
_SCIPY_ONLY = ("jensenshannon", "seuclidean", "matching", "rogerstanimoto", "russellrao", "sokalsneath", "yule")

DISTANCES: dict[str, Distance] = {
    "cosine": Distance("cosine", _cosine, _half_range),
    "correlation": Distance("correlation", _correlation, _half_range),
    "sqeuclidean": Distance("sqeuclidean", _sqeuclidean),
    "euclidean": Distance("euclidean", _euclidean),
    "cityblock": Distance("cityblock", _compiled(kernels.cityblock)),
    "chebyshev": Distance("chebyshev", _scipy("chebyshev")),  # scipy's loop is faster than a kernel here
    "minkowski": Distance("minkowski", _compiled(kernels.minkowski, MINKOWSKI_P)),
    "canberra": Distance("canberra", _compiled(kernels.canberra)),
    "braycurtis": Distance("braycurtis", _compiled(kernels.braycurtis)),
    "hamming": Distance("hamming", _compiled(kernels.hamming), _complement),
    "jaccard": Distance("jaccard", _compiled(kernels.jaccard), _complement),
    "dice": Distance("dice", _compiled(kernels.dice), _complement),
    "chi2": Distance("chi2", _compiled(kernels.chi2), _clipped_complement),
    "intersection": Distance("intersection", _compiled(kernels.intersection), _clipped_complement),
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
