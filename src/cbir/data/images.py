"""Images: decoding to RGB uint8, folder scanning, skipped-file reporting, and `ImageSet`.

An `ImageSet` holds either decoded pixels (``images``, uint8) or file paths (``paths``), integer
labels and the class names. Every loader in `cbir.data` returns ``dict[str, ImageSet]`` keyed by
split name (``"train"``, ``"val"``, ``"test"``, or ``"all"`` where the source has no split).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


class DatasetNotFoundError(FileNotFoundError):
    """No copy of a dataset was found and none could be downloaded. The message lists every
    place tried and how to obtain the files."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is not what its name promises (wrong magic number, truncated,
    inconsistent sizes). The message names the file."""


class UnreadableImageError(ValueError):
    """An image file could not be decoded. ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of an image folder, with the reason (non-image, unreadable, truncated...)."""

    path: str
    reason: str


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled set of images, held either as pixels or as file paths.

    Attributes:
        labels: int64 array, shape (n,); class indices into `class_names`, -1 where unlabelled.
        class_names: the name of each class index.
        images: uint8 array, shape (n, height, width) for grayscale or (n, height, width, 3)
            for RGB; None when the set is file-based.
        paths: n file paths; None when the set is array-based.
        name: a short description for plots and logs, e.g. ``"fashion_mnist/train"``.
    """

    labels: np.ndarray
    class_names: tuple[str, ...]
    images: np.ndarray | None = None
    paths: tuple[str, ...] | None = None
    name: str = ""
    skipped: tuple[SkippedFile, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if (self.images is None) == (self.paths is None):
            raise ValueError("ImageSet needs exactly one of `images` or `paths`")
        n = len(self.images) if self.images is not None else len(self.paths)
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_files(self) -> bool:
        """True when the images are file paths decoded on demand."""
        return self.paths is not None

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """Return the images at `indices` (int array, any order) as a new ImageSet."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            labels=self.labels[indices],
            class_names=self.class_names,
            images=None if self.images is None else self.images[indices],
            paths=None if self.paths is None else tuple(self.paths[i] for i in indices),
            name=self.name,
        )

    def sample(self, n: int, seed: int = 0) -> ImageSet:
        """A random subset of `n` images in their original order; the whole set when n is 0 or ≥ len."""
        if not n or n >= len(self):
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))

    def class_counts(self) -> np.ndarray:
        """int64 array, shape (n_classes,): how many labelled images each class has."""
        labelled = self.labels[self.labels >= 0]
        return np.bincount(labelled, minlength=len(self.class_names)).astype(np.int64)

    def load_images(self, indices: Iterable[int] | None = None) -> list[np.ndarray]:
        """Decode the images at `indices` (all when None) to uint8 RGB arrays (h, w, 3)."""
        indices = range(len(self)) if indices is None else indices
        if self.images is not None:
            return [_to_rgb_array(self.images[i]) for i in indices]
        return [read_image(self.paths[i]) for i in indices]


def _to_rgb_array(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8, applying its EXIF orientation.

    Conversions: grayscale, bilevel, palette and CMYK → RGB; RGBA / LA / palette with
    transparency → composited over white; 16-bit (``I;16``, ``I``) → 8-bit by dividing by 257
    (so 65535 maps to 255); floating-point → clipped to [0, 255].

    Args:
        path: image file in any format Pillow reads (JPEG, PNG, BMP, GIF, TIFF, WebP, ...).
    Returns:
        uint8 array, shape (height, width, 3).
    Raises:
        UnreadableImageError: the file is missing, empty, truncated, not an image, or so large
            that Pillow refuses it as a decompression bomb; the message names the path.
    """
    try:
        if os.path.getsize(path) == 0:  # Pillow would only say "cannot identify image file"
            raise UnreadableImageError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return _pil_to_rgb_uint8(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, UnreadableImageError):
            raise
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from error


def readable_images(paths: Iterable[str | Path]) -> tuple[list[Path], list[SkippedFile]]:
    """Decode each image once with `read_image`; split the paths into readable ones and the
    files set aside with the reason (empty, truncated, corrupt, not an image, too large).

    Returns:
        (readable paths in input order, skipped files).
    """
    readable, skipped = [], []
    for path in map(Path, paths):
        try:
            read_image(path)
            readable.append(path)
        except UnreadableImageError as error:
            skipped.append(SkippedFile(str(path), error.reason))
    return readable, skipped


def _pil_to_rgb_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        pixels = np.asarray(image)
        if pixels.dtype.kind == "f":
            scale = 255.0 if pixels.max(initial=0) <= 1.0 else 1.0
            gray = np.clip(pixels * scale, 0, 255)
        else:
            gray = np.clip(pixels.astype(np.float64) / 257.0, 0, 255)
        return _to_rgb_array(np.round(gray).astype(np.uint8))
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def list_image_files(root: str | Path) -> tuple[list[Path], list[SkippedFile]]:
    """All image files under `root` (recursively, sorted), and the non-image files skipped.

    Image files are recognised by extension, case-insensitively (`IMAGE_EXTENSIONS`). Hidden
    files and folders (starting with ".") are ignored silently.

    Raises:
        FileNotFoundError: `root` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    images, skipped = [], []
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(path)
        else:
            skipped.append(SkippedFile(str(path), f"not an image (extension {path.suffix or 'none'!r})"))
    return images, skipped
