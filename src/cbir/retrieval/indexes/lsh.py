"""Locality-sensitive hashing with random hyperplanes (Charikar 2002; Indyk & Motwani 1998), multi-probe
(Lv et al., VLDB 2007), and exact re-ranking of the candidates.

`tables` hash tables each hash a vector to the signs of `bits` random Gaussian projections (hyperplanes
through the training mean): two vectors at angle θ share a bit with probability 1 − θ / π, a bucket
with (1 − θ / π)^bits. A query's candidates are the union of its bucket in every table — with
``probes=1`` also the `bits` buckets one bit away in each table (the nearest buckets of multi-probe
LSH) — re-ranked by the exact metric (ties by lower index); fewer than k candidates leave −1 at the
end. More tables or probes: higher recall, more candidates to re-rank. Buckets are the sorted column of
each table's keys (a binary search per probed bucket), not a dict; candidate gathering is vectorised
over a chunk of queries, and the re-ranking is faiss's fused gather-and-dot
(`cbir.retrieval.exact.subset_inner_products`).
"""

from __future__ import annotations

import numpy as np

from cbir.retrieval.indexes.base import VectorIndex, _rows, register

_QUERY_CHUNK = 64  # queries whose candidate lists (int64, padded to the longest) are re-ranked together


@register
class LSHIndex(VectorIndex):
    """Random-hyperplane LSH (see the module docstring).

    Construction: ``tables`` (8), ``bits`` per table (12, in [1, 62]), ``seed`` (0) of the hyperplanes.
    Search: ``probes`` (0: the query's buckets only; 1: also every bucket at Hamming distance 1).
    Training learns the mean the hyperplanes pass through (any number of vectors ≥ 1).
    """

    kind = "lsh"
    BUILD = {"tables": 8, "bits": 12, "seed": 0}
    SEARCH = {"probes": 0}
    SEARCH_RANGES = {"probes": (0, 1)}

    def _check_params(self) -> None:
        self._int_param("tables")
        self._int_param("bits", 1, 62)
        self._int_param("seed", 0)

    def _train(self, features: np.ndarray) -> None:
        if not len(features):
            raise ValueError("lsh: training needs at least 1 vector (for the mean), got 0")
        tables, bits = self.params["tables"], self.params["bits"]
        rng = np.random.default_rng(self.params["seed"])
        self.mean = features.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.projections = rng.standard_normal((self.dim, tables * bits)).astype(np.float32)
        self.vectors = np.empty((0, self.dim), np.float32)
        self.squared_norms = np.empty(0, np.float32)
        self.keys = np.empty((0, tables), np.int64)
        self._index_buckets()

    def _hash(self, features: np.ndarray) -> np.ndarray:
        """int64 (n, tables): each table's bucket key (its bits as an integer, bit b worth 2^b)."""
        tables, bits = self.params["tables"], self.params["bits"]
        signs = ((features - self.mean) @ self.projections > 0).reshape(len(features), tables, bits)
        return (signs.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(axis=2)

    def _add(self, features: np.ndarray) -> None:
        self.vectors = np.concatenate([self.vectors, features])
        self.squared_norms = np.concatenate([self.squared_norms, np.sum(features**2, axis=1)])
        self.keys = np.concatenate([self.keys, self._hash(features)])
        self._index_buckets()

    def _index_buckets(self) -> None:
        """Per table, the rows sorted by key (`order`) and the sorted keys: a bucket is a run of equal keys."""
        self.order = np.argsort(self.keys, axis=0, kind="stable")
        self.sorted_keys = np.take_along_axis(self.keys, self.order, axis=0)

    def _candidates(self, keys: np.ndarray) -> np.ndarray:
        """int64 (n_queries, width): each query's candidates — the rows in its bucket of every table (and,
        with probes=1, in the buckets one bit away) — unique, by increasing row, −1 after the last.

        Vectorised over queries, tables and probes: a binary search per probed bucket in the table's
        sorted keys gives a run of `order`; the runs are expanded, de-duplicated per query and packed.
        """
        n_queries, tables = keys.shape
        bits = self.params["bits"]
        flips = np.concatenate([[0], 1 << np.arange(bits, dtype=np.int64)]) if self._search_params["probes"] else [0]
        probes = keys[:, :, None] ^ np.asarray(flips, np.int64)[None, None, :]  # (n_queries, tables, probes)
        starts, stops = np.empty_like(probes), np.empty_like(probes)
        for table in range(tables):
            column = self.sorted_keys[:, table]
            starts[:, table] = np.searchsorted(column, probes[:, table], side="left")
            stops[:, table] = np.searchsorted(column, probes[:, table], side="right")
        lengths = (stops - starts).ravel()
        # Position j of run r is starts[r] + j: expand every run without a Python loop.
        first = np.repeat(starts.ravel() - (np.cumsum(lengths) - lengths), lengths)
        positions = first + np.arange(lengths.sum())
        table_of = np.repeat(np.broadcast_to(np.arange(tables)[None, :, None], probes.shape).ravel(), lengths)
        query_of = np.repeat(np.arange(n_queries), tables * probes.shape[2])
        pairs = np.unique(np.repeat(query_of, lengths) * self.ntotal + self.order[positions, table_of])
        query_of, rows = np.divmod(pairs, self.ntotal)  # sorted by query, then row
        counts = np.bincount(query_of, minlength=n_queries)
        candidates = np.full((n_queries, counts.max(initial=0)), -1, np.int64)
        candidates[query_of, np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)] = rows
        return candidates

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.zeros((len(queries), k), np.float32)
        indices = np.full((len(queries), k), -1, np.int64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            chunk = queries[start : start + _QUERY_CHUNK]
            candidates = self._candidates(self._hash(chunk))
            if candidates.shape[1]:
                found_scores, found = self._rerank(chunk, candidates, k, self.vectors, self.squared_norms)
                scores[start : start + len(chunk), : found.shape[1]] = found_scores
                indices[start : start + len(chunk), : found.shape[1]] = found
        return scores, indices

    def memory_bytes(self) -> int:
        """Vectors and their squared norms, keys, the per-table sorted keys and their row order, the mean and
        the hyperplanes."""
        extra = self.order.nbytes + self.sorted_keys.nbytes + self.squared_norms.nbytes
        return super().memory_bytes() + int(extra)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "projections": self.projections, "vectors": self.vectors, "keys": self.keys}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        tables, bits = self.params["tables"], self.params["bits"]
        self.mean = np.asarray(arrays["mean"], np.float32).reshape(self.dim)
        self.projections = np.asarray(arrays["projections"], np.float32).reshape(self.dim, tables * bits)
        self.vectors = _rows(arrays, "vectors", self.dim)
        self.squared_norms = np.sum(self.vectors**2, axis=1)
        self.keys = np.asarray(arrays["keys"], np.int64).reshape(-1, tables)
        if len(self.keys) != len(self.vectors):
            raise ValueError(f"{len(self.keys)} rows of keys for {len(self.vectors)} vectors")
        self._index_buckets()

    def _stored(self) -> int:
        return len(self.vectors)
