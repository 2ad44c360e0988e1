"""The benchmark scripts still run and print their summary line (on tiny sizes: no timing is judged)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cbir.experiments.index_benchmark import default_sweep

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_search_runs_and_agrees_with_faiss():
    # The script itself asserts that its Hamming top-k is a true top-k with faiss's distances.
    # A shortlist of the whole database is exhaustive search: recall 1 is reached, so a best point exists.
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_search.py"), "--n", "5000", "--queries", "12", "--dim", "32",
         "--k", "5", "--datasets", "tight,overlapping", "--bits", "16,32", "--shortlists", "0.01,1",
         "--repeats", "1", "--naive-queries", "2", "--no-record"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"hamming_vs_faiss=([\d.]+) two_phase_speedup=([\d.]+) recall@5=([\d.]+) dataset=overlapping", last
    )
    assert match, last
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0 and 0 < float(match.group(3)) <= 1
    assert "(b) tight" in completed.stdout and "(b) overlapping" in completed.stdout
    for code in ("itq16", "itq32", "lsh16", "lsh32"):
        # code, validation recall at L=50 and L=5000, chosen L, test recall, ms/query, speed-up
        rows = [line.split() for line in completed.stdout.splitlines() if line.split()[:1] == [code]]
        assert len(rows) == 2 and all(float(row[2]) == 1.0 for row in rows), rows  # L = n: exhaustive
        assert all(float(row[4]) == 1.0 for row in rows if row[3] == "5000"), rows  # on the test queries too


def _bench_search_module():
    spec = importlib.util.spec_from_file_location("bench_search", BENCHMARKS / "bench_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_search_hamming_check_catches_a_wrong_top_k():
    bench = _bench_search_module()
    rng = np.random.default_rng(0)
    database, queries = rng.integers(0, 2**63, (300, 1), dtype=np.uint64), rng.integers(0, 2**63, (4, 1), np.uint64)
    distances = np.array([[bin(int(q) ^ int(d)).count("1") for d in database[:, 0]] for q in queries[:, 0]])
    order = np.argsort(distances, axis=1, kind="stable")[:, :5]  # a brute-force loop: the true top-5
    right = (np.take_along_axis(distances, order, 1).astype(np.int32), order)
    assert bench.check_hamming_top_k(queries, database, right, right, 5) == 1.0
    worse = order.copy()
    worse[0, 0] = np.argsort(distances[0])[-1]  # the farthest code in place of the nearest
    wrong = (right[0].copy(), worse)
    with pytest.raises(AssertionError, match="not at the distance reported"):
        bench.check_hamming_top_k(queries, database, wrong, right, 5)
    shifted = (right[0] + 1, order)  # distances that are not the k smallest
    with pytest.raises(AssertionError, match="k smallest"):
        bench.check_hamming_top_k(queries, database, shifted, shifted, 5)


def test_bench_search_rejects_bad_arguments():
    for bad in (["--datasets", "nope"], ["--bits", "1000"], ["--shortlists", "0"], ["--encoders", "pca"]):
        completed = subprocess.run(
            [sys.executable, str(BENCHMARKS / "bench_search.py"), *bad], capture_output=True, text=True, timeout=600
        )
        assert completed.returncode == 2 and "error" in completed.stderr, (bad, completed.stderr)


def test_bench_distances_runs_and_agrees_with_scipy():
    # The script itself asserts that every registry distance equals cdist's before timing it.
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_distances.py"), "--queries", "5", "--database", "40", "--dim", "8",
         "--repeats", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"slowest_ratio=[\d.]+ metric=\w+", last), last


def test_bench_features_runs(tmp_path):
    environment = {**os.environ, "CBIR_DATA_DIR": str(tmp_path / "data")}  # its cache lands in tmp_path
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_features.py"), "--images", "24", "--input-size", "32",
         "--batch-size", "8", "--repeats", "1", "--map-database", "40", "--map-queries", "10"],
        capture_output=True, text=True, timeout=600, env=environment,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"pipeline_vs_bare=[\d.]+ cached_speedup=[\d.]+ bf16_speedup=([\d.]+) bf16_map_delta=([-+][\d.]+)", last
    )
    assert match, last
    assert float(match.group(1)) > 0 and abs(float(match.group(2))) <= 1


def test_bench_indexes_runs_and_prints_its_summary():
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_indexes.py"), "--n", "4000", "--dim", "16", "--queries", "20",
         "--centres", "20"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"best_index=(\w+) qps_ratio_at_recall95=([\d.]+)", last)
    assert match, last
    rows = {line.split()[0] for line in completed.stdout.splitlines()[1:-1] if line.strip()}
    assert {entry["name"] for entry in default_sweep(4000, 16, large=True)} <= rows  # every index has a row


@pytest.mark.slow
def test_bench_extract_runs_and_prints_its_ratios():
    pytest.importorskip("ray.data", reason="the [scale] extra (ray[data]) is not installed")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_extract.py"), "--images", "8", "--input-size", "32",
         "--batch-size", "4", "--repeats", "1", "--weights", "none", "--no-record"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    ratios = re.fullmatch(
        r"ray1_vs_single=([\d.]+) ray2_vs_single=([\d.]+) "
        r"ray1_marginal_vs_single=([\d.]+|nan) ray2_marginal_vs_single=([\d.]+|nan)",  # nan: 8 images are too few
        last,
    )
    assert ratios and float(ratios.group(1)) > 0 and float(ratios.group(2)) > 0, last
