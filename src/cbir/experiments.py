"""The notebook layer: one function per step of a notebook's story, returning a DataFrame or a figure."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cbir.data.images import ImageSet


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
        rows.append(
            {
                "height": rgb.shape[0],
                "width": rgb.shape[1],
                "channels": channels,
                "mean": rgb.mean(),
                "std": rgb.std(),
                "mean_r": rgb[..., 0].mean(),
                "mean_g": rgb[..., 1].mean(),
                "mean_b": rgb[..., 2].mean(),
            }
        )
    return pd.DataFrame(rows)
