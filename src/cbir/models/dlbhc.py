"""Deep Learning of Binary Hash Codes (Lin, Yang, Hsiao & Chen, CVPR Workshops 2015 — DLBHC).

Model: a pretrained topless CNN, dense ReLU layers, a *latent* layer of H sigmoid units, then a
softmax classifier. Trained as a classifier, the latent activations become binary-like; a
threshold at 0.5 (`cbir.retrieval.hamming.binarize`) gives an H-bit code per image. Retrieval is
two-phase (`cbir.retrieval.hash_index.HashIndex`): a Hamming shortlist, then re-ranking by cosine
similarity of real-valued features.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from cbir.models.backbones import Backbone, pooled_features

SUPPORTED_BITS = (12, 16, 24, 32, 36, 48, 64, 128)


def _check_bits(bits: int) -> None:
    if bits <= 0 or bits > 1024:
        raise ValueError(f"bits must be in [1, 1024], got {bits} (the paper's lengths: {SUPPORTED_BITS})")


def _top(x, bits: int, hidden_units: Sequence[int], num_classes: int, dropout: float):
    for index, units in enumerate(hidden_units):
        x = layers.Dense(units, activation="relu", name=f"hidden_{index}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{index}")(x)
    latent = layers.Dense(bits, activation="sigmoid", name="latent")(x)
    probabilities = layers.Dense(num_classes, activation="softmax", name="class_probabilities")(latent)
    return {"latent": latent, "class_probabilities": probabilities}


def build_hashing_head(
    input_dim: int,
    bits: int = 48,
    hidden_units: Sequence[int] = (1024,),
    num_classes: int = 10,
    dropout: float = 0.3,
    name: str = "hashing_head",
) -> keras.Model:
    """The DLBHC top on cached backbone features: (batch, input_dim) → named outputs.

    Outputs:
        ``latent``: float32 (batch, bits), sigmoid activations in [0, 1];
        ``class_probabilities``: float32 (batch, num_classes), softmax.
    Raises:
        ValueError: bits out of range or non-positive sizes.
    """
    _check_bits(bits)
    if input_dim <= 0 or num_classes < 2:
        raise ValueError(f"need input_dim > 0 and num_classes >= 2, got {input_dim}, {num_classes}")
    inputs = keras.Input((input_dim,), name="features")
    return keras.Model(inputs, _top(inputs, bits, hidden_units, num_classes, dropout), name=name)


def build_hashing_model(
    backbone: Backbone,
    bits: int = 48,
    hidden_units: Sequence[int] = (1024,),
    num_classes: int = 10,
    trainable_layers: int = 0,
    dropout: float = 0.3,
    name: str = "dlbhc",
) -> keras.Model:
    """The full DLBHC network from images: backbone (frozen but for its last `trainable_layers`
    weighted layers; BatchNormalization stays frozen), GeM pooling when the backbone outputs a
    map (VGG16 ``fc2`` is used as is), dense ReLU layers, the sigmoid latent layer, softmax.

    Input / outputs:
        float32 RGB images in [0, 255], shape (batch, *backbone.input_size, 3) →
        ``{"latent": (batch, bits), "class_probabilities": (batch, num_classes)}``.
    Raises:
        ValueError: bits out of range or `trainable_layers` < 0.
    """
    _check_bits(bits)
    inputs = keras.Input((*backbone.input_size, 3), name="image")
    x = pooled_features(backbone, inputs, "gem", trainable_layers=trainable_layers)
    return keras.Model(inputs, _top(x, bits, hidden_units, num_classes, dropout), name=name)


def classifier_view(model: keras.Model) -> keras.Model:
    """The hashing model seen as a plain classifier (same weights): what DLBHC trains.

    Keras' compiled metrics want a target for every output of a multi-output model; the latent
    output has none, so training goes through this single-output view.
    """
    return keras.Model(model.input, model.output["class_probabilities"], name=f"{model.name}_classifier")


def encode(model: keras.Model, inputs, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Latent activations and last hidden features of a DLBHC model, in one forward pass.

    The latent activations give the binary codes (`cbir.retrieval.hamming.binarize`, threshold
    0.5); the last hidden layer's ReLU features are what the two-phase search re-ranks with
    (DLBHC §3.2: the fine-level feature is F7, the layer before the latent layer).

    Args:
        model: from `build_hashing_head` (inputs: (n, input_dim) features) or
            `build_hashing_model` (inputs: (n, height, width, 3) images in [0, 255]).
        inputs: NumPy array or ``tf.data`` dataset accepted by ``model.predict``.
    Returns:
        (latent, hidden): float32 arrays, shapes (n, bits) in [0, 1] and (n, hidden_units[-1]).
    Raises:
        ValueError: the model has no hidden layer (``hidden_units=()``).
    """
    hidden_layers = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    if not hidden_layers:
        raise ValueError(f"model {model.name!r} has no hidden layer to re-rank with; build it with hidden_units")
    encoder = keras.Model(model.input, [model.get_layer("latent").output, hidden_layers[-1].output])
    latent, hidden = encoder.predict(inputs, batch_size=batch_size, verbose=0)
    return latent, hidden
