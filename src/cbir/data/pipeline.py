"""``tf.data`` input pipelines: decode, resize and batch an `ImageSet` for a backbone."""

from __future__ import annotations

import numpy as np

from cbir.data.images import ImageSet, read_image

DECODE_HEADROOM = 2
"""Files are decoded at up to this many times the size they are resized to (see `image_dataset`)."""


def image_dataset(
    image_set: ImageSet,
    image_size: tuple[int, int] | None = None,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int = 0,
    with_labels: bool = True,
):
    """A ``tf.data.Dataset`` of RGB images (and labels) from an `ImageSet`.

    Files are decoded in parallel with `read_image` (Pillow: EXIF orientation, grayscale /
    CMYK / RGBA / 16-bit → RGB); arrays are sliced in memory. Grayscale arrays get three
    identical channels.

    With `image_size`, a file is shrunk while it is decoded (`read_image` with ``max_side =
    DECODE_HEADROOM × max(image_size)``, each side on its own), so a huge image costs about its
    decoded pixels once instead of several float32 copies; a side longer than the bound ends
    between ``max(image_size)`` and the bound, so never below the size it is resized to. Files
    with no side above the bound are decoded and resized exactly (bit for bit) as without it.

    Args:
        image_size: (height, width) to resize to (bilinear); required for file-based sets
            whose images differ in size when batching.
        batch_size: batch size, or None for unbatched elements.
        shuffle: shuffle (with `seed`) before batching.
        with_labels: yield ``(images, labels)`` when True, else ``images`` only.
    Returns:
        dataset of float32 images in [0, 255], shape (batch, height, width, 3), and int64
        labels shape (batch,); prefetched with AUTOTUNE.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    if image_set.images is not None:
        dataset = tf.data.Dataset.from_tensor_slices((image_set.images, image_set.labels))

        def decode(image, label):
            image = tf.cast(image, tf.float32)
            if image.shape.rank == 2:
                image = tf.repeat(image[..., None], 3, axis=-1)
            return image, label
    else:
        dataset = tf.data.Dataset.from_tensor_slices((list(image_set.paths), image_set.labels))
        max_side = None if image_size is None else DECODE_HEADROOM * max(image_size)

        def read(path: bytes) -> np.ndarray:
            return read_image(path.decode(), max_side=max_side, keep_aspect=False)

        def decode(path, label):
            image = tf.numpy_function(read, [path], tf.uint8)
            image.set_shape([None, None, 3])
            return tf.cast(image, tf.float32), label

    if shuffle:
        dataset = dataset.shuffle(len(image_set), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(decode, num_parallel_calls=autotune)
    if image_size is not None:
        dataset = dataset.map(lambda x, y: (tf.image.resize(x, image_size), y), num_parallel_calls=autotune)
    if not with_labels:
        dataset = dataset.map(lambda x, y: x, num_parallel_calls=autotune)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(autotune)


def to_array(image_set: ImageSet, image_size: tuple[int, int], batch_size: int = 256) -> np.ndarray:
    """Decode, convert to RGB and resize every image into memory.

    Returns:
        uint8, shape (n, height, width, 3).
    """
    batches = image_dataset(image_set, image_size=image_size, batch_size=batch_size, with_labels=False)
    arrays = [np.clip(np.round(batch.numpy()), 0, 255).astype(np.uint8) for batch in batches]
    return np.concatenate(arrays) if arrays else np.empty((0, *image_size, 3), np.uint8)
