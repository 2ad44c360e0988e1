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
compressed search are re-ranked exactly (what faiss's ``IndexRefineFlat`` does, here with the project's
tie rule); ``refine=0`` ranks and scores by the compressed distances alone. Cosine is the inner product
of unit rows (``METRIC_INNER_PRODUCT``). The library never sets faiss's thread count: the caller does
(``faiss.omp_set_num_threads``).
"""

from __future__ import annotations

import faiss
import numpy as np

from cbir.retrieval.indexes.base import VectorIndex, _rows, register


def pq_subquantizers(dim: int, limit: int = 64) -> int:
    """The largest number of PQ sub-quantisers m ≤ `limit` that divides `dim` (faiss requires dim % m == 0)."""
    return max(d for d in range(1, min(dim, limit) + 1) if dim % d == 0)


class _FaissIndex(VectorIndex):
    """A faiss index held in ``self.index``, made empty at construction by `_make`."""

    def _faiss_metric(self) -> int:
        return faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2

    def _make(self):
        raise NotImplementedError

    def _reset(self) -> None:
        self.index = self._make()

    def _train(self, features: np.ndarray) -> None:
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
        """The faiss index's serialised size (vectors or codes, quantisers, lists, graph)."""
        return int(faiss.serialize_index(self.index).size)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"faiss": faiss.serialize_index(self.index)}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.index = faiss.deserialize_index(np.ascontiguousarray(arrays["faiss"], dtype=np.uint8))
        if self.index.d != self.dim:
            raise ValueError(f"the faiss index has dimension {self.index.d}, the header says {self.dim}")

    def _stored(self) -> int:
        return int(self.index.ntotal)


class _Inverted:
    """What the inverted-file kinds share: the coarse quantiser, its training check and ``nprobe``."""

    def _quantizer(self):
        return faiss.IndexFlatIP(self.dim) if self.metric == "cosine" else faiss.IndexFlatL2(self.dim)

    def _train(self, features: np.ndarray) -> None:
        if len(features) < self.params["nlist"]:
            raise ValueError(
                f"{self.kind}: training needs at least nlist={self.params['nlist']} vectors, got {len(features)}"
            )
        super()._train(features)

    def _apply_search_params(self) -> None:
        self.index.nprobe = self._search_params["nprobe"]


@register
class IVFFlatIndex(_Inverted, _FaissIndex):
    """faiss ``IndexIVFFlat``. Construction: ``nlist`` (256). Search: ``nprobe`` (8; ≥ nlist is exact)."""

    kind = "ivf_flat"
    BUILD = {"nlist": 256}
    SEARCH = {"nprobe": 8}
    SEARCH_RANGES = {"nprobe": (1, None)}

    def _check_params(self) -> None:
        self._int_param("nlist")

    def _make(self):
        return faiss.IndexIVFFlat(self._quantizer(), self.dim, self.params["nlist"], self._faiss_metric())


class _RefinedIndex(_FaissIndex):
    """Compressed search, then exact re-ranking of ``refine × k`` candidates with the kept float vectors."""

    def _check_params(self) -> None:
        m = self._int_param("m")
        self._int_param("nbits", 1, 16)
        if self.dim % m:
            raise ValueError(f"{self.kind}: m must divide the dimension {self.dim}, got m={m}")

    def _reset(self) -> None:
        super()._reset()
        self.vectors = np.empty((0, self.dim), np.float32)
        self.squared_norms = np.empty(0, np.float32)

    def _train(self, features: np.ndarray) -> None:
        nbits = self.params["nbits"]
        if len(features) < 2**nbits:
            raise ValueError(
                f"{self.kind}: training needs at least 2^nbits = {2**nbits} vectors (one per centroid), "
                f"got {len(features)}"
            )
        super()._train(features)

    def _add(self, features: np.ndarray) -> None:
        super()._add(features)
        self.vectors = np.concatenate([self.vectors, features])
        self.squared_norms = np.concatenate([self.squared_norms, np.sum(features**2, axis=1)])

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        refine = self._search_params["refine"]
        if not refine:
            return super()._search(queries, k)
        self._apply_search_params()
        _, candidates = self.index.search(queries, min(refine * k, self.ntotal))
        return self._rerank(queries, candidates, k, self.vectors, self.squared_norms)

    def memory_bytes(self) -> int:
        """The faiss index's serialised size plus the float vectors (and their norms) kept for re-ranking."""
        return super().memory_bytes() + int(self.vectors.nbytes + self.squared_norms.nbytes)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "vectors": self.vectors}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.vectors = _rows(arrays, "vectors", self.dim)
        self.squared_norms = np.sum(self.vectors**2, axis=1)
        if len(self.vectors) != self.index.ntotal:
            raise ValueError(f"{len(self.vectors)} float vectors for {self.index.ntotal} codes")


@register
class PQIndex(_RefinedIndex):
    """faiss ``IndexPQ`` + exact re-ranking. Construction: ``m`` (16, divides dim), ``nbits`` (8, ≤ 16).
    Search: ``refine`` (10; 0 = compressed distances only)."""

    kind = "pq"
    BUILD = {"m": 16, "nbits": 8}
    SEARCH = {"refine": 10}

    def _make(self):
        return faiss.IndexPQ(self.dim, self.params["m"], self.params["nbits"], self._faiss_metric())


@register
class IVFPQIndex(_Inverted, _RefinedIndex):
    """faiss ``IndexIVFPQ`` + exact re-ranking. Construction: ``nlist`` (256), ``m`` (16), ``nbits`` (8).
    Search: ``nprobe`` (8), ``refine`` (10)."""

    kind = "ivfpq"
    BUILD = {"nlist": 256, "m": 16, "nbits": 8}
    SEARCH = {"nprobe": 8, "refine": 10}
    SEARCH_RANGES = {"nprobe": (1, None)}

    def _check_params(self) -> None:
        self._int_param("nlist")
        super()._check_params()

    def _make(self):
        nlist, m, nbits = (self.params[key] for key in ("nlist", "m", "nbits"))
        return faiss.IndexIVFPQ(self._quantizer(), self.dim, nlist, m, nbits, self._faiss_metric())


@register
class HNSWIndex(_FaissIndex):
    """faiss ``IndexHNSWFlat``. Construction: ``M`` (32), ``ef_construction`` (200). Search: ``ef_search`` (64).
    Nothing to train (the graph grows as vectors are added)."""

    kind = "hnsw"
    BUILD = {"M": 32, "ef_construction": 200}
    SEARCH = {"ef_search": 64}
    SEARCH_RANGES = {"ef_search": (1, None)}
    needs_training = False

    def _check_params(self) -> None:
        self._int_param("M", 2)
        self._int_param("ef_construction")

    def _make(self):
        index = faiss.IndexHNSWFlat(self.dim, self.params["M"], self._faiss_metric())
        index.hnsw.efConstruction = self.params["ef_construction"]
        return index

    def _apply_search_params(self) -> None:
        self.index.hnsw.efSearch = self._search_params["ef_search"]
