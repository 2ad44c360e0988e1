"""Binary-code indexes: the project's two-phase search and faiss's binary HNSW and IVF.

Codes come from an unsupervised encoder fitted at `train` (``encoder="itq"`` or ``"lsh"``, `bits`;
`cbir.retrieval.binary_codes`), or are given as they are with `build_from_codes` / `search_codes`
(e.g. DLBHC's learned codes).

* ``two_phase`` — DLBHC's coarse-to-fine search (Lin et al., CVPRW 2015): the ``shortlist`` nearest
  codes in Hamming distance (`cbir.retrieval.hamming.hamming_top_k`), re-ranked by the exact cosine of
  the float vectors (`cbir.retrieval.hash_index.HashIndex`); ``shortlist=0`` ranks by Hamming alone.
* ``binary_hnsw`` — faiss ``IndexBinaryHNSW``: an HNSW graph under Hamming distance (``M``; ``ef_search``).
* ``binary_ivf`` — faiss ``IndexBinaryIVF``: a binary k-means coarse quantiser of ``nlist`` cells
  (``nprobe``).

The faiss kinds rank by Hamming distance only (score ``1 − d / bits``); their code length must be a
multiple of 8 (faiss stores bytes).
"""

from __future__ import annotations

import faiss
import numpy as np

from cbir.retrieval.binary_codes import ENCODERS, make_encoder
from cbir.retrieval.hamming import pack_codes
from cbir.retrieval.hash_index import HashIndex
from cbir.retrieval.indexes.base import VectorIndex, _pad, register


class _BinaryIndex(VectorIndex):
    """Codes from an encoder (or given), plus what each kind searches them with."""

    def __init__(self, dim: int, metric: str = "cosine", **params):
        super().__init__(dim, metric, **params)
        if self.params["encoder"] not in ENCODERS:
            raise ValueError(f"{self.kind}: encoder must be one of {sorted(ENCODERS)}, got {self.params['encoder']!r}")
        if int(self.params["bits"]) < 1:
            raise ValueError(f"{self.kind}: bits must be >= 1, got {self.params['bits']}")
        self.encoder = None

    @property
    def bits(self) -> int:
        return int(self.params["bits"])

    def _train(self, features: np.ndarray) -> None:
        self.encoder = make_encoder(self.params["encoder"], self.bits, seed=int(self.params["seed"])).fit(features)
        self._train_codes(self.encoder.encode(features))

    def _train_codes(self, codes: np.ndarray) -> None:
        """Prepare the code structure from training codes, bool (n, bits)."""

    def _encode(self, features: np.ndarray) -> np.ndarray:
        if self.encoder is None:
            raise ValueError(f"{self.kind}: built from codes; search it with search_codes(query_codes, ...)")
        return self.encoder.encode(features)

    def _add(self, features: np.ndarray) -> None:
        self._add_codes(self._encode(features), features)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search_codes(self._encode(queries), queries, k)

    def build_from_codes(self, codes: np.ndarray, features: np.ndarray | None = None) -> VectorIndex:
        """Index given codes, bool (n, bits) (and their float vectors, which ``two_phase`` needs).

        Raises:
            ValueError: codes of another length, or features missing where they are needed.
        """
        codes = self._check_codes(codes)
        prepared = self._prepare(features) if features is not None else None
        self._train_codes(codes)
        self.trained = True
        self._add_codes(codes, prepared)
        self.ntotal += len(codes)
        return self

    def search_codes(
        self, query_codes: np.ndarray, k: int, query_features: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`search` with given query codes, bool (n_queries, bits) (and float queries for ``two_phase``)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        query_codes = self._check_codes(query_codes)
        queries = self._prepare(query_features) if query_features is not None else None
        return _pad(*self._search_codes(query_codes, queries, k), k)

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes).astype(bool)
        if codes.ndim != 2 or codes.shape[1] != self.bits:
            raise ValueError(f"{self.kind}: expected codes of shape (n, {self.bits}), got {codes.shape}")
        return codes

    def _encoder_arrays(self) -> dict[str, np.ndarray]:
        if self.encoder is None:
            return {}
        _, arrays = self.encoder.get_state()
        return {f"encoder_{name}": value for name, value in arrays.items()}

    def _restore_encoder(self, arrays: dict[str, np.ndarray]) -> None:
        state = {name[len("encoder_") :]: value for name, value in arrays.items() if name.startswith("encoder_")}
        if state:
            params = {"bits": self.bits, "seed": int(self.params["seed"]), "iterations": 50}
            self.encoder = ENCODERS[self.params["encoder"]].from_state(params, state)


