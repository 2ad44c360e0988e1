"""Feature-extraction throughput: the cbir pipeline against bare `model.predict`, and the cache.

    python benchmarks/bench_features.py [--images 2000] [--backbone efficientnet_lite0] [--input-size 128]

Peer: the same Keras model (backbone + GeM pooling) fed pre-decoded, pre-resized, preprocessed
float32 tensors with `model.predict` — the fastest this model can go on this machine. The
pipeline (`FeatureExtractor.extract`) starts from uint8 images and does the decoding, resizing
and preprocessing inside tf.data. Target: pipeline ≥ 90 % of the peer's images/s. Then the same
extraction twice through the on-disk cache: the second run's speed-up over the first.
The last line reads ``pipeline_vs_bare=<ratio> cached_speedup=<ratio>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cbir.data.digits import load_digits  # noqa: E402
from cbir.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from cbir.data.images import DatasetNotFoundError, ImageSet  # noqa: E402
from cbir.features import FeatureExtractor  # noqa: E402
from cbir.models.backbones import get_backbone  # noqa: E402


def best_of(repeats: int, function) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def load_images(n: int) -> ImageSet:
    try:
        test = load_fashion_mnist(download=False)["test"]
    except DatasetNotFoundError:
        test = load_digits()["all"]
        print("Fashion-MNIST not found; using scikit-learn digits", file=sys.stderr)
    return test.subset(np.arange(min(n, len(test))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    image_set = load_images(args.images)
    backbone = get_backbone(args.backbone, input_size=args.input_size)
    extractor = FeatureExtractor(backbone, pooling="gem", batch_size=args.batch_size)
    n = len(image_set)

    # Peer input: decoded, RGB, resized and preprocessed before the clock starts.
    rgb = np.repeat(image_set.images[..., None], 3, -1) if image_set.images.ndim == 3 else image_set.images
    tensors = keras.ops.convert_to_numpy(
        backbone.preprocess(keras.ops.image.resize(rgb.astype("float32"), backbone.input_size))
    ).astype("float32")

    extractor.model.predict(tensors[: args.batch_size * 2], batch_size=args.batch_size, verbose=0)  # warm-up
    extractor.extract(image_set.subset(np.arange(args.batch_size * 2)), cache=False, progress=False)

    bare = best_of(args.repeats, lambda: extractor.model.predict(tensors, batch_size=args.batch_size, verbose=0))
    pipeline = best_of(args.repeats, lambda: extractor.extract(image_set, cache=False, progress=False))
    with tempfile.TemporaryDirectory() as cache:
        first = best_of(1, lambda: extractor.extract(image_set, cache=Path(cache), progress=False))
        second = best_of(1, lambda: extractor.extract(image_set, cache=Path(cache), progress=False))

    print(
        f"images: {n}, backbone: {args.backbone} @ {args.input_size}px, batch {args.batch_size}, "
        f"Keras {keras.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"bare model.predict on pre-decoded tensors: {n / bare:8.1f} images/s")
    print(f"cbir pipeline (decode+resize+preprocess):  {n / pipeline:8.1f} images/s")
    print(f"cached, first run (compute + write):        {n / first:8.1f} images/s")
    print(f"cached, second run (load):                  {n / second:8.1f} images/s")
    print(f"pipeline_vs_bare={bare / pipeline:.3f} cached_speedup={first / second:.1f}")


if __name__ == "__main__":
    main()
