"""Classic descriptors against hand-worked cases and the libraries they wrap."""

import json

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.feature import fisher_vector, hog, local_binary_pattern

from cbir.descriptors import DESCRIPTORS, make_descriptor
from cbir.descriptors.local_features import bow_histograms, dense_sift, inverse_document_frequency, vlad
from cbir.descriptors.mop_cnn import patch_grid


@pytest.fixture(scope="module")
def photos():
    """Six 64 × 64 RGB crops of scikit-image's sample photographs."""
    images = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    crops = [cv2.resize(image[: image.shape[0] // 2 * 2], (64, 64), interpolation=cv2.INTER_AREA) for image in images]
    return np.stack(crops + [crop[:, ::-1] for crop in crops]).astype(np.uint8)


SMALL = {"sift_bow": {"vocabulary": 8}, "sift_vlad": {"centres": 4}, "sift_fisher": {"modes": 2, "pca_dim": 8}}


def mean_colour(patches):
    """A toy CNN for MOP-CNN: the mean colour of each patch, (m, 3)."""
    return patches.reshape(len(patches), -1, 3).mean(axis=1)


def _small(name):
    params = dict(SMALL.get(name, {}))
    if name == "mop_cnn":
        params.update(patch_features=mean_colour, pca_dim=2, centres=3)
    return make_descriptor(name, **params)


def test_colour_histogram_of_solid_colours_by_hand():
    red = np.zeros((1, 8, 8, 3), np.uint8)
    red[..., 0] = 255  # HSV (0, 255, 255): hue bin 0, saturation bin 3, value bin 3 of 8 × 4 × 4
    histogram = make_descriptor("color_hist").transform(red)[0]
    assert histogram.shape == (128,) and histogram.sum() == pytest.approx(1.0)
    assert histogram[(0 * 4 + 3) * 4 + 3] == 1.0
    gray = np.array([[[0, 64], [128, 255]]], np.uint8)  # intensity bins of 256 / 32 = 8 levels: 0, 8, 16, 31
    histogram = make_descriptor("color_hist").transform(gray)[0]
    np.testing.assert_allclose(histogram, np.histogram(gray, bins=32, range=(0, 256))[0] / 4)


def test_hog_equals_scikit_image(photos):
    gray = np.stack([cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in photos])
    found = make_descriptor("hog", pixels_per_cell=8, cells_per_block=2).transform(gray)
    expected = [hog(g, 9, (8, 8), (2, 2), block_norm="L2-Hys") for g in gray]
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    assert make_descriptor("hog").transform(photos).shape == (6, 7 * 7 * 2 * 2 * 9)


def test_lbp_cells_are_normalised_histograms_of_scikit_image_codes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 16, 16), dtype=np.uint8)
    found = make_descriptor("lbp", grid=2).transform(image)[0]
    codes = local_binary_pattern(image[0], 8, 1.0, "nri_uniform")
    top_left = np.bincount(codes[:8, :8].astype(int).ravel(), minlength=59) / 64
    np.testing.assert_allclose(found[:59] * 4, top_left, atol=1e-6)
    assert found.shape == (4 * 59,) and found.sum() == pytest.approx(1.0, abs=1e-5)
    # A constant image: every interior pixel (6 × 6 of 8 × 8) sees equal neighbours, all bits set, one pattern;
    # the border pixels compare with scikit-image's zero padding.
    flat = make_descriptor("lbp", grid=1).transform(np.full((1, 8, 8), 7, np.uint8))[0]
    assert flat.max() == pytest.approx(36 / 64)


def test_dense_sift_grid_and_values_equal_opencv(photos):
    descriptors = dense_sift(photos[:2], step=16, size=16, root=False)
    assert descriptors.shape == (2, 16, 128)  # 4 × 4 keypoints at 8, 24, 40, 56
    gray = cv2.cvtColor(photos[0], cv2.COLOR_RGB2GRAY)
    keypoints = [cv2.KeyPoint(float(x), float(y), 16.0) for y in (8, 24, 40, 56) for x in (8, 24, 40, 56)]
    _, expected = cv2.SIFT_create().compute(gray, keypoints)
    np.testing.assert_allclose(descriptors[0], expected, atol=1e-4)
    root = dense_sift(photos[:1], step=16, size=16, root=True)[0]
    np.testing.assert_allclose(np.sum(root**2, axis=1), 1.0, atol=1e-5)  # RootSIFT rows have unit L2 norm


def test_bag_of_words_tf_idf_by_hand():
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], np.float32)
    descriptors = np.array([[[0, 1], [9, 0], [1, 0], [0, 0]], [[0, 9], [0, 11], [1, 1], [0, 12]]], np.float32)
    tf = bow_histograms(descriptors, centres)
    np.testing.assert_allclose(tf, [[0.75, 0.25, 0.0], [0.25, 0.0, 0.75]])
    idf = inverse_document_frequency(tf)  # word 0 in both images, 1 and 2 in one each; N = 2
    np.testing.assert_allclose(idf, [np.log(2 / 3) + 1, np.log(2 / 2) + 1, np.log(2 / 2) + 1], rtol=1e-6)


