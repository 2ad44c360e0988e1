"""Sign LSH and ITQ: the properties their papers state, checked numerically."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cbir.retrieval.binary_codes import ITQ, SignLSH, make_encoder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """BLAS on one thread: ITQ's small products run faster on 2 shared cores, and alike every run."""
    with threadpool_limits(limits=1):
        yield


def _quantisation_loss(projected, rotation):
    """‖B − V R‖²_F with B = sign(V R) (ITQ's objective, Gong & Lazebnik 2011, eq. 2)."""
    rotated = projected @ rotation
    return np.sum((np.where(rotated >= 0, 1.0, -1.0) - rotated) ** 2)


def test_itq_loss_never_increases_and_the_rotation_is_orthogonal():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((800, 40)) @ rng.standard_normal((40, 40))
    itq = ITQ(16, iterations=30, seed=1).fit(features)
    assert len(itq.losses) == 30
    assert np.all(np.diff(itq.losses) <= 1e-9 * itq.losses[0])
    np.testing.assert_allclose(itq.rotation.T @ itq.rotation, np.eye(16), atol=1e-10)
    # The components are the top principal directions: orthonormal, and the projection's variance is the
    # sum of the 16 largest eigenvalues of the covariance (computed here with an SVD of the centred data).
    centred = features - features.mean(axis=0)
    np.testing.assert_allclose(itq.components.T @ itq.components, np.eye(16), atol=1e-10)
    singular = np.linalg.svd(centred, compute_uv=False)
    np.testing.assert_allclose(np.sum((centred @ itq.components) ** 2), np.sum(singular[:16] ** 2), rtol=1e-9)
    # losses[i] is the loss before the i-th Procrustes update: the final rotation does at least as well.
    projected = centred @ itq.components
    assert _quantisation_loss(projected, itq.rotation) <= itq.losses[-1] * (1 + 1e-12)
    # ...and better than random rotations, the starting point it improved on.
    random_losses = [_quantisation_loss(projected, np.linalg.qr(rng.standard_normal((16, 16)))[0]) for _ in range(20)]
    assert _quantisation_loss(projected, itq.rotation) < min(random_losses)
    # The codes are the signs of the rotated projections.
    np.testing.assert_array_equal(itq.encode(features), projected @ itq.rotation >= 0)


def test_itq_recovers_sign_structure():
    # Points at the corners of a rotated cube: ITQ's rotation undoes the rotation, so the codes of each
    # corner are constant and different corners get different codes.
    rng = np.random.default_rng(1)
    corners = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], float)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    labels = rng.integers(0, 8, 2000)
    features = (corners[labels] + 0.05 * rng.standard_normal((2000, 3))) @ rotation
    codes = ITQ(3, seed=0).fit(features).encode(features)
    as_int = codes @ np.array([1, 2, 4])
    for corner in range(8):
        assert len(np.unique(as_int[labels == corner])) == 1
    assert len(np.unique(as_int)) == 8


@pytest.mark.parametrize("theta", [np.pi / 6, np.pi / 3, np.pi / 2, 3 * np.pi / 4])
def test_sign_lsh_collision_probability_is_one_minus_angle_over_pi(theta):
    # Charikar (2002): a random hyperplane separates two vectors at angle θ with probability θ / π. The
    # hyperplanes pass through the training mean, so the angle is measured from it.
    bits, dim = 20000, 6
    rng = np.random.default_rng(4)
    mean = rng.standard_normal(dim)
    training = mean + rng.standard_normal((400, dim))
    training += mean - training.mean(axis=0)  # exactly this mean
    u = np.zeros(dim)
    u[0] = 1.0
    v = np.zeros(dim)
    v[:2] = np.cos(theta), np.sin(theta)
    codes = SignLSH(bits, seed=0).fit(training).encode(np.stack([mean + 3 * u, mean + 0.5 * v]))
    agree = np.mean(codes[0] == codes[1])
    p = 1 - theta / np.pi
    assert abs(agree - p) < 4 * np.sqrt(p * (1 - p) / bits)  # 4 binomial standard deviations


