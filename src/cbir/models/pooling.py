"""Global pooling of convolutional feature maps into image descriptors.

Pure functions over ``(batch, height, width, channels)`` maps (NumPy arrays or backend tensors,
computed with `keras.ops`), a name → function table `POOLINGS`, a thin Keras layer
`GlobalPooling` to put any of them at the end of a backbone, and post-processing
(`l2_normalize`, `PCAWhitening`).

========  =====================================================  ===========================
name      descriptor                                             source
========  =====================================================  ===========================
``mac``   max over positions                                     Tolias et al., ICLR 2016
``spoc``  average over positions                                 Babenko & Lempitsky, ICCV 2015
``sum``   sum over positions                                     (SPoC without the 1/(h·w))
``gem``   (mean of x^p)^(1/p), p=1: SPoC, p→∞: MAC               Radenović et al., TPAMI 2019
``rmac``  sum of L2-normalised MACs of multi-scale regions       Tolias et al., ICLR 2016
``crow``  spatially and channel-weighted sum                     Kalantidis et al., ECCVW 2016
========  =====================================================  ===========================

All return float32 ``(batch, channels)``; none normalises its output except where the method
requires it internally (R-MAC's regional vectors). Retrieval L2-normalises afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import ops


def _check_rank4(features, name: str):
    features = ops.convert_to_tensor(features, dtype="float32")
    if len(features.shape) != 4:
        raise ValueError(f"{name} expects (batch, height, width, channels), got shape {tuple(features.shape)}")
    return features


def mac(features):
    """Maximum activation of convolutions: max over all positions.

    Args:
        features: float32, shape (batch, height, width, channels).
    Returns:
        float32, shape (batch, channels).
    Raises:
        ValueError: `features` is not rank 4.
    """
    return ops.max(_check_rank4(features, "mac"), axis=(1, 2))


def spoc(features):
    """Sum-pooled convolutional features, as an average over positions (SPoC without centring prior).

    Shapes as `mac`.
    """
    return ops.mean(_check_rank4(features, "spoc"), axis=(1, 2))


def sum_pooling(features):
    """Sum over all positions. Shapes as `mac`."""
    return ops.sum(_check_rank4(features, "sum"), axis=(1, 2))


def gem(features, p: float = 3.0, eps: float = 1e-6):
    """Generalized-mean pooling (Radenović et al., TPAMI 2019): ``(mean(clip(x, eps)^p))^(1/p)``.

    Args:
        features: float32, shape (batch, height, width, channels), non-negative activations
            (values below `eps` are clipped to it).
        p: pooling exponent > 0; p = 1 is average pooling, p → ∞ approaches max pooling.
    Returns:
        float32, shape (batch, channels).
    Raises:
        ValueError: `features` is not rank 4 or `p` <= 0.
    """
    if not p > 0:
        raise ValueError(f"GeM exponent p must be > 0, got {p}")
    features = ops.maximum(_check_rank4(features, "gem"), eps)
    # Scale by the per-channel maximum first so that large p cannot overflow float32:
    # GeM(x) = m · GeM(x / m) with m = max(x).
    peak = ops.max(features, axis=(1, 2), keepdims=True)
    scaled = ops.mean(ops.power(features / peak, p), axis=(1, 2))
    return peak[:, 0, 0, :] * ops.power(scaled, 1.0 / p)


def rmac_regions(height: int, width: int, levels: int = 3, overlap: float = 0.4) -> list[tuple[int, int, int, int]]:
    """The square regions of R-MAC (Tolias, Sicre & Jégou, ICLR 2016), as (top, left, size, size).

    At level l = 1..`levels`, squares of side ``floor(2·min(h, w) / (l + 1))`` are laid out
    uniformly with about `overlap` (40 %) between neighbours; the longer side gets extra
    regions, their number chosen so the overlap is closest to `overlap`. Level 1 covers the
    short side with one square. The full map is added as a region too, as in the common
    implementations (cnnimageretrieval-pytorch), so R-MAC ⊇ MAC.

    Returns:
        list of (top, left, height, width) in feature-map cells, every region inside the map.
    """
    short = min(height, width)
    regions = [(0, 0, height, width)]
    # Extra regions along the longer side: the count whose overlap is closest to `overlap`.
    extra_h = extra_w = 0
    if height != width:
        steps = np.arange(2, 8)
        step_size = (max(height, width) - short) / (steps - 1)
        best = int(np.argmin(np.abs((short**2 - short * step_size) / short**2 - overlap))) + 1
        if height < width:
            extra_w = best
        else:
            extra_h = best
    for level in range(1, levels + 1):
        side = int(math.floor(2 * short / (level + 1)))
        if side == 0:
            continue
        tops = _region_starts(height, side, level + extra_h)
        lefts = _region_starts(width, side, level + extra_w)
        regions += [(top, left, side, side) for top in tops for left in lefts]
    return list(dict.fromkeys(regions))  # drop duplicates, keep order


def _region_starts(length: int, side: int, count: int) -> list[int]:
    if count <= 1:
        return [(length - side) // 2]
    step = (length - side) / (count - 1)
    return [int(math.floor(i * step)) for i in range(count)]


def rmac(features, levels: int = 3, eps: float = 1e-6):
    """Regional maximum activations of convolutions (Tolias et al., ICLR 2016).

    The MAC of each region from `rmac_regions` is L2-normalised, and the regional vectors are
    summed. (The paper's per-region PCA-whitening is left to post-processing: fit `PCAWhitening`
    on the aggregated vectors.)

    Args:
        features: float32, shape (batch, height, width, channels), with static height and width.
        levels: number of region scales.
    Returns:
        float32, shape (batch, channels).
    Raises:
        ValueError: `features` is not rank 4.
    """
    features = _check_rank4(features, "rmac")
    height, width = int(features.shape[1]), int(features.shape[2])
    total = 0.0
    for top, left, h, w in rmac_regions(height, width, levels):
        region = ops.max(features[:, top : top + h, left : left + w, :], axis=(1, 2))
        total = total + region / (ops.norm(region, axis=-1, keepdims=True) + eps)
    return total


def crow(features, a: float = 2.0, b: float = 2.0, eps: float = 1e-6):
    """Cross-dimensional weighting and pooling (Kalantidis, Mellina & Osindero, ECCVW 2016).

    Spatial weights from the channel-summed response ``S'``: ``S = (S' / ||S'||_a)^(1/b)``;
    channel weights from the sparsity of each channel, ``Q_k`` = fraction of positions where it
    is positive: ``w_k = log((K·eps + Σ_h Q_h) / (eps + Q_k))``. The descriptor is
    ``w_k · Σ_ij S_ij x_ijk``.

    Args:
        features: float32, shape (batch, height, width, channels), non-negative activations.
        a, b: the spatial-weight norm and power (the paper's a = 2, b = 2).
    Returns:
        float32, shape (batch, channels).
    Raises:
        ValueError: `features` is not rank 4.
    """
    features = _check_rank4(features, "crow")
    spatial = ops.sum(features, axis=-1)  # (batch, h, w)
    norm = ops.power(ops.sum(ops.power(spatial, a), axis=(1, 2), keepdims=True), 1.0 / a)
    spatial = ops.power(spatial / (norm + eps), 1.0 / b)
    weighted = ops.sum(features * spatial[..., None], axis=(1, 2))  # (batch, channels)
    nonzero = ops.mean(ops.cast(features > 0, "float32"), axis=(1, 2))  # Q_k, (batch, channels)
    channels = features.shape[-1]
    idf = ops.log((channels * eps + ops.sum(nonzero, axis=-1, keepdims=True)) / (eps + nonzero))
    return weighted * idf


POOLINGS: dict[str, Callable] = {"mac": mac, "spoc": spoc, "sum": sum_pooling, "gem": gem, "rmac": rmac, "crow": crow}


def pool(features, method: str, **options):
    """Apply the pooling named `method` (a key of `POOLINGS`) with its `options`.

    Raises:
        ValueError: unknown method, listing the valid ones.
    """
    if method not in POOLINGS:
        raise ValueError(f"unknown pooling {method!r}; expected one of {sorted(POOLINGS)}")
    return POOLINGS[method](features, **options)


@keras.saving.register_keras_serializable(package="cbir")
class GlobalPooling(keras.layers.Layer):
    """Keras layer around `pool`: (batch, h, w, c) → (batch, c).

    Args:
        method: a key of `POOLINGS`.
        options: keyword options of that function (e.g. ``p=3.0`` for GeM, ``levels=3`` for R-MAC).
    """

    def __init__(self, method: str = "gem", options: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if method not in POOLINGS:
            raise ValueError(f"unknown pooling {method!r}; expected one of {sorted(POOLINGS)}")
        self.method = method
        self.options = dict(options or {})

    def call(self, inputs):
        return pool(inputs, self.method, **self.options)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "method": self.method, "options": self.options}
