"""Small file-system helpers shared by the modules: atomic writes and downloads."""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `destination`; rename it over `destination` on success.

    Readers never see a half-written file: either the old file or the complete new one.
    On an exception the temporary file is removed and `destination` is left untouched.
    `suffix` is appended to the temporary name for writers that check extensions (h5py, Keras).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=f".tmp{suffix}", dir=destination.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(destination: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `destination` atomically."""
    with atomic_path(destination) as temporary:
        temporary.write_text(text, encoding="utf-8")


def download(url: str, destination: str | os.PathLike, timeout: float = 30.0) -> Path:
    """Download `url` to `destination` atomically, with a progress bar.

    Raises:
        OSError: (including `urllib.error.URLError`) when the server cannot be reached or the
            transfer breaks; nothing is left at `destination` in that case.
    """
    destination = Path(destination)
    with atomic_path(destination) as temporary:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(temporary, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name) as progress:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    progress.update(len(chunk))
    return destination
