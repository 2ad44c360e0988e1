"""Dense SIFT and its aggregations into one vector per image: bag of visual words, VLAD, Fisher vectors.

* Dense SIFT — Lowe's descriptor (IJCV 2004) computed by OpenCV at a regular grid of keypoints (Bosch,
  Zisserman & Muñoz 2007; Fei-Fei & Perona 2005): small images have too few detected keypoints. With
  ``root=True``, RootSIFT (Arandjelović & Zisserman, CVPR 2012): L1-normalise, then square root.
* Bag of visual words — Sivic & Zisserman (ICCV 2003): a k-means vocabulary, hard assignment, tf-idf
  weighting (idf from the fitted, database, images) and L2 normalisation.
* VLAD — Jégou et al. (CVPR 2010): the sum of residuals to the nearest centre, per centre;
  intra-normalisation (Arandjelović & Zisserman, CVPR 2013), signed square root, L2.
* Improved Fisher vectors — Perronnin, Sánchez & Mensink (ECCV 2010): gradients of the log-likelihood
  under a diagonal GMM (`skimage.feature.learn_gmm` / `fisher_vector`, with its weight terms), power
  (signed square root) and L2 normalisation, after PCA of the SIFT descriptors as in the paper.

Vocabularies, GMMs and PCA are fitted on the images given to `fit` (database images only), on a seeded
sample of at most `sample` local descriptors. All three aggregations are compared with the cosine.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.feature import fisher_vector, learn_gmm
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from tqdm.auto import tqdm

from cbir.descriptors.common import Descriptor, check_images, grayscale, l2_rows, sample_rows, signed_sqrt, split_state


def grid_keypoints(height: int, width: int, step: int, size: float) -> list[cv2.KeyPoint]:
    """Keypoints every `step` pixels (offset half a step), each of diameter `size` pixels."""
    return [
        cv2.KeyPoint(float(x), float(y), float(size))
        for y in range(step // 2, height, step)
        for x in range(step // 2, width, step)
    ]


def dense_sift(images: np.ndarray, step: int, size: float, root: bool = True, progress: bool = False) -> np.ndarray:
    """SIFT descriptors on a regular grid of every image.

    Args:
        images: uint8 (n, h, w) or (n, h, w, 3) (RGB is converted to luminance).
        step: grid spacing in pixels (≥ 1); size: keypoint diameter in pixels (> 0).
        root: RootSIFT instead of SIFT.
    Returns:
        float32 (n, keypoints, 128), keypoints = ⌈(h − step/2) / step⌉ × ⌈(w − step/2) / step⌉.
    Raises:
        ValueError: bad images or parameters, or OpenCV dropping a keypoint.
    """
    images = check_images(images, "dense_sift")
    if step < 1 or size <= 0:
        raise ValueError(f"dense_sift: step must be >= 1 and size > 0, got {step} and {size}")
    keypoints = grid_keypoints(images.shape[1], images.shape[2], int(step), float(size))
    sift = cv2.SIFT_create()
    out = np.empty((len(images), len(keypoints), 128), np.float32)
    for i, image in enumerate(tqdm(images, desc="dense SIFT", unit="img", disable=not progress, leave=False)):
        found, descriptors = sift.compute(grayscale(image), keypoints)
        if descriptors is None or len(found) != len(keypoints):
            raise ValueError(f"dense_sift: OpenCV kept {len(found)} of {len(keypoints)} keypoints (image {i})")
        out[i] = descriptors
    if root:
        out = np.sqrt(out / np.maximum(out.sum(axis=2, keepdims=True), 1e-12))
    return out


def bow_histograms(descriptors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Term frequencies: the fraction of each image's descriptors nearest to each centre, float32 (n, K)."""
    n, m, _ = descriptors.shape
    nearest = _nearest(descriptors.reshape(n * m, -1), centres).reshape(n, m)
    counts = np.zeros((n, len(centres)), np.float32)
    np.add.at(counts, (np.repeat(np.arange(n), m), nearest.ravel()), 1.0)
    return counts / m


def inverse_document_frequency(term_frequencies: np.ndarray) -> np.ndarray:
    """idf_k = log(N / (1 + n_k)) + 1, n_k the images containing word k (smoothed, non-negative), float32 (K,)."""
    documents = np.count_nonzero(term_frequencies > 0, axis=0)
    return (np.log(len(term_frequencies) / (1.0 + documents)) + 1.0).astype(np.float32)


