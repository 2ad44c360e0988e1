"""Binary-code indexes: the project's two-phase search and faiss's binary HNSW and IVF.

Codes come from an unsupervised encoder fitted at `train` (``encoder="itq"`` or ``"lsh"``, ``bits``,
``seed``; `cbir.retrieval.binary_codes`) on the prepared rows (unit rows for cosine), or are given as
they are with `build_from_codes` / `add_codes` / `search_codes` (e.g. DLBHC's learned codes, bool
(n, bits)).

* ``two_phase`` — DLBHC's coarse-to-fine search (Lin et al., CVPRW 2015): the ``shortlist`` nearest
  codes in Hamming distance (`cbir.retrieval.hamming.hamming_top_k`, ties by lower index), re-ranked by
  the exact cosine of the float vectors (`cbir.retrieval.hash_index.HashIndex`); ``shortlist=0`` ranks
  by Hamming alone (score ``1 − d / bits``). Cosine only: the re-ranking is cosine's.
* ``binary_hnsw`` — faiss ``IndexBinaryHNSW``: an HNSW graph under Hamming distance (``M``; ``ef_search``).
* ``binary_ivf`` — faiss ``IndexBinaryIVF``: a binary k-means coarse quantiser of ``nlist`` cells
  (``nprobe``).

The faiss kinds rank by Hamming distance (score ``1 − d / bits``; faiss orders equal distances its own
way) and need a code length that is a multiple of 8 (faiss stores bytes). With ``keep_vectors=True``
they also keep the float vectors, and search parameter ``refine = r > 0`` re-ranks the r·k nearest codes
exactly by the index's metric (scores as the float kinds'), as ``pq``'s refine does.
"""

from __future__ import annotations

import faiss
import numpy as np

from cbir.retrieval.binary_codes import ENCODERS, make_encoder
from cbir.retrieval.hamming import pack_codes
from cbir.retrieval.hash_index import HashIndex
from cbir.retrieval.indexes.base import VectorIndex, _check_k, _pad, _rows, register


