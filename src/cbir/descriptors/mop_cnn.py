"""MOP-CNN: multi-scale orderless pooling of CNN activations (Gong, Wang, Guo & Lazebnik, ECCV 2014).

Level 0 is the CNN feature of the whole image. At each finer level the image is cut into square
patches of a fraction of its side, with a stride of half a patch (e.g. 3 × 3 patches of half the side,
7 × 7 of a quarter), each described by the CNN; the patch features of a level are reduced by PCA and
aggregated into a VLAD (k-means centres, intra-normalisation, signed square root, L2) — orderless
within the level, as the paper's. The levels, each L2-normalised, are concatenated and scaled to unit
norm; compared with the cosine.

The CNN is any callable `patch_features(patches uint8 (m, s, s, 3)) -> float (m, d)`, so that this
package stays free of TensorFlow; notebook 05 passes EfficientNet-Lite0 with GeM pooling. PCA and
centres are fitted on the images given to `fit` (database images only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from cbir.descriptors.common import check_images, l2_rows, sample_rows
from cbir.descriptors.local_features import vlad

PatchFeatures = Callable[[np.ndarray], np.ndarray]


def patch_grid(side: int, fraction: float) -> list[tuple[int, int, int]]:
    """(top, left, size) of the square patches of `fraction` of `side`, stride half a patch, covering the image."""
    size = max(1, int(round(side * fraction)))
    stride = max(1, size // 2)
    starts = list(range(0, side - size + 1, stride))
    return [(top, left, size) for top in starts for left in starts]


class MOPCNN:
    """Multi-scale orderless pooling (see the module docstring).

    Args:
        patch_features: the CNN (see above); required for `fit` / `transform`, not for describing the state.
        fractions: patch sides relative to the image side for the levels after the first (each in (0, 1)).
        pca_dim: dimension the patch features are reduced to before VLAD (≥ 1).
        centres: VLAD centres per level (≥ 1).
        sample: patch features at most per level to fit PCA and k-means on; seed: their seed.
    Raises:
        ValueError: a parameter out of range; at fit / transform, no `patch_features`, or images that are not square.
    """

    name, metric = "mop_cnn", "cosine"

    def __init__(
        self,
        patch_features: PatchFeatures | None = None,
        fractions: Sequence[float] = (0.5, 0.25),
        pca_dim: int = 64,
        centres: int = 32,
        sample: int = 100_000,
        seed: int = 0,
    ):
        if not all(0 < f < 1 for f in fractions) or pca_dim < 1 or centres < 1:
            raise ValueError(
                f"mop_cnn: fractions in (0, 1), pca_dim and centres >= 1; got {fractions}, {pca_dim}, {centres}"
            )
        self.patch_features = patch_features
        self.params = {"fractions": [float(f) for f in fractions], "pca_dim": int(pca_dim), "centres": int(centres),
                       "sample": int(sample), "seed": int(seed)}  # fmt: skip
        self.levels: list[tuple[PCA, np.ndarray]] = []

    def _rgb(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images, self.name)
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"mop_cnn: expects square images, got {images.shape[1:3]}")
        if self.patch_features is None:
            raise ValueError("mop_cnn: pass patch_features (a CNN: uint8 patches -> features)")
        return np.repeat(images[..., None], 3, axis=3) if images.ndim == 3 else images

    def _level_features(self, images: np.ndarray, fraction: float, progress: bool) -> np.ndarray:
        """float32 (n, patches, d): the CNN features of every patch of one level."""
        grid = patch_grid(images.shape[1], fraction)
        side = grid[0][2]
        patches = np.stack([image[top : top + side, left : left + side] for image in images for top, left, _ in grid])
        starts = tqdm(range(0, len(patches), 512), desc=f"MOP-CNN {fraction:g}", disable=not progress, leave=False)
        features = [self.patch_features(patches[start : start + 512]) for start in starts]
        return np.asarray(np.concatenate(features), np.float32).reshape(len(images), len(grid), -1)

    def fit(self, images: np.ndarray, progress: bool = False) -> MOPCNN:
        images, seed = self._rgb(images), self.params["seed"]
        self.levels = []
        for fraction in self.params["fractions"]:
            local = self._level_features(images, fraction, progress)
            rows = sample_rows(local.reshape(-1, local.shape[2]), self.params["sample"], seed)
            pca = PCA(min(self.params["pca_dim"], *rows.shape), random_state=seed).fit(rows)
            kmeans = MiniBatchKMeans(self.params["centres"], random_state=seed, n_init=3, batch_size=4096)
            self.levels.append((pca, kmeans.fit(pca.transform(rows)).cluster_centers_.astype(np.float32)))
        return self

    def transform(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """float32 (n, d + levels × centres × pca_dim), unit rows (d: the CNN's feature dimension)."""
        if len(self.levels) != len(self.params["fractions"]):
            raise ValueError("mop_cnn is not fitted: call fit(database_images) first")
        images = self._rgb(images)
        whole = np.stack([cv2.resize(image, (images.shape[1], images.shape[1])) for image in images])
        parts = [l2_rows(np.asarray(self.patch_features(whole), np.float32))]
        for fraction, (pca, centres) in zip(self.params["fractions"], self.levels):
            local = self._level_features(images, fraction, progress)
            n, m, d = local.shape
            reduced = pca.transform(local.reshape(n * m, d)).reshape(n, m, -1).astype(np.float32)
            parts.append(vlad(reduced, centres))
        return l2_rows(np.concatenate(parts, axis=1))

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {}
        for level, (pca, centres) in enumerate(self.levels):
            arrays.update({f"pca_mean_{level}": pca.mean_, f"pca_components_{level}": pca.components_,
                           f"centres_{level}": centres})  # fmt: skip
        return dict(self.params), arrays

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray], patch_features: PatchFeatures | None = None):
        """The fitted descriptor; `patch_features` (the same CNN) must be passed again."""
        descriptor = cls(patch_features, **params)
        for level in range(len(params["fractions"])):
            pca = PCA(len(arrays[f"pca_components_{level}"]))
            pca.mean_, pca.components_ = arrays[f"pca_mean_{level}"], arrays[f"pca_components_{level}"]
            pca.n_components_, pca.whiten = len(pca.components_), False
            descriptor.levels.append((pca, arrays[f"centres_{level}"].astype(np.float32)))
        return descriptor
