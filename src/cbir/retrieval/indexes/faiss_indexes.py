"""faiss's float indexes behind `VectorIndex` (Johnson, Douze & Jégou, "Billion-scale similarity search
with GPUs", IEEE TBD 2019; Douze et al., "The Faiss library", 2024).

* ``ivf_flat`` — an inverted file: a k-means coarse quantiser of ``nlist`` cells, each query scanning its
  ``nprobe`` nearest cells exhaustively (Sivic & Zisserman 2003; Jégou et al. 2011).
* ``pq`` — product quantisation (Jégou, Douze & Schmid, TPAMI 2011): ``m`` sub-vectors, each coded on
  ``nbits``; distances estimated from look-up tables over the whole database.
* ``ivfpq`` — both: PQ codes of the residuals within the probed cells (IVFADC).
* ``hnsw`` — a hierarchical navigable small-world graph (Malkov & Yashunin, TPAMI 2020) of ``M`` links
  per node, built with ``ef_construction`` and searched with a queue of ``ef_search``.

PQ and IVF-PQ keep the float vectors too: with ``refine = r > 0`` the top r·k candidates of the
compressed search are re-ranked exactly (faiss's ``IndexRefineFlat`` does the same); ``refine=0`` ranks
by the compressed distances alone. Cosine is the inner product of unit rows (``METRIC_INNER_PRODUCT``).
"""

from __future__ import annotations

import faiss
import numpy as np

from cbir.retrieval.exact import subset_inner_products
from cbir.retrieval.indexes.base import VectorIndex, register
from cbir.retrieval.ranking import top_k


class _FaissIndex(VectorIndex):
    """A faiss index held in ``self.index``; subclasses make it in `_make` and set search parameters."""

    def _faiss_metric(self) -> int:
        return faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2

    def _make(self):
        raise NotImplementedError

    def _train(self, features: np.ndarray) -> None:
        self.index = self._make()
        if not self.index.is_trained:
            self.index.train(features)

    def _add(self, features: np.ndarray) -> None:
        self.index.add(features)

    def _apply_search_params(self) -> None:
        """Push `self._search_params` into the faiss index (default: none)."""

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._apply_search_params()
        values, indices = self.index.search(queries, k)
        return self._scores(values), indices

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index(self.index).size)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"faiss": faiss.serialize_index(self.index)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.index = faiss.deserialize_index(np.ascontiguousarray(arrays["faiss"], dtype=np.uint8))


def _check_positive(kind: str, **values) -> None:
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"{kind}: {name} must be >= 1, got {value}")


class _Inverted:
    """What the inverted-file kinds share: the coarse quantiser, its training check and ``nprobe``."""

    def _quantizer(self):
        _check_positive(self.kind, nlist=self.params["nlist"])
        return faiss.IndexFlatIP(self.dim) if self.metric == "cosine" else faiss.IndexFlatL2(self.dim)

    def _train(self, features: np.ndarray) -> None:
        if len(features) < int(self.params["nlist"]):
            raise ValueError(f"{self.kind}: {len(features)} training vectors for nlist={self.params['nlist']} lists")
        super()._train(features)

    def _apply_search_params(self) -> None:
        self.index.nprobe = max(1, self._search_params["nprobe"])


@register
class IVFFlatIndex(_Inverted, _FaissIndex):
    """faiss ``IndexIVFFlat``. Construction: ``nlist`` (256). Search: ``nprobe`` (8)."""

    kind = "ivf_flat"
    BUILD = {"nlist": 256}
    SEARCH = {"nprobe": 8}

    def _make(self):
        return faiss.IndexIVFFlat(self._quantizer(), self.dim, int(self.params["nlist"]), self._faiss_metric())


