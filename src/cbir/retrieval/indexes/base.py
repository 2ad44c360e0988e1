"""`VectorIndex`: the one interface of every index type, and its file format.

An index is made with its construction parameters (checked at once), trained when it learns
something (a quantiser, a graph, codes, hash functions) and filled with `build`, then searched with
`search(query_features, k) -> (scores, indices)`:

* scores float32 (n_queries, k) in [0, 1], best first: ``(1 + cos) / 2`` for ``metric="cosine"`` (rows
  L2-normalised on add and on query, ranked by inner product; `cbir.retrieval.ranking`),
  ``1 / (1 + ‖a − b‖)`` for ``"euclidean"`` (the registry's score, `cbir.retrieval.distances`),
  ``1 − d / bits`` for binary kinds ranked by Hamming distance alone;
* indices int64 (n_queries, k) into the added rows, in the order added; −1 with score 0 where an index
  finds fewer than k (fewer vectors than k, empty buckets, unprobed lists).

Search-time parameters (``ef_search``, ``nprobe``, ``refine``, ``shortlist``, ``probes``) are set with
`set_search_params` and saved with the index. `save` writes one ``.npz`` file atomically: a JSON
header (``format`` version, ``kind``, ``metric``, ``dim``, ``ntotal``, ``params``, ``search_params``)
and the arrays (faiss structures as their serialised bytes; never a pickle); `load_index` reads any
kind back and checks every field.
"""

from __future__ import annotations

import json
import os
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from cbir._io import atomic_path
from cbir.retrieval.distances import get_distance
from cbir.retrieval.exact import subset_inner_products
from cbir.retrieval.ranking import cosine_to_score, l2_normalize, top_k
from cbir.retrieval.storage import IndexFormatError

INDEX_FILE_FORMAT = 1
METRICS = ("cosine", "euclidean")
_HEADER = "__header__"