@register
class TwoPhaseIndex(_BinaryIndex):
    """Hamming shortlist + exact cosine re-ranking (see the module docstring).

    Construction: ``encoder`` ("itq"), ``bits`` (64), ``seed`` (0). Search: ``shortlist`` (1000).
    Cosine only (the re-ranking is cosine's).
    """

    kind = "two_phase"
    BUILD = {"encoder": "itq", "bits": 64, "seed": 0}
    SEARCH = {"shortlist": 1000}

    def __init__(self, dim: int, metric: str = "cosine", **params):
        if metric != "cosine":
            raise ValueError(f"two_phase re-ranks by cosine; metric must be 'cosine', got {metric!r}")
        super().__init__(dim, metric, **params)
        self.codes, self.vectors = np.empty((0, -(-self.bits // 64)), np.uint64), np.empty((0, dim), np.float32)

    def _add_codes(self, codes: np.ndarray, features: np.ndarray | None) -> None:
        if features is None:
            raise ValueError("two_phase needs the float vectors of the codes (for the re-ranking)")
        self.codes = np.concatenate([self.codes, pack_codes(codes)])
        self.vectors = np.concatenate([self.vectors, features])
        self.hash_index = HashIndex(self.codes, self.vectors, self.bits)

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
        self.codes, self.vectors = arrays["codes"].astype(np.uint64), arrays["vectors"].astype(np.float32)
        self.hash_index = HashIndex(self.codes, self.vectors, self.bits)
        self._restore_encoder(arrays)


class _FaissBinaryIndex(_BinaryIndex):
    def __init__(self, dim: int, metric: str = "cosine", **params):
        super().__init__(dim, metric, **params)
        if self.bits % 8:
            raise ValueError(f"{self.kind}: faiss binary indexes need bits divisible by 8, got {self.bits}")

    def _add_codes(self, codes: np.ndarray, features: np.ndarray | None) -> None:
        self.index.add(np.packbits(codes, axis=1))

    def _search_codes(self, query_codes, queries, k) -> tuple[np.ndarray, np.ndarray]:
        self._apply_search_params()
        distances, indices = self.index.search(np.packbits(query_codes, axis=1), k)
        return (1.0 - distances / self.bits).astype(np.float32), indices.astype(np.int64)

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index_binary(self.index).size)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"faiss": faiss.serialize_index_binary(self.index), **self._encoder_arrays()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.index = faiss.deserialize_index_binary(np.ascontiguousarray(arrays["faiss"], dtype=np.uint8))
        self._restore_encoder(arrays)


@register
class BinaryHNSWIndex(_FaissBinaryIndex):
    """faiss ``IndexBinaryHNSW``. Construction: ``encoder`` ("itq"), ``bits`` (64), ``M`` (32), ``seed`` (0).
    Search: ``ef_search`` (64)."""

    kind = "binary_hnsw"
    BUILD = {"encoder": "itq", "bits": 64, "M": 32, "seed": 0}
    SEARCH = {"ef_search": 64}

    def _train_codes(self, codes: np.ndarray) -> None:
        self.index = faiss.IndexBinaryHNSW(self.bits, int(self.params["M"]))

    def _apply_search_params(self) -> None:
        self.index.hnsw.efSearch = max(1, self._search_params["ef_search"])


@register
class BinaryIVFIndex(_FaissBinaryIndex):
    """faiss ``IndexBinaryIVF``. Construction: ``encoder`` ("itq"), ``bits`` (64), ``nlist`` (256), ``seed`` (0).
    Search: ``nprobe`` (8)."""

    kind = "binary_ivf"
    BUILD = {"encoder": "itq", "bits": 64, "nlist": 256, "seed": 0}
    SEARCH = {"nprobe": 8}

    def _train_codes(self, codes: np.ndarray) -> None:
        nlist = int(self.params["nlist"])
        if not 1 <= nlist <= len(codes):
            raise ValueError(f"binary_ivf: nlist must be in [1, {len(codes)}] (training codes), got {nlist}")
        self.quantizer = faiss.IndexBinaryFlat(self.bits)
        self.index = faiss.IndexBinaryIVF(self.quantizer, self.bits, nlist)
        self.index.train(np.packbits(codes, axis=1))

    def _apply_search_params(self) -> None:
        self.index.nprobe = max(1, self._search_params["nprobe"])
