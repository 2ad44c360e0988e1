"""Clustered unit vectors: shapes, norms, reproducibility, and the noise scale that sets difficulty."""

import numpy as np
import pytest

from cbir.data.synthetic import clustered_unit_vectors


def test_unit_rows_reproducible_and_labelled():
    vectors, clusters = clustered_unit_vectors(5000, 32, n_centres=20, seed=3, chunk=1000)
    assert vectors.shape == (5000, 32) and vectors.dtype == np.float32 and clusters.shape == (5000,)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert set(np.unique(clusters)) <= set(range(20))
    np.testing.assert_array_equal(vectors, clustered_unit_vectors(5000, 32, n_centres=20, seed=3, chunk=1000)[0])


def test_noise_zero_gives_the_centres_and_noise_one_overlaps():
    tight, clusters = clustered_unit_vectors(2000, 64, n_centres=10, noise=0.0, seed=0)
    for c in np.unique(clusters):
        members = tight[clusters == c]
        np.testing.assert_allclose(members, np.broadcast_to(members[0], members.shape), atol=1e-6)
    # At noise 1 a vector's cosine to another member of its cluster is about 1/2 (signal variance over
    # total), to another cluster's about 0: the clusters overlap but still exist.
    loose, clusters = clustered_unit_vectors(4000, 256, n_centres=10, noise=1.0, seed=0)
    same = clusters[:, None] == clusters[None, :]
    cosines = loose @ loose.T
    off_diagonal = ~np.eye(len(loose), dtype=bool)
    assert np.mean(cosines[same & off_diagonal]) == pytest.approx(0.5, abs=0.05)
    assert np.mean(cosines[~same]) == pytest.approx(0.0, abs=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_centres"):
        clustered_unit_vectors(10, 4, n_centres=0)
    with pytest.raises(ValueError, match="noise"):
        clustered_unit_vectors(10, 4, noise=-1)
