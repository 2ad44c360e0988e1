"""`MilvusStore`: the features of a folder of images in a Milvus collection (`pymilvus.MilvusClient`).

The same code serves an embedded Milvus Lite database file (``milvus:data/cbir.db``) and a Milvus
standalone or distributed deployment (``http://HOST:19530``); `cbir.retrieval.milvus_location.parse_store`
reads the ``--store`` value. ``#NAME`` after either picks the collection (default ``cbir``): one collection per index.

Each image is one row: ``id`` (int64 primary key, the first 63 bits of the SHA-256 of the path, so an
update of a path is an upsert of its id), ``path``, ``size`` (bytes), ``mtime_ns``, ``sha256`` (of the
file's bytes), ``vector`` (float32 (dim,), L2-normalised CNN features) and ``code`` (a sign random
projection code of ``bits`` bits, Charikar 2002, through the centre of the first inserted batch).
The row with id -1 is the code's encoder: its ``vector`` is the centre, its ``path`` the JSON of the
encoder's parameters. The extractor settings and the store's options are a collection
property (``cbir.meta``, JSON), compared with the caller's on every open (`cbir.retrieval.storage.check_settings`).

Codes: a server stores them as ``BINARY_VECTOR`` searched with ``HAMMING``; Milvus Lite has no binary
vectors, so there each bit b is the float ``2b - 1`` (±1) searched by inner product:
⟨a, b⟩ = bits − 2·Hamming(a, b), the same ranking. Search is two-phase: a shortlist from Milvus
(Hamming on the codes for ``structure="binary"``, else the float vectors' FLAT / HNSW / IVF index),
then the shortlist's vectors re-ranked exactly (`cbir.retrieval.exact.exact_search`). pymilvus is an
optional dependency (``pip install 'cbir[scale]'``), imported when a store is opened.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cbir.retrieval.binary_codes import SignLSH
from cbir.retrieval.exact import exact_search
from cbir.retrieval.indexes.faiss_indexes import pq_subquantizers
from cbir.retrieval.milvus_location import StoreLocation, connect, import_pymilvus, lite_database_exists
from cbir.retrieval.storage import IndexFormatError, check_settings

STORE_FORMAT_VERSION = 1
META_KEY = "cbir.meta"  # the collection property holding the settings and options (JSON)
ENCODER_ID = -1  # the row holding the code's encoder
MAX_LIMIT = 16384  # Milvus' largest top-k / query window
STRUCTURES = ("binary", "flat", "hnsw", "ivfpq")  # the names of `cbir index --index`
# construction parameters (ivfpq m = 0: the largest divisor of dim <= 64) and search parameters
_DEFAULT_PARAMS = {"binary": {"bits": 256, "nlist": 0}, "flat": {}, "hnsw": {"M": 32, "ef_construction": 200},
                   "ivfpq": {"nlist": 128, "m": 0, "nbits": 8}}  # fmt: skip
_SEARCH_PARAMS = {"binary": {"shortlist": 1000}, "flat": {"refine": 10}, "hnsw": {"refine": 10, "ef": 128},
                  "ivfpq": {"refine": 10, "nprobe": 16}}  # fmt: skip


def check_structure(structure: str, params: dict | None = None) -> dict:
    """`params` completed with the defaults of `structure`, checked before any work (`MilvusStore.create`).

    Raises:
        ValueError: a structure not in `STRUCTURES`, a parameter it does not take, or ``bits`` that is
            not a positive multiple of 8.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown --index {structure!r} for a Milvus store; expected one of {STRUCTURES}")
    unknown = sorted(set(params or {}) - set(_DEFAULT_PARAMS[structure]) - {"bits"})
    if unknown:
        raise ValueError(f"--index {structure} takes {sorted({*_DEFAULT_PARAMS[structure], 'bits'})}, got {unknown}")
    params = {"bits": 256, **_DEFAULT_PARAMS[structure], **(params or {})}
    if not isinstance(params["bits"], int) or params["bits"] < 8 or params["bits"] % 8:
        raise ValueError(f"bits must be a positive multiple of 8, got {params['bits']!r}")
    return params


