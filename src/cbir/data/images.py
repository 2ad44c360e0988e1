"""Images: decoding to RGB uint8, folder scanning, skipped-file reporting, and `ImageSet`.

An `ImageSet` holds either decoded pixels (``images``, uint8) or file paths (``paths``), integer
labels and the class names. Every loader in `cbir.data` returns ``dict[str, ImageSet]`` keyed by
split name (``"train"``, ``"val"``, ``"test"``, or ``"all"`` where the source has no split).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps


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
    """A file or folder left out of an image folder, with the reason (not an image, unreadable,
    truncated, broken symlink, symlink loop, folder that cannot be listed...)."""

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

    def load_images(self, indices: Iterable[int] | None = None, max_side: int | None = None) -> list[np.ndarray]:
        """Decode the images at `indices` (all when None) to uint8 RGB arrays (h, w, 3).

        Args:
            max_side: for a file-based set, shrink each image while decoding so that neither side
                exceeds it, keeping the aspect ratio (see `read_image`); meant for thumbnails and
                figures. Array-based sets are returned as they are.
        Raises:
            UnreadableImageError: a file cannot be decoded.
        """
        indices = range(len(self)) if indices is None else indices
        if self.images is not None:
            return [_to_rgb_array(self.images[i]) for i in indices]
        return [read_image(self.paths[i], max_side=max_side) for i in indices]


def _to_rgb_array(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


def read_image(path: str | Path, max_side: int | None = None, *, keep_aspect: bool = True) -> np.ndarray:
    """Decode an image file to RGB uint8, applying its EXIF orientation.

    Conversions: grayscale, bilevel, palette and CMYK → RGB; RGBA / LA / palette with
    transparency → composited over white; 16-bit (``I;16``, ``I``) → 8-bit by dividing by 257
    (so 65535 maps to 255); floating-point → clipped to [0, 255].

    With `max_side`, a large image is shrunk while it is decoded, so that memory is bounded by
    Pillow's own buffer of the file's pixels (4 bytes per RGB pixel for a PNG; JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale with ``Image.draft``, so less) instead of several more
    full-size copies: the image is divided by the smallest integer factor(s) that bring its
    sides within `max_side` (``Image.reduce``, a box filter over each factor × factor block),
    so a side that was longer ends between ``max_side / 2`` and `max_side`. An image with no
    side longer than `max_side` decodes exactly (bit for bit) as without it.
    ``Image.MAX_IMAGE_PIXELS`` still applies: a decompression bomb is refused before anything
    is decoded.

    Args:
        path: image file in any format Pillow reads (JPEG, PNG, BMP, GIF, TIFF, WebP, ...).
        max_side: the most pixels either side of the result may have, >= 1; None: full size.
        keep_aspect: with `max_side`, shrink both sides by the same factor, the one the longer
            side needs (the aspect ratio is kept; the shorter side may end below
            ``max_side / 2``). When False each side gets its own factor, so each side longer
            than `max_side` lands between ``max_side / 2`` and `max_side`, and the aspect ratio
            is not kept (for consumers that resize to a fixed size anyway, e.g.
            `image_dataset`).
    Returns:
        uint8 array, shape (height, width, 3); with `max_side`, height and width <= max_side.
    Raises:
        UnreadableImageError: the file is missing, unreadable (permissions), empty, truncated,
            not an image, or so large that Pillow refuses it as a decompression bomb; the
            message names the path.
        ValueError: `max_side` is not a positive integer.
    """
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, Integral) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    try:
        if os.path.getsize(path) == 0:  # Pillow would only say "cannot identify image file"
            raise UnreadableImageError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            shrunk = None if max_side is None else _shrink(image, int(max_side), keep_aspect)
            if shrunk is None:
                ImageOps.exif_transpose(image, in_place=True)
            return _pil_to_rgb_uint8(image if shrunk is None else shrunk)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, UnreadableImageError):
            raise
        detail = error.strerror if isinstance(error, OSError) and error.strerror and error.filename else error
        raise UnreadableImageError(path, f"{type(error).__name__}: {detail}") from error


_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _reduction(size: tuple[int, int], max_side: int, keep_aspect: bool) -> tuple[int, int]:
    """Integer (x, y) factors that bring each side of `size` to at most `max_side`."""
    factors = tuple(-(-side // max_side) for side in size)  # ceil: the smallest sufficient factor
    return (max(factors),) * 2 if keep_aspect else factors


def _shrink(image: Image.Image, max_side: int, keep_aspect: bool) -> Image.Image | None:
    """The opened `image` reduced so that no side exceeds `max_side`, EXIF orientation applied;
    None when it is small enough already (the caller then decodes it as usual)."""
    factors = _reduction(image.size, max_side, keep_aspect)
    if factors == (1, 1):
        return None
    # JPEG only (a no-op elsewhere): decode at the largest 1/2^k scale that stays >= the target.
    image.draft(None, (-(-image.width // factors[0]), -(-image.height // factors[1])))
    image.load()
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if image.mode in ("P", "PA"):  # palette indices cannot be averaged
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    factors = _reduction(image.size, max_side, keep_aspect)
    if factors != (1, 1):
        image = image.reduce(factors)
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def readable_images(paths: Iterable[str | Path], max_side: int | None = 512) -> tuple[list[Path], list[SkippedFile]]:
    """Decode each image once with `read_image`; split the paths into readable ones and the
    files set aside with the reason (missing, permission denied, empty, truncated, corrupt, not
    an image, too large).

    Args:
        max_side: passed to `read_image`: every byte of the file is still decoded (so truncation
            and corruption are caught) but a large image is checked at a reduced size, which
            bounds the memory and time per file.
    Returns:
        (readable paths in input order, skipped files).
    """
    readable, skipped = [], []
    for path in map(Path, paths):
        try:
            read_image(path, max_side=max_side)
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
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)


def list_image_files(root: str | Path) -> tuple[list[Path], list[SkippedFile]]:
    """All image files under `root` (recursively, sorted), and everything skipped, with the reason.

    Image files are recognised by extension, case-insensitively (`IMAGE_EXTENSIONS`). Hidden
    files and folders (starting with ".") are ignored silently. Symlinks are followed, to files
    and to folders; every other entry that is left out is reported as a `SkippedFile`:

    * a file whose extension is not an image's ("not an image");
    * a symlink whose target does not exist ("broken symlink");
    * a symlink that leads back to a folder it is in, or a chain of symlinks that never ends
      ("symlink loop"), once, where the loop closes; a folder reached a second time through
      another symlink is listed once, under the first path found (in each folder, its real
      subfolders are taken before its symlinks), and the other path is reported;
    * a folder that cannot be listed, or an entry that cannot be inspected (permissions);
    * anything that is not a regular file (FIFO, socket, device), which could block a reader.

    Whether the files can be decoded is checked separately, by `readable_images`.

    Returns:
        (image paths, skipped), both sorted by path; the paths run through symlinks as found
        under `root` (not resolved).
    Raises:
        FileNotFoundError: `root` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    images: list[Path] = []
    skipped: list[SkippedFile] = []
    root_info = os.stat(root)
    listed = {(root_info.st_dev, root_info.st_ino): str(root)}  # each folder's identity -> where it was listed

    def unlistable(error: OSError) -> None:
        skipped.append(SkippedFile(str(error.filename), f"cannot list folder ({error.strerror or error})"))

    for folder, subfolders, files in os.walk(root, onerror=unlistable, followlinks=True):
        kept = []
        for name in sorted(subfolders, key=lambda name: (os.path.islink(os.path.join(folder, name)), name)):
            path = os.path.join(folder, name)
            if name.startswith("."):
                continue
            try:
                info = os.stat(path)
            except OSError as error:
                skipped.append(SkippedFile(path, f"cannot open folder ({error.strerror})"))
                continue
            first = listed.setdefault((info.st_dev, info.st_ino), path)
            if first == path:
                kept.append(name)
            elif first == folder or Path(first) in Path(folder).parents:
                skipped.append(SkippedFile(path, f"symlink loop (leads back to {first})"))
            else:
                skipped.append(SkippedFile(path, f"same folder as {first}, listed there"))
        subfolders[:] = sorted(kept)
        for name in files:
            if name.startswith("."):
                continue
            path = Path(folder, name)
            reason = _not_a_file(path)
            if reason is None and path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                skipped.append(SkippedFile(str(path), reason or f"not an image (extension {path.suffix or 'none'!r})"))
    return sorted(images), sorted(skipped, key=lambda s: Path(s.path))


def _not_a_file(path: Path) -> str | None:
    """Why `path` (a non-folder entry of a listing) cannot be read as a file; None if it can."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop"
        if error.errno == errno.ENOENT and os.path.islink(path):
            return f"broken symlink (target {os.readlink(path)} does not exist)"
        return f"cannot access ({error.strerror or error})"
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
        return f"not a regular file ({kind})"
    return None
