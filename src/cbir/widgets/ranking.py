"""The explorer's pure logic: one query ranked under a representation, a metric and a search mode, and its
AP and P@k. NumPy and `cbir.retrieval` / `cbir.evaluation` only, no widgets, so it is unit-tested directly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from cbir.evaluation.retrieval import average_precision
from cbir.retrieval.distances import DISTANCES, resolve_name
from cbir.retrieval.exact import exact_search
from cbir.retrieval.hamming import hamming_distances, hamming_top_k, pack_codes
from cbir.retrieval.hash_index import HashIndex
from cbir.retrieval.ranking import l2_normalize

BINARY_METRICS = ("hamming", "jaccard", "dice")
"""Registry distances computed on a representation's binary codes (as `cbir.experiments.representations`)."""
SEARCH_MODES = ("exact", "hamming", "two_phase")
"""``exact``: every database item by a registry distance (`exact_search`); ``hamming``: Hamming ranking of
the binary codes; ``two_phase``: DLBHC's Hamming shortlist re-ranked by cosine (`HashIndex`)."""


@dataclass(frozen=True)
class SearchFeatures:
    """One representation's cached features, as the explorer searches them.

    Attributes:
        name: shown in the menu, e.g. ``"efficientnet_lite0 gem"``, ``"dlbhc48"``.
        query, database: float32, (n_queries, dim) and (n_database, dim), row-aligned with the image sets.
        query_codes, database_codes: bool, (n_queries, bits) and (n_database, bits): the binary version
            (for the binary metrics and the Hamming / two-phase modes).
        thresholds: float32 (dim,) when the codes are ``features > thresholds`` (median binarisation),
            so an uploaded query can be coded too; None for codes made otherwise (DLBHC's).
        description: what it is, in words.
    """

    name: str
    query: np.ndarray
    database: np.ndarray
    query_codes: np.ndarray
    database_codes: np.ndarray
    thresholds: np.ndarray | None = None
    description: str = ""

    @classmethod
    def from_cached(cls, name: str, cached) -> SearchFeatures:
        """From a ``(query, database)`` pair (binarised here at the database median) or an object with
        ``query``, ``database``, ``binary_query``, ``binary_database`` (`cbir.experiments.representations.
        Representation`; ``binarised`` says how its codes were made).

        Raises:
            ValueError: not 2-D, or the query and database dimensions (or code lengths) differ.
        """
        if isinstance(cached, tuple):
            query, database = (np.asarray(a, np.float32) for a in cached)
            if query.ndim != 2 or database.ndim != 2 or query.shape[1] != database.shape[1]:
                raise ValueError(f"{name}: features must be (n, dim) alike, got {query.shape} and {database.shape}")
            thresholds, description = np.median(database, axis=0).astype(np.float32), ""
            query_codes, database_codes = query > thresholds, database > thresholds
        else:
            query, database = np.asarray(cached.query, np.float32), np.asarray(cached.database, np.float32)
            query_codes, database_codes = np.asarray(cached.binary_query), np.asarray(cached.binary_database)
            median = "median" in getattr(cached, "binarised", "")
            thresholds = np.median(database, axis=0).astype(np.float32) if median else None
            description = getattr(cached, "description", "")
        if query.ndim != 2 or database.ndim != 2 or query.shape[1] != database.shape[1]:
            raise ValueError(f"{name}: features must be (n, dim) alike, got {query.shape} and {database.shape}")
        if query_codes.shape[1:] != database_codes.shape[1:] or len(query_codes) != len(query):
            raise ValueError(f"{name}: codes {query_codes.shape} and {database_codes.shape} do not match the features")
        return cls(
            name, query, database, query_codes.astype(bool), database_codes.astype(bool), thresholds, description
        )

    @property
    def bits(self) -> int:
        return int(self.database_codes.shape[1])


