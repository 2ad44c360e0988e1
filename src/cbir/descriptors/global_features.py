"""Global descriptors: a colour (or intensity) histogram, HOG and local binary patterns.

* `ColorHistogram` — Swain & Ballard (IJCV 1991): a joint histogram of HSV values (8 × 4 × 4 bins by
  default: hue matters most), L1-normalised; grayscale images get an intensity histogram. Compared
  with the χ² distance.
* `HOG` — Dalal & Triggs (CVPR 2005), `skimage.feature.hog`: gradient-orientation histograms per cell,
  normalised per block (L2-Hys); compared with the Euclidean distance, the space their linear SVM works in.
* `LBP` — Ojala, Pietikäinen & Mäenpää (TPAMI 2002) codes, histogrammed per cell of a grid and
  concatenated as in Ahonen, Hadid & Pietikäinen (ECCV 2004 / TPAMI 2006), who compare them with χ²:
  the 59 non-rotation-invariant uniform patterns of 8 neighbours at radius 1, each cell's histogram
  L1-normalised and the whole divided by the number of cells (so χ² lies in [0, 1]).

None of them learns anything: `fit` only records the image shape (which fixes `dim` for the first two).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.feature import hog, local_binary_pattern

from cbir.descriptors.common import Descriptor, grayscale, per_image, split_state


class _Unfitted(Descriptor):
    """A descriptor with nothing to learn: `fit` records the image shape; the state is the parameters and it."""

    def fit(self, images: np.ndarray, progress: bool = False):
        """Record the shape of `images` (uint8 (n, h, w[, 3])); returns self. Raises: ValueError: bad images."""
        self._check_size(self._remember(images))
        return self

    def _check_size(self, images: np.ndarray) -> np.ndarray:
        return images

    def transform(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """float32 (n, dim): one row per image (uint8 (n, h, w[, 3]), the fitted shape if fitted).

        Raises:
            ValueError: not uint8, not (n, h, w[, 3]), another shape than the fitted one, or too small.
        """
        return per_image(self._check_size(self._check(images)), self._describe, self.name, progress)

    def _describe(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able parameters and fitted image shape, no arrays)."""
        return self._state_params(), {}

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]):
        """The descriptor `get_state` described."""
        params, shape = split_state(params)
        descriptor = cls(**params)
        descriptor.image_shape = shape
        return descriptor


