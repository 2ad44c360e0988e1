"""What every saved index shares on disk: its error type, the settings check, the writer's lock,
checksums, and the rules for which files an index may touch.

An index directory is *owned*: an index deletes only files that its own manifest listed, and the
hidden temporary files its atomic writes leave when a process is killed mid-write. Writers hold an
OS file lock (`filelock`) on ``<directory>/index.lock`` for the whole read-modify-write, so two
writers are serialised; readers take no lock (the manifest is replaced atomically and the files it
names are immutable, see `cbir.retrieval.feature_index`).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = "index.lock"
# The temporaries of cbir._io.atomic_path: ".<name>.<random>.tmp<suffix>".
_TEMPORARY = re.compile(
    r"^\.(index\.json|features-[0-9a-f]+\.npy|attachment-[0-9a-z_]+\.npz)\.[^/]+\.tmp(\.npy|\.npz)?$"
)
_ATTACHMENT = re.compile(r"attachment-[0-9a-z_]+-[0-9a-f]+\.npz")


class IndexFormatError(ValueError):
    """An index is missing, corrupt, from a newer format, built with other settings, or locked.

    The message names the file, and the field or setting, that is wrong.
    """


def check_settings(location: Path, settings: dict, expected: dict | None) -> None:
    """Raise `IndexFormatError` naming every setting of an index that differs from `expected`; a key that
    only one side has counts as differing (an index built in bfloat16 is not a float32 one)."""
    if expected is None:
        return
    keys = [*expected, *(key for key in settings if key not in expected)]
    differing = {key: (settings.get(key), expected.get(key)) for key in keys if settings.get(key) != expected.get(key)}
    if differing:
        details = ", ".join(f"{key}: index has {have!r}, requested {want!r}" for key, (have, want) in differing.items())
        raise IndexFormatError(
            f"{location}: built with different settings ({details}); search with the index's own settings or rebuild it"
        )


def sha256_of_file(path: Path, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def member_path(directory: Path, name: object, field: str, manifest: Path) -> Path:
    """The path of a file that a manifest names, refusing anything outside `directory`.

    Raises:
        IndexFormatError: `name` is not a plain file name (a path, absolute, hidden or empty).
    """
    if not isinstance(name, str) or not name or name != Path(name).name or name.startswith(".") or os.sep in name:
        raise IndexFormatError(f"{manifest}: field {field!r} must name a file inside {directory}, got {name!r}")
    return directory / name


@contextmanager
def index_lock(directory: Path, timeout: float = 600.0, log=None) -> Iterator[None]:
    """Hold the writer's lock of an index directory (re-entrant within one process).

    Waits up to `timeout` seconds for another writer, saying so on stderr (or through `log`).

    Raises:
        IndexFormatError: the lock was not obtained within `timeout` seconds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(directory / LOCK_NAME, is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        (log or _stderr)(f"waiting for another cbir process writing {directory} (lock {directory / LOCK_NAME})")
        try:
            lock.acquire(timeout=timeout)
        except Timeout as error:
            raise IndexFormatError(
                f"{directory}: another process has been writing this index for over {timeout:.0f} s "
                f"(lock {directory / LOCK_NAME}); try again when it has finished"
            ) from error
    try:
        yield
    finally:
        lock.release()


def is_index_file(name: str) -> bool:
    """Whether a file name is one an index writes: its lock, manifest, shards, attachments or their temporaries."""
    return name in (LOCK_NAME, "index.json") or bool(
        _TEMPORARY.match(name) or re.fullmatch(r"features-[0-9a-f]+\.npy", name) or _ATTACHMENT.fullmatch(name)
    )


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries that killed writers left in `directory`; call only under `index_lock`."""
    removed = []
    for path in directory.iterdir():
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