class VectorIndex(ABC):
    """Base class of the index types (see the module docstring for the contract).

    Subclasses set `kind`, `BUILD` (construction parameters and their defaults), `SEARCH` (search
    parameters and their defaults) with `SEARCH_RANGES` (name → (least, greatest or None); default
    (0, None)), `needs_training`, and implement `_add`, `_search`, `_arrays`, `_restore`, `_stored`;
    `_check_params`, `_reset`, `_train` and `memory_bytes` where they differ from the defaults.

    Args:
        dim: the vectors' dimension (≥ 1).
        metric: ``"cosine"`` or ``"euclidean"`` (binary kinds rank by Hamming distance of codes made
            from the vectors, and re-rank by this metric).
        **params: construction parameters, overriding `BUILD`.
    Raises:
        ValueError: dim < 1, an unknown metric, an unknown parameter (the message lists the valid
            ones) or a parameter out of range (the message names it, its value and the range).
    """

    kind: ClassVar[str] = ""
    BUILD: ClassVar[dict] = {}
    SEARCH: ClassVar[dict] = {}
    SEARCH_RANGES: ClassVar[dict[str, tuple[int, int | None]]] = {}
    needs_training: ClassVar[bool] = True

    def __init__(self, dim: int, metric: str = "cosine", **params):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"{self.kind}: dim must be an integer >= 1, got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"{self.kind}: metric must be one of {METRICS}, got {metric!r}")
        unknown = sorted(set(params) - set(self.BUILD))
        if unknown:
            raise ValueError(f"{self.kind}: unknown parameter(s) {unknown}; expected some of {sorted(self.BUILD)}")
        self.dim, self.metric = int(dim), metric
        self.params = {**self.BUILD, **params}
        self._check_params()
        self._search_params = dict(self.SEARCH)
        self.ntotal = 0
        self.trained = not self.needs_training
        self._reset()

    # ------------------------------------------------------------------ public interface

    def train(self, features: np.ndarray) -> VectorIndex:
        """Learn what the index needs from `features` (float, (n, dim)); a no-op for ``flat`` and the trees.

        Raises:
            ValueError: wrong shape, too few vectors for the structure (e.g. fewer than ``nlist``), or
                an index that already holds vectors.
        """
        features = self._prepare(features)
        if not self.needs_training:
            return self
        if self.ntotal:
            raise ValueError(f"{self.kind}: train before adding; this index already holds {self.ntotal} vectors")
        self._train(features)
        self.trained = True
        return self

    def add(self, features: np.ndarray) -> VectorIndex:
        """Add rows (float, (n, dim)); their indices continue from `ntotal`.

        Raises:
            ValueError: wrong shape, or the index needs training first.
        """
        if not self.trained:
            raise ValueError(f"{self.kind}: train (or build) the index before adding vectors")
        features = self._prepare(features)
        self._add(features)
        self.ntotal += len(features)
        return self

    def build(self, features: np.ndarray) -> VectorIndex:
        """`train` then `add` the same rows; returns self."""
        return self.train(features).add(features)

    def search(self, query_features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows for each query (see the module docstring for scores and padding).

        Args:
            query_features: float, shape (n_queries, dim).
            k: results per query (≥ 1); beyond what the index finds, −1 and score 0.
        Returns:
            (scores float32, indices int64), each (n_queries, k), best first.
        Raises:
            ValueError: k < 1, or queries of the wrong shape.
        """
        _check_k(k)
        queries = self._prepare(query_features)
        if self.ntotal == 0 or len(queries) == 0:
            return _pad(np.zeros((len(queries), 0)), np.zeros((len(queries), 0)), k)
        return _pad(*self._search(queries, k), k)

    def set_search_params(self, **params) -> None:
        """Set search parameters (names of `SEARCH`); the others keep their values.

        Raises:
            ValueError: an unknown name (the valid ones listed), or a value that is not an integer in
                the parameter's range (named).
        """
        unknown = sorted(set(params) - set(self.SEARCH))
        if unknown:
            raise ValueError(
                f"{self.kind}: unknown search parameter(s) {unknown}; expected some of {sorted(self.SEARCH) or 'none'}"
            )
        for name, value in params.items():
            _check_int(self.kind, name, value, *self.SEARCH_RANGES.get(name, (0, None)))
        self._search_params.update({name: int(value) for name, value in params.items()})

    def search_params(self) -> dict:
        """The current search parameters (a copy)."""
        return dict(self._search_params)

    def memory_bytes(self) -> int:
        """Bytes of the index's own structure: every array it holds to answer searches — stored vectors
        and codes, quantisers, graphs, trees, hash tables, encoders. faiss structures count as their
        serialised size (their in-memory size up to allocator slack); Python objects are not counted."""
        return int(sum(np.asarray(array).nbytes for array in self._arrays().values()))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to one ``.npz`` file, atomically (see the module docstring); returns the path.

        Raises:
            ValueError: an index that needs training and was not trained.
        """
        if not self.trained:
            raise ValueError(f"{self.kind}: train (or build) the index before saving it")
        header = {
            "format": INDEX_FILE_FORMAT,
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "trained": self.trained,
            "params": self.params,
            "search_params": self._search_params,
        }
        path = Path(path)
        with atomic_path(path, suffix=".npz") as temporary:
            np.savez(temporary, **{_HEADER: np.array(json.dumps(header))}, **self._arrays())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorIndex:
        """Read an index of this class's kind written by `save`.

        Raises:
            IndexFormatError: not an index file, an unknown format, or another kind (named).
        """
        return load_index(path, kind=cls.kind)

    # ------------------------------------------------------------------ for subclasses

    def _check_params(self) -> None:  # noqa: B027 - a hook
        """Check `self.params` (default: nothing to check); raise ValueError naming a bad one."""

    def _int_param(self, name: str, low: int = 1, high: int | None = None) -> int:
        """`self.params[name]` as an int, checked to lie in [low, high]."""
        self.params[name] = _check_int(self.kind, name, self.params[name], low, high)
        return self.params[name]

    def _reset(self) -> None:  # noqa: B027 - a hook
        """Make the empty storage (default: none until training)."""

    def _prepare(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"{self.kind}: expected features of shape (n, {self.dim}), got {features.shape}")
        features = l2_normalize(features) if self.metric == "cosine" else features
        return np.ascontiguousarray(features)

    def _train(self, features: np.ndarray) -> None:  # noqa: B027 - a hook
        """Learn from prepared rows (default: nothing to learn)."""

    @abstractmethod
    def _add(self, features: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None: ...

    @abstractmethod
    def _stored(self) -> int:
        """How many vectors the structure holds (checked against the header on load)."""

    def _scores(self, values: np.ndarray) -> np.ndarray:
        """Scores of inner products of unit rows (cosine) or of squared L2 distances (euclidean)."""
        values = np.asarray(values, np.float64)
        if self.metric == "cosine":
            return cosine_to_score(values)
        return get_distance("euclidean").to_score(np.sqrt(np.maximum(values, 0.0))).astype(np.float32)

    def _rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int, vectors: np.ndarray, squared_norms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best of each query's `candidates` (int64 (n_queries, c), −1 = none) by the exact metric
        on the stored `vectors` (float32 (ntotal, dim); `squared_norms` their ‖v‖², for euclidean).

        Candidates are taken by increasing index, so equal scores keep the project's tie rule.
        Returns scores float32 and indices int64, (n_queries, min(k, c)), −1 / 0 where none.
        """
        missing = np.iinfo(np.int64).max
        candidates = np.sort(np.where(candidates >= 0, candidates, missing), axis=1)
        candidates = np.where(candidates == missing, -1, candidates)
        safe = np.where(candidates >= 0, candidates, 0)
        values = subset_inner_products(queries, vectors, safe)  # fused gather-and-dot: no (q, c, dim) copy
        if self.metric == "euclidean":  # −‖v − q‖² = 2 v·q − ‖v‖² − ‖q‖²
            values = 2 * values - squared_norms[safe] - np.sum(queries**2, axis=1, keepdims=True)
        values = np.where(candidates >= 0, values, -np.inf)
        best_values, best = top_k(values, k)
        found = np.isfinite(best_values)
        scores = self._scores(np.where(found, best_values, 0.0) if self.metric == "cosine" else -best_values)
        return np.where(found, scores, 0.0), np.where(found, np.take_along_axis(candidates, best, axis=1), -1)


def _rows(arrays: dict[str, np.ndarray], name: str, dim: int) -> np.ndarray:
    """The stored array `name` as C-contiguous float32 rows (n, dim); ValueError naming it otherwise."""
    rows = np.ascontiguousarray(arrays[name], dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"array {name!r} must have shape (n, {dim}), got {rows.shape}")
    return rows


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def _check_int(kind: str, name: str, value, low: int, high: int | None) -> int:
    """`value` as an int; ValueError naming `name`, the value and the range unless an integer in [low, high]."""
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not integer or value < low or (high is not None and value > high):
        expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{kind}: {name} must be {expected}, got {value!r}")
    return int(value)


def _pad(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices) with exactly k columns: −1 / 0 where fewer were found."""
    scores, indices = np.asarray(scores, np.float32), np.asarray(indices, np.int64)
    scores = np.where(indices >= 0, scores, 0.0).astype(np.float32)
    if indices.shape[1] >= k:
        return scores[:, :k], indices[:, :k]
    missing = k - indices.shape[1]
    return np.pad(scores, ((0, 0), (0, missing))), np.pad(indices, ((0, 0), (0, missing)), constant_values=-1)


REGISTRY: dict[str, type[VectorIndex]] = {}
"""kind → class, filled by `register` (see `cbir.retrieval.indexes.INDEX_TYPES`)."""


def register(cls: type[VectorIndex]) -> type[VectorIndex]:
    """Class decorator: make a kind known to `make_index` and `load_index`."""
    REGISTRY[cls.kind] = cls
    return cls


def make_index(kind: str, dim: int, metric: str = "cosine", **params) -> VectorIndex:
    """An empty index of `kind` (see `VectorIndex` for the arguments).

    Raises:
        ValueError: an unknown kind (the message lists them) or parameter.
    """
    if kind not in REGISTRY:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {sorted(REGISTRY)}")
    return REGISTRY[kind](dim, metric, **params)


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header and the arrays of an index file (no pickle)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as error:
        raise IndexFormatError(f"{path}: no such index file") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise IndexFormatError(f"{path}: not an index file written by cbir ({type(error).__name__}: {error})") from (
            error
        )
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise IndexFormatError(f"{path}: not an index file written by cbir (a single .npy array, not an .npz archive)")
    with archive:
        if _HEADER not in archive.files:
            raise IndexFormatError(f"{path}: not an index file written by cbir (no field {_HEADER!r})")
        try:
            header = json.loads(str(archive[_HEADER]))
            arrays = {name: archive[name] for name in archive.files if name != _HEADER}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise IndexFormatError(f"{path}: corrupt index file ({type(error).__name__}: {error})") from error
    if not isinstance(header, dict):
        raise IndexFormatError(f"{path}: field {_HEADER!r} must be a JSON object, got {type(header).__name__}")
    return header, arrays


def load_index(path: str | os.PathLike, kind: str | None = None) -> VectorIndex:
    """Read an index written by `VectorIndex.save`.

    Args:
        kind: when given, the file must hold this kind.
    Raises:
        IndexFormatError: no such file, not an index file, an unknown format or kind, not `kind`, or
            arrays that do not match the header; the message names the file and the field.
    """
    path = Path(path)
    header, arrays = _read(path)
    if header.get("format") != INDEX_FILE_FORMAT:
        raise IndexFormatError(f"{path}: field 'format' must be {INDEX_FILE_FORMAT}, got {header.get('format')!r}")
    found = header.get("kind")
    if found not in REGISTRY:
        raise IndexFormatError(f"{path}: field 'kind' must be one of {sorted(REGISTRY)}, got {found!r}")
    if kind is not None and found != kind:
        raise IndexFormatError(f"{path}: expected a {kind!r} index, found {found!r} (field 'kind')")
    try:
        index = REGISTRY[found](header["dim"], header["metric"], **header["params"])
        index.set_search_params(**header["search_params"])
        index.ntotal, index.trained = int(header["ntotal"]), bool(header["trained"])
        index._restore(arrays)
        stored = index._stored()
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise IndexFormatError(
            f"{path}: a {found!r} index that cannot be restored ({type(error).__name__}: {error})"
        ) from error
    if stored != index.ntotal:
        raise IndexFormatError(f"{path}: field 'ntotal' says {index.ntotal} vectors, the arrays hold {stored}")
    return index