class ColorHistogram(_Unfitted):
    """Joint HSV histogram (RGB) or intensity histogram (grayscale), L1-normalised.

    Args:
        bins: (hue, saturation, value) bins, each ≥ 1; gray_bins: intensity bins for grayscale images.
    Dimension: h·s·v bins (128 by default) for RGB, `gray_bins` (32) for grayscale: known after `fit`.
    Raises:
        ValueError: a bin count < 1.
    """

    name, metric = "color_hist", "chi2"

    def __init__(self, bins: tuple[int, int, int] = (8, 4, 4), gray_bins: int = 32):
        bins = tuple(int(b) for b in bins)
        if len(bins) != 3 or min(bins) < 1 or gray_bins < 1:
            raise ValueError(f"color_hist: need 3 HSV bin counts >= 1 and gray_bins >= 1, got {bins}, {gray_bins}")
        self.params = {"bins": list(bins), "gray_bins": int(gray_bins)}

    def _describe(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            bins = self.params["gray_bins"]
            counts = np.bincount((image.astype(np.int64) * bins // 256).ravel(), minlength=bins)
        else:
            h_bins, s_bins, v_bins = self.params["bins"]
            hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int64)
            h, s, v = hsv[:, 0] * h_bins // 180, hsv[:, 1] * s_bins // 256, hsv[:, 2] * v_bins // 256  # OpenCV H < 180
            counts = np.bincount((h * s_bins + s) * v_bins + v, minlength=h_bins * s_bins * v_bins)
        return counts / counts.sum()

    def _dim(self) -> int:
        return self.params["gray_bins"] if len(self._fitted_shape()) == 2 else int(np.prod(self.params["bins"]))


class HOG(_Unfitted):
    """Histograms of oriented gradients (`skimage.feature.hog`, L2-Hys blocks; RGB: per-pixel strongest channel).

    Args:
        orientations: orientation bins (≥ 1); pixels_per_cell: cell side in pixels (≥ 1);
        cells_per_block: block side in cells (≥ 1).
    Dimension: blocks_y · blocks_x · cells_per_block² · orientations, blocks = ⌊side / pixels_per_cell⌋ −
    cells_per_block + 1 per axis (144 at 28 × 28, 1764 at 64 × 64 by default): known after `fit`.
    Raises:
        ValueError: a parameter < 1, or (at transform) images smaller than one block.
    """

    name, metric = "hog", "euclidean"

    def __init__(self, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2):
        values = {"orientations": orientations, "pixels_per_cell": pixels_per_cell, "cells_per_block": cells_per_block}
        if min(int(v) for v in values.values()) < 1:
            raise ValueError(f"hog: parameters must be >= 1, got {values}")
        self.params = {key: int(value) for key, value in values.items()}

    def _describe(self, image: np.ndarray) -> np.ndarray:
        cell, block = self.params["pixels_per_cell"], self.params["cells_per_block"]
        return hog(
            image,
            orientations=self.params["orientations"],
            pixels_per_cell=(cell, cell),
            cells_per_block=(block, block),
            block_norm="L2-Hys",
            channel_axis=-1 if image.ndim == 3 else None,
        )

    def _check_size(self, images: np.ndarray) -> np.ndarray:
        side = self.params["pixels_per_cell"] * self.params["cells_per_block"]
        if min(images.shape[1:3]) < side:
            raise ValueError(f"hog: images of {images.shape[1:3]} px are smaller than one block ({side} px)")
        return images

    def _dim(self) -> int:
        cell, block = self.params["pixels_per_cell"], self.params["cells_per_block"]
        blocks = [side // cell - block + 1 for side in self._fitted_shape()[:2]]
        return blocks[0] * blocks[1] * block**2 * self.params["orientations"]


class LBP(_Unfitted):
    """Uniform local binary patterns per cell of a `grid` × `grid` partition (Ahonen et al. 2006).

    Args:
        points: neighbours P (≥ 1); radius: R in pixels (> 0); grid: cells per side (≥ 1).
    Dimension: grid² · (P (P − 1) + 3), 16 · 59 = 944 by default, whatever the image size.
    Raises:
        ValueError: a parameter out of range.
    """

    name, metric = "lbp", "chi2"

    def __init__(self, points: int = 8, radius: float = 1.0, grid: int = 4):
        if points < 1 or radius <= 0 or grid < 1:
            raise ValueError(f"lbp: need points >= 1, radius > 0, grid >= 1; got {points}, {radius}, {grid}")
        self.params = {"points": int(points), "radius": float(radius), "grid": int(grid)}

    @property
    def n_patterns(self) -> int:
        """P (P − 1) + 3 codes: the uniform patterns, one per rotation, plus one for all others."""
        points = self.params["points"]
        return points * (points - 1) + 3

    def _describe(self, image: np.ndarray) -> np.ndarray:
        codes = local_binary_pattern(grayscale(image), self.params["points"], self.params["radius"], "nri_uniform")
        grid, bins = self.params["grid"], self.n_patterns
        rows = np.array_split(np.arange(codes.shape[0]), grid)
        columns = np.array_split(np.arange(codes.shape[1]), grid)
        histograms = []
        for r in rows:
            for c in columns:
                counts = np.bincount(codes[np.ix_(r, c)].astype(np.int64).ravel(), minlength=bins)
                histograms.append(counts / max(counts.sum(), 1))
        return np.concatenate(histograms) / grid**2

    def _check_size(self, images: np.ndarray) -> np.ndarray:
        if min(images.shape[1:3]) < self.params["grid"]:
            raise ValueError(
                f"lbp: images of {images.shape[1:3]} px have fewer pixels than {self.params['grid']} cells"
            )
        return images

    def _dim(self) -> int:
        return self.params["grid"] ** 2 * self.n_patterns
