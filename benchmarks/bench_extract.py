"""Extraction throughput of a folder of image files: one process against Ray Data with 1 and 2 workers.

    python benchmarks/bench_extract.py [--images 2048] [--backbone efficientnet_lite0] [--input-size 128]
        [--batch-size 32] [--repeats 2] [--no-record]

The folder: --images JPEG files of 256 × 256 pixels (scikit-image's sample photographs, cropped, flipped and
noised, so that no two files are alike), written to a temporary directory before any clock starts. Single
process: `cbir.scale.milvus_indexing.local_embed_chunks` (Pillow decoding in tf.data, the model's `predict`),
what ``cbir index`` runs. Ray: `cbir.scale.ray_extract.ray_embed_chunks` in a local Ray session of as many
CPUs as the machine has (started once, before timing): decoding tasks, then an actor pool of 1 or 2 actors,
each building its model when the run starts — included in the time, as a user of ``cbir index --engine ray``
pays it on every run. Each variant runs once untimed on half the files (warm-up: TensorFlow's graph
tracing, the OS file cache), then --repeats timed runs on half and on all the files; the best of each is
kept. End to end: n / time(n). Marginal: (n − n/2) / (time(n) − time(n/2)), the rate once the fixed
start-up is paid — what counts for millions of images (nan when time(n) <= time(n/2): too few images).
Every variant's features are checked against the single process's (max |difference| < 1e-4) before
anything is printed.

The last line reads ``ray1_vs_single=<ratio> ray2_vs_single=<ratio> ray1_marginal_vs_single=<ratio>
ray2_marginal_vs_single=<ratio>``: images/s of Ray over images/s of the single process, end to end and at
the margin. Results go to ``reports/benchmarks.json`` unless --no-record, --images < 2048, or a marginal
rate is nan.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

from cbir.benchmark_records import machine_description  # noqa: E402
from cbir.indexing import extractor_settings  # noqa: E402
from cbir.scale.milvus_indexing import local_embed_chunks  # noqa: E402
from cbir.scale.ray_extract import ray_embed_chunks, ray_session  # noqa: E402

FULL_SIZE = 2048  # at 512, Ray's actor start-up (13–18 s, varying by seconds) swamped the second half's time
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat")


def write_folder(root: Path, n: int, seed: int = 0) -> list[Path]:
    """`n` distinct 256 × 256 JPEGs (quality 90) made from scikit-image's photographs."""
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB")) for name in PHOTOS]
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        top, left = rng.integers(0, height // 4), rng.integers(0, width // 4)
        crop = photo[top : top + 3 * height // 4, left : left + 3 * width // 4]
        crop = crop[:, ::-1] if i % 2 else crop
        noisy = np.clip(crop + rng.normal(0, 8, crop.shape), 0, 255).astype(np.uint8)
        path = root / f"{i:05d}.jpg"
        Image.fromarray(noisy).resize((256, 256)).save(path, quality=90)
        paths.append(path)
    return paths


def features_of(chunks) -> dict[Path, np.ndarray]:
    found = {}
    for readable, skipped, features in chunks:
        if skipped:
            raise RuntimeError(f"unexpected unreadable files: {skipped[:3]}")
        found.update(zip(readable, features))
    return found


def best_of(repeats: int, function) -> tuple[float, dict]:
    """Best wall time of `repeats` runs, and the last run's result."""
    timings, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        timings.append(time.perf_counter() - start)
    return min(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=FULL_SIZE)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet", choices=["imagenet", "none"])
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="do not write reports/benchmarks.json")
    args = parser.parse_args()
    if min(args.images, args.batch_size, args.repeats, args.input_size) < 1:
        parser.error("--images, --batch-size, --repeats and --input-size must be >= 1")
    weights = None if args.weights == "none" else args.weights
    settings = extractor_settings(args.backbone, None, weights, "gem", 3.0, args.input_size)
    cpus, cpu = os.cpu_count() or 1, machine_description()["cpu"]
    with tempfile.TemporaryDirectory() as folder, ray_session(workers=cpus):
        paths = write_folder(Path(folder), args.images)
        half = paths[: len(paths) // 2]

        def single(files):  # one tf.data pipeline over every file, as `cbir index` runs it (commit_every >= n)
            chunks = local_embed_chunks(settings, files, args.batch_size, chunk_size=len(files), progress=False)
            return features_of(chunks)

        def ray(files, workers):
            chunks = ray_embed_chunks(
                settings, files, workers=workers, batch_size=args.batch_size, chunk_size=len(files), progress=False
            )
            return features_of(chunks)

        variants = {"single": single, 1: functools.partial(ray, workers=1), 2: functools.partial(ray, workers=2)}
        full, marginal, reference = {}, {}, None
        for name, run in variants.items():
            run(half)  # warm-up: graph tracing, the OS file cache
            half_s, _ = best_of(args.repeats, functools.partial(run, half))
            full[name], found = best_of(args.repeats, functools.partial(run, paths))
            extra_s = full[name] - half_s  # <= 0 when the run is too short to tell start-up from the rest
            marginal[name] = (len(paths) - len(half)) / extra_s if extra_s > 0 else float("nan")
            reference = found if reference is None else reference
            difference = max(float(np.abs(found[p] - reference[p]).max()) for p in paths)
            if difference > 1e-4:
                raise AssertionError(f"{name} features differ from the single process's by {difference}")
    n = len(paths)
    print(f"images: {n} JPEGs 256x256, backbone {args.backbone} @ {args.input_size}px + GeM, batch {args.batch_size}")
    print(f"CPU: {cpu}, {cpus} logical CPUs; Python {sys.version.split()[0]}")
    print(f"{'':18} {'end to end':>12} {'marginal':>12}   (images/s; marginal = the second half's rate)")
    for name in variants:
        label = "single process" if name == "single" else f"Ray, {name} worker(s)"
        print(f"{label:18} {n / full[name]:12.1f} {marginal[name]:12.1f}")
    print(
        f"single process per CPU: {n / full['single'] / cpus:.1f} end to end, {marginal['single'] / cpus:.1f} marginal"
    )
    ratios = {w: full["single"] / full[w] for w in (1, 2)}
    marginal_ratios = {w: marginal[w] / marginal["single"] for w in (1, 2)}
    separable = all(np.isfinite(rate) for rate in marginal.values())
    if not separable:
        print("marginal rates not separable from start-up at this size: nothing recorded (use more --images)",
              file=sys.stderr)  # fmt: skip
    if not args.no_record and n >= FULL_SIZE and separable:
        from cbir.benchmark_records import record_benchmark

        results = {
            "single_images_per_s": n / full["single"],
            "single_marginal_images_per_s": marginal["single"],
            **{f"ray{w}_images_per_s": n / full[w] for w in (1, 2)},
            **{f"ray{w}_marginal_images_per_s": marginal[w] for w in (1, 2)},
            **{f"ray{w}_vs_single": ratios[w] for w in (1, 2)},
            **{f"ray{w}_marginal_vs_single": marginal_ratios[w] for w in (1, 2)},
            "cpus": cpus,
        }
        summary = [
            f"Extraction of {n} JPEGs ({args.backbone} at {args.input_size} px + GeM) on {cpus} CPUs ({cpu}): "
            f"{n / full['single']:.1f} images/s in one process ({marginal['single']:.1f} marginal); Ray Data "
            f"{ratios[1]:.2f}x / {ratios[2]:.2f}x that end to end with 1 / 2 workers (actor start-up included), "
            f"{marginal_ratios[1]:.2f}x / {marginal_ratios[2]:.2f}x at the margin."
        ]
        record_benchmark("bench_extract", "python benchmarks/bench_extract.py", results, summary)
    print(
        f"ray1_vs_single={ratios[1]:.3f} ray2_vs_single={ratios[2]:.3f} "
        f"ray1_marginal_vs_single={marginal_ratios[1]:.3f} ray2_marginal_vs_single={marginal_ratios[2]:.3f}"
    )


if __name__ == "__main__":
    main()
