"""What every classic descriptor shares: input checks, the fitted image shape and `dim`, saved state,
per-image loops with progress, and the normalisations of the aggregations."""

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


class Descriptor:
    """The interface of every descriptor: ``name``, ``metric``, ``params``, the image shape it was fitted on, ``dim``.

    `fit` records the image shape (h, w) or (h, w, 3) with `_remember`; afterwards `transform` accepts
    only images of that shape (`_check`), so queries are described exactly as the database was (the same
    SIFT grid, HOG cells, MOP-CNN patches). Unfitted descriptors without a vocabulary take any size.
    Subclasses set ``name``, ``metric``, ``params`` (the JSON-able constructor arguments) and `_dim`.
    """

    name: str = ""
    metric: str = ""
    params: dict
    image_shape: tuple[int, ...] | None = None

    def _remember(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images, self.name)
        self.image_shape = tuple(int(side) for side in images.shape[1:])
        return images

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images, self.name)
        if self.image_shape is not None and images.shape[1:] != self.image_shape:
            raise ValueError(
                f"{self.name}: fitted on images of shape {self.image_shape}, got images of shape {images.shape[1:]}"
            )
        return images

    def _fitted_shape(self) -> tuple[int, ...]:
        if self.image_shape is None:
            raise ValueError(f"{self.name}: the dimension depends on the images: call fit(images) first")
        return self.image_shape

    def _dim(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """Length of the rows `transform` returns.

        Raises:
            ValueError: the length depends on what `fit` sees (image size or channels, the CNN's width)
                and the descriptor is not fitted.
        """
        return self._dim()

    def _state_params(self) -> dict:
        return {**self.params, "image_shape": None if self.image_shape is None else list(self.image_shape)}


def split_state(params: dict) -> tuple[dict, tuple[int, ...] | None]:
    """A saved state's constructor parameters and fitted image shape (None in states saved without one)."""
    params = dict(params)
    shape = params.pop("image_shape", None)
    return params, None if shape is None else tuple(int(side) for side in shape)


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


def sample_indices(total: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `n` of `total` rows, a seeded sample without replacement (all when fewer)."""
    if total <= n:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def sample_rows(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most `n` rows, a seeded sample in their original order (all when there are fewer)."""
    return rows if len(rows) <= n else rows[sample_indices(len(rows), n, seed)]
