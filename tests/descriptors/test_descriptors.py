"""Classic descriptors against hand-worked cases and the libraries they wrap."""

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
    mean_colour = lambda patches: patches.reshape(len(patches), -1, 3).mean(axis=1)  # noqa: E731 - a toy CNN
    assert len(patch_grid(32, 0.5)) == 9 and len(patch_grid(32, 0.25)) == 49  # stride half a patch
    descriptor = make_descriptor("mop_cnn", patch_features=mean_colour, pca_dim=2, centres=3).fit(images)
    vectors = descriptor.transform(images)
    assert vectors.shape == (5, 3 + 2 * 3 * 2)  # whole image (3) + two levels of VLAD (3 centres × 2 dims)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    params, arrays = descriptor.get_state()
    restored = type(descriptor).from_state(params, arrays, patch_features=mean_colour)
    np.testing.assert_array_equal(restored.transform(images), vectors)


@pytest.mark.parametrize("name", sorted(set(DESCRIPTORS) - {"mop_cnn"}))
def test_fitted_state_round_trip_gives_identical_descriptors(photos, name):
    descriptor = make_descriptor(name, **SMALL.get(name, {})).fit(photos[:4])
    params, arrays = descriptor.get_state()
    restored = DESCRIPTORS[name].from_state(params, arrays)
    np.testing.assert_array_equal(restored.transform(photos), descriptor.transform(photos))
    assert descriptor.transform(photos).dtype == np.float32


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
