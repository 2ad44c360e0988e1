import numpy as np
import pytest

from cbir.models.backbones import get_backbone
from cbir.models.embedding import build_embedding_model, build_projection_head, build_siamese_model
from cbir.models.losses import TripletSemiHardLoss, triplet_semihard_loss
from cbir.models.sampling import pk_dataset


def test_projection_head_outputs_unit_vectors_and_siamese_is_symmetric():
    head = build_projection_head(16, embedding_dim=8, hidden_units=32)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 16)).astype("float32"), rng.normal(size=(5, 16)).astype("float32")
    ea, eb = head.predict(a, verbose=0), head.predict(b, verbose=0)
    np.testing.assert_allclose(np.linalg.norm(ea, axis=1), 1.0, rtol=1e-5)
    siamese = build_siamese_model(head)
    forward = siamese.predict([a, b], verbose=0)[:, 0]
    backward = siamese.predict([b, a], verbose=0)[:, 0]
    np.testing.assert_allclose(forward, backward, rtol=1e-6)
    np.testing.assert_allclose(forward, (1 + np.sum(ea * eb, axis=1)) / 2, atol=1e-5)
    assert np.all((forward >= 0) & (forward <= 1))
    np.testing.assert_allclose(siamese.predict([a, a], verbose=0)[:, 0], 1.0, atol=1e-5)


def test_training_with_semihard_loss_lowers_the_loss_on_digits():
    from cbir.data.digits import load_digits

    digits = load_digits()["all"]
    features = digits.images.reshape(len(digits), -1).astype("float32") / 255.0
    head = build_projection_head(64, embedding_dim=16, hidden_units=64, dropout=0.0)
    head.compile(optimizer="adam", loss=TripletSemiHardLoss(margin=0.5))
    probe = np.arange(0, len(digits), 9)  # a fixed batch of 200 (the loss is O(batch^3) in memory)
    before = float(triplet_semihard_loss(digits.labels[probe], head.predict(features[probe], verbose=0), margin=0.5))
    head.fit(pk_dataset(features, digits.labels, p=10, k=8, seed=0), steps_per_epoch=40, epochs=3, verbose=0)
    after = float(triplet_semihard_loss(digits.labels[probe], head.predict(features[probe], verbose=0), margin=0.5))
    assert after < 0.7 * before


def test_end_to_end_embedding_model_freezes_the_backbone_except_the_last_layers():
    backbone = get_backbone("efficientnet_lite0", weights=None, input_size=32)
    frozen = build_embedding_model(backbone, embedding_dim=8, augment=True, trainable_layers=0)
    out = frozen.predict(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"), verbose=0)
    assert out.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    trainable_backbone = [w for w in frozen.trainable_weights if "projection" not in w.path]
    assert trainable_backbone == []
    tuned = build_embedding_model(
        get_backbone("efficientnet_lite0", weights=None, input_size=32), 8, augment=False, trainable_layers=2
    )
    names = {w.path.split("/")[0] for w in tuned.trainable_weights if "projection" not in w.path}
    assert names == {"head_conv"}  # the last two weighted layers are head_conv and head_bn; BN stays frozen
    with pytest.raises(ValueError, match="not convolutional"):
        build_embedding_model(get_backbone("vgg16", layer="fc2", weights=None))
