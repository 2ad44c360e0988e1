"""The registry of data sources: ``load(name)`` for every dataset the notebooks use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cbir.data.cifar10 import load_cifar10
from cbir.data.digits import load_digits
from cbir.data.fashion_mnist import load_fashion_mnist
from cbir.data.folder import load_image_folder
from cbir.data.images import ImageSet
from cbir.data.tiny_imagenet import load_tiny_imagenet

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
