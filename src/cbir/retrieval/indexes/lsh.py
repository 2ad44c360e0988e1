"""Locality-sensitive hashing with random hyperplanes (Charikar 2002; Indyk & Motwani 1998), multi-probe
(Lv et al., VLDB 2007), and exact re-ranking of the candidates.

`tables` hash tables each hash a vector to the signs of `bits` random projections (through the data
mean). A query's candidates are the union of its buckets in every table — with ``probes=1`` also the
`bits` buckets one bit away in each table (the nearest buckets of multi-probe LSH) — re-ranked by the
exact metric. More tables or probes: higher recall, more candidates to re-rank.
"""

from __future__ import annotations

import numpy as np

from cbir.retrieval.indexes.base import VectorIndex, register
from cbir.retrieval.ranking import top_k


@register
class LSHIndex(VectorIndex):
    """Random-hyperplane LSH (see the module docstring).

    Construction: ``tables`` (8), ``bits`` per table (12, at most 62), ``seed`` (0).
    Search: ``probes`` (0: the query's buckets only; 1: also every bucket at Hamming distance 1).
    """

    kind = "lsh"
    BUILD = {"tables": 8, "bits": 12, "seed": 0}
    SEARCH = {"probes": 0}

    def set_search_params(self, **params) -> None:
        super().set_search_params(**params)
        if self._search_params["probes"] > 1:
            raise ValueError(f"lsh: probes must be 0 or 1, got {self._search_params['probes']}")

    def _train(self, features: np.ndarray) -> None:
        tables, bits = int(self.params["tables"]), int(self.params["bits"])
        if tables < 1 or not 1 <= bits <= 62:
            raise ValueError(f"lsh: tables must be >= 1 and bits in [1, 62], got {tables} and {bits}")
        rng = np.random.default_rng(int(self.params["seed"]))
        self.mean = features.mean(axis=0) if len(features) else np.zeros(self.dim, np.float32)
        self.projections = rng.standard_normal((self.dim, tables * bits)).astype(np.float32)
        self.vectors = np.empty((0, self.dim), np.float32)
        self.keys = np.empty((0, tables), np.int64)

    def _hash(self, features: np.ndarray) -> np.ndarray:
        """int64 (n, tables): each table's bucket key (its bits as an integer)."""
        tables, bits = int(self.params["tables"]), int(self.params["bits"])
        signs = ((features - self.mean) @ self.projections > 0).reshape(len(features), tables, bits)
        return (signs.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(axis=2)

    def _add(self, features: np.ndarray) -> None:
        self.vectors = np.concatenate([self.vectors, features])
        self.keys = np.concatenate([self.keys, self._hash(features)])
        self._index_buckets()

    def _index_buckets(self) -> None:
        self.order = np.argsort(self.keys, axis=0, kind="stable")
        self.sorted_keys = np.take_along_axis(self.keys, self.order, axis=0)

    def _candidates(self, keys: np.ndarray) -> np.ndarray:
        """Database rows in the buckets `keys` (tables,) names, plus the 1-bit neighbours with probes=1."""
        bits = int(self.params["bits"])
        found = []
        for table, key in enumerate(keys):
            probe = [key] + ([key ^ (1 << b) for b in range(bits)] if self._search_params["probes"] else [])
            column = self.sorted_keys[:, table]
            starts = np.searchsorted(column, probe, side="left")
            stops = np.searchsorted(column, probe, side="right")
            found += [self.order[start:stop, table] for start, stop in zip(starts, stops) if stop > start]
        return np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.zeros((len(queries), k), np.float32)
        indices = np.full((len(queries), k), -1, np.int64)
        for row, (query, keys) in enumerate(zip(queries, self._hash(queries))):
            candidates = self._candidates(keys)
            if not len(candidates):
                continue
            vectors = self.vectors[candidates]
            if self.metric == "cosine":
                values = vectors @ query
            else:
                values = -np.sum((vectors - query) ** 2, axis=1)
            best_values, best = top_k(values[None], k)
            found = best.shape[1]
            indices[row, :found] = candidates[best[0]]
            scores[row, :found] = self._scores(best_values[0] if self.metric == "cosine" else -best_values[0])
        return scores, indices

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "projections": self.projections, "vectors": self.vectors, "keys": self.keys}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.projections = arrays["mean"], arrays["projections"]
        self.vectors, self.keys = arrays["vectors"].astype(np.float32), arrays["keys"].astype(np.int64)
        self._index_buckets()
