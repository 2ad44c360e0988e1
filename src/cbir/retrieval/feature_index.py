"""`FeatureIndex`: the features of a folder of image files, saved so that nothing is ever lost.

On disk (format 2), in one directory that the index owns::

    index.json                 the manifest and commit point: format version, settings, shards, entries
    features-<sha256>.npy      immutable shards of L2-normalised float32 rows, named by content
    attachment-<name>-<sha256>.npz   immutable derived files, named by content: a fitted descriptor's
                               vocabulary, an ANN index over the features (`attach`)
    index.lock                 the writers' lock (`cbir.retrieval.storage.index_lock`)

The manifest lists each shard with its row count and SHA-256; the rows of the shards, in order,
are the rows of `features`, one per entry ``{"path", "size", "mtime_ns"}``. A writer first writes
new shards, then atomically replaces the manifest, and only then deletes the shards the previous
manifest listed and the new one does not. A reader (no lock) that loses a race with such a deletion
re-reads the manifest. Growing an index appends a shard and commits, so an interrupted indexing run
keeps every committed chunk and the next run resumes after it. Format 1 (one ``features`` file, no
checksum) is still read. An attachment is listed with its SHA-256 and free-form ``meta`` (e.g. the
shards an ANN index was built from, so a reader can tell whether it is current) and is committed,
replaced and deleted like a shard.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir._io import atomic_write_text
from cbir.retrieval.exact import exact_search
from cbir.retrieval.storage import (
    IndexFormatError,
    check_settings,
    member_path,
    remove_stale_temporaries,
    sha256_of_file,
)

INDEX_FORMAT_VERSION = 2
MANIFEST_NAME = "index.json"
_ENTRY_FIELDS = {"path": str, "size": int, "mtime_ns": int}


@dataclass
class FeatureIndex:
    """Features of a set of files, the files' identity, and how the features were made.

    Attributes:
        settings: the extractor settings (backbone, weights, layer, pooling, input size).
        entries: one ``{"path", "size", "mtime_ns"}`` per row of `features`.
        features: float32, shape (n, dim), L2-normalised.
        shards: the stored shards behind `features`, ``{"file", "rows", "sha256"}`` each (empty
            until saved).
        attachments: derived files by name, ``{"file", "sha256", "meta"}`` each (see `attach`).
    """

    settings: dict
    entries: list[dict] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))
    shards: list[dict] = field(default_factory=list, repr=False)
    attachments: dict[str, dict] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.entries)

    # ---------------------------------------------------------------- writing (hold index_lock)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the whole index as one shard, then commit it; call under `index_lock`.

        Files that earlier manifests of this directory listed are removed once the new manifest
        is committed; no other file is touched.
        """
        directory = Path(directory)
        self.shards = [_write_shard(directory, self.features)] if len(self.entries) else []
        self._commit(directory)
        return directory

    def append(self, directory: str | os.PathLike, entries: list[dict], features: np.ndarray) -> None:
        """Add rows as a new shard and commit at once (the unit of resumption); call under `index_lock`.

        Args:
            entries: identities of the new rows; features: float32, shape (len(entries), dim).
        Raises:
            ValueError: counts or widths that do not match.
        """
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or len(features) != len(entries):
            raise ValueError(f"need (len(entries)={len(entries)}, dim) features, got {features.shape}")
        if len(self.entries) and features.shape[1] != self.features.shape[1]:
            raise ValueError(f"features have dim {features.shape[1]}, the index {self.features.shape[1]}")
        directory = Path(directory)
        if not len(entries):
            return
        self.shards = [*self.shards, _write_shard(directory, features)]
        self.entries = [*self.entries, *entries]
        self.features = np.concatenate([self.features, features]) if len(self.features) else features
        self._commit(directory)

    def attach(self, directory: str | os.PathLike, name: str, write: Callable[[Path], None], meta: dict) -> None:
        """Write a derived file with `write(path)` (an ``.npz`` path), name it by content, and commit it
        as the attachment `name` (replacing the previous one); call under `index_lock`.

        Args:
            name: lower-case letters, digits and underscores (``"descriptor"``, ``"ann"``).
            meta: JSON-serialisable facts about the file, stored in the manifest.
        Raises:
            ValueError: a name with other characters.
        """
        if not name or not all(c.isdigit() or c == "_" or "a" <= c <= "z" for c in name):
            raise ValueError(f"attachment names use a-z, 0-9 and _, got {name!r}")
        directory = Path(directory)
        handle, temporary = tempfile.mkstemp(prefix=f".attachment-{name}.npz.", suffix=".tmp.npz", dir=directory)
        os.close(handle)
        temporary = Path(temporary)
        try:
            write(temporary)
            digest = sha256_of_file(temporary)
            file_name = f"attachment-{name}-{digest[:32]}.npz"
            os.replace(temporary, directory / file_name)
        finally:
            temporary.unlink(missing_ok=True)
        self.attachments = {**self.attachments, name: {"file": file_name, "sha256": digest, "meta": meta}}
        self._commit(directory)

    def detach(self, directory: str | os.PathLike, name: str) -> None:
        """Drop the attachment `name` (if any) and commit; its file is deleted. Call under `index_lock`."""
        if name in self.attachments:
            self.attachments = {key: value for key, value in self.attachments.items() if key != name}
            self._commit(Path(directory))

    def attachment_path(self, directory: str | os.PathLike, name: str) -> Path | None:
        """The verified file of attachment `name`, or None when there is none.

        Raises:
            IndexFormatError: the file is missing or its SHA-256 differs from the manifest's.
        """
        if name not in self.attachments:
            return None
        path = Path(directory) / self.attachments[name]["file"]
        if not path.is_file() or sha256_of_file(path) != self.attachments[name]["sha256"]:
            raise IndexFormatError(f"{path}: attachment {name!r} is missing or corrupted (SHA-256 differs)")
        return path

    def _commit(self, directory: Path) -> None:
        manifest = directory / MANIFEST_NAME
        previous = _owned_files(directory)
        document = {
            "format_version": INDEX_FORMAT_VERSION,
            "settings": self.settings,
            "shards": self.shards,
            "attachments": self.attachments,
            "entries": self.entries,
        }
        atomic_write_text(manifest, json.dumps(document, indent=1))
        keep = {shard["file"] for shard in self.shards} | {item["file"] for item in self.attachments.values()}
        for name in previous - keep:
            (directory / name).unlink(missing_ok=True)
        remove_stale_temporaries(directory)

    # ---------------------------------------------------------------- reading (no lock)

    @classmethod
    def load(
        cls, directory: str | os.PathLike, expected_settings: dict | None = None, retries: int = 3
    ) -> FeatureIndex:
        """Read and verify an index written by `save` / `append`.

        Verified: the manifest's fields and types, the settings against `expected_settings`, that
        every shard is a file inside `directory` with the SHA-256 the manifest records, float32
        rows of one width, finite values, and as many rows as entries.

        Args:
            expected_settings: when given, the index's settings must match them.
            retries: times to re-read the manifest when a concurrent writer replaced it meanwhile.
        Raises:
            IndexFormatError: no index there, a newer format, or any check above failing; the
                message names the file and the field.
        """
        directory = Path(directory)
        for attempt in range(retries + 1):
            manifest = _read_manifest(directory)
            check_settings(directory, manifest["settings"], expected_settings)
            try:
                features = _read_shards(directory, manifest)
            except FileNotFoundError as error:  # a writer committed and removed the old shards
                if attempt == retries:
                    raise IndexFormatError(f"{directory}: shard {error.filename} listed but missing") from error
                continue
            return cls(
                settings=manifest["settings"],
                entries=manifest["entries"],
                features=features,
                shards=manifest["shards"],
                attachments=manifest["attachments"],
            )
        raise AssertionError("unreachable")

    def search(self, query_features: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """`exact_search` of `query_features` (n_queries, dim) against this index."""
        return exact_search(query_features, self.features, k=k)


def is_index(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds an index manifest (readable or not)."""
    return (Path(directory) / MANIFEST_NAME).is_file()


def _write_shard(directory: Path, features: np.ndarray) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".features-0.npy.", suffix=".tmp.npy", dir=directory)
    os.close(handle)
    temporary = Path(temporary)
    try:
        np.save(temporary, np.ascontiguousarray(features, np.float32), allow_pickle=False)
        digest = sha256_of_file(temporary)
        name = f"features-{digest[:32]}.npy"
        os.replace(temporary, directory / name)
    finally:
        temporary.unlink(missing_ok=True)
    return {"file": name, "rows": int(len(features)), "sha256": digest}


def _owned_files(directory: Path) -> set[str]:
    """The shard files the current manifest lists (nothing if it is missing or unreadable)."""
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        names = [shard["file"] for shard in manifest.get("shards", [])] + [manifest.get("features")]
        names += [item["file"] for item in manifest.get("attachments", {}).values()]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return set()
    owned = set()
    for name in names:
        try:
            owned.add(member_path(directory, name, "shards", directory / MANIFEST_NAME).name)
        except IndexFormatError:
            continue
    return owned


def _is(value: object, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def _fail(path: Path, field_name: str, expected: str, value: object) -> IndexFormatError:
    shown = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
    return IndexFormatError(f"{path}: field {field_name!r} must be {expected}, got {shown}")


def _read_manifest(directory: Path) -> dict:
    """The manifest as a dict with every field type-checked (format 1 converted to 2)."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise IndexFormatError(f"{directory} is not a cbir index (no {MANIFEST_NAME}); create one with `cbir index`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise IndexFormatError(f"{path}: unreadable index manifest ({type(error).__name__}: {error})") from error
    if not isinstance(manifest, dict):
        raise _fail(path, "(top level)", "a JSON object", manifest)
    version = manifest.get("format_version")
    if not _is(version, int) or version < 1:
        raise _fail(path, "format_version", "a positive integer", version)
    if version > INDEX_FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format {version} is newer than this cbir supports ({INDEX_FORMAT_VERSION}); "
            "upgrade cbir or rebuild the index"
        )
    if not isinstance(manifest.get("settings"), dict):
        raise _fail(path, "settings", "an object of extractor settings", manifest.get("settings"))
    entries = manifest.get("entries")
    if not isinstance(entries, list):
        raise _fail(path, "entries", "a list", entries)
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(_is(entry.get(key), kind) for key, kind in _ENTRY_FIELDS.items()):
            raise _fail(path, f"entries[{number}]", 'an object {"path": str, "size": int, "mtime_ns": int}', entry)
    if version == 1:  # one unverified features file
        manifest["shards"] = [{"file": manifest.get("features"), "rows": len(entries), "sha256": None}]
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise _fail(path, "shards", "a list", shards)
    for number, shard in enumerate(shards):
        if not isinstance(shard, dict):
            raise _fail(path, f"shards[{number}]", 'an object {"file", "rows", "sha256"}', shard)
        member_path(directory, shard.get("file"), f"shards[{number}].file", path)
        rows, digest = shard.get("rows"), shard.get("sha256")
        if not _is(rows, int) or rows < 0:
            raise _fail(path, f"shards[{number}].rows", "a non-negative integer", rows)
        if version > 1 and not (isinstance(digest, str) and len(digest) == 64):
            raise _fail(path, f"shards[{number}].sha256", "a hex SHA-256", digest)
    attachments = manifest.setdefault("attachments", {})
    if not isinstance(attachments, dict):
        raise _fail(path, "attachments", "an object", attachments)
    for name, item in attachments.items():
        if not isinstance(item, dict) or not isinstance(item.get("meta"), dict):
            raise _fail(path, f"attachments.{name}", 'an object {"file", "sha256", "meta": {...}}', item)
        member_path(directory, item.get("file"), f"attachments.{name}.file", path)
        if not (isinstance(item.get("sha256"), str) and len(item["sha256"]) == 64):
            raise _fail(path, f"attachments.{name}.sha256", "a hex SHA-256", item.get("sha256"))
    total = sum(shard["rows"] for shard in shards)
    if total != len(entries):
        raise IndexFormatError(f"{path}: the shards hold {total} rows for {len(entries)} entries")
    return manifest


def _read_shards(directory: Path, manifest: dict) -> np.ndarray:
    parts, width = [], None
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        if shard["sha256"] is not None and sha256_of_file(path) != shard["sha256"]:
            raise IndexFormatError(f"{path}: contents do not match the SHA-256 in {MANIFEST_NAME} (corrupted)")
        try:
            features = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as error:
            raise IndexFormatError(f"{path}: not a readable .npy feature shard ({error})") from error
        expected_width = "" if width is None else f" of width {width}"
        if features.dtype != np.float32 or features.ndim != 2 or (width is not None and features.shape[1] != width):
            raise IndexFormatError(
                f"{path}: expected float32 rows{expected_width}, got {features.dtype} of shape {features.shape}"
            )
        if len(features) != shard["rows"]:
            raise IndexFormatError(f"{path}: {len(features)} rows, the manifest says {shard['rows']}")
        if not np.isfinite(features).all():
            raise IndexFormatError(f"{path}: features contain NaN or infinity")
        width = features.shape[1]
        parts.append(features)
    if not parts:
        return np.empty((0, 0), np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
