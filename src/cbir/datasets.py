"""Datasets: Fashion-MNIST, Tiny ImageNet 200, CIFAR-10, scikit-learn digits, any image folder.

Every loader returns ``dict[str, ImageSet]`` keyed by split name (``"train"``, ``"val"``, ``"test"``,
or ``"all"`` where the source has no split). An `ImageSet` holds either decoded pixels
(``images``, uint8) or file paths (``paths``), integer labels and the class names;
`image_dataset` turns either kind into a batched ``tf.data.Dataset``.

Sources, licences and look-up order are in the README ("Datasets"). Nothing under
``data/raw/`` is modified: downloads land there once, atomically, and are read from then on.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
from PIL import Image, ImageOps

from cbir import config
from cbir._io import download as _download

__all__ = [
    "DATASETS",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "SkippedFile",
    "UnreadableImageError",
    "find_fashion_mnist",
    "find_tiny_imagenet",
    "image_dataset",
    "image_statistics",
    "list_image_files",
    "load",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_tiny_imagenet",
    "make_tiny_imagenet_fixture",
    "read_idx",
    "retrieval_split",
    "read_image",
    "readable_images",
    "scan_image_folder",
    "split",
    "to_array",
]

# --------------------------------------------------------------------------------------------
# Containers and errors
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Image decoding
# --------------------------------------------------------------------------------------------

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
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_URLS: tuple[str, ...] = (
    # The official host (Zalando Research), then the mirror Keras' own loader uses.
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned-byte labels (rank 1) and images (rank 3)


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read a gzip-compressed IDX file (the MNIST / Fashion-MNIST format) of unsigned bytes.

    Format (LeCun et al.): a big-endian magic number ``0x0000 08 <ndim>`` (0x08 = unsigned
    byte), `ndim` big-endian uint32 sizes, then the data in C order.

    Args:
        path: the ``.gz`` file.
        ndim: expected rank: 1 for label files (magic 2049), 3 for image files (magic 2051).
    Returns:
        uint8 array with the shape the header declares.
    Raises:
        DatasetFormatError: not gzip, wrong magic number, or a data section whose length does
            not match the header (truncated or padded); the message names `path`.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise DatasetFormatError(f"{path}: not a readable gzip file ({error})") from error
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise DatasetFormatError(
            f"{path}: magic number {magic:#010x}, expected {_IDX_MAGIC[ndim]:#010x} "
            f"(unsigned-byte IDX of rank {ndim})"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    found = len(raw) - header_size
    if found != expected:
        raise DatasetFormatError(
            f"{path}: header declares shape {shape} ({expected} bytes of data), "
            f"found {found} bytes ({'truncated' if found < expected else 'trailing data'})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _missing_files(directory: Path, names: Iterable[str]) -> list[str]:
    return [name for name in names if not (directory / name).is_file()]


def find_fashion_mnist(data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Locate the four Fashion-MNIST IDX ``.gz`` files, downloading them as a last resort.

    Look-up order: `data_dir` (when given), ``DATA_DIR/raw/fashion-mnist``,
    ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``),
    then a download from the official host into ``DATA_DIR/raw/fashion-mnist``.

    Returns:
        the directory holding all four files.
    Raises:
        DatasetNotFoundError: no directory had all four files and the download failed or was
            disabled; the message lists every place tried and how to get the files.
    """
    names = [name for pair in FASHION_MNIST_FILES.values() for name in pair]
    target = config.RAW_DATA_DIR / "fashion-mnist"
    candidates = ([Path(data_dir)] if data_dir else []) + [target, FASHION_MNIST_SYSTEM_DIR]
    tried = []
    for candidate in candidates:
        missing = _missing_files(candidate, names)
        if not missing:
            return candidate
        tried.append(f"  - {candidate}: missing {', '.join(missing)}")
    if download:
        errors = []
        for base_url in FASHION_MNIST_URLS:
            try:
                for name in _missing_files(target, names):
                    _download(base_url + name, target / name)
                return target
            except OSError as error:
                errors.append(f"  - download from {base_url}: {error}")
        tried.extend(errors)
    else:
        tried.append("  - download: disabled (download=False)")
    raise DatasetNotFoundError(
        "Fashion-MNIST not found. Tried:\n" + "\n".join(tried) + "\n"
        "Get it with one of:\n"
        "  sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu; files in "
        f"{FASHION_MNIST_SYSTEM_DIR})\n"
        f"  download {', '.join(names)} from {FASHION_MNIST_URLS[0]} into {target}"
    )


