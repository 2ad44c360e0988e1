"""Metric-learning losses: semi-hard and batch-hard triplet losses, and the contrastive loss.

`TripletSemiHardLoss` replaces ``tfa.losses.TripletSemiHardLoss`` (TensorFlow Addons, end of
life in 2024, incompatible with Keras 3) with the semantics of its last release (0.23), apart
from the one documented change: a batch without any positive pair gives 0, not NaN.

Each loss is a pure function (labels, embeddings → scalar) plus a thin `keras.losses.Loss`
that validates its options in ``__init__`` and implements ``get_config``. Keras' ``y_true`` is
the integer labels, ``y_pred`` the embeddings.

Dtypes follow TensorFlow Addons: float16 / bfloat16 inputs are cast to float32 for the whole
computation (distances, mining, reduction) and the scalar loss is cast back to the input's dtype;
float32 (and, for the pure functions, float64) inputs are computed and returned in their own
dtype. The Keras classes apply the same rule to ``y_pred``: Keras 3 converts it to the loss's
``dtype`` (float32 unless set) before ``call``, and the reduced value is cast back to float16 /
bfloat16 when ``y_pred`` was in one of them.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from cbir.models.distances import get_distance, pairwise_distance

__all__ = [
    "ActiveTripletFraction",
    "ContrastiveLoss",
    "TripletHardLoss",
    "TripletSemiHardLoss",
    "contrastive_loss",
    "triplet_hard_loss",
    "triplet_semihard_loss",
    "triplet_semihard_details",
]


LOW_PRECISION = ("float16", "bfloat16")
"""Input dtypes the losses compute in float32 and cast their result back to, as TensorFlow Addons did."""


def _low_precision_dtype(tensor) -> str | None:
    """The dtype name when `tensor` is float16 / bfloat16, else None (lists, ints, float32, float64)."""
    dtype = getattr(tensor, "dtype", None)
    if dtype is None:
        return None
    dtype = keras.backend.standardize_dtype(dtype)
    return dtype if dtype in LOW_PRECISION else None


def _in_input_dtype(value, inputs):
    """`value` cast back to the dtype of the caller's `inputs` when that is float16 / bfloat16 (TFA's rule)."""
    dtype = _low_precision_dtype(ops.convert_to_tensor(inputs))
    return ops.cast(value, dtype) if dtype else value


def _float32_if_low_precision(tensor):
    tensor = ops.convert_to_tensor(tensor)
    return ops.cast(tensor, "float32") if _low_precision_dtype(tensor) else tensor


def _prepare(labels, embeddings):
    embeddings = _float32_if_low_precision(embeddings)  # as TFA: distances in float32 at least
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    if len(embeddings.shape) != 2:
        raise ValueError(f"embeddings must have shape (batch, dim), got {tuple(embeddings.shape)}")
    same = ops.equal(labels[:, None], labels[None, :])
    return labels, embeddings, same


def _masked_max(values, mask):
    """Row-wise max over `mask`; rows without any masked entry give the row minimum (TFA's rule)."""
    row_min = ops.min(values, axis=1, keepdims=True)
    return ops.max((values - row_min) * mask, axis=1, keepdims=True) + row_min


def _masked_min(values, mask):
    """Row-wise min over `mask`; rows without any masked entry give the row maximum (TFA's rule)."""
    row_max = ops.max(values, axis=1, keepdims=True)
    return ops.min((values - row_max) * mask, axis=1, keepdims=True) + row_max


def triplet_semihard_details(labels, embeddings, *, margin: float = 1.0, distance: str | Callable = "L2") -> dict:
    """The semi-hard triplet loss with its bookkeeping (see `triplet_semihard_loss`).

    Returns:
        dict of scalars: ``loss``; ``n_pairs``, the number of anchor–positive pairs;
        ``active_fraction``, the fraction of them with a positive hinge (0 when none). All in
        float32 for float16 / bfloat16 embeddings (not cast back), else in the embeddings' dtype.
    """
    _, embeddings, same = _prepare(labels, embeddings)
    dtype = embeddings.dtype
    d = ops.cast(pairwise_distance(embeddings, distance), dtype)  # d[a, j]
    n = ops.shape(d)[0]
    different = ops.cast(ops.logical_not(same), dtype)
    positives = ops.cast(same, dtype) - ops.eye(n, dtype=dtype)  # ordered pairs a != p, same label

    # For every (a, p), the negatives n with d(a, n) > d(a, p): axes (a, p, n).
    farther = ops.cast(d[:, None, :] > d[:, :, None], dtype) * different[:, None, :]
    has_semihard = ops.sum(farther, axis=2) > 0
    # Closest such negative: min over n of d(a, n) restricted to `farther`.
    big = ops.max(d, axis=1, keepdims=True)[:, :, None]  # (a, 1, 1)
    semihard = ops.min((d[:, None, :] - big) * farther, axis=2) + big[:, :, 0]
    farthest_negative = _masked_max(d, different)  # (a, 1), broadcast over p
    negative = ops.where(has_semihard, semihard, farthest_negative)

    hinge = ops.maximum((margin + d - negative) * positives, 0.0)
    n_pairs = ops.sum(positives)
    safe = ops.maximum(n_pairs, 1.0)
    loss = ops.sum(hinge) / safe
    active = ops.sum(ops.cast(hinge > 0, dtype)) / safe
    return {"loss": loss, "n_pairs": n_pairs, "active_fraction": active}


def triplet_semihard_loss(labels, embeddings, *, margin: float = 1.0, distance: str | Callable = "L2"):
    """Triplet loss with online semi-hard negative mining (Schroff et al., FaceNet, CVPR 2015).

    For every ordered anchor–positive pair (a, p) in the batch (same label, a ≠ p), the negative
    is the closest one strictly farther from the anchor than the positive, d(a, n) > d(a, p);
    when there is none, the farthest negative of the anchor. The loss is the mean over all
    anchor–positive pairs of ``max(margin + d(a, p) − d(a, n), 0)``. These are the semantics of
    ``tfa.losses.triplet_semihard_loss`` (TensorFlow Addons 0.23), including its corner rule
    that an anchor with no negative at all uses its row minimum (0) as "farthest negative".

    One difference: where TFA returned NaN (no anchor–positive pair in the batch, 0/0) this
    returns 0; `triplet_semihard_details` gives the number of pairs for logging.

    Args:
        labels: int tensor, shape (batch,) (or (batch, 1)).
        embeddings: float tensor, shape (batch, dim); float16 / bfloat16 are computed in float32.
        margin: the margin α ≥ 0.
        distance: "L2" (Euclidean, default), "squared-L2", "angular" (1 − cosine), a name or
            alias from `cbir.retrieval.distances`, or a callable (n, d) → (n, n) pairwise distances.
    Returns:
        scalar loss in the embeddings' dtype (computed in float32 for float16 / bfloat16 and cast
        back, as TFA did).

    Memory is O(batch³) (every anchor × positive × negative), as in TFA: fine for training
    batches of a few hundred, not for a whole dataset at once.
    """
    loss = triplet_semihard_details(labels, embeddings, margin=margin, distance=distance)["loss"]
    return _in_input_dtype(loss, embeddings)


def triplet_hard_loss(labels, embeddings, *, margin: float = 1.0, soft: bool = False, distance: str | Callable = "L2"):
    """Batch-hard triplet loss (Hermans, Beyer & Leibe, 2017), as ``tfa.losses.triplet_hard_loss``.

    For each anchor: its farthest positive and its closest negative in the batch;
    ``max(margin + d(a, p*) − d(a, n*), 0)`` (or ``softplus(d(a, p*) − d(a, n*))`` with
    `soft`); mean over all anchors. An anchor without a positive uses 0 as its farthest-positive
    distance (TFA's rule).

    Args, shapes and dtypes as `triplet_semihard_loss`: float16 / bfloat16 embeddings are
    computed in float32 and the scalar loss is returned in their dtype.
    """
    inputs = embeddings
    _, embeddings, same = _prepare(labels, embeddings)
    dtype = embeddings.dtype
    d = ops.cast(pairwise_distance(embeddings, distance), dtype)
    n = ops.shape(d)[0]
    positives = ops.cast(same, dtype) - ops.eye(n, dtype=dtype)
    different = ops.cast(ops.logical_not(same), dtype)
    hardest_positive = _masked_max(d, positives)
    hardest_negative = _masked_min(d, different)
    gap = hardest_positive - hardest_negative
    per_anchor = ops.softplus(gap) if soft else ops.maximum(gap + margin, 0.0)
    return _in_input_dtype(ops.mean(per_anchor), inputs)


def _contrastive_terms(pair_labels, pair_distances, margin):
    """Per-pair terms ``y d² + (1 − y) max(margin − d, 0)²``, shape (n_pairs,), float32 for low precision."""
    distances = ops.reshape(_float32_if_low_precision(pair_distances), (-1,))
    labels = ops.cast(ops.reshape(ops.convert_to_tensor(pair_labels), (-1,)), distances.dtype)
    return labels * ops.square(distances) + (1.0 - labels) * ops.square(ops.maximum(margin - distances, 0.0))


def contrastive_loss(pair_labels, pair_distances, *, margin: float = 1.0):
    """Contrastive loss for labelled pairs (Hadsell, Chopra & LeCun, CVPR 2006).

    ``mean(y · d² + (1 − y) · max(margin − d, 0)²)`` over the pairs, where d is whatever distance
    the caller measured between the pair's embeddings (Hadsell et al. and TFA use the Euclidean
    one, ``ops.norm(a - b, axis=1)``). TFA's ``contrastive_loss`` returned the per-pair terms and
    left the mean to its Keras class; this returns the mean, and `ContrastiveLoss` reduces the
    per-pair terms with Keras' reduction as TFA's class did.

    Args:
        pair_labels: shape (n_pairs,), 1 for a matching pair, 0 for a non-matching one.
        pair_distances: float, shape (n_pairs,), the distance between the pair's embeddings.
        margin: the margin m ≥ 0 below which a non-matching pair is penalised.
    Returns:
        scalar loss in the distances' dtype; float16 / bfloat16 distances are computed in float32
        and the loss cast back (TFA computed its contrastive terms directly in the input dtype).
    """
    return _in_input_dtype(ops.mean(_contrastive_terms(pair_labels, pair_distances, margin)), pair_distances)


def _check(margin: float, distance) -> None:
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not callable(distance):
        get_distance(distance)  # raises ValueError listing the valid names


class _InputDtypeLoss(keras.losses.Loss):
    """A `keras.losses.Loss` whose value comes back in ``y_pred``'s dtype when that is float16 / bfloat16.

    Keras 3 converts ``y_pred`` to the loss's ``dtype`` (float32 unless set) before ``call`` and
    reduces in it; TFA's losses (Keras 2) returned the input's dtype. This keeps the float32
    computation and casts the reduced value back, as TFA did.
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        dtype = _low_precision_dtype(y_pred)
        return ops.cast(value, dtype) if dtype else value


@keras.saving.register_keras_serializable(package="cbir")
class TripletSemiHardLoss(_InputDtypeLoss):
    """Keras loss around `triplet_semihard_loss`; drop-in for ``tfa.losses.TripletSemiHardLoss``.

    Args:
        margin: α ≥ 0 (default 1.0).
        distance_metric: "L2" (default), "squared-L2", "angular", another `cbir.retrieval.distances` name,
            or a callable returning the pairwise distance matrix (not serialisable).

    Called as ``loss(labels, embeddings)``: a scalar in float32, or in float16 / bfloat16 when the
    embeddings are (computed in float32 and cast back, as TFA); ``dtype`` as in `keras.losses.Loss`.

    Raises:
        ValueError: negative margin or unknown distance name.
    """

    def __init__(
        self, margin: float = 1.0, distance_metric: str | Callable = "L2", name: str = "triplet_semihard_loss", **kwargs
    ):
        _check(margin, distance_metric)
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)
        self.distance_metric = distance_metric

    def call(self, y_true, y_pred):
        return triplet_semihard_loss(y_true, y_pred, margin=self.margin, distance=self.distance_metric)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "distance_metric": self.distance_metric}


@keras.saving.register_keras_serializable(package="cbir")
class TripletHardLoss(_InputDtypeLoss):
    """Keras loss around `triplet_hard_loss` (batch-hard, optional soft margin); dtypes as `TripletSemiHardLoss`."""

    def __init__(
        self,
        margin: float = 1.0,
        soft: bool = False,
        distance_metric: str | Callable = "L2",
        name: str = "triplet_hard_loss",
        **kwargs,
    ):
        _check(margin, distance_metric)
        super().__init__(name=name, **kwargs)
        self.margin, self.soft, self.distance_metric = float(margin), bool(soft), distance_metric

    def call(self, y_true, y_pred):
        return triplet_hard_loss(y_true, y_pred, margin=self.margin, soft=self.soft, distance=self.distance_metric)

    def get_config(self):
        return {
            **super().get_config(),
            "margin": self.margin,
            "soft": self.soft,
            "distance_metric": self.distance_metric,
        }


@keras.saving.register_keras_serializable(package="cbir")
class ContrastiveLoss(_InputDtypeLoss):
    """Keras loss around `contrastive_loss`: ``y_true`` pair labels (1 match / 0), ``y_pred`` distances.

    ``call`` returns the per-pair terms, so ``reduction`` and ``sample_weight`` act per pair as in
    TFA's ``ContrastiveLoss``; the default reduction gives `contrastive_loss`, the mean. The value
    is float32, or float16 / bfloat16 when ``y_pred`` is (computed in float32 and cast back).

    Raises:
        ValueError: negative margin.
    """

    def __init__(self, margin: float = 1.0, name: str = "contrastive_loss", **kwargs):
        _check(margin, "euclidean")
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        return _contrastive_terms(y_true, y_pred, self.margin)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="cbir")
class ActiveTripletFraction(keras.metrics.Mean):
    """Training metric: the fraction of anchor–positive pairs whose semi-hard hinge is positive."""

    def __init__(self, margin: float = 1.0, distance_metric: str = "L2", name: str = "active_triplets", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin, self.distance_metric = float(margin), distance_metric

    def update_state(self, y_true, y_pred, sample_weight=None):
        details = triplet_semihard_details(y_true, y_pred, margin=self.margin, distance=self.distance_metric)
        return super().update_state(details["active_fraction"])

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "distance_metric": self.distance_metric}
