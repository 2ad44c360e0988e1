"""Shared fixtures: generated miniature copies of the real dataset layouts."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

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


def make_tiny_imagenet(root: Path, **kwargs) -> Path:
    """The package's miniature Tiny ImageNet (three classes unless told otherwise)."""
    from cbir.testing import make_tiny_imagenet_fixture

    return make_tiny_imagenet_fixture(root, **kwargs)


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

    for attribute, variable in (
        ("DATA_DIR", "CBIR_DATA_DIR"),
        ("FIGURES_DIR", "CBIR_FIGURES_DIR"),
        ("REPORTS_DIR", "CBIR_REPORTS_DIR"),
    ):
        path = tmp_path / attribute.lower()
        monkeypatch.setattr(config, attribute, path)
        monkeypatch.setenv(variable, str(path))
    monkeypatch.setattr(config, "RAW_DATA_DIR", config.DATA_DIR / "raw")
    monkeypatch.setattr(config, "CACHE_DIR", config.DATA_DIR / "cache")
    return tmp_path
