"""What every classic descriptor shares: input checks, chunked transforms with progress, saved state."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from tqdm.auto import tqdm


def check_images(images: np.ndarray, name: str) -> np.ndarray:
    """`images` as a uint8 array (n, height, width) or (n, height, width, 3).

    Raises:
        ValueError: another dtype or shape, or no image; the message names the descriptor and the shape.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{name}: images must be uint8 (0-255), got {images.dtype}")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)) or len(images) == 0:
        raise ValueError(f"{name}: expected images of shape (n, h, w) or (n, h, w, 3) with n >= 1, got {images.shape}")
    return images


def grayscale(image: np.ndarray) -> np.ndarray:
    """uint8 (h, w): an RGB image's luminance (OpenCV's ITU-R BT.601 weights), a grayscale image as it is."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def per_image(
    images: np.ndarray, describe: Callable[[np.ndarray], np.ndarray], name: str, progress: bool
) -> np.ndarray:
    """float32 (n, dim): `describe(image)` of every image, with a progress bar on stderr."""
    rows = [describe(image) for image in tqdm(images, desc=name, unit="img", disable=not progress, leave=False)]
    return np.asarray(rows, dtype=np.float32)


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    """sign(x) · √|x|: the power normalisation (α = ½) of VLAD and Fisher vectors."""
    return np.sign(x) * np.sqrt(np.abs(x))


def sample_rows(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most `n` rows, a seeded sample in their original order (all when there are fewer)."""
    if len(rows) <= n:
        return rows
    return rows[np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))]
