import keras
import numpy as np
import pytest

from cbir.data.images import ImageSet
from cbir.features import FeatureExtractor, dataset_fingerprint
from cbir.models.backbones import get_backbone
from cbir.models.pooling import gem


@pytest.fixture(scope="module")
def backbone():
    # Random VGG16 keeps a signal through its layers (a random EfficientNet's activations die out).
    return get_backbone("vgg16", layer="block5_conv3", weights=None, input_size=32)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return ImageSet(
        labels=np.arange(23) % 3,
        class_names=("a", "b", "c"),
        images=rng.integers(0, 256, (23, 20, 20, 3), dtype=np.uint8),
        name="random",
    )


def test_pipeline_equals_direct_model_call(backbone, images):
    extractor = FeatureExtractor(backbone, pooling="gem", batch_size=8)
    extracted = extractor.extract(images, cache=False, progress=False)
    direct = extractor(images.images.astype("float32"))
    assert extracted.shape == (23, 512) and extracted.dtype == np.float32
    assert extracted.std(axis=0).mean() > 1e-3  # features carry information
    np.testing.assert_allclose(extracted, direct, rtol=1e-4, atol=1e-5)
    maps = np.asarray(backbone(keras.ops.image.resize(images.images[:4].astype("float32"), (32, 32))))
    np.testing.assert_allclose(extracted[:4], np.asarray(gem(maps)), rtol=1e-4, atol=1e-5)


def test_bfloat16_backbone_computes_in_bfloat16_and_pools_in_float32(backbone, images):
    half = get_backbone("vgg16", layer="block5_conv3", weights=None, input_size=32, precision="bfloat16")
    assert all(np.array_equal(a, b) for a, b in zip(half.model.get_weights(), backbone.model.get_weights()))
    assert {w.dtype for w in half.model.get_weights()} == {np.dtype("float32")}  # weights stay float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    conv = half.model.get_layer("block5_conv3")
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
    reference = FeatureExtractor(backbone, pooling="gem", batch_size=8).extract(images, cache=False, progress=False)
    extractor = FeatureExtractor(half, pooling="gem", batch_size=8)
    assert extractor.model.get_layer("gem_pooling").compute_dtype == "float32"
    features = extractor.extract(images, cache=False, progress=False)
    assert features.dtype == np.float32 and not np.array_equal(features, reference)  # really rounded
    cosine = np.sum(features * reference, 1) / np.linalg.norm(features, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99  # bfloat16 keeps 8 bits of mantissa: close, not equal
    with pytest.raises(ValueError, match="precision must be one of"):
        get_backbone("vgg16", weights=None, input_size=32, precision="float16")


def test_several_poolings_in_one_pass(backbone, images):
    extractor = FeatureExtractor(backbone, pooling=["mac", "gem"], pooling_options={"gem": {"p": 2.0}}, batch_size=8)
    result = extractor.extract(images, cache=False, progress=False)
    assert set(result) == {"mac", "gem"}
    single = FeatureExtractor(backbone, pooling="gem", pooling_options={"gem": {"p": 2.0}}).extract(
        images, cache=False, progress=False
    )
    np.testing.assert_allclose(result["gem"], single, rtol=1e-5, atol=1e-6)


def test_cache_is_reused_resumable_and_atomic(backbone, images, tmp_path, monkeypatch):
    extractor = FeatureExtractor(backbone, pooling="mac", batch_size=4)
    expected = extractor.extract(images, cache=False, progress=False)
    real_compute = FeatureExtractor._compute
    calls = []

    def interrupted(self, image_set, progress):
        calls.append(len(image_set))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the job during the third chunk
        return real_compute(self, image_set, progress)

    monkeypatch.setattr(FeatureExtractor, "_compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extractor.extract(images, cache=tmp_path, chunk_size=5, progress=False)
    directory = extractor.cache_dir(images, root=tmp_path)
    assert sorted(p.name for p in directory.glob("chunk_*.npy")) == ["chunk_00000.npy", "chunk_00001.npy"]
    assert not [p for p in directory.iterdir() if ".tmp" in p.name]  # nothing half-written

    calls.clear()
    monkeypatch.setattr(
        FeatureExtractor,
        "_compute",
        lambda self, s, progress: (calls.append(len(s)), real_compute(self, s, progress))[1],
    )
    resumed = extractor.extract(images, cache=tmp_path, chunk_size=5, progress=False)
    assert calls == [5, 5, 3]  # only the three missing chunks were computed
    np.testing.assert_allclose(resumed, expected, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in directory.iterdir()) == ["features.npy", "settings.json"]
    np.load(directory / "features.npy", allow_pickle=False)  # plain array, no pickle

    calls.clear()
    np.testing.assert_array_equal(extractor.extract(images, cache=tmp_path, progress=False), resumed)
    assert calls == []  # served from the cache


def test_cache_key_tracks_everything_that_changes_features(backbone, images, tmp_path):
    base = FeatureExtractor(backbone, pooling="gem")
    other_p = FeatureExtractor(backbone, pooling="gem", pooling_options={"gem": {"p": 4.0}})
    other_pool = FeatureExtractor(backbone, pooling="mac")
    other_seed = FeatureExtractor(
        get_backbone("vgg16", layer="block5_conv3", weights=None, input_size=32, seed=1), pooling="gem"
    )
    changed = ImageSet(labels=images.labels, class_names=images.class_names, images=images.images.copy())
    changed.images[0, 0, 0, 0] ^= 1
    bf16 = FeatureExtractor(
        get_backbone("vgg16", layer="block5_conv3", weights=None, input_size=32, precision="bfloat16"), pooling="gem"
    )
    keys = {
        base.cache_dir(images),
        other_p.cache_dir(images),
        other_pool.cache_dir(images),
        other_seed.cache_dir(images),
        base.cache_dir(changed),
        bf16.cache_dir(images),
    }
    assert len(keys) == 6
    assert "precision" not in base.settings() and bf16.settings()["precision"] == "bfloat16"
    assert dataset_fingerprint(images) != dataset_fingerprint(changed)


def test_file_fingerprint_changes_when_a_file_is_rewritten(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(path)
    image_set = ImageSet(labels=np.zeros(1, np.int64), class_names=("x",), paths=(str(path),))
    before = dataset_fingerprint(image_set)
    Image.new("RGB", (5, 5), "red").save(path)
    assert dataset_fingerprint(image_set) != before


def test_extractor_validates_pooling(backbone):
    with pytest.raises(ValueError, match="outputs a feature map"):
        FeatureExtractor(backbone, pooling=None)
    with pytest.raises(ValueError, match="unknown pooling"):
        FeatureExtractor(backbone, pooling="median")
    fc2 = get_backbone("vgg16", layer="fc2", weights=None)
    with pytest.raises(ValueError, match="already outputs a vector"):
        FeatureExtractor(fc2, pooling="gem")
