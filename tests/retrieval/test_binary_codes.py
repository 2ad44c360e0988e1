"""Sign LSH and ITQ: the properties their papers state, checked numerically."""

import numpy as np
import pytest

from cbir.retrieval.binary_codes import ITQ, SignLSH, make_encoder


def test_itq_loss_never_increases_and_the_rotation_is_orthogonal():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((800, 40)) @ rng.standard_normal((40, 40))
    itq = ITQ(16, iterations=30, seed=1).fit(features)
    assert np.all(np.diff(itq.losses) <= 1e-6 * itq.losses[0])
    np.testing.assert_allclose(itq.rotation.T @ itq.rotation, np.eye(16), atol=1e-10)
    # The loss ITQ reports is ‖sign(VR) − VR‖² of the final rotation's predecessor: recompute it.
    projected = (features - features.mean(axis=0)) @ itq.components
    assert itq.losses[-1] >= np.sum((np.where(projected @ itq.rotation >= 0, 1, -1) - projected @ itq.rotation) ** 2)


def test_itq_recovers_sign_structure():
    # Points at the corners of a rotated hypercube: ITQ's rotation undoes the rotation, so the codes of
    # each corner are constant and different corners get different codes.
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


def test_sign_lsh_collision_probability_is_one_minus_angle_over_pi():
    bits, theta = 20000, np.pi / 3
    a = np.array([1.0, 0.0, 0.0, 0.0])
    b = np.array([np.cos(theta), np.sin(theta), 0.0, 0.0])
    lsh = SignLSH(bits, seed=0).fit(np.zeros((1, 4)))  # mean 0: hyperplanes through the origin
    codes = lsh.encode(np.stack([a, b]))
    agree = np.mean(codes[0] == codes[1])
    p = 1 - theta / np.pi
    assert abs(agree - p) < 4 * np.sqrt(p * (1 - p) / bits)


def test_state_round_trip_errors_and_seeds():
    rng = np.random.default_rng(2)
    features = rng.standard_normal((300, 24))
    for name in ("lsh", "itq"):
        encoder = make_encoder(name, 16, seed=3).fit(features)
        params, arrays = encoder.get_state()
        restored = type(encoder).from_state(params, arrays)
        np.testing.assert_array_equal(restored.encode(features), encoder.encode(features))
        np.testing.assert_array_equal(
            make_encoder(name, 16, seed=3).fit(features).encode(features), encoder.encode(features)
        )
        with pytest.raises(ValueError, match="fitted on 24"):
            encoder.encode(features[:, :5])
        with pytest.raises(ValueError, match="not fitted"):
            make_encoder(name, 8).encode(features)
    with pytest.raises(ValueError, match="bits <= dimension"):
        ITQ(30).fit(features)
    with pytest.raises(ValueError, match="unknown binary encoder"):
        make_encoder("pcah", 8)


def test_itq_on_a_sample_learns_the_same_rotation_problem():
    # Fitted on a 1 000-row sample of 5 000, ITQ still recovers the rotated-hypercube codes (the sample only
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
