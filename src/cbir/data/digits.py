"""scikit-learn's handwritten digits: 1 797 grayscale 8×8 images, always available offline."""

from __future__ import annotations

import numpy as np

from cbir.data.images import ImageSet


def load_digits() -> dict[str, ImageSet]:
    """scikit-learn's 8×8 handwritten digits (1 797 images, 10 classes), for fast tests.

    Returns:
        ``{"all": ...}``; images uint8 (1797, 8, 8) rescaled from [0, 16] to [0, 255].
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return {
        "all": ImageSet(
            labels=digits.target.astype(np.int64),
            class_names=tuple(str(d) for d in range(10)),
            images=images,
            name="digits/all",
        )
    }
