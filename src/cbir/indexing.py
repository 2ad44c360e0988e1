"""Index a folder of images and search it: the library behind ``cbir index`` and ``cbir search``.

`index_folder` embeds every image under a folder with a backbone + pooling, or describes it with a
classic descriptor (`cbir.folder_descriptors`), and keeps the result in a
`cbir.retrieval.feature_index.FeatureIndex` directory, with an optional ANN structure beside it
(`cbir.index_structures`). It holds the directory's lock for the whole
read-modify-write (a second writer waits, then sees the first one's result), re-embeds only new or
changed files, and commits every `commit_every` images, so that an interrupted run loses at most one
chunk and the next run resumes after the last commit. `search_folder_index` embeds queries with the
index's own settings and returns the best matches with scores in [0, 1].

Every file left out is returned with its reason; nothing is printed here except through `log`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.data.images import ImageSet, SkippedFile, list_image_files, readable_images
from cbir.data.pipeline import DECODE_HEADROOM
from cbir.features import FeatureExtractor
from cbir.folder_descriptors import (
    FIT_SAMPLE,
    DescriptorExtractor,
    check_descriptor_settings,
    is_descriptor_settings,
)
from cbir.index_structures import refresh_structure, search_index
from cbir.models.backbones import BACKBONES, PRECISIONS, get_backbone
from cbir.models.pooling import POOLINGS
from cbir.retrieval.feature_index import FeatureIndex, is_index
from cbir.retrieval.ranking import l2_normalize
from cbir.retrieval.storage import IndexFormatError, index_lock, is_index_file, remove_stale_temporaries

Log = Callable[[str], None]
Chunks = Iterable[tuple[list[Path], list[SkippedFile], np.ndarray]]
"""Embedded chunks: (readable paths, skipped files with their reasons, float32 (len(readable), dim) features)."""


class IndexingError(ValueError):
    """An indexing request that cannot be carried out: the message names the path and the reason."""


@dataclass
class IndexReport:
    """What an indexing run did.

    Attributes:
        n_images: images in the index at the end; embedded / unchanged / removed: how many rows
            were computed, kept from the previous index, or dropped (file gone or changed);
        skipped: files left out, each with its reason; warnings: e.g. indistinguishable features.
    """

    directory: Path
    n_images: int = 0
    embedded: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def extractor_settings(
    backbone: str = "efficientnet_lite0",
    layer: str | None = None,
    weights: str | None = "imagenet",
    pooling: str = "gem",
    gem_p: float = 3.0,
    input_size: int | None = None,
    precision: str = "float32",
) -> dict:
    """The settings an index records and checks: backbone, weights, layer, pooling (+ options), size, and
    the compute precision when it is not float32 (`cbir.models.backbones.get_backbone`).

    Raises:
        ValueError: unknown backbone or precision, or `gem_p` <= 0.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}")
    if gem_p <= 0:
        raise ValueError(f"the GeM exponent must be > 0, got {gem_p}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    spec = BACKBONES[backbone]
    layer = layer or spec.conv_layer
    is_dense = layer in spec.top_layers
    size = input_size or spec.input_size
    return {
        "backbone": backbone,
        "weights": weights,
        "seed": None if weights else 0,
        "layer": layer,
        "pooling": None if is_dense else pooling,
        "pooling_options": {} if is_dense or pooling != "gem" else {"p": gem_p},
        "input_size": [size, size],
        "decode_max_side": DECODE_HEADROOM * size,  # files are shrunk while decoding (cbir.data.pipeline)
        **({} if precision == "float32" else {"precision": precision}),  # float32 indexes keep their settings
    }


MAX_INPUT_SIZE = 2048  # pixels a side: settings asking for more are refused rather than run out of memory


def check_extractor_settings(settings: object, source: str = "settings") -> None:
    """Refuse settings that do not describe a feature extractor (e.g. a hand-edited index.json).

    Raises:
        IndexFormatError: naming `source` and the field that is wrong.
    """

    def fail(field: str, expected: str, value: object) -> IndexFormatError:
        return IndexFormatError(f"{source}: field 'settings.{field}' must be {expected}, got {value!r}")

    if not isinstance(settings, dict):
        raise IndexFormatError(f"{source}: field 'settings' must be an object, got {settings!r}")
    if is_descriptor_settings(settings):
        check_descriptor_settings(settings, source)
        return
    if settings.get("backbone") not in BACKBONES:
        raise fail("backbone", f"one of {sorted(BACKBONES)}", settings.get("backbone"))
    if settings.get("weights") not in ("imagenet", None):
        raise fail("weights", "'imagenet' or null", settings.get("weights"))
    if not isinstance(settings.get("layer"), str):
        raise fail("layer", "a layer name", settings.get("layer"))
    if settings.get("pooling") is not None and settings.get("pooling") not in POOLINGS:
        raise fail("pooling", f"null or one of {sorted(POOLINGS)}", settings.get("pooling"))
    size = settings.get("input_size")
    if not (
        isinstance(size, list) and len(size) == 2 and all(type(s) is int and 8 <= s <= MAX_INPUT_SIZE for s in size)
    ):
        raise fail("input_size", f"[height, width] in [8, {MAX_INPUT_SIZE}]", size)
    if settings.get("precision", "float32") not in PRECISIONS:
        raise fail("precision", f"absent or one of {list(PRECISIONS)}", settings.get("precision"))
    options = settings.get("pooling_options", {})
    if not isinstance(options, dict) or any(
        not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v <= 0 for v in options.values()
    ):
        raise fail("pooling_options", "an object of positive finite numbers", options)


def make_extractor(settings: dict, batch_size: int = 32) -> FeatureExtractor:
    """The feature extractor that `settings` (from `extractor_settings`) describe.

    Raises:
        ValueError: a layer the backbone does not offer (from `get_backbone`).
    """
    backbone = get_backbone(
        settings["backbone"],
        layer=settings["layer"],
        weights=settings["weights"],
        input_size=tuple(settings["input_size"]),
        seed=settings.get("seed") or 0,
        precision=settings.get("precision", "float32"),
    )
    pooling = settings["pooling"]
    options = {pooling: settings.get("pooling_options", {})} if pooling else None
    return FeatureExtractor(backbone, pooling=pooling, pooling_options=options, batch_size=batch_size)


def embed_files(
    extractor: FeatureExtractor | DescriptorExtractor, paths: Sequence[Path], progress: bool = True
) -> np.ndarray:
    """Features of image files, float32 (len(paths), dim), in order (no cache): a CNN's L2-normalised,
    a descriptor's as it makes them (normalised as its distance expects)."""
    if isinstance(extractor, DescriptorExtractor):
        return extractor.embed(paths, progress)
    image_set = ImageSet(labels=np.full(len(paths), -1, np.int64), class_names=(), paths=tuple(map(str, paths)))
    return l2_normalize(extractor.extract(image_set, cache=False, progress=progress))


def file_identity(path: Path) -> dict:
    """``{"path": absolute path, "size": bytes, "mtime_ns": modification time}`` of a file."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _check_output_directory(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise IndexingError(f"--out {out} is a file; expected a directory for the index")
    if out.is_dir() and not is_index(out) and not force:
        foreign = [p.name for p in out.iterdir() if not is_index_file(p.name)]  # another writer's files are not foreign
        if foreign:
            raise IndexingError(
                f"{out} is not empty and holds no cbir index ({len(foreign)} entries, e.g. {foreign[0]!r}); "
                "choose a new or empty directory, or pass --force to write the index beside them "
                "(files the index did not write are never deleted)"
            )


def _previous_index(out: Path, settings: dict, force: bool, log: Log) -> FeatureIndex | None:
    if not is_index(out):
        return None
    try:
        return FeatureIndex.load(out, expected_settings=settings)
    except IndexFormatError as error:
        if not force:
            raise IndexingError(f"{error}\n(use another --out, or --force to rebuild this index)") from error
        log(f"warning: rebuilding {out}: {error}")
        return None


def index_folder(
    image_dir: str | os.PathLike,
    out: str | os.PathLike,
    settings: dict,
    *,
    batch_size: int = 32,
    commit_every: int = 1024,
    force: bool = False,
    lock_timeout: float = 600.0,
    progress: bool = True,
    log: Log = lambda message: None,
    structure: str = "flat",
    structure_params: dict | None = None,
    embed_chunks: Callable[[list[Path]], Chunks] | None = None,
) -> IndexReport:
    """Create or update the index of every image under `image_dir` in the directory `out`.

    Args:
        settings: from `extractor_settings` or `cbir.folder_descriptors.descriptor_settings`; an
            existing index must have been built with them.
        structure: ``flat`` (exact search) or an ANN structure of `cbir.index_structures.STRUCTURES`,
            (re)built after the last commit; structure_params: its construction parameters.
        commit_every: images embedded between two commits (the unit of resumption), >= 1.
        force: write into a non-empty directory that holds no index, or rebuild an index that is
            corrupt or was built with other settings.
        embed_chunks: paths → chunks of (readable paths, skipped files, float32 features), each committed
            as it comes (e.g. `cbir.scale.ray_extract.ray_embed_chunks`, CNN settings only); default: this
            process, `commit_every` files a chunk.
    Returns:
        an `IndexReport`.
    Raises:
        IndexingError: `out` is a file or a foreign directory, the previous index is unusable
            (without `force`), or the folder holds no image (each names the path and the reason).
        IndexFormatError: the lock was not obtained within `lock_timeout` seconds.
        FileNotFoundError: `image_dir` is not a directory.
        WeightsUnavailableError: the backbone's weights cannot be found or downloaded.
    """
    if batch_size < 1 or commit_every < 1:
        raise ValueError(f"batch_size and commit_every must be >= 1, got {batch_size} and {commit_every}")
    out = Path(out)
    _check_output_directory(out, force)
    paths, skipped = list_image_files(image_dir)
    if not paths:
        raise IndexingError(f"no images found under {image_dir} ({len(skipped)} other files skipped)")
    report = IndexReport(directory=out, skipped=list(skipped))
    with index_lock(out, timeout=lock_timeout, log=log):
        remove_stale_temporaries(out)
        previous = _previous_index(out, settings, force, log)
        known = {entry["path"]: row for row, entry in enumerate(previous.entries)} if previous else {}
        identities = {path: file_identity(path) for path in paths}
        keep_rows, to_embed = [], []
        for path, identity in identities.items():
            row = known.get(identity["path"])
            if row is not None and previous.entries[row] == identity:
                keep_rows.append(row)
            else:
                to_embed.append(path)
        report.unchanged = len(keep_rows)
        report.removed = len(previous) - len(keep_rows) if previous else 0
        if previous is not None and not report.removed and keep_rows == list(range(len(previous))):
            index = previous  # nothing dropped: append to it as it is
        else:
            kept = previous.features[keep_rows] if previous is not None else np.empty((0, 0), np.float32)
            index = FeatureIndex(settings, [previous.entries[r] for r in keep_rows] if previous else [], kept)
            if previous is not None and "descriptor" in previous.attachments:
                index.attachments = {"descriptor": previous.attachments["descriptor"]}  # fitted once, kept
            index.save(out)
        if embed_chunks is None:  # this process, one chunk of commit_every files at a time
            extractor = _extractor_for(index, out, settings, to_embed, batch_size, progress, log) if to_embed else None
            embed_chunks = functools.partial(embed_in_chunks, extractor, chunk_size=commit_every, progress=progress)
        done = 0
        for readable, unreadable, features in embed_chunks(to_embed):
            report.skipped += unreadable
            if readable:
                index.append(out, [identities[p] for p in readable], features)
                report.embedded += len(readable)
            done += len(readable) + len(unreadable)
            if len(to_embed) > commit_every:
                log(f"committed {done}/{len(to_embed)} new images to {out}")
        refresh_structure(index, out, structure, structure_params, log)
    report.n_images = len(index)
    if len(index) > 1 and np.ptp(index.features, axis=0).max() == 0:
        report.warnings.append(
            f"all {len(index)} features are identical: {_describe(settings)} does not tell these images apart; "
            "scores will all be 1.0"
        )
    return report


def embed_in_chunks(
    extractor: FeatureExtractor | DescriptorExtractor | None,
    paths: Sequence[Path],
    chunk_size: int,
    progress: bool = True,
) -> Chunks:
    """Embed `paths` in this process, `chunk_size` files at a time (the unit a caller commits).

    Yields:
        (readable paths, skipped files with their reasons, float32 (len(readable), dim) features of
        `extractor`, or a (0, 0) array when no file of the chunk is readable).
    """
    for start in range(0, len(paths), chunk_size):
        readable, unreadable = readable_images(paths[start : start + chunk_size])
        features = embed_files(extractor, readable, progress) if readable else np.empty((0, 0), np.float32)
        yield readable, unreadable, features


def _describe(settings: dict) -> str:
    if is_descriptor_settings(settings):
        return f"the {settings['features']} descriptor"
    return f"this backbone ({settings['backbone']}, weights {settings['weights']})"


def _extractor_for(
    index: FeatureIndex,
    out: Path,
    settings: dict,
    to_embed: list[Path],
    batch_size: int,
    progress: bool,
    log: Log,
) -> FeatureExtractor | DescriptorExtractor:
    """The extractor of an indexing run; a descriptor is fitted on this run's images the first time
    and its state attached, or loaded from the attachment."""
    if not is_descriptor_settings(settings):
        return make_extractor(settings, batch_size)
    state = index.attachment_path(out, "descriptor")
    if state is not None:
        return DescriptorExtractor.load(settings, state)
    readable, _ = readable_images(to_embed)
    if not readable:
        return DescriptorExtractor(settings)
    log(f"fitting {settings['features']} on {min(len(readable), FIT_SAMPLE)} images")
    extractor = DescriptorExtractor(settings).fit(readable, progress=progress)
    index.attach(out, "descriptor", extractor.save, {"fitted_on": min(len(readable), FIT_SAMPLE)})
    return extractor


def search_folder_index(
    index: FeatureIndex,
    queries: Sequence[Path],
    k: int = 5,
    batch_size: int = 32,
    progress: bool = True,
    directory: str | os.PathLike | None = None,
    search_params: dict | None = None,
    exact: bool = False,
    log: Log = lambda message: None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed readable query images with the index's settings and search them.

    Args:
        directory: where `index` was loaded from: its attachments (a fitted descriptor, an ANN
            structure) are read there; None searches the features exactly (CNN features only).
        search_params: the ANN structure's search parameters (`cbir.index_structures.search_index`).
        exact: search the features exactly even when an ANN structure is attached.
    Returns:
        (scores, indices), each (len(queries), min(k, len(index))): scores float32 in [0, 1] (the index's
        distance mapped by `cbir.retrieval.distances`; ``(1 + cos) / 2`` for CNN features), indices int64
        into ``index.entries``, best first.
    Raises:
        IndexFormatError: the index's settings describe no extractor, one whose features have another
            width than the index's, or an attachment is missing or corrupt.
        ValueError: a search parameter the structure does not take.
    """
    check_extractor_settings(index.settings, "the index's manifest")
    if is_descriptor_settings(index.settings):
        state = index.attachment_path(directory, "descriptor") if directory is not None else None
        if state is None:
            raise IndexFormatError("the index has no fitted descriptor attached: rebuild it with `cbir index --force`")
        extractor = DescriptorExtractor.load(index.settings, state)
    else:
        try:
            extractor = make_extractor(index.settings, batch_size)
        except ValueError as error:
            raise IndexFormatError(f"the index's settings describe no usable extractor: {error}") from error
        if extractor.dim != index.features.shape[1]:
            raise IndexFormatError(
                f"the index holds {index.features.shape[1]}-D features but its settings give {extractor.dim}-D ones "
                "(an inconsistent index): rebuild it with `cbir index --force`"
            )
    query_features = embed_files(extractor, queries, progress)
    if query_features.shape[1] != index.features.shape[1]:
        raise IndexFormatError(
            f"the index holds {index.features.shape[1]}-D features but its descriptor gives "
            f"{query_features.shape[1]}-D ones: rebuild it with `cbir index --force`"
        )
    if directory is None:
        return index.search(query_features, k=k)
    return search_index(index, Path(directory), query_features, k, search_params, exact, log)
