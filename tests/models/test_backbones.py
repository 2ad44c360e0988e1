"""The backbone registry and the EfficientNet-Lite0 port, checked against the original PyTorch model."""

from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.data

from cbir.models import efficientnet_lite
from cbir.models.backbones import get_backbone
from cbir.models.efficientnet_lite import WeightsUnavailableError

REFERENCE = Path(__file__).parent / "reference" / "efficientnet_lite0_reference.npz"
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def lite0_classifier(tmp_path_factory):
    from cbir import config

    original = config.CACHE_DIR
    config.CACHE_DIR = tmp_path_factory.mktemp("cache")
    try:
        yield get_backbone("efficientnet_lite0", layer="logits")
    finally:
        config.CACHE_DIR = original


def test_port_reproduces_pytorch_logits(lite0_classifier):
    """Reference logits were produced once by the original PyTorch model (see make_efficientnet_lite0_reference.py)."""
    reference = np.load(REFERENCE, allow_pickle=False)
    logits = np.asarray(lite0_classifier(reference["images"].astype("float32")))
    expected = reference["logits"]
    assert logits.shape == expected.shape == (4, 1000)
    np.testing.assert_allclose(logits, expected, atol=2e-3 * np.abs(expected).max())
    np.testing.assert_array_equal(np.argsort(-logits, axis=1)[:, :5], np.argsort(-expected, axis=1)[:, :5])


@pytest.mark.parametrize("name, classes", [("chelsea", CAT_CLASSES), ("coffee", COFFEE_CLASSES)])
def test_sample_photos_get_sensible_imagenet_classes(lite0_classifier, name, classes):
    image = getattr(skimage.data, name)()[None].astype("float32")
    image = keras.ops.image.resize(image, (224, 224))
    logits = np.asarray(lite0_classifier(image))[0]
    assert int(np.argmax(logits)) in classes
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert probabilities[list(classes)].sum() > 0.5


def test_converted_weights_are_cached_once(tmp_path):
    first = efficientnet_lite.efficientnet_lite0_weights(cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert first.name == "efficientnet_lite0_imagenet.weights.h5"
    assert efficientnet_lite.efficientnet_lite0_weights(cache_dir=tmp_path).stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left


def test_lite0_feature_map_at_other_sizes():
    backbone = get_backbone("efficientnet_lite0", weights=None, input_size=64)
    assert backbone.layer == "head_activation" and backbone.is_convolutional
    assert backbone.model.output.shape[1:] == (2, 2, 1280)
    assert backbone.seed == 0


def test_random_backbones_are_reproducible():
    a = get_backbone("efficientnet_lite0", weights=None, input_size=32, seed=3).model.get_weights()[0]
    b = get_backbone("efficientnet_lite0", weights=None, input_size=32, seed=3).model.get_weights()[0]
    c = get_backbone("efficientnet_lite0", weights=None, input_size=32, seed=4).model.get_weights()[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_vgg16_conv_and_fc2_outputs():
    conv = get_backbone("vgg16", weights=None, input_size=64)
    assert conv.layer == "block5_pool" and conv.model.output.shape[1:] == (2, 2, 512)
    conv5 = get_backbone("vgg16", layer="block5_conv3", weights=None, input_size=64)
    assert conv5.model.output.shape[1:] == (4, 4, 512)
    fc2 = get_backbone("vgg16", layer="fc2", weights=None)
    assert fc2.model.output.shape[1:] == (4096,) and not fc2.is_convolutional and fc2.input_size == (224, 224)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'"):
        get_backbone("alexnet")
    with pytest.raises(ValueError, match="layer 'fc9' not offered for vgg16"):
        get_backbone("vgg16", layer="fc9", weights=None)
    with pytest.raises(ValueError, match="weights must be 'imagenet' or None"):
        get_backbone("vgg16", weights="places365")
    with pytest.raises(ValueError, match="needs the full network at 224"):
        get_backbone("vgg16", layer="fc2", weights=None, input_size=64)


def test_missing_imagenet_weights_name_the_file_and_the_offline_backbone(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Name or service not known")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(WeightsUnavailableError) as caught:
        get_backbone("vgg16", layer="block5_pool")
    message = str(caught.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "models" in message and "efficientnet_lite0" in message and "weights=None" in message
    with pytest.raises(WeightsUnavailableError, match="vgg16_weights_tf_dim_ordering_tf_kernels.h5"):
        get_backbone("vgg16", layer="fc2")


def test_every_registered_keras_application_builds_with_random_weights():
    for name in ("vgg19", "resnet50", "inception_v3", "mobilenet_v2", "efficientnet_b0"):
        backbone = get_backbone(name, weights=None, input_size=96 if name != "inception_v3" else 96)
        assert backbone.is_convolutional, name
        out = backbone(np.zeros((1, 96, 96, 3), "float32"))
        assert out.shape[0] == 1 and out.shape[-1] in (512, 1280, 2048), name
