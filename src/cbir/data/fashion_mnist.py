"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 70 000 grayscale 28×28 images in 10 classes.

Look-up order and licence in the README ("Datasets"). The IDX files are read as they are
shipped (gzip), never unpacked under ``data/raw/``.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cbir import config
from cbir._io import download as _download
from cbir.data.images import DatasetFormatError, DatasetNotFoundError, ImageSet

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


# Super-classes for graded triplets (cbir.evaluation.triplets.label_triplets): class indices above.
FASHION_MNIST_SUPERCLASSES: dict[str, tuple[int, ...]] = {
    "tops": (0, 2, 4, 6),  # T-shirt/top, Pullover, Coat, Shirt
    "footwear": (5, 7, 9),  # Sandal, Sneaker, Ankle boot
    "trousers": (1,),
    "dresses": (3,),
    "bags": (8,),
}
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
            f"{path}: magic number {magic:#010x}, expected {_IDX_MAGIC[ndim]:#010x} (unsigned-byte IDX of rank {ndim})"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
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
            labels=labels,
            class_names=FASHION_MNIST_CLASSES,
            images=images,
            name=f"fashion_mnist/{split_name}",
        )
    return splits