@dataclass(frozen=True)
class SearchResults:
    """One query's top-k and its scores.

    Attributes:
        query_index: the query's row in the query set (None for an uploaded image).
        query_label: its class index (None when unknown).
        representation, metric, mode, k, shortlist: the settings searched with (``metric`` is
            ``"hamming"`` in the Hamming mode; ``shortlist`` only for two-phase).
        indices: int64 (k,), database rows, best first; scores: float32 (k,) in [0, 1].
        labels: int64 (k,) of the results; relevant: bool (k,), same label as the query (None unlabelled).
        average_precision: AP of the query over the whole database ranking (tie-aware,
            `cbir.evaluation.retrieval.average_precision`); precision_at_k: fraction of the k shown that
            are relevant. Both None without a query label.
        seconds: time of the search and the metrics.
    """

    query_index: int | None
    query_label: int | None
    representation: str
    metric: str
    mode: str
    k: int
    shortlist: int | None
    indices: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    relevant: np.ndarray | None
    average_precision: float | None
    precision_at_k: float | None
    seconds: float

    def frame(self) -> pd.DataFrame:
        """One row per result: ``rank``, ``index``, ``score``, ``label``, ``relevant``."""
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(self.indices) + 1),
                "index": self.indices,
                "score": self.scores,
                "label": self.labels,
                "relevant": self.relevant if self.relevant is not None else [None] * len(self.indices),
            }
        )


