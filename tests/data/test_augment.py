import numpy as np
import pytest

from cbir.data.augment import build_augmentation


def test_augmentation_keeps_shape_and_value_range():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    augmentation = build_augmentation(seed=1)
    out = np.asarray(augmentation(images, training=True))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images)  # it did something
    np.testing.assert_allclose(np.asarray(augmentation(images, training=False)), images)  # inference: identity


def test_augmentation_layers_follow_the_reproduced_stack():
    layers = build_augmentation().layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomZoom",
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomBrightness",
        "RandomContrast",
    ]
    zoom, flip, rotation, translation, brightness, contrast = layers
    assert zoom.height_factor == 0.3 and flip.mode == "horizontal" and rotation.factor in (0.2, (-0.2, 0.2))
    assert (translation.height_factor, translation.width_factor) == (0.2, 0.2)


def test_augmentation_parameters_override_and_disable():
    layers = build_augmentation(zoom=0.0, flip=None, rotation=0.1, translation=(0, 0), brightness=0, contrast=0).layers
    assert [type(layer).__name__ for layer in layers] == ["RandomRotation"]


def test_augmentation_rejects_bad_parameters():
    with pytest.raises(ValueError, match="zoom factor must be >= 0"):
        build_augmentation(zoom=-0.1)
    with pytest.raises(ValueError, match="flip must be"):
        build_augmentation(flip="diagonal")
