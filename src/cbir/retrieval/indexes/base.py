"""`VectorIndex`: the one interface of every index type, and its file format.

An index is made with its construction parameters, trained (when it learns a quantiser, a graph or
codes) and filled with `build`, searched with `search(query_features, k) -> (scores, indices)`:

* scores float32 (n_queries, k) in [0, 1], best first: ``(1 + cos) / 2`` for ``metric="cosine"`` (rows
  L2-normalised on add and on query, ranked by inner product), ``1 / (1 + ‖a − b‖)`` for ``"euclidean"``
  (the registry's scores, `cbir.retrieval.distances`), ``1 − d / bits`` for Hamming-ranked binary codes;
* indices int64 (n_queries, k) into the added rows; −1 with score 0 where an index finds fewer than k.

Search-time parameters (``ef_search``, ``nprobe``, ``refine``, ``shortlist`` …) are set with
`set_search_params` and saved with the index. `save` writes one ``.npz`` file atomically: a JSON
header (format version, kind, metric, dimension, count, construction and search parameters) and the
arrays (faiss structures as their serialised bytes; never a pickle); `load_index` reads any kind back.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from cbir._io import atomic_path
from cbir.retrieval.ranking import cosine_to_score, l2_normalize
from cbir.retrieval.storage import IndexFormatError

INDEX_FILE_FORMAT = 1
METRICS = ("cosine", "euclidean")


class VectorIndex(ABC):
    """Base class of the index types (see the module docstring for the contract).

    Subclasses set `kind`, `BUILD` (construction parameters with their defaults), `SEARCH` (search
    parameters with their defaults) and implement `_add`, `_search`, `_arrays`, `_restore`; `_train`
    and `memory_bytes` when they differ from the defaults.

    Args:
        dim: the vectors' dimension (≥ 1).
        metric: ``"cosine"`` or ``"euclidean"`` (binary kinds rank by Hamming distance of codes made
            from the vectors, and re-rank by this metric).
        **params: construction parameters, overriding `BUILD`.
    Raises:
        ValueError: dim < 1, an unknown metric, or an unknown parameter (the message lists the valid ones).
    """

    kind: ClassVar[str] = ""
    BUILD: ClassVar[dict] = {}
    SEARCH: ClassVar[dict] = {}

    def __init__(self, dim: int, metric: str = "cosine", **params):
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if metric not in METRICS:
            raise ValueError(f"{self.kind}: metric must be one of {METRICS}, got {metric!r}")
        unknown = sorted(set(params) - set(self.BUILD))
        if unknown:
            raise ValueError(f"{self.kind}: unknown parameter(s) {unknown}; expected some of {sorted(self.BUILD)}")
        self.dim, self.metric = int(dim), metric
        self.params = {**self.BUILD, **params}
        self._search_params = dict(self.SEARCH)
        self.ntotal = 0
        self.trained = False

    # ------------------------------------------------------------------ public interface

    def train(self, features: np.ndarray) -> VectorIndex:
        """Learn what the index needs from `features` (float, (n, dim)); a no-op for some kinds."""
        self._train(self._prepare(features))
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

        Raises:
            ValueError: k < 1, or queries of the wrong shape.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = self._prepare(query_features)
        if self.ntotal == 0:
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        scores, indices = self._search(queries, k)
        return _pad(scores, indices, k)

    def set_search_params(self, **params) -> None:
        """Set search parameters (names of `SEARCH`).

        Raises:
            ValueError: an unknown name, or a value the kind refuses.
        """
        unknown = sorted(set(params) - set(self.SEARCH))
        if unknown:
            raise ValueError(
                f"{self.kind}: unknown search parameter(s) {unknown}; expected some of {sorted(self.SEARCH) or 'none'}"
            )
        for name, value in params.items():
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{self.kind}: search parameter {name} must be an integer >= 0, got {value!r}")
        self._search_params.update({name: int(value) for name, value in params.items()})

    def search_params(self) -> dict:
        """The current search parameters."""
        return dict(self._search_params)

    def memory_bytes(self) -> int:
        """Bytes the index holds in memory: every array it keeps (vectors, codes, graphs, lists)."""
        return int(sum(np.asarray(array).nbytes for array in self._arrays().values()))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to one ``.npz`` file, atomically (see the module docstring)."""
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
            np.savez(temporary, __header__=np.array(json.dumps(header)), **self._arrays())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorIndex:
        """Read an index of this class's kind written by `save`.

        Raises:
            IndexFormatError: not an index file, an unknown format, or another kind (named).
        """
        return load_index(path, kind=cls.kind)

    # ------------------------------------------------------------------ for subclasses

    def _prepare(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"{self.kind}: expected features of shape (n, {self.dim}), got {features.shape}")
        features = l2_normalize(features) if self.metric == "cosine" else features
        return np.ascontiguousarray(features)

    def _train(self, features: np.ndarray) -> None:  # noqa: B027 - a hook: most kinds learn something
        """Learn from prepared rows (default: nothing to learn)."""

    @abstractmethod
    def _add(self, features: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None: ...

    def _scores(self, values: np.ndarray) -> np.ndarray:
        """Scores of inner products of unit rows (cosine) or of squared L2 distances (euclidean)."""
        values = np.asarray(values, np.float64)
        if self.metric == "cosine":
            return cosine_to_score(values)
        return (1.0 / (1.0 + np.sqrt(np.maximum(values, 0.0)))).astype(np.float32)


def _pad(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices) with exactly k columns: −1 / 0 where fewer were found."""
    scores, indices = np.asarray(scores, np.float32), np.asarray(indices, np.int64)
    scores = np.where(indices >= 0, scores, 0.0).astype(np.float32)
    if indices.shape[1] >= k:
        return scores[:, :k], indices[:, :k]
    missing = k - indices.shape[1]
    return (
        np.pad(scores, ((0, 0), (0, missing))),
        np.pad(indices, ((0, 0), (0, missing)), constant_values=-1),
    )


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


def load_index(path: str | os.PathLike, kind: str | None = None) -> VectorIndex:
    """Read an index written by `VectorIndex.save`.

    Args:
        kind: when given, the file must hold this kind.
    Raises:
        IndexFormatError: no such file, not an index file, an unknown format or kind, or not `kind`;
            the message names the file and the field.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["__header__"]))
            arrays = {name: data[name] for name in data.files if name != "__header__"}
    except FileNotFoundError as error:
        raise IndexFormatError(f"{path}: no such index file") from error
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise IndexFormatError(f"{path}: not an index file written by cbir ({type(error).__name__}: {error})") from (
            error
        )
    if not isinstance(header, dict) or header.get("format") != INDEX_FILE_FORMAT:
        shown = header.get("format") if isinstance(header, dict) else header
        raise IndexFormatError(f"{path}: field 'format' must be {INDEX_FILE_FORMAT}, got {shown!r}")
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
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise IndexFormatError(f"{path}: a {found!r} index that cannot be restored ({error})") from error
    return index
