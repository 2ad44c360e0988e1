"""`HashIndex`: binary codes + features, searched coarse-to-fine as in DLBHC (Lin et al. 2015).

Saved as one ``.npz`` with its settings and a format version, checked on load, written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir._io import atomic_path
from cbir.retrieval.exact import exact_search, subset_inner_products
from cbir.retrieval.hamming import hamming_distances, hamming_top_k, k_smallest
from cbir.retrieval.ranking import cosine_to_score, l2_normalize, top_k
from cbir.retrieval.storage import IndexFormatError, check_settings

HASH_INDEX_FORMAT_VERSION = 1


_QUERY_CHUNK = 256  # queries per two-phase step: (256, shortlist) candidates and scores at a time


@dataclass
class HashIndex:
    """Packed binary codes plus real-valued features, for coarse-to-fine retrieval.

    Search modes (`search`):

    * ``"two_phase"`` (DLBHC): a shortlist of the `shortlist` nearest codes in Hamming distance
      (or all codes within Hamming `radius`), re-ranked by cosine similarity of the features.
      Ties in Hamming distance at the shortlist boundary go to the lower database index; inside
      the shortlist the order is decided by the re-ranking (equal cosines keep Hamming order).
      With a radius that yields fewer than k codes, the rest is filled in Hamming order.
    * ``"hamming"``: Hamming ranking only, ties by lower index; score ``1 − d / bits``.
    * ``"cosine"``: exhaustive cosine search of the features (`exact_search`), the reference.

    Scores are in [0, 1]: ``(1 + cos) / 2`` for the cosine-ranked results.

    Cost of a two-phase query: one pass over the packed codes (8 bytes per 64-bit code,
    `cbir.retrieval.hamming.hamming_top_k`), then one random read of a feature row per shortlisted item
    (`subset_inner_products`). The second phase dominates: at a shortlist of 10 000 and 512-D
    float32 features it reads 20 MB per query, bounded by memory bandwidth
    (``benchmarks/bench_search.py`` measures both phases).

    Attributes:
        codes: uint64 (n, ceil(bits / 64)), packed by `cbir.retrieval.hamming.pack_codes`.
        features: float32 (n, dim), L2-normalised on construction.
        bits: code length.
        settings: how codes and features were made (model, backbone, ...), saved with the index.
    """

    codes: np.ndarray
    features: np.ndarray
    bits: int
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.codes = np.ascontiguousarray(self.codes, dtype=np.uint64)
        self.features = l2_normalize(self.features)
        if len(self.codes) != len(self.features):
            raise ValueError(f"{len(self.codes)} codes but {len(self.features)} feature rows")
        if self.codes.ndim != 2 or self.codes.shape[1] != -(-self.bits // 64):
            raise ValueError(
                f"codes must be packed uint64 (n, {-(-self.bits // 64)}) for {self.bits} bits, got {self.codes.shape}"
            )

    def __len__(self) -> int:
        return len(self.codes)

    def search(
        self,
        query_codes: np.ndarray,
        query_features: np.ndarray | None = None,
        k: int = 10,
        mode: str = "two_phase",
        shortlist: int | None = 1000,
        radius: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search the index.

        Args:
            query_codes: uint64 (n_queries, words), packed like the index.
            query_features: float (n_queries, dim); required by "two_phase" and "cosine".
            k: results per query.
            mode: "two_phase", "hamming" or "cosine" (see the class docstring).
            shortlist: Hamming top-L size for "two_phase" (ignored when `radius` is given).
            radius: Hamming radius for the "two_phase" shortlist, instead of top-L.
        Returns:
            (scores, indices), each (n_queries, min(k, n)); scores float32 in [0, 1], best first.
        Raises:
            ValueError: unknown mode, missing query features, or k / shortlist < 1.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, len(self))
        if mode == "hamming":
            distances, indices = hamming_top_k(query_codes, self.codes, k)
            return (1.0 - distances / self.bits).astype(np.float32), indices
        if query_features is None:
            raise ValueError(f"mode {mode!r} needs query_features")
        query_features = l2_normalize(query_features)
        if mode == "cosine":
            return exact_search(query_features, self.features, k=k, normalize=False)
        if mode != "two_phase":
            raise ValueError(f"mode must be 'two_phase', 'hamming' or 'cosine', got {mode!r}")
        if radius is None:
            if not shortlist or shortlist < 1:
                raise ValueError(f"shortlist must be >= 1, got {shortlist}")
            return self._two_phase_top_l(query_codes, query_features, k, max(shortlist, k))
        scores = np.empty((len(query_codes), k), np.float32)
        indices = np.empty((len(query_codes), k), np.int64)
        for row, distances in enumerate(hamming_distances(query_codes, self.codes)):
            n_within = int(np.count_nonzero(distances <= radius))
            ordered = k_smallest(distances, max(n_within, k))  # Hamming order, ties by index
            ranked, cosine = self._rerank_one(query_features[row], ordered[:n_within], k)
            fill = ordered[n_within:k]  # too few within the radius: the next codes in Hamming order
            indices[row] = np.concatenate([ranked, fill])
            scores[row] = np.concatenate([cosine_to_score(cosine), 1.0 - distances[fill] / self.bits])
        return scores, indices

    def ranking_levels(self, query_codes: np.ndarray, query_features: np.ndarray, shortlist: int = 1000) -> np.ndarray:
        """The whole two-phase ranking of the database for each query, as integer levels.

        Level r < `shortlist` is the r-th result of the re-ranked shortlist; every other item gets
        ``shortlist + Hamming distance`` (ties among them are real ties). This is what
        `cbir.evaluation.retrieval.retrieval_metrics(levels_fn=..., n_levels=shortlist + bits + 1)` needs to
        compute mAP over the whole two-phase ranking.

        Returns:
            int32 (n_queries, n_database).
        """
        query_features = l2_normalize(query_features)
        length = min(shortlist, len(self))
        distances = hamming_distances(query_codes, self.codes)
        levels = distances.astype(np.int32) + length
        for row in range(len(levels)):
            ranked, _ = self._rerank_one(query_features[row], k_smallest(distances[row], length))
            levels[row, ranked] = np.arange(length, dtype=np.int32)
        return levels

    def _rerank_one(
        self, query_feature: np.ndarray, shortlist: np.ndarray, k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A shortlist in Hamming order, re-ordered by decreasing cosine with the (unit) query
        feature; equal cosines keep Hamming order. Returns (indices, cosines), the best `k`."""
        cosine, columns = top_k(
            subset_inner_products(query_feature[None], self.features, shortlist[None]), k or len(shortlist)
        )  # equal cosines: lower column, i.e. earlier in Hamming order
        return shortlist[columns[0]], cosine[0]

    def _two_phase_top_l(
        self, query_codes: np.ndarray, query_features: np.ndarray, k: int, shortlist: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hamming top-`shortlist` (in Hamming order), re-ranked by cosine, a chunk of queries at
        a time so the (chunk, shortlist) candidate and score arrays stay small."""
        scores = np.empty((len(query_codes), k), np.float32)
        indices = np.empty((len(query_codes), k), np.int64)
        for start in range(0, len(query_codes), _QUERY_CHUNK):
            stop = start + _QUERY_CHUNK
            _, candidates = hamming_top_k(query_codes[start:stop], self.codes, shortlist)
            cosine = subset_inner_products(query_features[start:stop], self.features, candidates)
            cosine, columns = top_k(cosine, k)  # equal cosines: lower column, i.e. earlier in Hamming order
            scores[start:stop] = cosine_to_score(cosine)
            indices[start:stop] = np.take_along_axis(candidates, columns, axis=1)
        return scores, indices

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` (codes, features, JSON metadata as bytes) atomically; no pickle."""
        path = Path(path)
        meta = json.dumps({"format_version": HASH_INDEX_FORMAT_VERSION, "bits": self.bits, "settings": self.settings})
        with atomic_path(path, suffix=".npz") as temporary:
            np.savez(
                temporary,
                codes=self.codes,
                features=self.features,
                meta=np.frombuffer(meta.encode("utf-8"), dtype=np.uint8),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expected_settings: dict | None = None) -> HashIndex:
        """Read an index written by `save`.

        Raises:
            IndexFormatError: missing or unreadable file, a newer format, or settings that differ
                from `expected_settings` (each difference named).
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
                codes, features = archive["codes"], archive["features"]
        except (OSError, ValueError, KeyError) as error:
            raise IndexFormatError(f"{path}: not a readable hash index ({error})") from error
        if meta.get("format_version", 0) > HASH_INDEX_FORMAT_VERSION:
            raise IndexFormatError(
                f"{path}: hash index format {meta['format_version']} is newer than this cbir "
                f"supports ({HASH_INDEX_FORMAT_VERSION})"
            )
        settings = meta.get("settings", {})
        check_settings(path, settings, expected_settings)
        return cls(codes=codes, features=features, bits=int(meta["bits"]), settings=settings)