class QueryRanker:
    """Ranks the database for one query under a representation, a metric and a search mode.

    Per representation it keeps what each mode needs (packed codes, a `HashIndex`), built on first
    use, so that switching back and forth costs nothing.

    Args:
        representations: name → `SearchFeatures`.
        rerank: code representation name → name of the representation whose float features re-rank
            its two-phase shortlist (DLBHC re-ranks with the backbone's features); default: its own.
    Raises:
        ValueError: no representations, or a `rerank` name that is not among them.
    """

    def __init__(self, representations: Mapping[str, SearchFeatures], rerank: Mapping[str, str] | None = None):
        if not representations:
            raise ValueError("no representations to search: give at least one name → features")
        self.representations = dict(representations)
        self.rerank = dict(rerank or {})
        for name, target in self.rerank.items():
            if name not in self.representations or target not in self.representations:
                raise ValueError(f"rerank {name!r} → {target!r}: both must be among {sorted(self.representations)}")
        self._packed: dict[str, np.ndarray] = {}
        self._indexes: dict[str, HashIndex] = {}
        self._unit: dict[str, np.ndarray] = {}

    def _unit_database(self, name: str) -> np.ndarray:
        """The database rows L2-normalised once (not on every search: 50 MB at 10 000 × 1 280)."""
        if name not in self._unit:
            self._unit[name] = l2_normalize(self.features(name).database)
        return self._unit[name]

    def features(self, name: str) -> SearchFeatures:
        """The representation called `name`. Raises ValueError listing the names when unknown."""
        if name not in self.representations:
            raise ValueError(f"unknown representation {name!r}; expected one of {sorted(self.representations)}")
        return self.representations[name]

    def _packed_database(self, name: str) -> np.ndarray:
        if name not in self._packed:
            self._packed[name] = pack_codes(self.features(name).database_codes)
        return self._packed[name]

    def _index(self, name: str) -> HashIndex:
        if name not in self._indexes:
            reranking = self.features(self.rerank.get(name, name))
            bits = self.features(name).bits
            self._indexes[name] = HashIndex(self._packed_database(name), reranking.database, bits)
        return self._indexes[name]

    def search(
        self,
        name: str,
        query: np.ndarray,
        query_codes: np.ndarray,
        *,
        metric: str = "cosine",
        mode: str = "exact",
        k: int = 10,
        shortlist: int = 100,
        normalize: bool = True,
        exclude: int | None = None,
        rerank_query: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k of one query, and the whole ranking's scores (for AP).

        ``exact`` ranks every database item by `metric` (`exact_search`; a binary metric compares
        the codes, as 0/1 floats); ``hamming`` by Hamming distance of the packed codes
        (`hamming_top_k`; score 1 − d / bits); ``two_phase`` takes the `shortlist` nearest codes and
        re-ranks them by cosine (`HashIndex.search`; its ranking as `HashIndex.ranking_levels`).
        Ties go to the lower database index in every mode.

        Args:
            query: float (dim,); query_codes: bool (bits,); rerank_query: float features of the
                re-ranking representation (two-phase; default `query`).
            normalize: L2-normalise the features first (always for cosine, never for codes).
            exclude: a database row to leave out (the query itself, when queries are the database).
        Returns:
            (indices int64 (k,), scores float32 (k,) in [0, 1], ranking float64 (n_database,):
            larger ranks first; NaN at `exclude`).
        Raises:
            ValueError: unknown representation, metric or mode; k or shortlist < 1; a query of the
                wrong dimension.
        """
        features = self.features(name)
        metric = resolve_name(metric)
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}; expected one of {SEARCH_MODES}")
        if k < 1 or shortlist < 1:
            raise ValueError(f"k and shortlist must be >= 1, got {k} and {shortlist}")
        query, query_codes = np.asarray(query, np.float32), np.asarray(query_codes, bool)
        if query.shape != features.database.shape[1:] or query_codes.shape != features.database_codes.shape[1:]:
            raise ValueError(
                f"{name}: query of shape {query.shape} / codes {query_codes.shape}, expected "
                f"{features.database.shape[1:]} / {features.database_codes.shape[1:]}"
            )
        n = len(features.database)
        wanted = min(k + (exclude is not None), n)
        ranking = np.empty(n, np.float64)
        if mode == "exact":
            binary = metric in BINARY_METRICS
            unit = metric == "cosine" or (normalize and not binary)
            database = features.database_codes if binary else self._unit_database(name) if unit else features.database
            searched = query_codes if binary else l2_normalize(query[None])[0] if unit else query
            scores, indices = exact_search(searched[None], database, k=n, normalize=False, metric=metric)
            ranking[indices[0]] = scores[0]
            scores, indices = scores[0, :wanted], indices[0, :wanted]
        elif mode == "hamming":
            packed_query = pack_codes(query_codes[None])
            distances, indices = hamming_top_k(packed_query, self._packed_database(name), wanted)
            scores, indices = (1.0 - distances[0] / features.bits).astype(np.float32), indices[0]
            ranking[:] = 1.0 - hamming_distances(packed_query, self._packed_database(name))[0] / features.bits
        else:
            index = self._index(name)
            rerank_query = query if rerank_query is None else np.asarray(rerank_query, np.float32)
            packed_query = pack_codes(query_codes[None])
            scores, indices = index.search(packed_query, rerank_query[None], k=wanted, shortlist=max(shortlist, wanted))
            scores, indices = scores[0], indices[0]
            ranking[:] = -index.ranking_levels(packed_query, rerank_query[None], shortlist=max(shortlist, wanted))[0]
        if exclude is not None:
            kept = indices != exclude
            scores, indices = scores[kept], indices[kept]
            ranking[exclude] = np.nan
        return indices[:k].astype(np.int64), np.clip(scores[:k], 0.0, 1.0).astype(np.float32), ranking


def query_metrics(
    ranking: np.ndarray, database_labels: np.ndarray, query_label: int | None, relevant_top: np.ndarray
) -> tuple[float | None, float | None]:
    """(AP over the whole ranking, fraction relevant among the results shown), or (None, None) when
    the query has no label (< 0 or None) or no relevant item. NaN entries of `ranking` are left out."""
    if query_label is None or query_label < 0 or len(relevant_top) == 0:
        return None, None
    kept = ~np.isnan(ranking)
    relevant = np.asarray(database_labels)[kept] == query_label
    if not relevant.any():
        return None, float(np.mean(relevant_top))
    return float(average_precision(ranking[kept], relevant)), float(np.mean(relevant_top))


def decode_upload(content: bytes) -> np.ndarray:
    """An uploaded file's bytes → RGB uint8 (h, w, 3). Raises ValueError naming what was expected."""
    try:
        with Image.open(io.BytesIO(bytes(content))) as picture:
            return np.asarray(picture.convert("RGB"), np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"the uploaded file is not an image PIL can read (PNG, JPEG, ...): {error}") from error


METRIC_CHOICES = tuple(sorted(DISTANCES))
"""The metrics offered: every name of the distance registry."""
