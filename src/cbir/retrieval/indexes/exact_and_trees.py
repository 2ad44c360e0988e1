"""Exact search three ways: a BLAS matrix product (``flat``) and scikit-learn's space-partitioning
trees (``kdtree``: Bentley 1975, Friedman et al. 1977; ``balltree``: Omohundro 1989).

The trees are exact, but prune only while the ball of the current k-th distance reaches few cells:
in a few dimensions that is fast, in hundreds they visit nearly every leaf (notebook 05 measures it).
Cosine on unit rows is Euclidean ranking (‖a − b‖² = 2 − 2 cos), so both metrics use Euclidean trees
and cosine scores are recovered from the distances, cos = 1 − d² / 2.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import BallTree, KDTree

from cbir.retrieval.exact import exact_search
from cbir.retrieval.indexes.base import VectorIndex, _rows, register


@register
class FlatIndex(VectorIndex):
    """Exact search: one BLAS product per block of queries and database rows, then a partial sort
    (`cbir.retrieval.exact.exact_search`) over the float32 rows (unit rows for cosine, normalised once
    when added); ties by increasing index. No parameters, nothing to train."""

    kind = "flat"
    needs_training = False

    def _reset(self) -> None:
        self.vectors = np.empty((0, self.dim), np.float32)

    def _add(self, features: np.ndarray) -> None:
        self.vectors = np.concatenate([self.vectors, features])

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(queries, self.vectors, k=k, metric=self.metric, normalize=False)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.vectors = _rows(arrays, "vectors", self.dim)

    def _stored(self) -> int:
        return len(self.vectors)


class _TreeIndex(VectorIndex):
    """A scikit-learn tree over the (unit, for cosine) rows, rebuilt on every `add` and on load. The tree
    holds the rows (as float64, scikit-learn's type); the file keeps them as float32."""

    BUILD = {"leaf_size": 40}
    needs_training = False
    tree_class: type = KDTree

    def _check_params(self) -> None:
        self._int_param("leaf_size")

    def _reset(self) -> None:
        self.tree = None

    def _vectors(self) -> np.ndarray:
        if self.tree is None:
            return np.empty((0, self.dim), np.float32)
        return np.asarray(self.tree.data, dtype=np.float32)

    def _grow(self, vectors: np.ndarray) -> None:
        self.tree = self.tree_class(vectors, leaf_size=self.params["leaf_size"]) if len(vectors) else None

    def _add(self, features: np.ndarray) -> None:
        self._grow(np.concatenate([self._vectors(), features]))

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, indices = self.tree.query(queries, k=min(k, self.ntotal))  # sorted, nearest first
        if self.metric == "cosine":
            return self._scores(1.0 - distances**2 / 2.0), indices
        return self._scores(distances**2), indices

    def memory_bytes(self) -> int:
        """Bytes of the tree's arrays: its float64 copy of the rows, index permutation, nodes and bounds."""
        if self.tree is None:
            return 0
        return int(sum(np.asarray(array).nbytes for array in self.tree.get_arrays()))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"vectors": self._vectors()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._grow(_rows(arrays, "vectors", self.dim))

    def _stored(self) -> int:
        return 0 if self.tree is None else len(self.tree.data)


@register
class KDTreeIndex(_TreeIndex):
    """scikit-learn's KD-tree (exact). Construction: ``leaf_size`` (40). No search parameters."""

    kind = "kdtree"
    tree_class = KDTree


@register
class BallTreeIndex(_TreeIndex):
    """scikit-learn's ball tree (exact). Construction: ``leaf_size`` (40). No search parameters."""

    kind = "balltree"
    tree_class = BallTree
