import keras
import numpy as np
import pytest

from cbir.models import pooling
from cbir.retrieval import ranking, whitening


@pytest.fixture
def maps():
    return np.random.default_rng(0).uniform(0, 2, (3, 5, 7, 4)).astype(np.float32)


def _loop(maps, reduce):
    batch, height, width, channels = maps.shape
    out = np.zeros((batch, channels))
    for b in range(batch):
        for c in range(channels):
            out[b, c] = reduce([maps[b, i, j, c] for i in range(height) for j in range(width)])
    return out


def test_mac_spoc_sum_against_loops(maps):
    np.testing.assert_allclose(np.asarray(pooling.mac(maps)), _loop(maps, max), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pooling.spoc(maps)), _loop(maps, lambda v: sum(v) / len(v)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pooling.sum_pooling(maps)), _loop(maps, sum), rtol=1e-5)


def test_gem_against_loop_and_limits(maps):
    p = 3.0
    reference = _loop(maps, lambda v: (sum(max(x, 1e-6) ** p for x in v) / len(v)) ** (1 / p))
    np.testing.assert_allclose(np.asarray(pooling.gem(maps, p=p)), reference, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pooling.gem(maps, p=1.0)), np.asarray(pooling.spoc(maps)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pooling.gem(maps, p=200.0)), np.asarray(pooling.mac(maps)), rtol=0.03)
    with pytest.raises(ValueError, match="p must be > 0"):
        pooling.gem(maps, p=0)


def test_rmac_regions_square_map_by_hand():
    regions = pooling.rmac_regions(7, 7, levels=3)
    # full map (= the level-1 square), level 2: side floor(14/3)=4 on a 2x2 grid, level 3: side 3 on 3x3
    assert regions[0] == (0, 0, 7, 7)
    assert sorted(r for r in regions if r[2] == 4) == [(0, 0, 4, 4), (0, 3, 4, 4), (3, 0, 4, 4), (3, 3, 4, 4)]
    assert sorted((r[0], r[1]) for r in regions if r[2] == 3) == [
        (top, left) for top in (0, 2, 4) for left in (0, 2, 4)
    ]
    assert len(regions) == 1 + 4 + 9


def test_rmac_regions_stay_inside_rectangular_maps():
    for height, width in ((5, 9), (9, 5), (3, 4), (14, 20)):
        regions = pooling.rmac_regions(height, width, levels=3)
        assert all(0 <= top and 0 <= left and top + h <= height and left + w <= width for top, left, h, w in regions)
        longer_regions_level1 = [r for r in regions if r[2] == min(height, width) and r != (0, 0, height, width)]
        assert len(longer_regions_level1) >= 2  # the long side gets extra overlapping squares


def test_rmac_against_region_loop(maps):
    expected = np.zeros((maps.shape[0], maps.shape[-1]))
    for top, left, h, w in pooling.rmac_regions(5, 7, levels=3):
        region = maps[:, top : top + h, left : left + w, :].max(axis=(1, 2))
        expected += region / (np.linalg.norm(region, axis=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(pooling.rmac(maps, levels=3)), expected, rtol=1e-5)


def test_crow_against_loop():
    maps = np.random.default_rng(1).uniform(-1, 2, (2, 4, 5, 6)).clip(0).astype(np.float32)
    batch, height, width, channels = maps.shape
    expected = np.zeros((batch, channels))
    eps = 1e-6
    for b in range(batch):
        spatial = maps[b].sum(axis=-1)
        spatial = (spatial / (np.sqrt((spatial**2).sum()) + eps)) ** 0.5
        q = [(maps[b, :, :, k] > 0).mean() for k in range(channels)]
        for k in range(channels):
            weight = np.log((channels * eps + sum(q)) / (eps + q[k]))
            expected[b, k] = weight * sum(spatial[i, j] * maps[b, i, j, k] for i in range(height) for j in range(width))
    np.testing.assert_allclose(np.asarray(pooling.crow(maps)), expected, rtol=1e-4, atol=1e-6)


def test_table_layer_and_errors(maps):
    assert set(pooling.POOLINGS) == {"mac", "spoc", "sum", "gem", "rmac", "crow"}
    with pytest.raises(ValueError, match="unknown pooling 'avg'"):
        pooling.pool(maps, "avg")
    with pytest.raises(ValueError, match=r"expects \(batch, height, width, channels\)"):
        pooling.mac(maps[0])
    layer = pooling.GlobalPooling("gem", {"p": 4.0})
    inputs = keras.Input((5, 7, 4))
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_allclose(np.asarray(model(maps)), np.asarray(pooling.gem(maps, p=4.0)), rtol=1e-6)
    clone = keras.Model.from_config(model.get_config())
    assert clone.layers[-1].method == "gem" and clone.layers[-1].options == {"p": 4.0}


def test_l2_normalize_and_whitening():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(200, 16)) * np.linspace(0.1, 10, 16)
    unit = ranking.l2_normalize(features)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    assert np.all(ranking.l2_normalize(np.zeros((2, 3))) == 0)
    whitener = whitening.PCAWhitening(dim=8).fit(features)
    out = whitener.transform(features)
    assert out.shape == (200, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # Whitened components of the fitting set are decorrelated (before the final L2 step).
    raw = whitener.pca.transform(ranking.l2_normalize(features))
    covariance = np.cov(raw, rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(8), atol=1e-2)
