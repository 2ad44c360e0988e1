import itertools

import numpy as np
import pytest

from cbir.models.sampling import pk_batch_indices, pk_dataset


@pytest.mark.parametrize("n_classes, p, k", [(10, 10, 4), (200, 32, 2), (200, 8, 5)])
def test_every_batch_has_k_images_of_p_classes(n_classes, p, k):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, 20 * n_classes)
    labels[: 2 * n_classes] = np.repeat(np.arange(n_classes), 2)  # every class has >= 2 images
    seen = set()
    for batch in itertools.islice(pk_batch_indices(labels, p, k, seed=1), 50):
        assert batch.shape == (p * k,)
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == p and np.all(counts == k)
        for c in classes:  # an anchor always has a distinct positive when its class has >= 2 images
            assert len(set(batch[labels[batch] == c])) >= min(2, k)
        seen.update(classes.tolist())
    assert len(seen) > p or n_classes == p  # classes rotate across batches


def test_small_classes_are_sampled_with_replacement_and_singletons_dropped():
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 2])  # class 2 has one image: no positive possible
    for batch in itertools.islice(pk_batch_indices(labels, 2, 4, seed=0), 20):
        assert 2 not in labels[batch]
        assert np.all(np.unique(labels[batch], return_counts=True)[1] == 4)


def test_same_seed_same_stream_and_errors():
    labels = np.repeat(np.arange(5), 6)
    a = list(itertools.islice(pk_batch_indices(labels, 3, 2, seed=7), 5))
    b = list(itertools.islice(pk_batch_indices(labels, 3, 2, seed=7), 5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="k must be >= 2"):
        next(pk_batch_indices(labels, 3, 1))
    with pytest.raises(ValueError, match="only 5 classes have >= 2 images"):
        next(pk_batch_indices(labels, 6, 2))


def test_tf_data_batches():
    features = np.arange(60, dtype=np.float32).reshape(30, 2)
    labels = np.repeat(np.arange(10), 3)
    x, y = next(iter(pk_dataset(features, labels, p=5, k=3, seed=0)))
    assert x.shape == (15, 2) and y.shape == (15,)
    np.testing.assert_array_equal(labels[(x.numpy()[:, 0] // 2).astype(int)], y.numpy())