def path_id(path: str) -> int:
    """The row id of a path: the first 63 bits of its UTF-8 SHA-256 (non-negative int64)."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") >> 1


class MilvusStore:
    """One index in one Milvus collection; open with `open` or `create`, `close` when done.

    Attributes:
        location: the `StoreLocation`; settings: extractor settings; options: ``{"dim", "metric",
            "structure", "params", "codes"}`` (``codes``: ``"binary"`` or ``"float"`` for ±1 floats).
    """

    def __init__(self, client, location: StoreLocation, settings: dict, options: dict):
        self.client, self.location, self.settings, self.options = client, location, settings, options
        self._encoder: SignLSH | None = None

    # ---------------------------------------------------------------- opening

    @classmethod
    def exists(cls, location: StoreLocation) -> bool:
        """Whether the collection exists (connects and disconnects; a missing Lite database: False)."""
        if not lite_database_exists(location):
            return False
        client = connect(location)
        try:
            return client.has_collection(location.collection)
        finally:
            client.close()

    @classmethod
    def open(
        cls, location: StoreLocation, expected_settings: dict | None = None, expected_options: dict | None = None
    ) -> MilvusStore:
        """Open an existing collection and check its settings and options against the expected ones.

        Raises:
            IndexFormatError: no such collection, not one `create` made, a newer format, or a setting or
                option that differs (the message names the store and each differing key).
        """
        client = connect(location)
        try:
            if not client.has_collection(location.collection):
                raise IndexFormatError(f"{location}: no such collection; create it with `cbir index --store ...`")
            description = client.describe_collection(location.collection).get("properties", {}).get(META_KEY, "")
            try:
                document = json.loads(description)
                settings, options, version = document["settings"], document["options"], document["format_version"]
            except (ValueError, TypeError, KeyError) as error:
                raise IndexFormatError(
                    f"{location}: not a cbir collection (description {description[:60]!r})"
                ) from error
            if not isinstance(version, int) or version > STORE_FORMAT_VERSION:
                raise IndexFormatError(f"{location}: store format {version!r} is newer than {STORE_FORMAT_VERSION}")
            check_settings(location, settings, expected_settings)
            if expected_options is not None:
                check_settings(location, options, {**options, **expected_options})
            client.load_collection(location.collection)
        except BaseException:
            client.close()
            raise
        return cls(client, location, settings, options)

    @classmethod
    def create(
        cls,
        location: StoreLocation,
        settings: dict,
        dim: int,
        structure: str = "binary",
        params: dict | None = None,
        overwrite: bool = False,
    ) -> MilvusStore:
        """Create the collection (dropping an existing one only with `overwrite`).

        Args:
            dim: width of the float vectors; structure: one of `STRUCTURES`, the shortlist's source;
            params: ``bits`` (multiple of 8, default 256), ``nlist`` (binary: BIN_IVF_FLAT on a server
                when > 0); hnsw ``M``, ``ef_construction``; ivfpq ``nlist``, ``m``, ``nbits`` (IVF_PQ).
                Milvus Lite may build a FLAT index whatever is asked (a server honours them).
        Raises:
            ValueError: an unknown structure or parameter, or bad bits; IndexFormatError: it exists.
        """
        params = check_structure(structure, params)
        metric = settings.get("metric", "cosine")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"a Milvus store holds cosine or euclidean features; these use {metric!r}")
        options = {"dim": int(dim), "metric": metric, "structure": structure, "params": params,
                   "codes": "float" if location.lite else "binary"}  # fmt: skip
        pymilvus = import_pymilvus()
        client = connect(location, create=True)
        try:
            if client.has_collection(location.collection):
                if not overwrite:
                    raise IndexFormatError(f"{location}: the collection exists; open it, or pass --force to rebuild")
                client.drop_collection(location.collection)
            description = json.dumps({"format_version": STORE_FORMAT_VERSION, "settings": settings, "options": options})
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
            kind = pymilvus.DataType
            schema.add_field("id", kind.INT64, is_primary=True)
            schema.add_field("path", kind.VARCHAR, max_length=4096)
            schema.add_field("size", kind.INT64)
            schema.add_field("mtime_ns", kind.INT64)
            schema.add_field("sha256", kind.VARCHAR, max_length=64)
            schema.add_field("vector", kind.FLOAT_VECTOR, dim=int(dim))
            binary = options["codes"] == "binary"
            schema.add_field("code", kind.BINARY_VECTOR if binary else kind.FLOAT_VECTOR, dim=params["bits"])
            indexes = client.prepare_index_params()
            vector_metric = "IP" if metric == "cosine" else "L2"
            vector_index = {
                "binary": ("FLAT", {}),
                "flat": ("FLAT", {}),
                "hnsw": ("HNSW", {"M": params.get("M"), "efConstruction": params.get("ef_construction")}),
                "ivfpq": ("IVF_PQ", {"nlist": params.get("nlist"), "nbits": params.get("nbits"),
                                     "m": params.get("m") or pq_subquantizers(int(dim))}),
            }[structure]  # fmt: skip
            indexes.add_index("vector", index_type=vector_index[0], metric_type=vector_metric, params=vector_index[1])
            if binary:
                nlist = params.get("nlist", 0)
                code_index = ("BIN_IVF_FLAT", {"nlist": nlist}) if nlist else ("BIN_FLAT", {})
                indexes.add_index("code", index_type=code_index[0], metric_type="HAMMING", params=code_index[1])
            else:
                indexes.add_index("code", index_type="FLAT", metric_type="IP")
            client.create_collection(
                location.collection, schema=schema, index_params=indexes, properties={META_KEY: description}
            )
            client.load_collection(location.collection)
        except BaseException:
            client.close()
            raise
        return cls(client, location, settings, options)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- rows

    def entries(self) -> dict[str, dict]:
        """Every image row's identity by path: ``{"path", "size", "mtime_ns", "sha256"}``.

        Read in id ranges of about 4 096 rows (ids are uniform hashes), a range split in two whenever it
        fills Milvus' query window: no ordering of query results is assumed.
        """
        parts = max(1, -(-len(self) // 4096))
        bounds = [part * (1 << 63) // parts for part in range(parts + 1)]
        found = {}
        for low, high in zip(bounds, bounds[1:]):
            for row in self._rows_between(low, high):
                found[row["path"]] = {key: row[key] for key in ("path", "size", "mtime_ns", "sha256")}
        return found

    def _rows_between(self, low: int, high: int) -> list[dict]:
        fields = ["id", "path", "size", "mtime_ns", "sha256"]
        where = f"id >= {low}" + (f" and id < {high}" if high < 1 << 63 else "")  # 2**63 is no int64
        page = self.client.query(self.location.collection, filter=where, output_fields=fields, limit=MAX_LIMIT)
        if len(page) < MAX_LIMIT or high - low < 2:
            return page
        middle = (low + high) // 2
        return self._rows_between(low, middle) + self._rows_between(middle, high)

    def __len__(self) -> int:
        rows = self.client.query(self.location.collection, filter="id >= 0", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def encoder(self) -> SignLSH | None:
        """The code's encoder (sign random projections through a stored centre), or None before any insert."""
        if self._encoder is None:
            rows = self.client.get(self.location.collection, ids=[ENCODER_ID], output_fields=["path", "vector"])
            if rows:
                params = json.loads(rows[0]["path"])
                self._encoder = _lsh(np.asarray(rows[0]["vector"], np.float32), params["bits"], params["seed"])
        return self._encoder

    def _code_column(self, features: np.ndarray) -> list:
        codes = self.encoder().encode(features)  # bool (n, bits)
        if self.options["codes"] == "binary":
            return [bytes(row) for row in np.packbits(codes, axis=1, bitorder="big")]
        return list((2.0 * codes - 1.0).astype(np.float32))

    def upsert(self, entries: list[dict], features: np.ndarray) -> None:
        """Insert or replace rows by path; the first call fits the encoder's centre on `features`.

        Args:
            entries: ``{"path", "size", "mtime_ns", "sha256"}`` each; features: float32 (len(entries), dim).
        Raises:
            ValueError: counts or width that do not match the store.
        """
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or len(features) != len(entries) or features.shape[1] != self.options["dim"]:
            raise ValueError(f"need ({len(entries)}, {self.options['dim']}) features, got {features.shape}")
        if not entries:
            return
        if self.encoder() is None:
            bits = self.options["params"]["bits"]
            self._encoder = _lsh(features.mean(axis=0).astype(np.float32), bits, seed=0)
            row = {"id": ENCODER_ID, "path": json.dumps({"encoder": "lsh", "bits": bits, "seed": 0}),
                   "size": 0, "mtime_ns": 0, "sha256": "", "vector": self._encoder.mean.astype(np.float32)}  # fmt: skip
            row["code"] = self._code_column(features[:1])[0]
            self.client.upsert(self.location.collection, [row])
        codes = self._code_column(features)
        rows = [
            {**{key: entry[key] for key in ("path", "size", "mtime_ns", "sha256")}, "id": path_id(entry["path"]),
             "vector": vector, "code": code}
            for entry, vector, code in zip(entries, features, codes)
        ]  # fmt: skip
        self.client.upsert(self.location.collection, rows)

    def delete(self, paths: list[str]) -> None:
        """Remove the rows of these paths (absent ones are ignored)."""
        if paths:
            self.client.delete(self.location.collection, ids=[path_id(p) for p in paths])

    # ---------------------------------------------------------------- search

    def search(
        self, query_features: np.ndarray, k: int = 5, search_params: dict | None = None
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Two-phase search: a Milvus shortlist, re-ranked exactly with the features' metric.

        Args:
            query_features: float32 (n_queries, dim), made with the store's settings.
            search_params: binary: ``shortlist`` (codes, default 1000); flat / hnsw / ivfpq: ``refine``
                (shortlist = refine · k, default 10, at least 100), hnsw ``ef``, ivfpq ``nprobe``. Shortlists
                are capped at Milvus' 16 384.
        Returns:
            (scores float32 (n_queries, k') in [0, 1], paths: n_queries lists of k' paths), best first,
            k' = min(k, rows in the store).
        Raises:
            ValueError: k < 1, an unknown search parameter, or queries of another width.
        """
        structure = self.options["structure"]
        params = {**_SEARCH_PARAMS[structure], **(search_params or {})}
        unknown = sorted(set(params) - set(_SEARCH_PARAMS[structure]))
        if unknown:
            raise ValueError(f"a {structure} Milvus store takes {sorted(_SEARCH_PARAMS[structure])}, got {unknown}")
        query_features = np.asarray(query_features, np.float32)
        if k < 1 or query_features.ndim != 2 or query_features.shape[1] != self.options["dim"]:
            raise ValueError(f"need k >= 1 and (n, {self.options['dim']}) queries, got {k}, {query_features.shape}")
        if self.encoder() is None:  # an empty store
            return np.zeros((len(query_features), 0), np.float32), [[] for _ in query_features]
        if structure == "binary":
            limit, field, data = params["shortlist"], "code", self._code_column(query_features)
            milvus = {"metric_type": "HAMMING" if self.options["codes"] == "binary" else "IP", "params": {}}
        else:
            limit, field, data = max(params["refine"] * k, 100), "vector", list(query_features)
            milvus = {"metric_type": "IP" if self.options["metric"] == "cosine" else "L2",
                      "params": {key: params[key] for key in ("ef", "nprobe") if key in params}}  # fmt: skip
        limit = max(k, min(limit, MAX_LIMIT - 1))
        hits = self.client.search(
            self.location.collection, data=data, anns_field=field, limit=limit + 1, search_params=milvus
        )
        shortlists = [[hit["id"] for hit in row if hit["id"] != ENCODER_ID][:limit] for row in hits]
        return self._rerank(query_features, shortlists, k)

    def _rerank(self, query_features: np.ndarray, shortlists: list[list[int]], k: int):
        wanted = sorted({i for row in shortlists for i in row})
        rows = self.client.get(self.location.collection, ids=wanted, output_fields=["path", "vector"]) if wanted else []
        by_id = {row["id"]: row for row in rows}
        k = min(k, min((len(row) for row in shortlists), default=0))
        scores = np.zeros((len(query_features), k), np.float32)
        paths: list[list[str]] = []
        metric = self.options["metric"]
        for number, (query, shortlist) in enumerate(zip(query_features, shortlists)):
            present = [i for i in shortlist if i in by_id]  # a row deleted since the shortlist was made
            vectors = np.asarray([by_id[i]["vector"] for i in present], np.float32).reshape(-1, query.shape[0])
            row_scores, order = exact_search(query[None], vectors, k=k, metric=metric, normalize=metric == "cosine")
            scores[number, : order.shape[1]] = row_scores[0]
            paths.append([by_id[present[i]]["path"] for i in order[0]])
        return scores, paths


def _lsh(centre: np.ndarray, bits: int, seed: int) -> SignLSH:
    """Sign random projections through `centre`, hyperplanes drawn from `seed` as `SignLSH.fit` draws them."""
    projections = np.random.default_rng(seed).standard_normal((len(centre), bits))
    return SignLSH.from_state(
        {"bits": bits, "seed": seed}, {"mean": centre.astype(np.float64), "projections": projections}
    )
