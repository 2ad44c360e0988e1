"""Feature extraction with Ray Data: files decoded by parallel tasks, embedded by an actor pool.

    with ray_session(workers=2):
        for readable, skipped, features in ray_embed_chunks(settings, paths, workers=2):
            ...                                   # (n, dim) float32, L2-normalised, n = len(readable)

Stage 1 (Ray tasks): `read_image` decodes each file exactly as the single-process tf.data pipeline does
(`cbir.data.pipeline.image_dataset`: Pillow, shrunk while decoding to ``DECODE_HEADROOM`` × the input
size); a file it cannot read is kept as a row carrying the reason, reported like `readable_images` does.
Stage 2 (an actor pool of `workers` actors, each holding one model built once by `make_extractor`):
bilinear resize to the input size (`keras.ops.image.resize`, as the pipeline's `tf.image.resize`),
the backbone's preprocessing, the compiled model (`predict_on_batch`), and L2 normalisation: the
single-process features to float tolerance. Actors get one GPU each when the cluster has GPUs, else a share of the CPUs.

Rows stream back as they are embedded and leave in chunks of `chunk_size` (the caller commits each:
an interrupted run keeps every committed chunk, and the next run embeds only what is missing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cbir.data.images import SkippedFile, UnreadableImageError, read_image
from cbir.data.pipeline import DECODE_HEADROOM
from cbir.indexing import Chunks, make_extractor
from cbir.retrieval.ranking import l2_normalize

DECODE_CPUS = 0.2  # CPU share of a decoding task; the actors take the rest (see `_actor_resources`)


def import_ray():
    """The `ray` module with Ray Data.

    Raises:
        ImportError: ray[data] is not installed; the message names the ``[scale]`` extra.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"--engine ray needs Ray Data: pip install 'cbir[scale]' (or pip install 'ray[data]'); {error}",
            name="ray",
        ) from error
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, workers: int = 2) -> Iterator[object]:
    """A Ray session: the running one if any, else ``ray.init(address)`` for a cluster, else a local one
    limited to `workers` CPUs, without the dashboard. Shuts down only a session it started."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast where `ray.init(address)` would retry for minutes: a TCP connection to HOST:PORT of a
    ``HOST:PORT`` or ``ray://HOST:PORT`` address (``auto`` and other forms are left to Ray).

    Raises:
        ConnectionError: nothing accepts a connection there within `timeout_s` seconds, naming the address.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ConnectionError(f"--address {address}: no Ray cluster answers there ({error})") from error


def embed_with_ray(
    settings: dict, paths: Sequence[Path], *, address: str | None = None, workers: int = 2, **options
) -> Chunks:
    """`ray_embed_chunks` inside its own `ray_session`, started only when there is something to embed
    and ended when the chunks are consumed (or their consumer stops). `options`: `ray_embed_chunks`'s."""
    if not paths:
        return
    with ray_session(address, workers):
        yield from ray_embed_chunks(settings, paths, workers=workers, **options)


def decode_batch(batch: dict, max_side: int) -> dict:
    """Ray Data stage 1: ``{"path"}`` → ``{"path", "image" (uint8 (h, w, 3) each), "error"}`` ("" if read)."""
    images, errors = [], []
    for path in batch["path"]:
        try:
            images.append(read_image(str(path), max_side=max_side, keep_aspect=False))
            errors.append("")
        except UnreadableImageError as error:
            images.append(np.zeros((1, 1, 3), np.uint8))
            errors.append(error.reason)
    return {"path": np.asarray(batch["path"]), "image": _object_array(images), "error": np.asarray(errors, object)}


