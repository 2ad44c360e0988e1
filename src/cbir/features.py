"""Deep feature extraction with an on-disk, resumable cache.

    extractor = FeatureExtractor(get_backbone("efficientnet_lite0", input_size=128), pooling="gem")
    database = extractor.extract(image_set)          # (n, 1280) float32, cached

Images flow through a batched ``tf.data`` pipeline (decode / resize / the backbone's own
preprocessing, in parallel, prefetched) into the backbone truncated at its layer and, for
convolutional outputs, a `cbir.models.pooling.GlobalPooling` layer. Results are cached under
``CACHE_DIR/features/<name>-<key>/``, where the key hashes (backbone, weights, layer, pooling
and its options, input size, dataset fingerprint, format version). The work is split into
chunks, each saved atomically (temporary file, then rename) as plain ``.npy``; an interrupted
run resumes from the chunks already written, and a finished one is a single ``features.npy``
loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from cbir import config
from cbir._io import atomic_path, atomic_write_text
from cbir.data.images import ImageSet
from cbir.data.pipeline import image_dataset
from cbir.models.backbones import Backbone
from cbir.models.pooling import POOLINGS, GlobalPooling

__all__ = ["CACHE_FORMAT_VERSION", "FeatureExtractor", "dataset_fingerprint"]

CACHE_FORMAT_VERSION = 2  # 2: image files larger than twice the input are shrunk while decoding


def dataset_fingerprint(image_set: ImageSet) -> str:
    """A SHA-256 that changes whenever the images change.

    Arrays: hash of shape, dtype and pixel bytes. Files: hash of every (path, size,
    modification time in ns) — a rewritten file changes it without reading the pixels.
    Labels and class names are not part of it (features do not depend on them).
    """
    digest = hashlib.sha256()
    if image_set.images is not None:
        digest.update(f"{image_set.images.shape}{image_set.images.dtype}".encode())
        digest.update(np.ascontiguousarray(image_set.images).data)
    else:
        for path in image_set.paths:
            stat = os.stat(path)
            digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class _ProgressCallback(keras.callbacks.Callback):
    """Advances a tqdm bar by one batch of images at the end of every prediction batch."""

    def __init__(self, bar: tqdm, batch_size: int):
        super().__init__()
        self.bar, self.batch_size = bar, batch_size

    def on_predict_batch_end(self, batch, logs=None):
        self.bar.update(min(self.batch_size, self.bar.total - self.bar.n))


class FeatureExtractor:
    """A backbone plus global pooling, with cached batched extraction.

    Several poolings of the same feature map can be computed in one forward pass: give
    `pooling` as a list, and `extract` returns ``{pooling: features}``; each pooling is cached
    on its own, so a later single-pooling extractor finds it.

    Args:
        backbone: from `cbir.models.backbones.get_backbone`.
        pooling: a key of `cbir.models.pooling.POOLINGS` or a list of them; required for
            convolutional outputs and must be None for vector outputs (VGG16 ``fc2``).
        pooling_options: ``{pooling: {option: value}}``, e.g. ``{"gem": {"p": 3.0}}``.
        batch_size: images per forward pass.
    Raises:
        ValueError: a convolutional backbone without pooling, pooling on a vector output, or
            an unknown pooling name.
    """

    def __init__(
        self,
        backbone: Backbone,
        pooling: str | Sequence[str] | None = "gem",
        pooling_options: Mapping[str, dict] | None = None,
        batch_size: int = 64,
    ):
        self.single = pooling is None or isinstance(pooling, str)
        poolings = [pooling] if self.single else list(pooling)
        if backbone.is_convolutional and None in poolings:
            raise ValueError(
                f"{backbone.name}/{backbone.layer} outputs a feature map: choose a pooling from {sorted(POOLINGS)}"
            )
        if not backbone.is_convolutional and poolings != [None]:
            raise ValueError(f"{backbone.name}/{backbone.layer} already outputs a vector; use pooling=None")
        unknown = [p for p in poolings if p is not None and p not in POOLINGS]
        if unknown or not poolings:
            raise ValueError(f"unknown pooling {unknown}; expected one or more of {sorted(POOLINGS)}")
        self.backbone = backbone
        self.poolings = poolings
        self.pooling_options = {p: dict((pooling_options or {}).get(p, {})) for p in poolings if p}
        self.batch_size = batch_size
        features = backbone.model.output
        outputs = [
            # pooling layers are float32 and cast a bfloat16 map up before pooling (GeM's cube needs it)
            features if p is None else GlobalPooling(p, self.pooling_options[p], name=f"{p}_pooling")(features)
            for p in poolings
        ]
        self.model = keras.Model(backbone.model.input, outputs, name=f"{backbone.model.name}_features")

    def settings(self, pooling: str | None = None) -> dict:
        """What determines one pooling's features, besides the images (stored with caches and indexes)."""
        pooling = pooling if pooling is not None else self.poolings[0]
        random_init = {} if self.backbone.weights else {"seed": self.backbone.seed}
        # float32 is left out, so that caches written before the precision option stay valid
        precision = {} if self.backbone.precision == "float32" else {"precision": self.backbone.precision}
        return {
            "backbone": self.backbone.name,
            "weights": self.backbone.weights,
            **random_init,
            "layer": self.backbone.layer,
            "pooling": pooling,
            "pooling_options": self.pooling_options.get(pooling, {}),
            "input_size": list(self.backbone.input_size),
            **precision,
        }

    @property
    def dim(self) -> int:
        return int(self.model.outputs[0].shape[-1])

    def __call__(self, images):
        """Features of a batch of float32 RGB images in [0, 255], any size (resized here).

        Returns:
            float32 (batch, dim), or ``{pooling: (batch, dim)}`` for several poolings.
        """
        images = keras.ops.image.resize(keras.ops.convert_to_tensor(images, "float32"), self.backbone.input_size)
        outputs = self.model(self.backbone.preprocess(images), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return self._pack([np.asarray(keras.ops.convert_to_numpy(o), np.float32) for o in outputs])

    def _pack(self, arrays: list[np.ndarray]):
        return arrays[0] if self.single else dict(zip(self.poolings, arrays))

    def pipeline(self, image_set: ImageSet):
        """The tf.data pipeline: decode, resize, preprocess, batch, prefetch (no labels)."""
        import tensorflow as tf

        dataset = image_dataset(
            image_set, image_size=self.backbone.input_size, batch_size=self.batch_size, with_labels=False
        )
        return dataset.map(self.backbone.preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def cache_dir(self, image_set: ImageSet, pooling: str | None = None, root: Path | None = None) -> Path:
        """Where one pooling's features of `image_set` are (or will be) cached."""
        settings = self.settings(pooling)
        payload = {
            **settings,
            "dataset": dataset_fingerprint(image_set),
            "n": len(image_set),
            "format": CACHE_FORMAT_VERSION,
        }
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
        size = "x".join(map(str, self.backbone.input_size))
        name = (
            f"{self.backbone.name}-{self.backbone.weights or 'random'}-{self.backbone.layer}-"
            f"{settings['pooling'] or 'vector'}-{size}-{key}"
        )
        return (root or config.CACHE_DIR / "features") / name

    def extract(self, image_set: ImageSet, cache: bool | Path = True, chunk_size: int = 4096, progress: bool = True):
        """Features of every image in `image_set`, in order.

        Args:
            cache: True: use ``CACHE_DIR/features``; a Path: use that root; False: no cache.
            chunk_size: images per cached chunk (the unit of resumption).
            progress: show a tqdm bar (images).
        Returns:
            float32 (len(image_set), dim), not normalised; ``{pooling: ...}`` for several poolings.
        """
        if not cache:
            return self._pack(self._compute(image_set, progress))
        root = None if cache is True else Path(cache)
        directories = [self.cache_dir(image_set, p, root) for p in self.poolings]
        if all((d / "features.npy").is_file() for d in directories):
            return self._pack([np.load(d / "features.npy", allow_pickle=False) for d in directories])
        for directory, pooling in zip(directories, self.poolings):
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                directory / "settings.json",
                json.dumps(
                    {
                        **self.settings(pooling),
                        "n": len(image_set),
                        "name": image_set.name,
                        "format": CACHE_FORMAT_VERSION,
                    },
                    indent=2,
                ),
            )
        chunks: list[list[np.ndarray]] = [[] for _ in directories]
        with tqdm(
            total=len(image_set),
            unit="img",
            desc=f"features {self.backbone.name}/{self.backbone.layer}",
            disable=not progress,
        ) as bar:
            for index, start in enumerate(range(0, len(image_set), chunk_size)):
                stop = min(start + chunk_size, len(image_set))
                paths = [d / f"chunk_{index:05d}.npy" for d in directories]
                if all(p.is_file() for p in paths):
                    computed = [np.load(p, allow_pickle=False) for p in paths]
                else:
                    computed = self._compute(image_set.subset(np.arange(start, stop)), progress=False)
                    for path, array in zip(paths, computed):
                        with atomic_path(path, suffix=".npy") as temporary:
                            np.save(temporary, array, allow_pickle=False)
                for store, array in zip(chunks, computed):
                    store.append(array)
                bar.update(stop - start)
        results = []
        for directory, store in zip(directories, chunks):
            features = np.concatenate(store) if store else np.empty((0, self.dim), np.float32)
            with atomic_path(directory / "features.npy", suffix=".npy") as temporary:
                np.save(temporary, features, allow_pickle=False)
            for path in directory.glob("chunk_*.npy"):
                path.unlink()
            results.append(features)
        return self._pack(results)

    def _compute(self, image_set: ImageSet, progress: bool) -> list[np.ndarray]:
        if len(image_set) == 0:
            return [np.empty((0, int(o.shape[-1])), np.float32) for o in self.model.outputs]
        steps = -(-len(image_set) // self.batch_size)
        with tqdm(
            total=len(image_set), unit="img", desc=f"embedding {self.backbone.name}", disable=not progress
        ) as bar:
            # Keras' own progress bar (verbose=1) writes to stdout; this one goes to stderr.
            outputs = self.model.predict(
                self.pipeline(image_set), steps=steps, verbose=0, callbacks=[_ProgressCallback(bar, self.batch_size)]
            )
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [np.asarray(o, dtype=np.float32) for o in outputs]