class _RefinedIndex(_FaissIndex):
    """Compressed search, then exact re-ranking of ``refine × k`` candidates with the kept float vectors."""

    def _train(self, features: np.ndarray) -> None:
        m, nbits = int(self.params["m"]), int(self.params["nbits"])
        _check_positive(self.kind, m=m, nbits=nbits)
        if self.dim % m:
            raise ValueError(f"{self.kind}: m={m} sub-quantisers must divide the dimension {self.dim}")
        if len(features) < 2**nbits:
            raise ValueError(f"{self.kind}: {len(features)} training vectors for 2^{nbits} centroids per sub-quantiser")
        super()._train(features)
        self.vectors = np.empty((0, self.dim), np.float32)

    def _add(self, features: np.ndarray) -> None:
        super()._add(features)
        self.vectors = np.concatenate([self.vectors, features])
        self.squared_norms = np.sum(self.vectors**2, axis=1)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._apply_search_params()
        refine = self._search_params["refine"]
        if not refine:
            values, indices = self.index.search(queries, k)
            return self._scores(values), indices
        _, candidates = self.index.search(queries, min(refine * k, self.ntotal))
        return self._rerank(queries, candidates, k)

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # Candidates by increasing index (missing ones last), so that equal scores keep the project's tie rule.
        candidates = np.sort(np.where(candidates >= 0, candidates, np.iinfo(np.int64).max), axis=1)
        candidates = np.where(candidates == np.iinfo(np.int64).max, -1, candidates)
        safe = np.where(candidates >= 0, candidates, 0)
        values = subset_inner_products(queries, self.vectors, safe)  # fused gather-and-dot: no (q, c, dim) copy
        if self.metric == "euclidean":  # −‖v − q‖² = 2 v·q − ‖v‖² − ‖q‖²
            values = 2 * values - self.squared_norms[safe] - np.sum(queries**2, axis=1, keepdims=True)
        values = np.where(candidates >= 0, values, -np.inf)
        best_values, best = top_k(values, k)
        indices = np.take_along_axis(candidates, best, axis=1)
        scores = self._scores(best_values if self.metric == "cosine" else -best_values)
        return np.where(np.isfinite(best_values), scores, 0.0), np.where(np.isfinite(best_values), indices, -1)

    def memory_bytes(self) -> int:
        return super().memory_bytes() + int(self.vectors.nbytes)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "vectors": self.vectors}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.vectors = arrays["vectors"].astype(np.float32)
        self.squared_norms = np.sum(self.vectors**2, axis=1)


@register
class PQIndex(_RefinedIndex):
    """faiss ``IndexPQ`` + exact re-ranking. Construction: ``m`` (16), ``nbits`` (8). Search: ``refine`` (10)."""

    kind = "pq"
    BUILD = {"m": 16, "nbits": 8}
    SEARCH = {"refine": 10}

    def _make(self):
        return faiss.IndexPQ(self.dim, int(self.params["m"]), int(self.params["nbits"]), self._faiss_metric())


@register
class IVFPQIndex(_Inverted, _RefinedIndex):
    """faiss ``IndexIVFPQ`` + exact re-ranking. Construction: ``nlist`` (256), ``m`` (16), ``nbits`` (8).
    Search: ``nprobe`` (8), ``refine`` (10)."""

    kind = "ivfpq"
    BUILD = {"nlist": 256, "m": 16, "nbits": 8}
    SEARCH = {"nprobe": 8, "refine": 10}

    def _make(self):
        nlist, m, nbits = (int(self.params[key]) for key in ("nlist", "m", "nbits"))
        return faiss.IndexIVFPQ(self._quantizer(), self.dim, nlist, m, nbits, self._faiss_metric())


@register
class HNSWIndex(_FaissIndex):
    """faiss ``IndexHNSWFlat``. Construction: ``M`` (32), ``ef_construction`` (200). Search: ``ef_search`` (64)."""

    kind = "hnsw"
    BUILD = {"M": 32, "ef_construction": 200}
    SEARCH = {"ef_search": 64}

    def _make(self):
        _check_positive(self.kind, M=self.params["M"], ef_construction=self.params["ef_construction"])
        index = faiss.IndexHNSWFlat(self.dim, int(self.params["M"]), self._faiss_metric())
        index.hnsw.efConstruction = int(self.params["ef_construction"])
        return index

    def _apply_search_params(self) -> None:
        self.index.hnsw.efSearch = max(1, self._search_params["ef_search"])
