"""Tiny ImageNet 200 (CS231n, Stanford): 64×64 RGB images of 200 classes, 500 training each.

The official zip is downloaded once to ``data/raw/`` and read in its published layout; its test
images are unlabelled, so the labelled validation split serves as the held-out set.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from cbir import config
from cbir._io import download as _download
from cbir.data.images import IMAGE_EXTENSIONS, DatasetFormatError, DatasetNotFoundError, ImageSet

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
        return ImageSet(
            labels=np.asarray(labels, dtype=np.int64),
            class_names=class_names,
            paths=tuple(paths),
            name=f"tiny_imagenet/{name}",
        )

    return {
        "train": make("train", train_paths, train_labels),
        "val": make("val", val_paths, val_labels),
        "test": make("test", test_paths, [-1] * len(test_paths)),
    }
