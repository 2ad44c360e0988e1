"""Exact search three ways: a BLAS matrix product (``flat``) and scikit-learn's space-partitioning
trees (``kdtree``: Bentley 1975, Friedman et al. 1977; ``balltree``: Omohundro 1989).

The trees are exact, but prune only while the ball of the current k-th distance reaches few cells:
in a few dimensions that is fast, in hundreds they visit nearly every leaf (notebook 05 measures it).
Cosine on unit rows is Euclidean ranking (‖a − b‖² = 2 − 2 cos), so both metrics use Euclidean trees.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import BallTree, KDTree

from cbir.retrieval.exact import exact_search
from cbir.retrieval.indexes.base import VectorIndex, register


@register
class FlatIndex(VectorIndex):
    """Exact search: one BLAS product per block of queries and database rows, then a partial sort
    (`cbir.retrieval.exact.exact_search`); ties by increasing index. No parameters."""

    kind = "flat"

    def _train(self, features: np.ndarray) -> None:
        self.vectors = np.empty((0, self.dim), np.float32)

    def _add(self, features: np.ndarray) -> None:
        self.vectors = np.concatenate([self.vectors, features])

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(queries, self.vectors, k=k, metric=self.metric, normalize=False)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.vectors = arrays["vectors"].astype(np.float32)


class _TreeIndex(VectorIndex):
    """A scikit-learn tree over the (unit, for cosine) rows; rebuilt from them on `add` and on load."""

    BUILD = {"leaf_size": 40}
    tree_class: type = KDTree

    def _train(self, features: np.ndarray) -> None:
        if int(self.params["leaf_size"]) < 1:
            raise ValueError(f"{self.kind}: leaf_size must be >= 1, got {self.params['leaf_size']}")
        self.vectors = np.empty((0, self.dim), np.float32)
        self.tree = None

    def _add(self, features: np.ndarray) -> None:
        self.vectors = np.concatenate([self.vectors, features])
        self.tree = self.tree_class(self.vectors, leaf_size=int(self.params["leaf_size"]))

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, indices = self.tree.query(queries, k=min(k, len(self.vectors)))
        if self.metric == "cosine":
            return self._scores(1.0 - distances**2 / 2.0), indices
        return self._scores(distances**2), indices

    def memory_bytes(self) -> int:
        data, indices, nodes, bounds = self.tree.get_arrays()
        return int(sum(np.asarray(a).nbytes for a in (data, indices, nodes, bounds)))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.vectors = arrays["vectors"].astype(np.float32)
        self.tree = self.tree_class(self.vectors, leaf_size=int(self.params["leaf_size"]))


@register
class KDTreeIndex(_TreeIndex):
    """scikit-learn's KD-tree (exact). Construction: ``leaf_size`` (40)."""

    kind = "kdtree"
    tree_class = KDTree


@register
class BallTreeIndex(_TreeIndex):
    """scikit-learn's ball tree (exact). Construction: ``leaf_size`` (40)."""

    kind = "balltree"
    tree_class = BallTree