def test_vlad_on_two_clusters_by_hand():
    centres = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)
    descriptors = np.array([[[1.0, 0.0], [0.0, 3.0], [11.0, 10.0]]], np.float32)
    # Residual sums: centre 0 gets (1, 0) + (0, 3) = (1, 3); centre 1 gets (1, 0). Intra-normalise each:
    # (1, 3) / √10 and (1, 0); signed square root; then L2 over the whole vector.
    block0 = np.sqrt(np.array([1.0, 3.0]) / np.sqrt(10.0))
    expected = np.concatenate([block0, [1.0, 0.0]])
    np.testing.assert_allclose(vlad(descriptors, centres)[0], expected / np.linalg.norm(expected), rtol=1e-6)


def test_fisher_vector_shape_and_normalisation(photos):
    descriptor = make_descriptor("sift_fisher", modes=3, pca_dim=8).fit(photos)
    vectors = descriptor.transform(photos)
    assert vectors.shape == (6, 3 * (2 * 8 + 1))  # skimage: weights, means and variances per mode
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    local = descriptor.pca.transform(dense_sift(photos[:1], 8, 16).reshape(-1, 128))
    np.testing.assert_allclose(vectors[0], fisher_vector(local, descriptor.gmm, improved=True), atol=1e-5)


def test_mop_cnn_levels_with_a_toy_cnn():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    assert len(patch_grid(32, 0.5)) == 9 and len(patch_grid(32, 0.25)) == 49  # stride half a patch
    descriptor = make_descriptor("mop_cnn", patch_features=mean_colour, pca_dim=2, centres=3).fit(images)
    vectors = descriptor.transform(images)
    assert vectors.shape == (5, 3 + 2 * 3 * 2)  # whole image (3) + two levels of VLAD (3 centres × 2 dims)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    params, arrays = descriptor.get_state()
    restored = type(descriptor).from_state(params, arrays, patch_features=mean_colour)
    np.testing.assert_array_equal(restored.transform(images), vectors)


@pytest.mark.parametrize("name", sorted(DESCRIPTORS))
def test_fitted_state_round_trip_through_json_and_npz_gives_identical_descriptors(photos, name, tmp_path):
    descriptor = _small(name).fit(photos[:4])
    params, arrays = descriptor.get_state()
    np.savez(tmp_path / "state.npz", **arrays)  # as an index attachment: JSON parameters, arrays without pickle
    with np.load(tmp_path / "state.npz", allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    extra = {"patch_features": mean_colour} if name == "mop_cnn" else {}
    restored = DESCRIPTORS[name].from_state(json.loads(json.dumps(params)), arrays, **extra)
    np.testing.assert_array_equal(restored.transform(photos), descriptor.transform(photos))
    assert descriptor.transform(photos).dtype == np.float32 and restored.dim == descriptor.dim


# By hand, default parameters: HOG at 28 px has 3 × 3 cells of 8 px, 2 × 2 blocks of 2 × 2 cells × 9 bins = 144,
# at 64 px 8 × 8 cells, 7 × 7 blocks: 1764; LBP 4 × 4 cells × 59 patterns; VLAD 4 centres × 128; Fisher 2 modes
# × (2 · 8 + 1); MOP-CNN 3 (whole image) + 2 levels × 3 centres × 2 PCA dims.
DIMS = {"color_hist": (128, 128), "hog": (144, 1764), "lbp": (944, 944), "sift_bow": (8, 8), "sift_vlad": (512, 512),
        "sift_fisher": (34, 34), "mop_cnn": (15, 15)}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DESCRIPTORS))