def load_fashion_mnist(data_dir: str | Path | None = None, download: bool = True) -> dict[str, ImageSet]:
    """Fashion-MNIST (Xiao et al., 2017): 70 000 28×28 grayscale clothing images, 10 classes.

    Args:
        data_dir: a directory with the four IDX files, tried first (see `find_fashion_mnist`).
        download: allow the official download when no local copy is found.
    Returns:
        ``{"train": 60 000 images, "test": 10 000 images}``; images uint8 (n, 28, 28),
        labels int64 in [0, 10), 6 000 / 1 000 per class.
    Raises:
        DatasetNotFoundError: see `find_fashion_mnist`.
        DatasetFormatError: a file is corrupt, or its images and labels disagree in count.
    """
    directory = find_fashion_mnist(data_dir, download=download)
    splits = {}
    for split_name, (image_file, label_file) in FASHION_MNIST_FILES.items():
        images = read_idx(directory / image_file, ndim=3)
        labels = read_idx(directory / label_file, ndim=1).astype(np.int64)
        if len(images) != len(labels):
            raise DatasetFormatError(
                f"{directory / image_file} holds {len(images)} images but "
                f"{directory / label_file} holds {len(labels)} labels"
            )
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise DatasetFormatError(
                f"{directory / label_file}: label {labels.max()} outside [0, {len(FASHION_MNIST_CLASSES)})"
            )
        splits[split_name] = ImageSet(
            labels=labels, class_names=FASHION_MNIST_CLASSES, images=images,
            name=f"fashion_mnist/{split_name}",
        )
    return splits


# --------------------------------------------------------------------------------------------
# Tiny ImageNet 200
# --------------------------------------------------------------------------------------------

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_DIRNAME = "tiny-imagenet-200"


def _is_tiny_imagenet(directory: Path) -> bool:
    return (directory / "wnids.txt").is_file() and (directory / "train").is_dir()