def vlad(descriptors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """VLAD of each image: residual sums per centre, intra-normalised, signed square root, L2; float32 (n, K·d)."""
    n, m, d = descriptors.shape
    k = len(centres)
    nearest = _nearest(descriptors.reshape(n * m, d), centres).reshape(n, m)
    sums = np.zeros((n, k, d), np.float32)
    residuals = descriptors - centres[nearest]
    np.add.at(sums, (np.repeat(np.arange(n), m), nearest.ravel()), residuals.reshape(n * m, d))
    return l2_rows(signed_sqrt(l2_rows(sums)).reshape(n, k * d))


def _nearest(rows: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared L2) of every row, in blocks of 65 536 rows."""
    out = np.empty(len(rows), np.int64)
    centre_norms = np.sum(centres**2, axis=1)
    for start in range(0, len(rows), 65536):
        block = rows[start : start + 65536]
        out[start : start + len(block)] = np.argmin(centre_norms - 2.0 * block @ centres.T, axis=1)
    return out


class _DenseSift(Descriptor):
    """Dense SIFT on a grid, aggregated with a vocabulary fitted on database images.

    Args:
        step: grid spacing in pixels (≥ 1); None: an eighth of the shorter image side, at least 4 px
            (4 px, 7 × 7 keypoints, at 28 × 28; 8 px, 8 × 8 keypoints, at 64 × 64).
        size: keypoint diameter in pixels (> 0); None: twice the step.
        root: RootSIFT (True) or SIFT.
        sample: local descriptors at most that the vocabulary (or PCA and GMM) is fitted on (≥ 1).
        seed: seeds that sample and the clustering.
    Raises:
        ValueError: a parameter out of range; at `transform`, an unfitted descriptor.
    """

    metric = "cosine"

    def __init__(
        self,
        step: int | None = None,
        size: float | None = None,
        root: bool = True,
        sample: int = 100_000,
        seed: int = 0,
    ):
        if (step is not None and step < 1) or (size is not None and size <= 0) or sample < 1:
            raise ValueError(f"{self.name}: need step >= 1, size > 0, sample >= 1; got {step}, {size}, {sample}")
        self.params = {"step": step, "size": size, "root": bool(root), "sample": int(sample), "seed": int(seed)}
        self.fitted = False

    def _local(self, images: np.ndarray, progress: bool) -> np.ndarray:
        step = self.params["step"] or max(4, min(images.shape[1:3]) // 8)
        return dense_sift(images, step, self.params["size"] or 2.0 * step, self.params["root"], progress)

    def _training_rows(self, local: np.ndarray) -> np.ndarray:
        """A seeded sample of at most `sample` local descriptors, (rows, 128)."""
        return sample_rows(local.reshape(-1, local.shape[2]), self.params["sample"], self.params["seed"])

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError(f"{self.name} is not fitted: call fit(database_images) first")

    def transform(self, images: np.ndarray, progress: bool = False, chunk: int = 2048) -> np.ndarray:
        """float32 (n, dim): the aggregated descriptor of every image, `chunk` images at a time.

        Raises:
            ValueError: not fitted, or images not uint8 (n, h, w[, 3]) of the fitted shape.
        """
        self._check_fitted()
        images = self._check(images)
        parts = [self._aggregate(self._local(images[i : i + chunk], progress)) for i in range(0, len(images), chunk)]
        return np.concatenate(parts, dtype=np.float32)  # no second copy of a 60 000 × 8 192 result

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able parameters and fitted image shape, the fitted arrays). Raises: ValueError: not fitted."""
        self._check_fitted()
        return self._state_params(), self._arrays()

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]):
        """The fitted descriptor `get_state` described."""
        params, shape = split_state(params)
        descriptor = cls(**params)
        descriptor._restore(arrays)
        descriptor.image_shape, descriptor.fitted = shape, True
        return descriptor


class SiftBoW(_DenseSift):
    """Dense SIFT + bag of visual words (tf-idf, L2). Args: vocabulary (k-means words, ≥ 1; the dimension),
    and `_DenseSift`'s."""

    name = "sift_bow"

    def __init__(self, vocabulary: int = 256, **options):
        super().__init__(**options)
        if vocabulary < 1:
            raise ValueError(f"sift_bow: vocabulary must be >= 1, got {vocabulary}")
        self.params["vocabulary"] = int(vocabulary)

    def fit(self, images: np.ndarray, progress: bool = False) -> SiftBoW:
        """Learn the vocabulary and the idf from (database) `images`, uint8 (n, h, w[, 3]); returns self."""
        local = self._local(self._remember(images), progress)
        kmeans = MiniBatchKMeans(self.params["vocabulary"], random_state=self.params["seed"], n_init=3, batch_size=4096)
        self.centres = kmeans.fit(self._training_rows(local)).cluster_centers_.astype(np.float32)
        self.idf = inverse_document_frequency(bow_histograms(local, self.centres))
        self.fitted = True
        return self

    def _aggregate(self, local: np.ndarray) -> np.ndarray:
        return l2_rows(bow_histograms(local, self.centres) * self.idf)

    def _dim(self) -> int:
        return self.params["vocabulary"]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"centres": self.centres, "idf": self.idf}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.centres, self.idf = arrays["centres"].astype(np.float32), arrays["idf"].astype(np.float32)


