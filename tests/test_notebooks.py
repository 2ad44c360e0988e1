"""The notebooks are thin and clean (checked statically), and each executes through the report runner."""

import ast
import io
import json
import os
import subprocess
import sys
import tokenize

import nbformat
import papermill
import pytest
from conftest import make_tiny_imagenet

from cbir import config, reports

MAX_CELL_LINES = 15
MAX_PARAMETER_LINES = 20


@pytest.mark.parametrize("path", sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")), ids=lambda path: path.stem)
def test_notebook_is_thin_parameterised_and_clean(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for number, cell in enumerate(code, start=1):
        where = f"code cell {number}:\n{cell.source}"
        assert cell.outputs == [] and cell.execution_count is None, f"outputs or execution count in {where}"
        limit = MAX_PARAMETER_LINES if cell in tagged else MAX_CELL_LINES  # declarations, not logic
        assert len(cell.source.splitlines()) <= limit, f"more than {limit} lines in {where}"
        definitions = [
            type(node).__name__
            for node in ast.walk(ast.parse(cell.source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef)
        ]
        assert not definitions, f"{definitions} in {where}: move reusable logic to cbir.experiments"
    # The parameters: typed literals, each with a comment on its first line.
    source = tagged[0].source
    commented = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    for statement in ast.parse(source).body:
        assert isinstance(statement, ast.AnnAssign) and statement.value is not None, ast.unparse(statement)
        ast.literal_eval(statement.value)  # raises for anything but a literal
        assert statement.lineno in commented, f"parameter without a comment: {ast.unparse(statement)}"


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook(tmp_path):
    environment = {
        **os.environ,
        "CBIR_REPORTS_DIR": str(tmp_path / "reports"),
        "CBIR_FIGURES_DIR": str(tmp_path / "figures"),
        "CBIR_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cbir.cli", "reports", "--profile", "smoke"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stems = [p.stem for p in reports.list_notebooks()]
    assert stems and stems[0] == "00_dataset_exploration"
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    for stem in stems:
        assert (tmp_path / "reports" / f"{stem}.ipynb").is_file()
        assert f"{stem}/runtime_s" in metrics
    assert metrics["00_dataset_exploration/n_images"] == 1797  # digits
    assert metrics["00_dataset_exploration/n_classes"] == 10
    figures = {p.name for p in (tmp_path / "figures" / "00_dataset_exploration").iterdir()}
    assert {
        "class_distribution.png",
        "sample_grid.png",
        "image_statistics.png",
        "split_sizes.png",
        "augmentation_preview.png",
    } <= figures
    # Notebook 04: every kind of number for one architecture × metric, its figures.
    for kind in ("success", "success_easy", "roc_auc", "map"):
        assert 0.0 <= metrics[f"04_metric_comparison/{kind}_efficientnet_lite0_sqeuclidean"] <= 1.0
    assert "04_metric_comparison/success_dlbhc48_hamming" in metrics  # notebook 02's head, loaded
    figures = {p.name for p in (tmp_path / "figures" / "04_metric_comparison").iterdir()}
    assert {"rank_histograms.png", "heatmap_success.png", "heatmap_roc_auc.png", "heatmap_map.png"} <= figures


@pytest.mark.slow
def test_exploration_notebook_on_tiny_imagenet_layout(tmp_path, isolated_paths):
    root = make_tiny_imagenet(tmp_path / "tiny-imagenet-200", train_per_class=6)
    papermill.execute_notebook(
        str(config.NOTEBOOKS_DIR / "00_dataset_exploration.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={
            "dataset": "tiny_imagenet",
            "data_dir": str(root),
            "download": False,
            "samples_per_class": 3,
            "stats_images": 10,
            "val_fraction": 0.5,
            "augment_images": 1,
            "augment_variants": 2,
        },
        kernel_name="python3",
        cwd=str(config.NOTEBOOKS_DIR),
        progress_bar=False,
    )
    metrics = reports.read_metrics()
    assert metrics["00_dataset_exploration/n_images"] == 18 + 6 + 3
    assert metrics["00_dataset_exploration/n_classes"] == 3
    assert metrics["00_dataset_exploration/n_test"] == 6  # the labelled validation split serves as test


@pytest.mark.slow
def test_search_notebook_on_an_image_folder(tmp_path, isolated_paths):
    """Notebook 01 with ``dataset="folder"``: every image queries all the others."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for class_index, colour in enumerate(([200, 30, 30], [30, 200, 30], [30, 30, 200])):
        for i in range(5):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
            path = tmp_path / "folder" / f"class_{class_index}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    papermill.execute_notebook(
        str(config.NOTEBOOKS_DIR / "01_pretrained_cnn_search.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={
            "dataset": "folder",
            "data_dir": str(tmp_path / "folder"),
            "whitening_dim": 8,
            "n_grid_queries": 2,
            "heatmap_per_class": 2,
            "configurations": [
                {
                    "backbone": "efficientnet_lite0",
                    "weights": "imagenet",
                    "layer": None,
                    "input_size": 64,
                    "poolings": ["gem", "mac"],
                }
            ],
        },
        kernel_name="python3",
        cwd=str(config.NOTEBOOKS_DIR),
        progress_bar=False,
    )
    metrics = reports.read_metrics()
    assert metrics["01_pretrained_cnn_search/n_queries"] == 15 and metrics["01_pretrained_cnn_search/n_database"] == 15
    assert metrics["01_pretrained_cnn_search/map_efficientnet_lite0_gem"] > 0.9  # colour classes are easy
