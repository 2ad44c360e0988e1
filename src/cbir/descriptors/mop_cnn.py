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

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from cbir.descriptors.common import Descriptor, l2_rows, sample_indices, split_state
from cbir.descriptors.local_features import vlad

PatchFeatures = Callable[[np.ndarray], np.ndarray]
BATCH = 512
"""Patches per call of `patch_features`."""


def patch_grid(side: int, fraction: float) -> list[tuple[int, int, int]]:
    """(top, left, size) of the square patches of `fraction` of `side`, stride half a patch, covering the image."""
    size = max(1, int(round(side * fraction)))
    stride = max(1, size // 2)
    starts = list(range(0, side - size + 1, stride))
    return [(top, left, size) for top in starts for left in starts]


class MOPCNN(Descriptor):
    """Multi-scale orderless pooling (see the module docstring).

    Args:
        patch_features: the CNN (see above); required for `fit` / `transform`, not for describing the state.
        fractions: patch sides relative to the image side for the levels after the whole image (level 0),
            at least one, each in (0, 1); the paper's (0.5, 0.25) by default (3 × 3 and 7 × 7 patches).
        pca_dim: dimension the patch features are reduced to before VLAD (≥ 1; fewer if the CNN's
            width or the fitted rows are fewer).
        centres: VLAD centres per level (≥ 1).
        sample: patch features at most per level to fit PCA and k-means on (≥ 1); seed: their seed.
    Dimension: d + Σ_levels centres × pca_dim (d: the CNN's width), known after `fit`.
    Raises:
        ValueError: a parameter out of range; at fit / transform, no `patch_features`, a `patch_features`
            that does not return (patches, d) rows, or images that are not square.
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
        if not fractions or not all(0 < f < 1 for f in fractions) or min(pca_dim, centres, sample) < 1:
            raise ValueError(
                "mop_cnn: need one or more fractions in (0, 1), pca_dim, centres and sample >= 1; "
                f"got {fractions}, {pca_dim}, {centres}, {sample}"
            )
        self.patch_features = patch_features
        self.params = {"fractions": [float(f) for f in fractions], "pca_dim": int(pca_dim), "centres": int(centres),
                       "sample": int(sample), "seed": int(seed)}  # fmt: skip
        self.levels: list[tuple[PCA, np.ndarray]] = []

    def _rgb(self, images: np.ndarray) -> np.ndarray:
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"mop_cnn: expects square images, got {images.shape[1:3]}")
        if self.patch_features is None:
            raise ValueError("mop_cnn: pass patch_features (a CNN: uint8 patches -> features)")
        return np.repeat(images[..., None], 3, axis=3) if images.ndim == 3 else images

    def _features(self, patches: np.ndarray) -> np.ndarray:
        """float32 (m, d): `patch_features` of uint8 patches (m, s, s, 3), `BATCH` at a time."""
        parts = []
        for start in range(0, len(patches), BATCH):
            batch = patches[start : start + BATCH]
            features = np.asarray(self.patch_features(batch), np.float32)
            if features.ndim != 2 or len(features) != len(batch):
                raise ValueError(f"mop_cnn: patch_features must return ({len(batch)}, d) rows, got {features.shape}")
            parts.append(features)
        return np.concatenate(parts)

    def _level_features(self, images: np.ndarray, fraction: float) -> np.ndarray:
        """float32 (n, patches, d): the CNN features of every patch of one level."""
        grid = patch_grid(images.shape[1], fraction)
        side = grid[0][2]
        patches = np.stack([image[top : top + side, left : left + side] for image in images for top, left, _ in grid])
        return self._features(patches).reshape(len(images), len(grid), -1)

    def fit(self, images: np.ndarray, progress: bool = False, chunk: int = 256) -> MOPCNN:
        """Fit each level's PCA and centres on a seeded sample of the patch features of (database) `images`.

        Args:
            images: uint8 (n, s, s) or (n, s, s, 3); grayscale is repeated to 3 channels.
            chunk: images described at a time (only the sampled features are kept).
        Returns:
            self.
        """
        images, seed = self._rgb(self._remember(images)), self.params["seed"]
        self.levels = []
        for fraction in self.params["fractions"]:
            per_image = len(patch_grid(images.shape[1], fraction))
            keep = sample_indices(len(images) * per_image, self.params["sample"], seed)  # as sample_rows draws
            rows = []
            starts = range(0, len(images), chunk)
            for start in tqdm(starts, desc=f"MOP-CNN fit {fraction:g}", disable=not progress, leave=False):
                local = self._level_features(images[start : start + chunk], fraction)
                local = local.reshape(-1, local.shape[2])
                first = start * per_image
                chosen = keep[(keep >= first) & (keep < first + len(local))] - first
                rows.append(local[chosen])
            rows = np.concatenate(rows)
            pca = PCA(min(self.params["pca_dim"], *rows.shape), random_state=seed).fit(rows)
            kmeans = MiniBatchKMeans(self.params["centres"], random_state=seed, n_init=3, batch_size=4096)
            self.levels.append((pca, kmeans.fit(pca.transform(rows)).cluster_centers_.astype(np.float32)))
        return self

    def _check_fitted(self) -> None:
        if len(self.levels) != len(self.params["fractions"]):
            raise ValueError("mop_cnn is not fitted: call fit(database_images) first")

    def _dim(self) -> int:
        self._check_fitted()
        return len(self.levels[0][0].mean_) + sum(centres.size for _, centres in self.levels)

    def _describe(self, images: np.ndarray) -> np.ndarray:
        parts = [l2_rows(self._features(images))]  # level 0: the whole image
        for fraction, (pca, centres) in zip(self.params["fractions"], self.levels):
            local = self._level_features(images, fraction)
            n, m, d = local.shape
            reduced = pca.transform(local.reshape(n * m, d)).reshape(n, m, -1).astype(np.float32)
            parts.append(vlad(reduced, centres))
        return l2_rows(np.concatenate(parts, axis=1))

    def transform(self, images: np.ndarray, progress: bool = False, chunk: int = 256) -> np.ndarray:
        """float32 (n, dim), unit rows, `chunk` images at a time.

        Raises:
            ValueError: not fitted, or images not uint8 (n, s, s[, 3]) of the fitted shape.
        """
        self._check_fitted()
        images = self._rgb(self._check(images))
        starts = tqdm(range(0, len(images), chunk), desc=self.name, unit="chunk", disable=not progress, leave=False)
        return np.concatenate([self._describe(images[start : start + chunk]) for start in starts])

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able parameters and fitted image shape, each level's PCA and centres).

        Raises:
            ValueError: not fitted.
        """
        self._check_fitted()
        arrays = {}
        for level, (pca, centres) in enumerate(self.levels):
            arrays.update({f"pca_mean_{level}": pca.mean_, f"pca_components_{level}": pca.components_,
                           f"centres_{level}": centres})  # fmt: skip
        return self._state_params(), arrays

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray], patch_features: PatchFeatures | None = None):
        """The fitted descriptor; `patch_features` (the same CNN: it is not part of the state) must be passed again."""
        params, shape = split_state(params)
        descriptor = cls(patch_features, **params)
        descriptor.image_shape = shape
        for level in range(len(params["fractions"])):
            pca = PCA(len(arrays[f"pca_components_{level}"]))
            pca.mean_, pca.components_ = arrays[f"pca_mean_{level}"], arrays[f"pca_components_{level}"]
            pca.n_components_, pca.whiten = len(pca.components_), False
            descriptor.levels.append((pca, arrays[f"centres_{level}"].astype(np.float32)))
        return descriptor
