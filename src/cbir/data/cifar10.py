"""CIFAR-10 (Krizhevsky, 2009): 60 000 RGB 32×32 images in 10 classes, through `keras.datasets`."""

from __future__ import annotations

import numpy as np

from cbir.data.images import DatasetNotFoundError, ImageSet

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
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
        name: ImageSet(
            labels=y.reshape(-1).astype(np.int64), class_names=CIFAR10_CLASSES, images=x, name=f"cifar10/{name}"
        )
        for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test))
    }
