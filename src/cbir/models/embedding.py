"""Embedding and Siamese models for metric learning (Schroff et al., FaceNet 2015).

`build_embedding_model` is the image → unit-vector network trained with a triplet loss:
augmentation (`cbir.data.augment`), a registry backbone (pretrained, frozen except its last
`trainable_layers`), GeM pooling, a dense projection and L2 normalisation.
`build_projection_head` is the same projection on cached backbone features: the CPU-friendly
way to train (the backbone runs once, not every epoch). `build_siamese_model` wraps a trained
embedding into the two-input matching model.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cbir.data.augment import build_augmentation
from cbir.models.backbones import Backbone, pooled_features

__all__ = ["PairSimilarity", "build_embedding_model", "build_projection_head", "build_siamese_model"]


def _projection(x, embedding_dim: int, hidden_units: int, dropout: float, name: str):
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", name=f"{name}_hidden")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(embedding_dim, name=f"{name}_dense")(x)
    return layers.UnitNormalization(axis=-1, name="embedding")(x)


def build_projection_head(
    input_dim: int,
    embedding_dim: int = 128,
    hidden_units: int = 512,
    dropout: float = 0.1,
    name: str = "projection_head",
) -> keras.Model:
    """Cached features (batch, input_dim) → L2-normalised embeddings (batch, embedding_dim).

    Raises:
        ValueError: non-positive dimensions.
    """
    if input_dim <= 0 or embedding_dim <= 0:
        raise ValueError(f"input_dim and embedding_dim must be positive, got {input_dim}, {embedding_dim}")
    inputs = keras.Input((input_dim,), name="features")
    return keras.Model(inputs, _projection(inputs, embedding_dim, hidden_units, dropout, "projection"), name=name)


def build_embedding_model(
    backbone: Backbone,
    embedding_dim: int = 128,
    augment: bool = True,
    trainable_layers: int = 0,
    hidden_units: int = 512,
    dropout: float = 0.1,
    gem_p: float = 3.0,
    name: str = "embedding_model",
) -> keras.Model:
    """Images → L2-normalised embeddings, end to end.

    Args:
        backbone: from `cbir.models.backbones.get_backbone`, with a convolutional output.
        embedding_dim: output dimension.
        augment: put the `cbir.data.augment` stack first (active only in training).
        trainable_layers: fine-tune the last N backbone layers that have weights (0: frozen;
            BatchNormalization layers stay in inference mode either way).
    Input / output:
        float32 RGB images in [0, 255], shape (batch, *backbone.input_size, 3) →
        float32 (batch, embedding_dim), unit L2 norm.
    Raises:
        ValueError: the backbone outputs a vector, or `trainable_layers` < 0.
    """
    if not backbone.is_convolutional:
        raise ValueError(f"{backbone.name}/{backbone.layer} is not convolutional; use a conv layer")
    inputs = keras.Input((*backbone.input_size, 3), name="image")
    x = build_augmentation()(inputs) if augment else inputs
    x = pooled_features(backbone, x, "gem", {"p": gem_p}, trainable_layers=trainable_layers)
    return keras.Model(inputs, _projection(x, embedding_dim, hidden_units, dropout, "projection"), name=name)


@keras.saving.register_keras_serializable(package="cbir")
class PairSimilarity(layers.Layer):
    """Match probability of two unit embeddings: ``(1 + cos) / 2`` ∈ [0, 1] (as `cbir.retrieval.ranking`)."""

    def call(self, inputs):
        first, second = inputs
        cosine = ops.sum(first * second, axis=-1, keepdims=True)
        return ops.clip((1.0 + cosine) / 2.0, 0.0, 1.0)


def build_siamese_model(embedding_model: keras.Model, name: str = "siamese") -> keras.Model:
    """Two inputs through one shared embedding network → their match score, shape (batch, 1).

    The inputs take whatever the embedding model takes (images, or cached features for a
    projection head); weights are shared, so the model is symmetric in its two inputs.
    """
    shape = embedding_model.input_shape[1:]
    first, second = keras.Input(shape, name="first"), keras.Input(shape, name="second")
    score = PairSimilarity(name="match_probability")([embedding_model(first), embedding_model(second)])
    return keras.Model([first, second], score, name=name)
