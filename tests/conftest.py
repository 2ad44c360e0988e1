"""Shared fixtures: generated miniature copies of the real dataset layouts."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """Write `array` (uint8) as a gzip IDX file, the Fashion-MNIST format."""
    magic = magic if magic is not None else 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return path


def make_fashion_mnist(directory: Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> Path:
    """Four IDX files with the official names, 28×28 images, labels cycling over 10 classes."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return directory


TINY_WNIDS = ("n01443537", "n01629819", "n02123045")
TINY_WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander",
              "n02123045": "tabby, tabby cat", "n09999999": "an unused WordNet entry"}


def make_tiny_imagenet(root: Path, train_per_class: int = 4, val_per_class: int = 2, n_test: int = 3,
                       size: int = 64, seed: int = 0) -> Path:
    """A miniature Tiny ImageNet 200 in the published layout (three classes, a few JPEGs each).

    Every class has one grayscale JPEG, as the real dataset does.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in TINY_WORDS.items()))

    def jpeg(path: Path, class_index: int, grayscale: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        base = np.zeros((size, size, 3), np.uint8)
        base[..., class_index] = 200  # a class-coloured image with noise
        pixels = np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        (image.convert("L") if grayscale else image).save(path, "JPEG")

    for c, wnid in enumerate(TINY_WNIDS):
        for i in range(train_per_class):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", c, grayscale=(i == 0))
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for c, wnid in enumerate(TINY_WNIDS):
        for i in range(val_per_class):
            name = f"val_{c * val_per_class + i}.JPEG"
            jpeg(root / "val" / "images" / name, c, grayscale=(i == 0))
            lines.append(f"{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    for i in range(n_test):
        jpeg(root / "test" / "images" / f"test_{i}.JPEG", i % len(TINY_WNIDS), grayscale=False)
    return root


@pytest.fixture
def fashion_mnist_dir(tmp_path: Path) -> Path:
    return make_fashion_mnist(tmp_path / "fashion-mnist")


@pytest.fixture
def tiny_imagenet_dir(tmp_path: Path) -> Path:
    return make_tiny_imagenet(tmp_path / "tiny-imagenet-200")


@pytest.fixture
def isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point cbir.config's data, figures and reports directories (and env vars) at tmp_path."""
    from cbir import config

    for attribute, variable in (("DATA_DIR", "CBIR_DATA_DIR"), ("FIGURES_DIR", "CBIR_FIGURES_DIR"),
                                ("REPORTS_DIR", "CBIR_REPORTS_DIR")):
        path = tmp_path / attribute.lower()
        monkeypatch.setattr(config, attribute, path)
        monkeypatch.setenv(variable, str(path))
    monkeypatch.setattr(config, "RAW_DATA_DIR", config.DATA_DIR / "raw")
    monkeypatch.setattr(config, "CACHE_DIR", config.DATA_DIR / "cache")
    return tmp_path