@pytest.mark.parametrize("side", [28, 64])
def test_dim_is_the_width_of_the_transform(name, side):
    images = np.random.default_rng(side).integers(0, 256, (4, side, side, 3), dtype=np.uint8)
    descriptor = _small(name).fit(images)
    assert descriptor.dim == descriptor.transform(images).shape[1] == DIMS[name][side == 64]


def test_dim_before_fit_only_where_parameters_fix_it():
    assert make_descriptor("lbp").dim == 944 and make_descriptor("sift_vlad").dim == 64 * 128
    assert make_descriptor("sift_fisher").dim == 16 * (2 * 64 + 1) and make_descriptor("sift_bow").dim == 256
    for name in ("color_hist", "hog"):  # image size / channels decide
        with pytest.raises(ValueError, match="call fit"):
            _ = make_descriptor(name).dim
    with pytest.raises(ValueError, match="not fitted"):
        _ = _small("mop_cnn").dim
    gray = np.zeros((2, 28, 28), np.uint8)
    assert make_descriptor("color_hist").fit(gray).dim == 32 == make_descriptor("color_hist").transform(gray).shape[1]


def test_dense_sift_keeps_every_keypoint_of_a_small_image():
    images = np.random.default_rng(2).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    assert dense_sift(images, step=4, size=8).shape == (2, 7 * 7, 128)  # the 28 px default grid: 2, 6, ..., 26


def test_mop_cnn_repeats_grayscale_to_three_channels():
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=3)
    from_gray = _small("mop_cnn").fit(gray).transform(gray)
    np.testing.assert_allclose(from_gray, _small("mop_cnn").fit(rgb).transform(rgb), atol=1e-6)
    assert len(patch_grid(28, 0.5)) == 3 * 3 and len(patch_grid(28, 0.25)) == 8 * 8  # 14 px stride 7; 7 px stride 3


def test_bad_input_names_the_problem(photos):
    with pytest.raises(ValueError, match="uint8"):
        make_descriptor("hog").transform(photos.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(n, h, w\)"):
        make_descriptor("lbp").transform(photos[0, :, :, 0])
    with pytest.raises(ValueError, match="not fitted"):
        make_descriptor("sift_vlad").transform(photos)
    with pytest.raises(ValueError, match="unknown descriptor 'surf'"):
        make_descriptor("surf")
    with pytest.raises(ValueError, match="sift_bow"):
        make_descriptor("sift_bow", vocabluary=3)
    with pytest.raises(ValueError, match="smaller than one block"):
        make_descriptor("hog", pixels_per_cell=40).transform(photos)
    with pytest.raises(ValueError, match=r"fitted on images of shape \(64, 64, 3\), got images of shape \(32, 32, 3\)"):
        make_descriptor("hog").fit(photos).transform(photos[:, :32, :32])
    with pytest.raises(ValueError, match=r"\(64, 64, 3\).*\(64, 64\)"):
        _small("sift_bow").fit(photos).transform(photos[..., 0])
    with pytest.raises(ValueError, match="not fitted"):
        make_descriptor("sift_fisher").get_state()
    with pytest.raises(ValueError, match="fractions"):
        make_descriptor("mop_cnn", fractions=(1.0,))
    with pytest.raises(ValueError, match=r"must return \(54, d\) rows, got \(54,\)"):
        make_descriptor("mop_cnn", patch_features=lambda patches: patches.mean(axis=(1, 2, 3))).fit(photos)


def test_a_state_saved_without_image_shape_still_loads(photos):
    descriptor = make_descriptor("sift_vlad", centres=4).fit(photos)
    params, arrays = descriptor.get_state()
    del params["image_shape"]  # states written before the shape was recorded
    restored = DESCRIPTORS["sift_vlad"].from_state(params, arrays)
    np.testing.assert_array_equal(restored.transform(photos), descriptor.transform(photos))