class SiftVLAD(_DenseSift):
    """Dense SIFT + VLAD (intra-norm, SSR, L2). Args: centres (k-means, ≥ 1), and `_DenseSift`'s.
    Dimension: centres × 128."""

    name = "sift_vlad"

    def __init__(self, centres: int = 64, **options):
        super().__init__(**options)
        if centres < 1:
            raise ValueError(f"sift_vlad: centres must be >= 1, got {centres}")
        self.params["centres"] = int(centres)

    def fit(self, images: np.ndarray, progress: bool = False) -> SiftVLAD:
        """Learn the centres from (database) `images`, uint8 (n, h, w[, 3]); returns self."""
        rows = self._training_rows(self._local(self._remember(images), progress))
        kmeans = MiniBatchKMeans(self.params["centres"], random_state=self.params["seed"], n_init=3, batch_size=4096)
        self.centres = kmeans.fit(rows).cluster_centers_.astype(np.float32)
        self.fitted = True
        return self

    def _aggregate(self, local: np.ndarray) -> np.ndarray:
        return vlad(local, self.centres)

    def _dim(self) -> int:
        return self.params["centres"] * 128

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"centres": self.centres}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.centres = arrays["centres"].astype(np.float32)


class SiftFisher(_DenseSift):
    """Dense SIFT, PCA, then improved Fisher vectors. Args: modes (GMM components, ≥ 1), pca_dim (≥ 1),
    and `_DenseSift`'s. Dimension: modes × (2 pca_dim + 1)."""

    name = "sift_fisher"

    def __init__(self, modes: int = 16, pca_dim: int = 64, **options):
        super().__init__(**options)
        if modes < 1 or not 1 <= pca_dim <= 128:
            raise ValueError(f"sift_fisher: need modes >= 1 and pca_dim in [1, 128], got {modes} and {pca_dim}")
        self.params.update(modes=int(modes), pca_dim=int(pca_dim))

    def fit(self, images: np.ndarray, progress: bool = False) -> SiftFisher:
        """Learn the PCA and the GMM from (database) `images`, uint8 (n, h, w[, 3]); returns self."""
        rows = self._training_rows(self._local(self._remember(images), progress))
        self.pca = PCA(self.params["pca_dim"], random_state=self.params["seed"]).fit(rows)
        reduced = self.pca.transform(rows)
        options = {"covariance_type": "diag", "random_state": self.params["seed"], "max_iter": 100}
        self.gmm = learn_gmm(reduced, n_modes=self.params["modes"], gm_args=options)
        self.fitted = True
        return self

    def _aggregate(self, local: np.ndarray) -> np.ndarray:
        n, m, d = local.shape
        reduced = self.pca.transform(local.reshape(n * m, d)).reshape(n, m, -1)
        return np.stack([fisher_vector(rows, self.gmm, improved=True) for rows in reduced]).astype(np.float32)

    def _dim(self) -> int:
        return self.params["modes"] * (2 * self.params["pca_dim"] + 1)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "pca_mean": self.pca.mean_,
            "pca_components": self.pca.components_,
            "gmm_weights": self.gmm.weights_,
            "gmm_means": self.gmm.means_,
            "gmm_covariances": self.gmm.covariances_,
        }

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.pca = PCA(self.params["pca_dim"])
        self.pca.mean_, self.pca.components_ = arrays["pca_mean"], arrays["pca_components"]
        self.pca.n_components_, self.pca.whiten = len(arrays["pca_components"]), False
        self.gmm = GaussianMixture(self.params["modes"], covariance_type="diag")
        self.gmm.weights_, self.gmm.means_ = arrays["gmm_weights"], arrays["gmm_means"]
        self.gmm.covariances_ = arrays["gmm_covariances"]
        self.gmm.precisions_cholesky_ = 1.0 / np.sqrt(arrays["gmm_covariances"])