def find_tiny_imagenet(data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Locate an extracted Tiny ImageNet 200 (the directory holding ``wnids.txt``).

    Look-up order: `data_dir`, ``DATA_DIR/raw/tiny-imagenet-200``, then the official
    download (≈ 240 MB zip from the CS231n course site), extracted atomically into
    ``DATA_DIR/raw/`` (a temporary directory renamed into place only when complete).

    Raises:
        DatasetNotFoundError: not found and the download failed or was disabled.
    """
    target = config.RAW_DATA_DIR / TINY_IMAGENET_DIRNAME
    candidates = ([Path(data_dir)] if data_dir else []) + [target]
    tried = []
    for candidate in candidates:
        if _is_tiny_imagenet(candidate):
            return candidate
        tried.append(f"  - {candidate}: no wnids.txt + train/")
    if download:
        try:
            return _download_tiny_imagenet(target)
        except (OSError, zipfile.BadZipFile) as error:
            tried.append(f"  - download from {TINY_IMAGENET_URL}: {error}")
    else:
        tried.append("  - download: disabled (download=False)")
    raise DatasetNotFoundError(
        "Tiny ImageNet 200 not found. Tried:\n" + "\n".join(tried) + "\n"
        f"Download {TINY_IMAGENET_URL} and unzip it into {config.RAW_DATA_DIR} "
        f"(giving {target}/wnids.txt)."
    )


def _download_tiny_imagenet(target: Path) -> Path:
    archive = target.parent / f"{TINY_IMAGENET_DIRNAME}.zip"
    if not archive.is_file():
        _download(TINY_IMAGENET_URL, archive, timeout=60.0)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-imagenet-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(staging)
        extracted = staging / TINY_IMAGENET_DIRNAME
        if not _is_tiny_imagenet(extracted):
            raise DatasetFormatError(f"{archive}: no {TINY_IMAGENET_DIRNAME}/wnids.txt inside")
        extracted.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing (expected in the Tiny ImageNet layout)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_tiny_imagenet(data_dir: str | Path | None = None, download: bool = True) -> dict[str, ImageSet]:
    """Tiny ImageNet 200 (CS231n, Stanford): 64×64 colour JPEGs of 200 ImageNet classes.

    Published layout::

        wnids.txt                          200 WordNet ids, one per line
        words.txt                          "<wnid>\\t<names>" for all of WordNet
        train/<wnid>/images/*.JPEG         500 per class
        val/images/*.JPEG + val/val_annotations.txt   "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"
        test/images/*.JPEG                 unlabelled

    Some JPEGs are grayscale; `read_image` / `image_dataset` convert them to RGB.

    Returns:
        ``{"train", "val", "test"}`` file-based ImageSets. Class indices follow the sorted
        WordNet ids; `class_names` are the first synonym in ``words.txt`` (the id when absent).
        Test labels are -1.
    Raises:
        DatasetNotFoundError: see `find_tiny_imagenet`.
        DatasetFormatError: a required file is missing, a class has no training images, or
            ``val_annotations.txt`` names an unknown id or a missing file (path and line given).
    """
    root = find_tiny_imagenet(data_dir, download=download)
    wnids = sorted(set(_read_lines(root / "wnids.txt")))
    index = {wnid: i for i, wnid in enumerate(wnids)}
    words = {}
    if (root / "words.txt").is_file():
        for line in _read_lines(root / "words.txt"):
            wnid, _, names = line.partition("\t")
            words[wnid] = names.split(",")[0].strip()
    class_names = tuple(words.get(wnid, wnid) for wnid in wnids)

    train_paths, train_labels = [], []
    for wnid in wnids:
        files = sorted(p for p in (root / "train" / wnid / "images").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetFormatError(f"{root / 'train' / wnid / 'images'}: no training images for class {wnid}")
        train_paths += [str(p) for p in files]
        train_labels += [index[wnid]] * len(files)

    val_paths, val_labels = [], []
    annotations = root / "val" / "val_annotations.txt"
    for number, line in enumerate(_read_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DatasetFormatError(f"{annotations}:{number}: expected '<file>\\t<wnid from wnids.txt>', got {line!r}")
        path = root / "val" / "images" / fields[0]
        if not path.is_file():
            raise DatasetFormatError(f"{annotations}:{number}: {path} does not exist")
        val_paths.append(str(path))
        val_labels.append(index[fields[1]])

    test_paths = sorted(str(p) for p in (root / "test" / "images").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)

    def make(name: str, paths: list[str], labels: list[int]) -> ImageSet:
        return ImageSet(labels=np.asarray(labels, dtype=np.int64), class_names=class_names,
                        paths=tuple(paths), name=f"tiny_imagenet/{name}")

    return {
        "train": make("train", train_paths, train_labels),
        "val": make("val", val_paths, val_labels),
        "test": make("test", test_paths, [-1] * len(test_paths)),
    }


def make_tiny_imagenet_fixture(root: str | Path, n_classes: int = 3, train_per_class: int = 4,
                               val_per_class: int = 2, n_test: int = 3, size: int = 64, seed: int = 0) -> Path:
    """Write a miniature Tiny ImageNet 200 in the published layout, for tests and smoke runs.

    The layout is exactly that of the real archive (see `load_tiny_imagenet`), with real
    WordNet ids, a ``words.txt`` holding one unused entry, bounding-box files, and one
    grayscale JPEG per class in train and val (the real dataset has some). Images are
    class-coloured noise, so that a model can learn the classes.

    Returns:
        `root`, ready for ``load_tiny_imagenet(root)``.
    Raises:
        ValueError: more classes than the 8 WordNet ids available here.
    """
    wnids = ("n01443537", "n01629819", "n02123045", "n02099601", "n03444034", "n04254680", "n07747607", "n09246464")
    words = ("goldfish, Carassius auratus", "European fire salamander", "tabby, tabby cat", "golden retriever",
             "go-kart", "soccer ball", "orange", "cliff, drop, drop-off")
    if not 1 <= n_classes <= len(wnids):
        raise ValueError(f"n_classes must be in [1, {len(wnids)}], got {n_classes}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(30, 226, (n_classes, 3))
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids[:n_classes]))
    (root / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in zip(wnids, words)) + "n09999999\tan unused entry\n")

    def jpeg(path: Path, class_index: int, grayscale: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(palette[class_index] + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        (image.convert("L") if grayscale else image).save(path, "JPEG", quality=90)

    annotations = []
    for c, wnid in enumerate(wnids[:n_classes]):
        boxes = []
        for i in range(train_per_class):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", c, grayscale=(i == 0))
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t{size - 1}\t{size - 1}\n")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
        for i in range(val_per_class):
            name = f"val_{c * val_per_class + i}.JPEG"
            jpeg(root / "val" / "images" / name, c, grayscale=(i == 0))
            annotations.append(f"{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n")
    (root / "val" / "val_annotations.txt").write_text("".join(annotations))
    for i in range(n_test):
        jpeg(root / "test" / "images" / f"test_{i}.JPEG", i % n_classes, grayscale=False)
    return root


# --------------------------------------------------------------------------------------------
# CIFAR-10 and digits
# --------------------------------------------------------------------------------------------

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def load_cifar10() -> dict[str, ImageSet]:
    """CIFAR-10 (Krizhevsky, 2009) through Keras' loader, cached in ``~/.keras/datasets``.

    Returns:
        ``{"train": 50 000, "test": 10 000}`` images uint8 (n, 32, 32, 3), labels int64 in [0, 10).
    Raises:
        DatasetNotFoundError: the archive is not cached and cannot be downloaded (offline).
    """
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # Keras wraps network failures in several exception types
        raise DatasetNotFoundError(
            "CIFAR-10 could not be loaded through keras.datasets.cifar10 "
            f"({type(error).__name__}: {error}). It needs internet access once; the archive is then "
            "cached as ~/.keras/datasets/cifar-10-batches-py.tar.gz."
        ) from error
    return {
        name: ImageSet(labels=y.reshape(-1).astype(np.int64), class_names=CIFAR10_CLASSES,
                       images=x, name=f"cifar10/{name}")
        for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test))
    }


def load_digits() -> dict[str, ImageSet]:
    """scikit-learn's 8×8 handwritten digits (1 797 images, 10 classes), for fast tests.

    Returns:
        ``{"all": ...}``; images uint8 (1797, 8, 8) rescaled from [0, 16] to [0, 255].
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return {"all": ImageSet(labels=digits.target.astype(np.int64),
                            class_names=tuple(str(d) for d in range(10)),
                            images=images, name="digits/all")}


# --------------------------------------------------------------------------------------------
# Any class-per-subfolder image tree
# --------------------------------------------------------------------------------------------


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


def scan_image_folder(
    root: str | Path, check_images: bool = True
) -> tuple[list[Path], list[int], tuple[str, ...], list[SkippedFile]]:
    """Walk a class-per-subfolder tree: ``root/<class>/**/<image>``.

    Each immediate subfolder of `root` is a class (sorted by name); images in nested folders
    below it belong to it. With `check_images`, every image is decoded once and unreadable or
    truncated files are set aside with the reason.

    Returns:
        (paths, labels, class_names, skipped).
    Raises:
        FileNotFoundError: `root` is missing or has no class subfolders.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise FileNotFoundError(f"image folder {root} has no class subfolders (expected root/<class>/<image>)")
    paths, labels, skipped = [], [], []
    for label, class_dir in enumerate(class_dirs):
        images, non_images = list_image_files(class_dir)
        skipped += non_images
        if check_images:
            images, unreadable = readable_images(images)
            skipped += unreadable
        paths += images
        labels += [label] * len(images)
    return paths, labels, tuple(p.name for p in class_dirs), skipped


def load_image_folder(
    root: str | Path,
    on_error: Literal["skip", "raise"] = "skip",
    check_images: bool = True,
) -> dict[str, ImageSet]:
    """Load any class-per-subfolder image tree (see `scan_image_folder`).

    Non-image files are skipped with one warning listing them. Unreadable or truncated images
    are either skipped with a warning naming each path (``on_error="skip"``) or raise
    (``on_error="raise"``). Pixels are decoded later by `read_image` / `image_dataset`, which
    apply EXIF orientation and convert grayscale / RGBA / palette / 16-bit to RGB uint8.

    Returns:
        ``{"all": ImageSet}`` (file-based); ``skipped`` lists what was left out and why.
    Raises:
        FileNotFoundError: `root` is missing or has no class subfolders.
        UnreadableImageError: an image cannot be decoded and ``on_error="raise"``.
        ValueError: `on_error` is neither "skip" nor "raise".
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    paths, labels, class_names, skipped = scan_image_folder(root, check_images=check_images)
    unreadable = [s for s in skipped if not s.reason.startswith("not an image")]
    if unreadable and on_error == "raise":
        raise UnreadableImageError(unreadable[0].path, unreadable[0].reason)
    if skipped:
        listing = "\n".join(f"  {s.path}: {s.reason}" for s in skipped[:50])
        more = f"\n  ... and {len(skipped) - 50} more" if len(skipped) > 50 else ""
        warnings.warn(f"{root}: skipped {len(skipped)} file(s):\n{listing}{more}", stacklevel=2)
    image_set = ImageSet(labels=np.asarray(labels, dtype=np.int64), class_names=class_names,
                         paths=tuple(str(p) for p in paths), name=f"folder/{Path(root).name}",
                         skipped=tuple(skipped))
    return {"all": image_set}


# --------------------------------------------------------------------------------------------
# Registry, splitting and tf.data
# --------------------------------------------------------------------------------------------

DATASETS: dict[str, Callable[..., dict[str, ImageSet]]] = {
    "fashion_mnist": lambda data_dir=None, download=True: load_fashion_mnist(data_dir, download),
    "tiny_imagenet": lambda data_dir=None, download=True: load_tiny_imagenet(data_dir, download),
    "cifar10": lambda data_dir=None, download=True: load_cifar10(),
    "digits": lambda data_dir=None, download=True: load_digits(),
    "folder": lambda data_dir=None, download=True: load_image_folder(_require(data_dir)),
}


def _require(data_dir: str | Path | None) -> str | Path:
    if not data_dir:
        raise ValueError("dataset 'folder' needs data_dir: the root of a class-per-subfolder image tree")
    return data_dir


def load(name: str, data_dir: str | Path | None = None, download: bool = True) -> dict[str, ImageSet]:
    """Load a dataset by name: one of `DATASETS` (``fashion_mnist``, ``tiny_imagenet``,
    ``cifar10``, ``digits``, ``folder``). `data_dir` is tried first where the loader takes one
    (and is required for ``folder``).

    Raises:
        ValueError: unknown `name`, listing the valid ones.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name](data_dir=data_dir or None, download=download)