def test_codes_are_reproducible_for_a_seed_and_differ_across_seeds():
    features = np.random.default_rng(2).standard_normal((300, 24))
    for name in ("lsh", "itq"):
        first = make_encoder(name, 16, seed=3).fit(features).encode(features)
        np.testing.assert_array_equal(make_encoder(name, 16, seed=3).fit(features).encode(features), first)
        assert first.dtype == bool and first.shape == (300, 16)
        assert not np.array_equal(make_encoder(name, 16, seed=4).fit(features).encode(features), first)


def test_state_round_trip():
    features = np.random.default_rng(2).standard_normal((300, 24))
    for name in ("lsh", "itq"):
        encoder = make_encoder(name, 16, seed=3).fit(features)
        params, arrays = encoder.get_state()
        assert params["name"] == name and all(isinstance(array, np.ndarray) for array in arrays.values())
        restored = type(encoder).from_state(params, arrays)
        np.testing.assert_array_equal(restored.encode(features), encoder.encode(features))


def test_errors_name_the_value():
    features = np.random.default_rng(2).standard_normal((300, 24))
    for name in ("lsh", "itq"):
        encoder = make_encoder(name, 16, seed=3).fit(features)
        with pytest.raises(ValueError, match="features have dimension 5, the encoder was fitted on 24"):
            encoder.encode(features[:, :5])
        with pytest.raises(ValueError, match=r"2-D \(n, dim\), got shape \(24,\)"):
            encoder.encode(features[0])
        with pytest.raises(ValueError, match="not fitted"):
            make_encoder(name, 8).encode(features)
        with pytest.raises(ValueError, match="not fitted"):
            make_encoder(name, 8).get_state()
        with pytest.raises(ValueError, match=r"at least one row.*\(0, 24\)"):
            make_encoder(name, 8).fit(features[:0])
        params, arrays = encoder.get_state()
        key = "projections" if name == "lsh" else "components"
        with pytest.raises(ValueError, match=f"array '{key}' must have shape"):
            type(encoder).from_state(params, {**arrays, key: arrays[key][:, :3]})
        with pytest.raises(ValueError, match="lacks array 'mean'"):
            type(encoder).from_state(params, {k: v for k, v in arrays.items() if k != "mean"})
        with pytest.raises(ValueError, match="bits must be an integer >= 1, got 0"):
            make_encoder(name, 0)
        with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
            make_encoder(name, 8, seed=-1)
    params, arrays = make_encoder("itq", 16).fit(features).get_state()
    with pytest.raises(ValueError, match="'rotation' is not orthogonal"):
        ITQ.from_state(params, {**arrays, "rotation": 2 * arrays["rotation"]})
    with pytest.raises(ValueError, match=r"bits <= dimension and <= number of vectors; got 30 bits for \(300, 24\)"):
        ITQ(30).fit(features)
    with pytest.raises(ValueError, match=r"got 16 bits for \(10, 24\)"):
        ITQ(16).fit(features[:10])
    with pytest.raises(ValueError, match="iterations must be an integer >= 0, got -1"):
        ITQ(8, iterations=-1)
    with pytest.raises(ValueError, match=r"unknown binary encoder 'pcah'; expected one of \['itq', 'lsh'\]"):
        make_encoder("pcah", 8)
    assert SignLSH(64).fit(features).encode(features).shape == (300, 64)  # LSH: any number of bits


def test_itq_on_a_sample_learns_the_same_rotation_problem():
    # Fitted on a 1 000-row sample of 5 000, ITQ still recovers the rotated-square codes (the sample only
    # estimates the covariance and the rotation; the mean uses every row).
    rng = np.random.default_rng(6)
    corners = np.array([[a, b] for a in (-1, 1) for b in (-1, 1)], float)
    rotation, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    labels = rng.integers(0, 4, 5000)
    features = (corners[labels] + 0.05 * rng.standard_normal((5000, 2))) @ rotation
    itq = ITQ(2, seed=0, sample=1000).fit(features)
    np.testing.assert_allclose(itq.mean, features.mean(axis=0))
    codes = itq.encode(features) @ np.array([1, 2])
    assert all(len(np.unique(codes[labels == corner])) == 1 for corner in range(4))
    params, arrays = itq.get_state()
    assert params["sample"] == 1000 and np.array_equal(
        ITQ.from_state(params, arrays).encode(features), itq.encode(features)
    )
