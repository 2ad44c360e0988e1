"""The benchmark scripts still run and print their summary line (on tiny sizes: no timing is judged)."""

import os
import re
import subprocess
import sys
from pathlib import Path

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
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0 and float(match.group(3)) >= 0.95
    assert "(b) tight" in completed.stdout and "(b) overlapping" in completed.stdout
    for code in ("itq16", "itq32", "lsh16", "lsh32"):
        rows = [line.split() for line in completed.stdout.splitlines() if line.split()[:1] == [code]]
        assert len(rows) == 2 and all(float(row[2]) == 1.0 for row in rows), rows  # L = n: exact


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
