"""``cbir index --store milvus:…`` and ``cbir search --store milvus:…``: a folder's features in Milvus.

`index_folder_milvus` does what `cbir.indexing.index_folder` does for a `FeatureIndex` directory, against
a `cbir.retrieval.milvus_store.MilvusStore`: it embeds new and changed files only (same size and
modification time: unchanged), deletes the rows of files that are gone, upserts every chunk as it is
embedded (the unit of resumption: an interrupted run keeps what was upserted), and reports skipped
files with their reasons. Embedding runs in this process (`local_embed_chunks`) or on Ray
(`cbir.scale.ray_extract.ray_embed_chunks`): the caller passes the chunk generator.
CNN features only: a classic descriptor's fitted vocabulary has no place in a collection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cbir.data.images import list_image_files
from cbir.folder_descriptors import is_descriptor_settings
from cbir.indexing import (
    Chunks,
    IndexingError,
    IndexReport,
    Log,
    embed_files,
    embed_in_chunks,
    file_identity,
    make_extractor,
)
from cbir.retrieval.milvus_location import StoreLocation
from cbir.retrieval.milvus_store import MilvusStore, check_structure
from cbir.retrieval.storage import IndexFormatError, check_settings, sha256_of_file


def local_embed_chunks(
    settings: dict, paths: Sequence[Path], batch_size: int = 32, chunk_size: int = 1024, progress: bool = True
) -> Chunks:
    """Embed files in this process, `chunk_size` at a time (`cbir.indexing.embed_in_chunks`): (readable
    paths, skipped files, float32 (len(readable), dim) L2-normalised features) per chunk."""
    extractor = make_extractor(settings, batch_size) if paths else None
    return embed_in_chunks(extractor, paths, chunk_size, progress)


def _open_or_create(
    location: StoreLocation, settings: dict, structure: str, params: dict, force: bool, log: Log
) -> MilvusStore | None:
    """The store if it exists and fits `settings` and the structure asked for; None when it must be created."""
    if not MilvusStore.exists(location):
        return None
    try:
        store = MilvusStore.open(location, expected_settings=settings)
    except IndexFormatError as error:
        if not force:
            raise IndexingError(f"{error}\n(use another --store collection, or --force to rebuild it)") from error
        log(f"warning: rebuilding {location}: {error}")
        return None
    wanted = {"structure": structure, "params": {**store.options["params"], **params}}
    differing = {key: (store.options[key], value) for key, value in wanted.items() if store.options[key] != value}
    if differing and not force:
        store.close()
        details = ", ".join(f"{key}: store has {have!r}, requested {want!r}" for key, (have, want) in differing.items())
        raise IndexingError(f"{location}: built with another index ({details}); pass --force to rebuild it")
    if differing:
        store.close()
        log(f"warning: rebuilding {location} with --index {structure} {params}")
        return None
    return store


def index_folder_milvus(
    image_dir: str | os.PathLike,
    location: StoreLocation,
    settings: dict,
    embed_chunks: Callable[[list[Path]], Chunks],
    *,
    force: bool = False,
    structure: str = "binary",
    structure_params: dict | None = None,
    log: Log = lambda message: None,
) -> IndexReport:
    """Create or update the Milvus index of every image under `image_dir`.

    Args:
        location: from `cbir.retrieval.milvus_store.parse_store`; settings: CNN extractor settings.
        embed_chunks: paths → chunks of (readable, skipped, features), e.g. `local_embed_chunks` or
            `cbir.scale.ray_extract.ray_embed_chunks` with their other arguments bound.
        structure, structure_params: the shortlist's source and its parameters (`MilvusStore.create`);
            a store built with others is refused unless `force` (which rebuilds it).
        force: rebuild a store built with other settings or another structure.
    Returns:
        an `IndexReport` whose ``directory`` is the store's location.
    Raises:
        ValueError: a structure or parameter the store does not take (`check_structure`), before any work.
        IndexingError: descriptor settings, a store built otherwise (without `force`), or no image.
        IndexFormatError: Milvus cannot be reached; FileNotFoundError: `image_dir` is not a directory;
        ImportError: pymilvus (or ray) is not installed.
    """
    if is_descriptor_settings(settings):
        raise IndexingError(f"--store {location}: a Milvus store holds CNN features; use --store files for descriptors")
    check_structure(structure, structure_params)  # before any image is embedded
    paths, skipped = list_image_files(image_dir)
    if not paths:
        raise IndexingError(f"no images found under {image_dir} ({len(skipped)} other files skipped)")
    report = IndexReport(directory=location, skipped=list(skipped))  # type: ignore[arg-type]
    params = dict(structure_params or {})
    store = _open_or_create(location, settings, structure, params, force, log)
    try:
        known = store.entries() if store is not None else {}
        identities = {path: file_identity(path) for path in paths}
        to_embed = [
            path
            for path, identity in identities.items()
            if {key: known.get(identity["path"], {}).get(key) for key in ("size", "mtime_ns")}
            != {key: identity[key] for key in ("size", "mtime_ns")}
        ]
        report.unchanged = len(paths) - len(to_embed)
        report.removed = len(known) - report.unchanged
        if store is not None:
            current = {identity["path"] for identity in identities.values()}
            store.delete([path for path in known if path not in current])
        for readable, unreadable, features in embed_chunks(to_embed):
            report.skipped += unreadable
            if store is not None:  # a changed file that became unreadable loses its row
                store.delete([identities[Path(item.path)]["path"] for item in unreadable])
            if not readable:
                continue
            if store is None:
                store = MilvusStore.create(location, settings, features.shape[1], structure, params, overwrite=True)
            entries = [{**identities[path], "sha256": sha256_of_file(path)} for path in readable]
            store.upsert(entries, features)
            report.embedded += len(readable)
            if len(to_embed) > len(readable):
                log(f"upserted {report.embedded} of {len(to_embed)} new images into {location}")
        report.n_images = len(store) if store is not None else 0
    finally:
        if store is not None:
            store.close()
    return report


def search_milvus(
    location: StoreLocation,
    queries: Sequence[Path],
    k: int = 5,
    *,
    expected_settings: dict | None = None,
    batch_size: int = 32,
    search_params: dict | None = None,
    exact: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, list[list[str]]]:
    """Embed readable query images with the store's settings and search it (`MilvusStore.search`).

    Args:
        exact: shortlists as long as Milvus allows (16 384): exact on stores up to that size.
    Returns:
        (scores float32 (len(queries), k') in [0, 1], the paths found for each query), best first.
    Raises:
        IndexFormatError: no such collection, or settings other than `expected_settings`;
        ValueError: an unknown search parameter.
    """
    with MilvusStore.open(location) as store:
        wanted = expected_settings or {}
        check_settings(location, {key: store.settings.get(key) for key in wanted}, wanted)
        if not len(store):
            raise IndexFormatError(f"{location}: the index is empty")
        query_features = embed_files(make_extractor(store.settings, batch_size), queries, progress)
        params = dict(search_params or {})
        if exact:
            params["shortlist" if store.options["structure"] == "binary" else "refine"] = 16383
        return store.search(query_features, k, params)
