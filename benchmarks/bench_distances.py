"""Registry distances against `scipy.spatial.distance.cdist`, in the same run.

    python benchmarks/bench_distances.py [--queries 200] [--database 20000] [--dim 256] [--repeats 3]

For every metric that the registry computes itself (BLAS products or compiled kernels), both compute
the same (queries × database) matrix of float64 distances from the same float32 features (binary
{0, 1} features for hamming, jaccard and dice, as notebook 04 uses them); each is warmed up once,
then timed as the best of `--repeats`. Values are checked to agree (to 1e-9 relative) before any
time is printed. The last line reads ``slowest_ratio=<r> metric=<name>``: the smallest speed-up
over `cdist` among the metrics. Results go to ``reports/benchmarks.json`` (`cbir.benchmark_records.record_benchmark`)
unless --no-record or the sizes are below the defaults.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.spatial.distance import cdist

from cbir.retrieval.distances import DISTANCES, MINKOWSKI_P

BINARY = {"hamming", "jaccard", "dice"}
NOT_SCIPY = {"chi2", "intersection"}  # histogram distances scipy lacks: tests/retrieval/test_distances.py checks them
OWN = [name for name, d in DISTANCES.items() if not d.pairwise.__name__.startswith("cdist_") and name not in NOT_SCIPY]


def best_time(function, arguments: tuple, repeats: int, **options) -> tuple[float, np.ndarray]:
    result = function(*arguments, **options)  # warm-up: compiles the kernel, fills caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*arguments, **options)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not write reports/benchmarks.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(size=(args.queries + args.database, args.dim))).astype(np.float32)
    bits = (features > np.median(features, axis=0)).astype(np.float32)
    print(f"{args.queries} x {args.database} distances, dim {args.dim}, {os.cpu_count()} CPUs, best of {args.repeats}")
    ratios = {}
    for name in OWN:
        data = bits if name in BINARY else features
        queries, database = data[: args.queries].astype(np.float64), data[args.queries :].astype(np.float64)
        options = {"p": MINKOWSKI_P} if name == "minkowski" else {}
        ours_time, ours = best_time(DISTANCES[name].pairwise, (queries, database), args.repeats)
        scipy_time, reference = best_time(cdist, (queries, database, name), args.repeats, **options)
        np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
        ratios[name] = scipy_time / ours_time
        print(
            f"  {name:<12} registry {ours_time * 1e3:8.1f} ms   cdist {scipy_time * 1e3:8.1f} ms   {ratios[name]:6.1f}x"
        )
    slowest = min(ratios, key=ratios.get)
    if not args.no_record and (args.queries, args.database, args.dim) >= (200, 20_000, 256):
        from cbir.benchmark_records import record_benchmark

        fastest = max(ratios, key=ratios.get)
        summary = [
            f"Registry distances against `scipy.spatial.distance.cdist` ({args.queries} x {args.database:,}, "
            f"{args.dim}-D, same values to 1e-9): from {ratios[slowest]:.1f}x ({slowest}) to "
            f"{ratios[fastest]:.0f}x ({fastest}) faster."
        ]
        record_benchmark(
            "bench_distances",
            "python benchmarks/bench_distances.py",
            {f"{name}_vs_cdist": ratio for name, ratio in ratios.items()},
            summary,
        )
    print(f"slowest_ratio={ratios[slowest]:.2f} metric={slowest}")


if __name__ == "__main__":
    main()
