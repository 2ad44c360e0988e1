import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from cbir import benchmark_records, config, reports


def test_record_metrics_merges_flat_numbers(isolated_paths):
    reports.record_metrics("00_a", {"n_images": 70000, "mean": 0.5})
    reports.record_metrics("01_b", {"map": 0.25})
    reports.record_metrics("00_a", {"mean": 0.75})
    stored = json.loads((isolated_paths / "reports_dir" / "metrics.json").read_text())
    assert stored == {"00_a/n_images": 70000, "00_a/mean": 0.75, "01_b/map": 0.25}
    assert isinstance(stored["00_a/n_images"], int)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0.5", True, None])
def test_record_metrics_rejects_non_numbers(isolated_paths, value):
    with pytest.raises(ValueError, match="must be a finite number"):
        reports.record_metrics("00_a", {"x": value})


def test_forget_metrics_removes_one_notebooks_entries(isolated_paths):
    reports.record_metrics("00_a", {"x": 1, "y": 2})
    reports.record_metrics("00_ab", {"z": 3})
    assert sorted(reports.forget_metrics("00_a")) == ["00_a/x", "00_a/y"]
    assert reports.read_metrics() == {"00_ab/z": 3}
    assert reports.forget_metrics("00_a") == []


def test_record_metrics_rejects_slash_in_name(isolated_paths):
    with pytest.raises(ValueError, match="must not contain '/'"):
        reports.record_metrics("00_a", {"a/b": 1})


def test_unknown_profile_lists_available():
    with pytest.raises(FileNotFoundError, match=r"profile 'nope' not found.*'default'.*'smoke'"):
        reports.load_profile("nope")


def test_profiles_name_only_existing_notebooks():
    stems = {p.stem for p in reports.list_notebooks()}
    for profile in ("smoke", "default"):
        assert set(reports.load_profile(profile)) <= stems


def _notebook(path, sources):
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        ),
        path,
    )


@pytest.mark.slow
def test_runner_names_the_failing_notebook_and_cell(tmp_path, isolated_paths, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(
        notebooks / "00_ok.ipynb",
        ["x = 1", "from cbir.reports import record_metrics\nrecord_metrics('00_ok', {'x': x})"],
    )
    _notebook(notebooks / "01_broken.ipynb", ["y = 0", "z = 1", "1 / y"])
    _notebook(notebooks / "02_never.ipynb", ["pass"])
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "p.yaml").write_text("00_ok:\n  x: 42\n")
    reports.record_metrics("00_ok", {"dropped_since": 1.0})
    reports.record_metrics("01_broken", {"old": 2.0})
    reports.record_metrics("09_other", {"kept": 3.0})
    monkeypatch.setattr(reports.config, "PARAMS_DIR", tmp_path / "params")
    with pytest.raises(reports.NotebookFailed) as caught:
        reports.run("p", notebooks_dir=notebooks, progress=False)
    error = caught.value
    assert error.notebook == "01_broken" and "ZeroDivisionError" in str(error)
    assert "cell" in str(error) and error.execution_count == 3
    metrics = reports.read_metrics()
    assert metrics["00_ok/x"] == 42 and "00_ok/runtime_s" in metrics
    assert "00_ok/dropped_since" not in metrics  # a rerun's file holds only that run's keys
    assert not any(key.startswith(("01_broken", "02_never")) for key in metrics)
    assert metrics["09_other/kept"] == 3.0  # notebooks that did not run keep theirs


def test_update_readme_replaces_only_the_marked_section(tmp_path, isolated_paths):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{reports.RESULTS_START}\nstale\n{reports.RESULTS_END}\n\nfooter\n")
    reports.record_metrics("00_a", {"n_images": 70000, "map": 0.8123})
    reports.record_metrics("02_deep_binary_hashing", {"map_hamming_48": 0.88204})
    reports.update_readme(readme)
    text = readme.read_text()
    assert "stale" not in text and text.startswith("# Title") and text.endswith("footer\n")
    assert "| `n_images` | 70,000 |" in text and "| `map` | 0.8123 |" in text
    # headline first, with its description, then the full tables
    assert text.index("| mAP, 48 bits (QSMIH: 0.860) | 0.882 | `02_deep_binary_hashing/map_hamming_48` |") < text.index(
        "<details>"
    )


def test_update_readme_requires_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers not found"):
        reports.update_readme(readme)


def test_benchmarks_are_recorded_with_the_machine_and_rendered_into_the_readme(tmp_path, isolated_paths):
    record = benchmark_records.record_benchmark
    record("bench_b", "python b.py", {"ratio": 2}, ["B is 2.00x faster."])
    record("bench_a", "python a.py", {"speedup": 11.25}, ["A: 11.2x at recall@10 0.951."])
    record("bench_b", "python b.py --n 5", {"ratio": 3.5}, ["B is 3.50x faster."])  # replaces
    recorded = json.loads(benchmark_records.benchmarks_path().read_text())
    assert list(recorded) == ["bench_a", "bench_b"] and recorded["bench_b"]["results"] == {"ratio": 3.5}
    machine = recorded["bench_a"]["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and re.fullmatch(r"\d{4}-\d{2}-\d{2}", machine["date"])
    with pytest.raises(ValueError, match="bench_c: result x"):
        benchmark_records.record_benchmark("bench_c", "c", {"x": float("nan")}, [])
    readme = tmp_path / "README.md"
    readme.write_text(
        f"{reports.RESULTS_START}\n{reports.RESULTS_END}\nmiddle\n{benchmark_records.BENCHMARKS_START}\nold\n{benchmark_records.BENCHMARKS_END}\n"
    )
    reports.update_readme(readme)
    text = readme.read_text()
    assert "old" not in text and "middle" in text
    first = f"**`python a.py`** — {machine['cpu']}, {machine['cores']} cores, {machine['date']}:"
    assert text.index(first) < text.index("- A: 11.2x at recall@10 0.951.") < text.index("- B is 3.50x faster.")
    assert "B is 2.00x" not in text


def _parameters(notebook: Path) -> dict:
    """Name -> default value of the notebook's `parameters` cell (typed literals)."""
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    return {
        node.target.id: ast.literal_eval(node.value)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def test_every_profile_value_is_a_notebook_parameter_and_dicts_are_complete():
    """papermill only warns about unknown names, and replaces a dict parameter whole: a profile key
    that is not a parameter, or a dict missing some of its keys, would silently change the run."""
    for profile_path in sorted(config.PARAMS_DIR.glob("*.yaml")):
        for stem, values in reports.load_profile(profile_path.stem).items():
            defaults = _parameters(config.NOTEBOOKS_DIR / f"{stem}.ipynb")
            unknown = sorted(set(values) - set(defaults))
            assert not unknown, f"{profile_path.name}: {stem} has no parameters {unknown}"
            for name, value in values.items():
                if isinstance(defaults[name], dict) and defaults[name]:  # a record, not an open mapping
                    assert set(value) == set(defaults[name]), f"{profile_path.name}: {stem}.{name} keys differ"
