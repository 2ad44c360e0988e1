"""Losses against brute-force NumPy loops over every (anchor, positive, negative), and by hand."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from cbir.models import losses
from cbir.models.distances import get_distance, pairwise_distance


def _distances(embeddings, metric):
    n = len(embeddings)
    d = np.zeros((n, n))
    for i, j in itertools.product(range(n), repeat=2):
        if i == j:
            continue
        a, b = embeddings[i].astype(np.float64), embeddings[j].astype(np.float64)
        if metric == "L2":
            d[i, j] = np.sqrt(((a - b) ** 2).sum())
        elif metric == "squared-L2":
            d[i, j] = ((a - b) ** 2).sum()
        else:  # angular
            d[i, j] = max(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b), 0.0)
    return d


def semihard_reference(labels, embeddings, margin, metric):
    """Every ordered anchor-positive pair; semi-hard negative by the definition; mean hinge."""
    d = _distances(embeddings, metric)
    n = len(labels)
    terms = []
    for a, p in itertools.product(range(n), repeat=2):
        if a == p or labels[a] != labels[p]:
            continue
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        farther = [d[a, k] for k in negatives if d[a, k] > d[a, p]]
        if farther:
            negative = min(farther)
        elif negatives:
            negative = max(d[a, k] for k in negatives)
        else:
            negative = min(d[a])  # TFA's rule when the anchor has no negative: the row minimum
        terms.append(max(margin + d[a, p] - negative, 0.0))
    return (float(np.mean(terms)) if terms else 0.0), len(terms)


def hard_reference(labels, embeddings, margin, metric, soft):
    d = _distances(embeddings, metric)
    values = []
    for a in range(len(labels)):
        positives = [d[a, p] for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [d[a, k] for k in range(len(labels)) if labels[k] != labels[a]]
        hardest_positive = max(positives) if positives else min(d[a])
        hardest_negative = min(negatives) if negatives else max(d[a])
        gap = hardest_positive - hardest_negative
        values.append(np.log1p(np.exp(gap)) if soft else max(gap + margin, 0.0))
    return float(np.mean(values))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("metric", ["L2", "squared-L2", "angular"])
def test_semihard_matches_brute_force(dtype, metric):
    rng = np.random.default_rng(0)
    for _ in range(6):
        n = int(rng.integers(4, 13))
        labels = rng.integers(0, 3, n)
        embeddings = rng.normal(size=(n, 5)).astype(dtype)
        margin = float(rng.uniform(0.1, 1.5))
        expected, n_pairs = semihard_reference(labels, embeddings, margin, metric)
        details = losses.triplet_semihard_details(labels, embeddings, margin=margin, distance=metric)
        tolerance = 1e-5 if dtype == "float32" else 1e-10
        assert float(details["loss"]) == pytest.approx(expected, rel=tolerance, abs=tolerance)
        assert int(details["n_pairs"]) == n_pairs
        assert keras.backend.standardize_dtype(details["loss"].dtype) == dtype


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("metric", ["L2", "squared-L2", "angular"])
def test_batch_hard_matches_brute_force(metric, soft):
    rng = np.random.default_rng(1)
    for _ in range(4):
        labels = rng.integers(0, 3, 9)
        embeddings = rng.normal(size=(9, 4))
        got = float(losses.triplet_hard_loss(labels, embeddings, margin=0.7, soft=soft, distance=metric))
        assert got == pytest.approx(hard_reference(labels, embeddings, 0.7, metric, soft), rel=1e-9, abs=1e-9)


def test_hand_worked_batches():
    # All easy: classes 10 apart, positives 0.1 apart -> every hinge is 0.
    easy = np.array([[0.0, 0], [0.1, 0], [10, 0], [10.1, 0]])
    assert float(losses.triplet_semihard_loss([0, 0, 1, 1], easy, margin=1.0)) == 0.0
    # 1-D points a=0, p=2 (label 0), n=1 (label 1), margin 1, L2.
    # Pair (a,p): no negative farther than 2 from a -> farthest negative, d=1: hinge 1 + 2 - 1 = 2.
    # Pair (p,a): from p=2, d(p,a)=2, d(p,n)=1 -> not farther -> farthest negative 1: hinge 2.
    # Mean over the two ordered pairs: 2.
    points = np.array([[0.0], [2.0], [1.0]])
    assert float(losses.triplet_semihard_loss([0, 0, 1], points, margin=1.0)) == pytest.approx(2.0)
    # Points 0, 1 (label 0) and 1.5, 3 (label 1), margin 1, L2; the four ordered pairs:
    #   (0 -> 1): d=1, negatives at 1.5 and 3 are farther -> semi-hard 1.5: hinge 1 + 1 - 1.5 = 0.5
    #   (1 -> 0): d=1, negatives at 0.5 and 2 -> only 2 is farther: hinge 1 + 1 - 2 = 0
    #   (1.5 -> 3): d=1.5, negatives at 1.5 and 0.5 -> none *strictly* farther -> farthest (1.5): hinge 1
    #   (3 -> 1.5): d=1.5, negatives at 3 and 2 -> semi-hard 2: hinge 1 + 1.5 - 2 = 0.5
    points = np.array([[0.0], [1.0], [1.5], [3.0]])
    details = losses.triplet_semihard_details([0, 0, 1, 1], points, margin=1.0)
    assert float(details["loss"]) == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert float(details["active_fraction"]) == pytest.approx(3 / 4)


def test_no_positive_pair_gives_zero_not_nan():
    details = losses.triplet_semihard_details([0, 1, 2], np.eye(3), margin=1.0)
    assert float(details["loss"]) == 0.0 and int(details["n_pairs"]) == 0
    assert float(details["active_fraction"]) == 0.0


def test_gradients_are_finite_even_with_duplicate_embeddings():
    embeddings = tf.Variable(np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0], [0.5, 0.5]], np.float32))
    labels = tf.constant([0, 0, 1, 1, 0])
    for function in (
        lambda: losses.triplet_semihard_loss(labels, embeddings),
        lambda: losses.triplet_hard_loss(labels, embeddings, soft=True),
        lambda: losses.triplet_semihard_loss(labels, embeddings, distance="angular"),
    ):
        with tf.GradientTape() as tape:
            value = function()
        gradient = tape.gradient(value, embeddings)
        assert np.all(np.isfinite(gradient.numpy())) and np.isfinite(float(value))


def test_contrastive_loss_by_hand():
    # Matching pair at distance 0.5 -> 0.25; non-matching at 0.3 with margin 1 -> 0.49; at 2 -> 0.
    value = losses.contrastive_loss([1, 0, 0], np.array([0.5, 0.3, 2.0]), margin=1.0)
    assert float(value) == pytest.approx((0.25 + 0.49 + 0.0) / 3)


def contrastive_reference(labels, embeddings, margin, metric="L2"):
    """Every unordered pair i < j of the batch: y d² + (1 − y) max(margin − d, 0)² (Hadsell et al. 2006).

    d is the pair's distance in `metric`, worked out pair by pair in float64 (`_distances`); y is 1
    when the two labels agree. Returns the per-pair terms in the order of ``np.triu_indices(n, 1)``.
    (Ordered pairs (i, j) and (j, i) give the same terms twice, hence the same mean.)
    """
    d = _distances(embeddings, metric)
    terms = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        terms.append(d[i, j] ** 2 if labels[i] == labels[j] else max(margin - d[i, j], 0.0) ** 2)
    return np.array(terms)


# Relative tolerance of a contrastive loss fed distances in `dtype`: the distances are rounded to 24 / 11 / 8
# significant bits (unit roundoff u = 6e-8 / 4.9e-4 / 3.9e-3), each term has ~2u relative error, the float32
# mean adds nothing and the cast back u more; the compiled model also computes the distance in that dtype.
CONTRASTIVE_TOLERANCE = {"float32": 1e-5, "float16": 3e-3, "bfloat16": 2e-2}
# The triplet losses see rounded embeddings (the reference gets the same rounded values) and compute in
# float32: only the cast of the result back to float16 / bfloat16 (u/2 = 2.4e-4 / 2e-3) is left.
TRIPLET_TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 4e-3}
METRICS = ["L2", "squared-L2", "angular"]


def _contrastive_batch(rng, metric):
    """Random batch with several labels, its pairs (i < j), their distances by the library, and a margin."""
    n = int(rng.integers(8, 15))
    labels = rng.integers(0, 4, n)
    embeddings = rng.normal(scale=0.6, size=(n, 5)).astype(np.float32)
    i, j = np.triu_indices(n, k=1)
    pair_labels = (labels[i] == labels[j]).astype(np.float32)
    distances = np.asarray(pairwise_distance(embeddings, metric))[i, j]
    margin = float(np.median(distances[pair_labels == 0]))  # half the negative pairs inside it, half outside
    assert 0 < pair_labels.mean() < 1  # both kinds of pairs
    assert np.any(distances[pair_labels == 0] < margin) and np.any(distances[pair_labels == 0] > margin)
    return labels, embeddings, pair_labels, distances, margin


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_contrastive_function_and_keras_class_match_a_loop_over_all_pairs(dtype, metric):
    rng = np.random.default_rng(4)
    tolerance = CONTRASTIVE_TOLERANCE[dtype]
    for _ in range(3):
        labels, embeddings, pair_labels, distances, margin = _contrastive_batch(rng, metric)
        expected = contrastive_reference(labels, embeddings, margin, metric).mean()
        low = tf.cast(distances, dtype)
        value = losses.contrastive_loss(pair_labels, low, margin=margin)
        assert keras.backend.standardize_dtype(value.dtype) == dtype
        assert float(value) == pytest.approx(expected, rel=tolerance)
        value = losses.ContrastiveLoss(margin=margin)(pair_labels, low)  # __call__ runs `call` and reduces
        assert keras.backend.standardize_dtype(value.dtype) == dtype
        assert float(value) == pytest.approx(expected, rel=tolerance)


PAIR_DISTANCES = {  # the distance of each pair (batch, 2, dim), as a siamese model would compute it
    "L2": lambda pairs: ops.norm(pairs[:, 0] - pairs[:, 1], axis=1),
    "squared-L2": lambda pairs: ops.sum(ops.square(pairs[:, 0] - pairs[:, 1]), axis=1),
    "angular": lambda pairs: ops.maximum(
        1.0 - ops.sum(pairs[:, 0] * pairs[:, 1], axis=1) / ops.prod(ops.norm(pairs, axis=2), axis=1), 0.0
    ),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_contrastive_loss_compiled_in_a_model_matches_the_loop(dtype, metric):
    rng = np.random.default_rng(6)
    labels, embeddings, pair_labels, _, margin = _contrastive_batch(rng, metric)
    i, j = np.triu_indices(len(labels), k=1)
    pairs = np.stack([embeddings[i], embeddings[j]], axis=1)
    # The Lambda computes the pair distances in `dtype`; the loss gets them as y_pred in that dtype.
    model = keras.Sequential([keras.Input((2, 5)), keras.layers.Lambda(PAIR_DISTANCES[metric], dtype=dtype)])
    assert keras.backend.standardize_dtype(model(pairs[:2]).dtype) == dtype
    model.compile(loss=losses.ContrastiveLoss(margin=margin))
    value = model.evaluate(pairs, pair_labels, batch_size=len(i), verbose=0)
    expected = contrastive_reference(labels, embeddings, margin, metric).mean()
    assert value == pytest.approx(expected, rel=CONTRASTIVE_TOLERANCE[dtype])


def test_contrastive_class_reduces_per_pair_terms_like_tfa():
    rng = np.random.default_rng(7)
    labels, embeddings, pair_labels, distances, margin = _contrastive_batch(rng, "L2")
    terms = contrastive_reference(labels, embeddings, margin)
    summed = losses.ContrastiveLoss(margin=margin, reduction="sum")(pair_labels, distances)
    assert float(summed) == pytest.approx(terms.sum(), rel=1e-5)
    weights = rng.uniform(0, 2, len(terms))
    weighted = losses.ContrastiveLoss(margin=margin)(pair_labels, distances, sample_weight=weights)
    assert float(weighted) == pytest.approx((weights * terms).sum() / len(terms), rel=1e-5)  # sum_over_batch_size


def test_contrastive_class_config_round_trip():
    loss = losses.ContrastiveLoss(margin=0.7, name="pairs", reduction="sum")
    for clone in (
        losses.ContrastiveLoss.from_config(loss.get_config()),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss)),
    ):
        assert type(clone) is losses.ContrastiveLoss and clone.get_config() == loss.get_config()
        assert (clone.margin, clone.name, clone.reduction) == (0.7, "pairs", "sum")
        assert float(clone([1, 0], np.array([0.5, 0.2]))) == pytest.approx(0.25 + 0.25)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        losses.ContrastiveLoss(margin=-0.1)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_triplet_losses_compute_low_precision_in_float32_and_return_the_input_dtype(dtype, metric):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 12)
    low = tf.cast(rng.normal(size=(12, 6)).astype(np.float32), dtype)
    rounded = tf.cast(low, "float32").numpy()  # the values the loss actually sees
    tolerance = TRIPLET_TOLERANCE[dtype]
    semihard_expected, _ = semihard_reference(labels, rounded, 0.5, metric)
    hard_expected = hard_reference(labels, rounded, 0.5, metric, False)
    for value, expected in (
        (losses.triplet_semihard_loss(labels, low, margin=0.5, distance=metric), semihard_expected),
        (losses.TripletSemiHardLoss(margin=0.5, distance_metric=metric)(labels, low), semihard_expected),
        (losses.triplet_hard_loss(labels, low, margin=0.5, distance=metric), hard_expected),
        (losses.TripletHardLoss(margin=0.5, distance_metric=metric)(labels, low), hard_expected),
    ):
        assert keras.backend.standardize_dtype(value.dtype) == dtype
        assert float(value) == pytest.approx(expected, rel=tolerance)
    details = losses.triplet_semihard_details(labels, low, margin=0.5, distance=metric)
    assert keras.backend.standardize_dtype(details["loss"].dtype) == "float32"  # bookkeeping: not cast back


def test_loss_classes_validate_and_serialise():
    loss = losses.TripletSemiHardLoss(margin=0.5, distance_metric="angular")
    clone = losses.TripletSemiHardLoss.from_config(loss.get_config())
    assert clone.margin == 0.5 and clone.distance_metric == "angular"
    rng = np.random.default_rng(2)
    labels, embeddings = rng.integers(0, 3, 8), rng.normal(size=(8, 4)).astype("float32")
    assert float(loss(labels, embeddings)) == pytest.approx(
        semihard_reference(labels, embeddings, 0.5, "angular")[0], rel=1e-5
    )
    assert losses.TripletHardLoss.from_config(losses.TripletHardLoss(soft=True).get_config()).soft
    assert losses.ContrastiveLoss.from_config(losses.ContrastiveLoss(margin=2).get_config()).margin == 2
    with pytest.raises(ValueError, match="margin must be >= 0"):
        losses.TripletSemiHardLoss(margin=-1)
    with pytest.raises(ValueError, match="unknown distance 'L3'"):
        losses.TripletSemiHardLoss(distance_metric="L3")


def test_scipy_aliases_and_callable_distance():
    rng = np.random.default_rng(3)
    labels, embeddings = rng.integers(0, 2, 7), rng.normal(size=(7, 3))
    by_alias = float(losses.triplet_semihard_loss(labels, embeddings, distance="sqeuclidean"))
    by_tfa_name = float(losses.triplet_semihard_loss(labels, embeddings, distance="squared-L2"))
    by_callable = float(losses.triplet_semihard_loss(labels, embeddings, distance=get_distance("sqeuclidean").function))
    assert by_alias == by_tfa_name == by_callable
    from scipy.spatial.distance import cdist

    for name in ("euclidean", "sqeuclidean", "cosine", "cityblock"):
        np.testing.assert_allclose(
            np.asarray(pairwise_distance(embeddings, name)), cdist(embeddings, embeddings, name), atol=1e-9
        )
    codes = rng.integers(0, 2, (5, 16))
    np.testing.assert_allclose(
        np.asarray(pairwise_distance(codes, "hamming")), cdist(codes, codes, "hamming"), atol=1e-7
    )