def split(
    labels: np.ndarray, *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Stratified train / validation / test split with a fixed seed.

    Each class is divided in the same proportions (up to rounding), via scikit-learn's
    `train_test_split(stratify=...)` applied twice.

    Args:
        labels: int array, shape (n,).
        val_fraction, test_fraction: fractions of n in [0, 1), summing to less than 1; 0 gives
            an empty split.
        seed: random seed; the same seed gives the same split.
    Returns:
        ``{"train", "val", "test"}`` → sorted int64 index arrays that partition ``range(n)``.
    Raises:
        ValueError: fractions out of range, or a class too small to appear in every split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and val_fraction + test_fraction < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    indices = np.arange(len(labels))
    result = {"val": np.empty(0, np.int64), "test": np.empty(0, np.int64)}
    rest = indices
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction == 0:
            continue
        share = fraction / (len(rest) / len(labels))
        try:
            rest, taken = train_test_split(rest, test_size=share, stratify=labels[rest], random_state=seed)
        except ValueError as error:
            raise ValueError(
                f"cannot take a stratified {name} split of {fraction:g} from {len(labels)} images in "
                f"{len(np.unique(labels))} classes (every class needs a member in every split): {error}"
            ) from error
        result[name] = np.sort(taken).astype(np.int64)
    result["train"] = np.sort(rest).astype(np.int64)
    return {name: result[name] for name in ("train", "val", "test")}



def retrieval_split(splits: dict[str, ImageSet], query_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """The retrieval protocol used by the notebooks: (database, queries).

    The database is the training split; the queries are the labelled test split, else the
    labelled validation split (Tiny ImageNet's test images are unlabelled). A dataset with a
    single split (digits, an image folder) is divided with `split`: a stratified
    `query_fraction` becomes the queries.
    """
    if "train" not in splits:
        everything = next(iter(splits.values()))
        parts = split(everything.labels, val_fraction=0.0, test_fraction=query_fraction, seed=seed)
        return everything.subset(parts["train"]), everything.subset(parts["test"])
    query_split = "test" if "test" in splits and (splits["test"].labels >= 0).any() else "val"
    return splits["train"], splits[query_split]

def image_dataset(
    image_set: ImageSet,
    image_size: tuple[int, int] | None = None,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int = 0,
    with_labels: bool = True,
):
    """A ``tf.data.Dataset`` of RGB images (and labels) from an `ImageSet`.

    Files are decoded in parallel with `read_image` (Pillow: EXIF orientation, grayscale /
    CMYK / RGBA / 16-bit → RGB); arrays are sliced in memory. Grayscale arrays get three
    identical channels.

    Args:
        image_size: (height, width) to resize to (bilinear); required for file-based sets
            whose images differ in size when batching.
        batch_size: batch size, or None for unbatched elements.
        shuffle: shuffle (with `seed`) before batching.
        with_labels: yield ``(images, labels)`` when True, else ``images`` only.
    Returns:
        dataset of float32 images in [0, 255], shape (batch, height, width, 3), and int64
        labels shape (batch,); prefetched with AUTOTUNE.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    if image_set.images is not None:
        dataset = tf.data.Dataset.from_tensor_slices((image_set.images, image_set.labels))

        def decode(image, label):
            image = tf.cast(image, tf.float32)
            if image.shape.rank == 2:
                image = tf.repeat(image[..., None], 3, axis=-1)
            return image, label
    else:
        dataset = tf.data.Dataset.from_tensor_slices((list(image_set.paths), image_set.labels))

        def decode(path, label):
            image = tf.numpy_function(lambda p: read_image(p.decode()), [path], tf.uint8)
            image.set_shape([None, None, 3])
            return tf.cast(image, tf.float32), label

    if shuffle:
        dataset = dataset.shuffle(len(image_set), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(decode, num_parallel_calls=autotune)
    if image_size is not None:
        dataset = dataset.map(lambda x, y: (tf.image.resize(x, image_size), y), num_parallel_calls=autotune)
    if not with_labels:
        dataset = dataset.map(lambda x, y: x, num_parallel_calls=autotune)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(autotune)


def to_array(image_set: ImageSet, image_size: tuple[int, int], batch_size: int = 256) -> np.ndarray:
    """Decode, convert to RGB and resize every image into memory.

    Returns:
        uint8, shape (n, height, width, 3).
    """
    batches = image_dataset(image_set, image_size=image_size, batch_size=batch_size, with_labels=False)
    arrays = [np.clip(np.round(batch.numpy()), 0, 255).astype(np.uint8) for batch in batches]
    return np.concatenate(arrays) if arrays else np.empty((0, *image_size, 3), np.uint8)


def image_statistics(image_set: ImageSet, max_images: int | None = 2000, seed: int = 0):
    """Per-image size and channel statistics, on a random sample of at most `max_images`.

    Returns:
        pandas DataFrame, one row per sampled image, columns ``height``, ``width``,
        ``channels`` (as stored: 1 for grayscale arrays, else that of the file's mode), ``mean``
        and ``std`` (over all pixels, 0–255 scale), and ``mean_r``, ``mean_g``, ``mean_b``.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = len(image_set)
    chosen = np.sort(rng.choice(n, size=min(n, max_images or n), replace=False))
    rows = []
    for i in chosen:
        if image_set.images is not None:
            stored = image_set.images[i]
            channels = 1 if stored.ndim == 2 else stored.shape[-1]
        else:
            with Image.open(image_set.paths[i]) as handle:
                channels = len(handle.getbands())
        rgb = image_set.load_images([i])[0].astype(np.float64)
        rows.append({
            "height": rgb.shape[0], "width": rgb.shape[1], "channels": channels,
            "mean": rgb.mean(), "std": rgb.std(),
            "mean_r": rgb[..., 0].mean(), "mean_g": rgb[..., 1].mean(), "mean_b": rgb[..., 2].mean(),
        })
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cbir.datasets NAME [DATA_DIR]``: locate (or download) a dataset and summarise it."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m cbir.datasets", description=main.__doc__)
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("data_dir", nargs="?", default=None)
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    args = parser.parse_args(argv)
    try:
        splits = load(args.name, args.data_dir, download=not args.no_download)
    except (DatasetNotFoundError, DatasetFormatError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for split_name, image_set in splits.items():
        source = Path(image_set.paths[0]).parent if image_set.is_files and len(image_set) else "in memory"
        print(f"{args.name}/{split_name}: {len(image_set):,} images, {len(image_set.class_names)} classes ({source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
