"""Where a Milvus index lives (``--store``) and how to reach it: `parse_store`, `connect`.

``milvus:PATH.db[#NAME]`` is an embedded Milvus Lite database (one process at a time; Milvus Lite keeps
it as a folder at PATH.db), ``http(s)://HOST:PORT[#NAME]`` a Milvus standalone or distributed
deployment; NAME is the collection (default ``cbir``). pymilvus is an optional dependency
(``pip install 'cbir[scale]'``), imported when a store is reached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cbir.retrieval.storage import IndexFormatError

DEFAULT_COLLECTION = "cbir"
MAX_NAME_BYTES = 255  # Milvus' limit on a collection name


def import_pymilvus():
    """The `pymilvus` module; ImportError naming the ``[scale]`` extra when it is not installed."""
    try:
        import pymilvus
    except ImportError as error:
        raise ImportError(
            "--store milvus needs pymilvus with Milvus Lite: pip install 'cbir[scale]' "
            f"(or pip install 'pymilvus[milvus_lite]'); {error}",
            name="pymilvus",
        ) from error
    return pymilvus


def milvus_errors() -> tuple[type[BaseException], ...]:
    """The exception types a Milvus call raises on the server's refusal (pymilvus' `MilvusException`)."""
    return (import_pymilvus().exceptions.MilvusException,)


@dataclass(frozen=True)
class StoreLocation:
    """Where a Milvus index lives: `uri` for `MilvusClient`, the `collection`, and whether it is Milvus Lite."""

    uri: str
    collection: str
    lite: bool

    def __str__(self) -> str:
        return f"{'milvus:' if self.lite else ''}{self.uri}#{self.collection}"


def parse_store(spec: str) -> StoreLocation | None:
    """``--store`` value → `StoreLocation`, or None for ``files`` (the `FeatureIndex` directory).

    ``milvus:PATH[#NAME]``: a Milvus Lite database (PATH must end in ``.db``); ``http(s)://HOST:PORT[#NAME]``:
    a server. NAME: up to 255 ASCII letters, digits and underscores, not first a digit. Nothing is created.

    Raises:
        ValueError: any other form, naming the accepted ones.
    """
    if spec == "files":
        return None
    address, _, collection = spec.partition("#")
    collection = collection or DEFAULT_COLLECTION
    if not (collection.replace("_", "a").isalnum() and collection.isascii() and not collection[0].isdigit()):
        raise ValueError(f"collection name {collection!r}: use letters, digits and _, not starting with a digit")
    if len(collection) > MAX_NAME_BYTES:
        raise ValueError(f"collection name of {len(collection)} characters: Milvus takes at most {MAX_NAME_BYTES}")
    if address.startswith("milvus:"):
        path = Path(address.removeprefix("milvus:")).expanduser()
        if path.suffix != ".db":
            raise ValueError(f"--store {spec}: Milvus Lite needs a file name ending in .db, got {str(path)!r}")
        return StoreLocation(str(path.resolve()), collection, lite=True)
    if address.startswith(("http://", "https://")):
        return StoreLocation(address, collection, lite=False)
    raise ValueError(f"--store {spec!r}: expected 'files', 'milvus:PATH.db[#NAME]' or 'http(s)://HOST:PORT[#NAME]'")


def lite_database_exists(location: StoreLocation) -> bool:
    """Whether a Milvus Lite database is at the location's path (always True for a server)."""
    return not location.lite or Path(location.uri).exists()


def connect(location: StoreLocation, create: bool = False):
    """A `pymilvus.MilvusClient` for `location`.

    Args:
        create: a Milvus Lite database may be created (with its parent folders); otherwise a missing one
            is an error, and nothing is written.
    Raises:
        IndexFormatError: no database at a Lite path (without `create`), a path that is a plain file
            (not a Milvus Lite database), a folder that cannot be made, or Milvus unreachable or locked
            (Milvus Lite serves one process at a time); ImportError: pymilvus is not installed.
    """
    pymilvus = import_pymilvus()
    if location.lite:
        path = Path(location.uri)
        if path.is_file():
            raise IndexFormatError(f"{location}: {path} is a file, not a Milvus Lite database (a folder)")
        if not path.exists() and not create:
            raise IndexFormatError(f"{location}: no Milvus Lite database there; create it with `cbir index --store`")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise IndexFormatError(f"{location}: cannot create its folder ({error})") from error
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # its traceback; the error below says why
    try:
        return pymilvus.MilvusClient(uri=location.uri)
    except Exception as error:  # grpc / Lite start-up errors have many types
        hint = " (is another process using it? Milvus Lite serves one at a time)" if location.lite else ""
        reason = f"{type(error).__name__}: {error}"
        raise IndexFormatError(f"{location}: cannot connect to Milvus{hint} ({reason})") from error
