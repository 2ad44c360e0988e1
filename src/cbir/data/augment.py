"""Data augmentation: the Keras preprocessing stack of the Siamese image-matching experiment.

The stack this project reproduces (random zoom 0.3, horizontal flip, rotation 0.2, translation
0.2 × 0.2, brightness 0.2, contrast 0.2) as one `keras.Sequential`. The layers are active only
when called with ``training=True`` (inside `fit`); at inference they pass images through.
"""

from __future__ import annotations

import keras
from keras import layers


def build_augmentation(
    zoom: float = 0.3,
    flip: str | None = "horizontal",
    rotation: float = 0.2,
    translation: tuple[float, float] = (0.2, 0.2),
    brightness: float = 0.2,
    contrast: float = 0.2,
    value_range: tuple[float, float] = (0.0, 255.0),
    seed: int | None = None,
    name: str = "augmentation",
) -> keras.Sequential:
    """Build the augmentation pipeline as a `keras.Sequential`.

    Args:
        zoom: `RandomZoom` height factor (width follows, preserving the aspect ratio); 0 disables.
        flip: `RandomFlip` mode ("horizontal", "vertical", "horizontal_and_vertical") or None.
        rotation: `RandomRotation` factor, as a fraction of a full turn (0.2 → up to ±72°).
        translation: `RandomTranslation` (height, width) factors, fractions of the image size.
        brightness: `RandomBrightness` factor, a fraction of the value range.
        contrast: `RandomContrast` factor.
        value_range: the pixel range of the inputs; outputs are clipped to it.
        seed: seed for every random layer (each gets `seed + i`), or None.
    Input / output:
        float32 images, shape (batch, height, width, channels), values in `value_range`;
        the output has the input's shape and stays inside `value_range`.
    Raises:
        ValueError: a negative factor or an unknown flip mode.
    """
    for label, value in (
        ("zoom", zoom),
        ("rotation", rotation),
        ("brightness", brightness),
        ("contrast", contrast),
        ("translation height", translation[0]),
        ("translation width", translation[1]),
    ):
        if value < 0:
            raise ValueError(f"{label} factor must be >= 0, got {value}")
    if flip not in (None, "horizontal", "vertical", "horizontal_and_vertical"):
        raise ValueError(f"flip must be None, 'horizontal', 'vertical' or 'horizontal_and_vertical', got {flip!r}")

    def next_seed(offset: int) -> int | None:
        return None if seed is None else seed + offset

    stack = []
    if zoom:
        stack.append(layers.RandomZoom(zoom, seed=next_seed(0)))
    if flip:
        stack.append(layers.RandomFlip(flip, seed=next_seed(1)))
    if rotation:
        stack.append(layers.RandomRotation(rotation, seed=next_seed(2)))
    if any(translation):
        stack.append(layers.RandomTranslation(*translation, seed=next_seed(3)))
    if brightness:
        stack.append(layers.RandomBrightness(brightness, value_range=value_range, seed=next_seed(4)))
    if contrast:
        stack.append(layers.RandomContrast(contrast, value_range=value_range, seed=next_seed(5)))
    # Bilinear resampling in the geometric layers is a convex combination of input pixels, and
    # RandomBrightness / RandomContrast clip to `value_range`: the output stays in range.
    return keras.Sequential(stack, name=name)