def _object_array(arrays: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array of arrays of different shapes (np.asarray would try to stack them)."""
    holder = np.empty(len(arrays), object)
    holder[:] = arrays
    return holder


class Embedder:
    """Ray Data stage 2, one per actor: the model of `settings`, built once, applied to decoded batches.

    Args:
        settings: extractor settings (`cbir.indexing.extractor_settings`); batch_size: images per forward pass;
        threads: TensorFlow's intra-op threads in this actor (0: TensorFlow's default).
    """

    def __init__(self, settings: dict, batch_size: int, threads: int = 0):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.extractor = make_extractor(settings, batch_size)
        self.dim = self.extractor.dim

    def __call__(self, batch: dict) -> dict:
        import keras

        size = self.extractor.backbone.input_size
        readable = [i for i, error in enumerate(batch["error"]) if not error]
        features = np.zeros((len(batch["path"]), self.dim), np.float32)
        if readable:
            resized = [
                keras.ops.image.resize(np.asarray(batch["image"][i], np.float32), size, interpolation="bilinear")
                for i in readable
            ]
            batch_images = self.extractor.backbone.preprocess(keras.ops.stack(resized))
            outputs = self.extractor.model.predict_on_batch(batch_images)  # compiled, as `predict` in one process
            outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
            features[readable] = l2_normalize(np.asarray(keras.ops.convert_to_numpy(outputs), np.float32))
        return {"path": batch["path"], "features": features, "error": batch["error"]}


def _actor_resources(ray, workers: int) -> dict:
    """One GPU per actor when the cluster has GPUs, else an equal share of the CPUs left by decoding."""
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    cpus = ray.cluster_resources().get("CPU", workers)
    return {"num_cpus": max(0.1, (cpus - 2 * DECODE_CPUS) / workers)}


def ray_embed_chunks(
    settings: dict,
    paths: Sequence[Path],
    *,
    workers: int = 2,
    batch_size: int = 32,
    chunk_size: int = 1024,
    progress: bool = True,
) -> Chunks:
    """Embed image files with Ray Data in the running session (`ray_session`), in chunks as they finish.

    Args:
        settings: CNN extractor settings (`cbir.indexing.extractor_settings`); paths: image files.
        workers: actors, each holding one model; chunk_size: rows per yielded chunk (>= 1).
    Yields:
        (readable paths, skipped files with their reasons, float32 (len(readable), dim) L2-normalised
        features); every path appears in exactly one chunk, in the order Ray finishes them.
    Raises:
        ValueError: workers, batch_size or chunk_size < 1; ImportError: ray[data] missing.
    """
    if min(workers, batch_size, chunk_size) < 1:
        raise ValueError(f"workers, batch_size and chunk_size must be >= 1, got {workers}, {batch_size}, {chunk_size}")
    ray = import_ray()
    if not paths:
        return
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines on stderr; tqdm shows progress
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.verbose_progress = False
    max_side = DECODE_HEADROOM * max(settings["input_size"])
    blocks = min(len(paths), max(2 * workers, len(paths) // (4 * batch_size)))  # every actor gets work
    dataset = ray.data.from_items([{"path": str(p)} for p in paths], override_num_blocks=blocks)
    dataset = dataset.map_batches(
        decode_batch, fn_kwargs={"max_side": max_side}, batch_size=batch_size, num_cpus=DECODE_CPUS
    )
    threads = max(1, (os.cpu_count() or 1) // workers)
    dataset = dataset.map_batches(
        Embedder,
        fn_constructor_kwargs={"settings": settings, "batch_size": batch_size, "threads": threads},
        batch_size=batch_size,
        concurrency=workers,
        **_actor_resources(ray, workers),
    )
    readable, skipped, features = [], [], []
    with tqdm(total=len(paths), unit="img", desc=f"ray x{workers} {settings['backbone']}", disable=not progress) as bar:
        for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
            for path, vector, error in zip(batch["path"], batch["features"], batch["error"]):
                if error:
                    skipped.append(SkippedFile(str(path), str(error)))
                else:
                    readable.append(Path(str(path)))
                    features.append(vector)
            bar.update(len(batch["path"]))
            if len(readable) + len(skipped) >= chunk_size:
                yield readable, skipped, _stack(features)
                readable, skipped, features = [], [], []
    if readable or skipped:
        yield readable, skipped, _stack(features)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    return np.stack(rows).astype(np.float32) if rows else np.empty((0, 0), np.float32)