class _BinaryIndex(VectorIndex):
    """Codes from an encoder (or given), plus what each kind searches them with."""

    def _check_params(self) -> None:
        if self.params["encoder"] not in ENCODERS:
            raise ValueError(f"{self.kind}: encoder must be one of {sorted(ENCODERS)}, got {self.params['encoder']!r}")
        bits = self._int_param("bits")
        self._int_param("seed", 0)
        if self.params["encoder"] == "itq" and bits > self.dim:
            raise ValueError(f"{self.kind}: ITQ codes need bits <= dim = {self.dim}, got bits={bits}")

    @property
    def bits(self) -> int:
        return self.params["bits"]

    def _reset(self) -> None:
        self.encoder = None

    def _train(self, features: np.ndarray) -> None:
        self.encoder = make_encoder(self.params["encoder"], self.bits, seed=self.params["seed"]).fit(features)
        self._train_codes(self.encoder.encode(features))

    def _train_codes(self, codes: np.ndarray) -> None:  # noqa: B027 - a hook
        """Prepare the code structure from training codes, bool (n, bits) (default: nothing to learn)."""

    def _encode(self, features: np.ndarray) -> np.ndarray:
        if self.encoder is None:
            raise ValueError(f"{self.kind}: built from given codes; use add_codes / search_codes")
        return self.encoder.encode(features)

    def _add(self, features: np.ndarray) -> None:
        self._add_codes(self._encode(features), features)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search_codes(self._encode(queries), queries, k)

    def build_from_codes(self, codes: np.ndarray, features: np.ndarray | None = None) -> VectorIndex:
        """Index given codes, bool (n, bits), with no encoder (and their float vectors, float (n, dim),
        which ``two_phase`` and ``keep_vectors`` need); returns self.

        Raises:
            ValueError: codes of another length, features missing where needed or of another shape, or
                an index that already holds vectors.
        """
        if self.ntotal:
            raise ValueError(f"{self.kind}: build_from_codes on an index that already holds {self.ntotal} vectors")
        self._train_codes(self._check_codes(codes))
        self.trained = True
        return self.add_codes(codes, features)

    def add_codes(self, codes: np.ndarray, features: np.ndarray | None = None) -> VectorIndex:
        """Add given codes, bool (n, bits) (and their float vectors); indices continue from `ntotal`."""
        if not self.trained:
            raise ValueError(f"{self.kind}: train the index or use build_from_codes before add_codes")
        codes = self._check_codes(codes)
        prepared = self._prepare(features) if features is not None else None
        if prepared is not None and len(prepared) != len(codes):
            raise ValueError(f"{self.kind}: {len(codes)} codes but {len(prepared)} feature rows")
        self._add_codes(codes, prepared)
        self.ntotal += len(codes)
        return self

    def search_codes(
        self, query_codes: np.ndarray, k: int, query_features: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`search` with given query codes, bool (n_queries, bits) (and float queries where re-ranking
        needs them: ``two_phase`` with a shortlist, ``refine``). Same returns as `search`.

        Raises:
            ValueError: k < 1, codes or features of the wrong shape, or float queries missing.
        """
        _check_k(k)
        query_codes = self._check_codes(query_codes)
        queries = self._prepare(query_features) if query_features is not None else None
        if self.ntotal == 0 or len(query_codes) == 0:
            return _pad(np.zeros((len(query_codes), 0)), np.zeros((len(query_codes), 0)), k)
        return _pad(*self._search_codes(query_codes, queries, k), k)

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.bits:
            raise ValueError(f"{self.kind}: expected codes of shape (n, {self.bits}), got {codes.shape}")
        return codes.astype(bool)

    def _encoder_arrays(self) -> dict[str, np.ndarray]:
        if self.encoder is None:
            return {}
        _, arrays = self.encoder.get_state()
        return {f"encoder_{name}": value for name, value in arrays.items()}

    def _restore_encoder(self, arrays: dict[str, np.ndarray]) -> None:
        state = {name[len("encoder_") :]: value for name, value in arrays.items() if name.startswith("encoder_")}
        if state:
            params = {"bits": self.bits, "seed": self.params["seed"]}
            self.encoder = ENCODERS[self.params["encoder"]].from_state(params, state)


@register
class TwoPhaseIndex(_BinaryIndex):
    """Hamming shortlist + exact cosine re-ranking (see the module docstring).

    Construction: ``encoder`` ("itq"), ``bits`` (64), ``seed`` (0). Search: ``shortlist`` (1000; 0 =
    Hamming ranking only; below k it is raised to k). Cosine only.
    """

    kind = "two_phase"
    BUILD = {"encoder": "itq", "bits": 64, "seed": 0}
    SEARCH = {"shortlist": 1000}

    def _check_params(self) -> None:
        if self.metric != "cosine":
            raise ValueError(f"two_phase re-ranks by cosine; metric must be 'cosine', got {self.metric!r}")
        super()._check_params()

    def _reset(self) -> None:
        super()._reset()
        self._index(np.empty((0, -(-self.bits // 64)), np.uint64), np.empty((0, self.dim), np.float32))

    def _index(self, codes: np.ndarray, vectors: np.ndarray) -> None:
        """Search `codes` (packed) and `vectors` (unit float32 rows) with a `HashIndex` that shares them."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.hash_index = HashIndex(codes, vectors, self.bits)
        self.hash_index.features = vectors  # already unit: keep these exact rows, not a re-normalised copy
        self.codes, self.vectors = self.hash_index.codes, vectors

    def _add_codes(self, codes: np.ndarray, features: np.ndarray | None) -> None:
        if features is None:
            raise ValueError("two_phase needs the float vectors of the codes (for the re-ranking)")
        self._index(np.concatenate([self.codes, pack_codes(codes)]), np.concatenate([self.vectors, features]))

    def _search_codes(self, query_codes, queries, k) -> tuple[np.ndarray, np.ndarray]:
        packed, shortlist = pack_codes(query_codes), self._search_params["shortlist"]
        if not shortlist:
            return self.hash_index.search(packed, None, k, mode="hamming")
        if queries is None:
            raise ValueError("two_phase needs the float queries for the re-ranking (query_features)")
        return self.hash_index.search(packed, queries, k, mode="two_phase", shortlist=max(shortlist, k))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"codes": self.codes, "vectors": self.vectors, **self._encoder_arrays()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._index(np.asarray(arrays["codes"], np.uint64), _rows(arrays, "vectors", self.dim))
        self._restore_encoder(arrays)

    def _stored(self) -> int:
        return len(self.codes)


class _FaissBinaryIndex(_BinaryIndex):
    """A faiss binary index over packed codes (``np.packbits``), with optional float vectors for `refine`."""

    SEARCH_RANGES = {"ef_search": (1, None), "nprobe": (1, None)}

    def _check_params(self) -> None:
        super()._check_params()
        if self.bits % 8:
            raise ValueError(f"{self.kind}: faiss binary indexes need bits divisible by 8, got {self.bits}")
        if not isinstance(self.params["keep_vectors"], bool):
            raise ValueError(f"{self.kind}: keep_vectors must be True or False, got {self.params['keep_vectors']!r}")

    def _reset(self) -> None:
        super()._reset()
        self.index = self._make()
        self.vectors = np.empty((0, self.dim), np.float32) if self.params["keep_vectors"] else None
        self.squared_norms = np.empty(0, np.float32) if self.params["keep_vectors"] else None

    def _add_codes(self, codes: np.ndarray, features: np.ndarray | None) -> None:
        if self.vectors is not None:
            if features is None:
                raise ValueError(f"{self.kind}: keep_vectors=True needs the float vectors of the codes")
            self.vectors = np.concatenate([self.vectors, features])
            self.squared_norms = np.concatenate([self.squared_norms, np.sum(features**2, axis=1)])
        self.index.add(np.packbits(codes, axis=1))

    def _search_codes(self, query_codes, queries, k) -> tuple[np.ndarray, np.ndarray]:
        self._apply_search_params()
        packed, refine = np.packbits(query_codes, axis=1), self._search_params["refine"]
        if not refine:
            distances, indices = self.index.search(packed, k)
            return (1.0 - distances / self.bits).astype(np.float32), indices.astype(np.int64)
        if self.vectors is None:
            raise ValueError(f"{self.kind}: refine needs the float vectors; construct with keep_vectors=True")
        if queries is None:
            raise ValueError(f"{self.kind}: refine needs the float queries (query_features)")
        _, candidates = self.index.search(packed, min(refine * k, self.ntotal))
        return self._rerank(queries, candidates.astype(np.int64), k, self.vectors, self.squared_norms)

    def memory_bytes(self) -> int:
        """The faiss index's serialised size, plus the encoder and the kept float vectors (if any)."""
        kept = 0 if self.vectors is None else self.vectors.nbytes + self.squared_norms.nbytes
        encoder = sum(array.nbytes for array in self._encoder_arrays().values())
        return int(faiss.serialize_index_binary(self.index).size + encoder + kept)

    def _arrays(self) -> dict[str, np.ndarray]:
        kept = {} if self.vectors is None else {"vectors": self.vectors}
        return {"faiss": faiss.serialize_index_binary(self.index), **kept, **self._encoder_arrays()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.index = faiss.deserialize_index_binary(np.ascontiguousarray(arrays["faiss"], dtype=np.uint8))
        if self.index.d != self.bits:
            raise ValueError(f"the faiss index holds {self.index.d}-bit codes, the header says {self.bits}")
        if self.vectors is not None:
            self.vectors = _rows(arrays, "vectors", self.dim)
            self.squared_norms = np.sum(self.vectors**2, axis=1)
            if len(self.vectors) != self.index.ntotal:
                raise ValueError(f"{len(self.vectors)} float vectors for {self.index.ntotal} codes")
        self._restore_encoder(arrays)

    def _stored(self) -> int:
        return int(self.index.ntotal)


@register
class BinaryHNSWIndex(_FaissBinaryIndex):
    """faiss ``IndexBinaryHNSW``. Construction: ``encoder`` ("itq"), ``bits`` (64, a multiple of 8), ``M``
    (32), ``seed`` (0), ``keep_vectors`` (False). Search: ``ef_search`` (64), ``refine`` (0)."""

    kind = "binary_hnsw"
    BUILD = {"encoder": "itq", "bits": 64, "M": 32, "seed": 0, "keep_vectors": False}
    SEARCH = {"ef_search": 64, "refine": 0}

    def _check_params(self) -> None:
        super()._check_params()
        self._int_param("M", 2)

    def _make(self):
        return faiss.IndexBinaryHNSW(self.bits, self.params["M"])

    def _apply_search_params(self) -> None:
        self.index.hnsw.efSearch = self._search_params["ef_search"]


@register
class BinaryIVFIndex(_FaissBinaryIndex):
    """faiss ``IndexBinaryIVF``. Construction: ``encoder`` ("itq"), ``bits`` (64, a multiple of 8), ``nlist``
    (256), ``seed`` (0), ``keep_vectors`` (False). Search: ``nprobe`` (8; ≥ nlist is exhaustive), ``refine`` (0)."""

    kind = "binary_ivf"
    BUILD = {"encoder": "itq", "bits": 64, "nlist": 256, "seed": 0, "keep_vectors": False}
    SEARCH = {"nprobe": 8, "refine": 0}

    def _check_params(self) -> None:
        super()._check_params()
        self._int_param("nlist")

    def _make(self):
        return faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(self.bits), self.bits, self.params["nlist"])

    def _train_codes(self, codes: np.ndarray) -> None:
        if len(codes) < self.params["nlist"]:
            raise ValueError(
                f"binary_ivf: training needs at least nlist={self.params['nlist']} codes, got {len(codes)}"
            )
        self.index.train(np.packbits(codes, axis=1))

    def _apply_search_params(self) -> None:
        self.index.nprobe = self._search_params["nprobe"]
