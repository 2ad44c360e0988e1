"""Class-balanced P×K batches for online triplet mining (Hermans et al., 2017; FaceNet §3.2).

Every batch holds K images of each of P classes, so every anchor has K − 1 ≥ 1 positives and
(P − 1)·K negatives inside the batch — what online semi-hard mining needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["pk_batch_indices", "pk_dataset"]


def pk_batch_indices(labels: np.ndarray, p: int, k: int, seed: int = 0) -> Iterator[np.ndarray]:
    """An endless stream of index batches, each K indices from each of P distinct classes.

    Classes are drawn uniformly without replacement within a batch; a class's images are
    drawn without replacement when it has at least K of them, else with replacement (so K
    still holds). Classes with fewer than 2 images cannot provide a positive and are left out.

    Args:
        labels: int array, shape (n,); negative labels (unlabelled) are ignored.
        p: classes per batch, 2 ≤ p ≤ number of usable classes.
        k: images per class, ≥ 2.
        seed: random seed; the same seed gives the same stream.
    Yields:
        int64 arrays of shape (p · k,), grouped by class.
    Raises:
        ValueError: k < 2, p < 2, or fewer than p classes with at least 2 images.
    """
    labels = np.asarray(labels)
    if k < 2:
        raise ValueError(f"k must be >= 2 (each anchor needs a positive), got {k}")
    if p < 2:
        raise ValueError(f"p must be >= 2 (each anchor needs a negative), got {p}")
    members = {c: np.flatnonzero(labels == c) for c in np.unique(labels[labels >= 0])}
    usable = np.array(sorted(c for c, m in members.items() if len(m) >= 2))
    if len(usable) < p:
        raise ValueError(f"p={p} classes per batch, but only {len(usable)} classes have >= 2 images")
    rng = np.random.default_rng(seed)
    while True:
        classes = rng.choice(usable, size=p, replace=False)
        yield np.concatenate([rng.choice(members[c], size=k, replace=len(members[c]) < k) for c in classes]).astype(
            np.int64
        )


def pk_dataset(features: np.ndarray, labels: np.ndarray, p: int, k: int, seed: int = 0):
    """A ``tf.data.Dataset`` of P×K batches ``(features[batch], labels[batch])``.

    Args:
        features: array, shape (n, ...), e.g. cached backbone features (n, dim) or images.
        labels: int array, shape (n,).
    Returns:
        an infinite dataset (use ``steps_per_epoch``), prefetched.
    """
    import tensorflow as tf

    features = np.asarray(features)
    labels = np.asarray(labels)
    stream = pk_batch_indices(labels, p, k, seed)
    dataset = tf.data.Dataset.from_generator(
        lambda: ((features[i], labels[i]) for i in stream),
        output_signature=(
            tf.TensorSpec((p * k, *features.shape[1:]), tf.as_dtype(features.dtype)),
            tf.TensorSpec((p * k,), tf.as_dtype(labels.dtype)),
        ),
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
