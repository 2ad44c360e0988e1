"""Benchmark results on record: ``reports/benchmarks.json``, one entry per benchmark script with the machine it
ran on, rendered into the README by `cbir.reports.update_readme`.

    record_benchmark("bench_search", "python benchmarks/bench_search.py", {"speedup": 14.7}, ["Two-phase ..."])

The scripts under ``benchmarks/`` call `record_benchmark` at their default sizes; the README's benchmark
paragraph is generated from the file, never typed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path

from cbir import config
from cbir._io import atomic_write_text

BENCHMARKS_START = "<!-- benchmarks:start (generated from reports/benchmarks.json by `make readme-results`) -->"
BENCHMARKS_END = "<!-- benchmarks:end -->"


def benchmarks_path() -> Path:
    """``REPORTS_DIR / "benchmarks.json"``: the latest result of each benchmark script, with its machine."""
    return config.REPORTS_DIR / "benchmarks.json"


def machine_description() -> dict[str, str | int]:
    """The machine a measurement was taken on: CPU model (``/proc/cpuinfo``, else `platform.processor`),
    usable cores, OS, Python and NumPy versions, and the date (UTC, ISO 8601)."""
    import datetime
    import os
    import platform

    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {
        "cpu": cpu,
        "cores": cores,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }


def record_benchmark(
    name: str, command: str, results: Mapping[str, float], summary: Sequence[str], path: Path | None = None
) -> dict:
    """Store one benchmark run in ``benchmarks.json`` (atomically), replacing that benchmark's last entry.

    Args:
        name: the benchmark, e.g. ``"bench_search"``.
        command: the command line that reproduces it.
        results: its key numbers (finite reals), e.g. ``{"two_phase_speedup": 11.2}``.
        summary: sentences with the numbers, rendered into the README as they are.
    Returns:
        the stored entry: ``command``, ``machine`` (`machine_description`), ``results``, ``summary``.
    Raises:
        ValueError: a result is not a finite real number.
    """
    for key, value in results.items():
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"benchmark {name}: result {key} must be a finite number, got {value!r}")
    path = path or benchmarks_path()
    entry = {
        "command": command,
        "machine": machine_description(),
        "results": {key: float(value) for key, value in results.items()},
        "summary": list(summary),
    }
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    recorded[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(dict(sorted(recorded.items())), indent=2, ensure_ascii=False) + "\n")
    return entry


def render_benchmarks(recorded: Mapping[str, Mapping]) -> str:
    """Markdown: per benchmark, its command, the machine and date, and its summary sentences."""
    lines = []
    for _, entry in sorted(recorded.items()):
        machine = entry["machine"]
        lines += [
            f"**`{entry['command']}`** — {machine['cpu']}, {machine['cores']} cores, {machine['date']}:",
            "",
            *[f"- {sentence}" for sentence in entry["summary"]],
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
