"""DLBHC's encoder and the shared backbone + pooling helper, against the layers they stand for."""

import keras
import numpy as np
import pytest

from cbir.models import dlbhc
from cbir.models.backbones import get_backbone, pooled_features
from cbir.models.pooling import gem


def test_encode_returns_the_latent_and_last_hidden_activations():
    keras.utils.set_random_seed(0)
    model = dlbhc.build_hashing_head(16, bits=12, hidden_units=(32, 24), num_classes=3, dropout=0.0)
    features = np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32)
    latent, hidden = dlbhc.encode(model, features)
    # Independent reference: the dense layers applied by hand with their own weights.
    activations = features
    for name in ("hidden_0", "hidden_1"):
        kernel, bias = model.get_layer(name).get_weights()
        activations = np.maximum(activations @ kernel + bias, 0.0)
    kernel, bias = model.get_layer("latent").get_weights()
    np.testing.assert_allclose(hidden, activations, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(latent, 1.0 / (1.0 + np.exp(-(activations @ kernel + bias))), rtol=1e-5, atol=1e-6)
    assert latent.shape == (10, 12) and hidden.shape == (10, 24)


def test_encode_needs_a_hidden_layer():
    model = dlbhc.build_hashing_head(8, bits=12, hidden_units=(), num_classes=3)
    with pytest.raises(ValueError, match="no hidden layer"):
        dlbhc.encode(model, np.zeros((2, 8), np.float32))


def test_pooled_features_is_preprocessing_network_and_pooling():
    backbone = get_backbone("vgg16", layer="block4_pool", weights=None, input_size=32)
    images = keras.Input((32, 32, 3))
    model = keras.Model(images, pooled_features(backbone, images, "gem", {"p": 2.0}))
    batch = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    expected = gem(backbone.model(backbone.preprocess(batch.copy())), p=2.0)  # preprocess may work in place
    np.testing.assert_allclose(model(batch), expected, rtol=1e-5, atol=1e-5)
    assert not any(layer.trainable for layer in backbone.model.layers if layer.weights)


def test_hashing_head_latent_in_unit_interval_and_training_lowers_the_loss():
    from cbir.data.digits import load_digits

    digits = load_digits()["all"]
    features = digits.images.reshape(len(digits), -1).astype("float32") / 255.0
    head = dlbhc.build_hashing_head(64, bits=16, hidden_units=(64,), num_classes=10, dropout=0.0)
    assert set(head.output) == {"latent", "class_probabilities"}
    head.compile(optimizer=keras.optimizers.Adam(0.01), loss={"class_probabilities": "sparse_categorical_crossentropy"})
    before = head.evaluate(features, {"class_probabilities": digits.labels}, verbose=0, return_dict=True)["loss"]
    head.fit(features, {"class_probabilities": digits.labels}, epochs=10, batch_size=64, verbose=0)
    after = head.evaluate(features, {"class_probabilities": digits.labels}, verbose=0, return_dict=True)["loss"]
    assert after < 0.5 * before
    latent = head.predict(features, verbose=0)["latent"]
    assert latent.shape == (len(digits), 16) and latent.min() >= 0 and latent.max() <= 1


def test_full_hashing_model_from_a_backbone():
    from cbir.models.backbones import get_backbone

    model = dlbhc.build_hashing_model(
        get_backbone("efficientnet_lite0", weights=None, input_size=32), bits=12, num_classes=3
    )
    outputs = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert outputs["latent"].shape == (2, 12) and outputs["class_probabilities"].shape == (2, 3)
    assert not [w for w in model.trainable_weights if w.path.startswith(("stem", "block", "head_"))]
    with pytest.raises(ValueError, match="bits must be in"):
        dlbhc.build_hashing_head(10, bits=0)
