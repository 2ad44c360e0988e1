"""The benchmark scripts still run and print their summary line (on tiny sizes: no timing is judged)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from cbir.experiments.index_benchmark import default_sweep

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_search_runs_and_agrees_with_faiss():
    # The script itself asserts that its Hamming distances equal faiss's.
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_search.py"),
            "--n",
            "20000",
            "--queries",
            "12",
            "--dim",
            "32",
            "--clusters",
            "50",
            "--repeats",
            "1",
            "--naive-queries",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"hamming_vs_faiss=([\d.]+) two_phase_speedup=([\d.]+) recall@10=([\d.]+)", last)
    assert match, last
    assert 0.0 <= float(match.group(3)) <= 1.0


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
         "--batch-size", "8", "--repeats", "1"],
        capture_output=True, text=True, timeout=600, env=environment,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"pipeline_vs_bare=[\d.]+ cached_speedup=[\d.]+", last), last


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
