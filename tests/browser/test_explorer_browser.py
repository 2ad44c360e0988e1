"""Notebook 06's search explorer in a real browser: JupyterLab + Chromium, driven by Playwright.

Run with ``make test-browser`` (``pytest -m browser tests/browser``); the ``browser`` marker is deselected
by default (``addopts`` in pyproject.toml), so ``make test`` does not start a browser. The browser is the
Debian package ``chromium`` (or the binary named by ``CBIR_CHROMIUM``), driven through Playwright's
``executable_path``: Playwright never downloads a browser here. Without either, the test skips and says why.

The notebook runs with the smoke profile's parameters (digits, offline, about a minute); its metrics and
figures go to a temporary directory, the screenshots to ``reports/browser/`` and the README's screenshot
to ``figures/06_interactive_search/search_explorer.png``.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from cbir import config, reports

pytestmark = pytest.mark.browser

NOTEBOOK = "06_interactive_search"
SCREENSHOTS = config.PROJECT_ROOT / "reports" / "browser"
RESULTS = "els => els.map(e => e.dataset.index).join(',')"


def _chromium() -> str:
    path = os.environ.get("CBIR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium: install the Debian package (apt-get install chromium) or set CBIR_CHROMIUM")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 (a free port, a random token) serving notebook 06 with smoke parameters."""
    notebook = load_notebook_node(str(config.NOTEBOOKS_DIR / f"{NOTEBOOK}.ipynb"))  # papermill's reader adds tags
    parameters = reports.load_profile("smoke").get(NOTEBOOK, {})
    nbformat.write(parameterize_notebook(notebook, parameters), tmp_path / f"{NOTEBOOK}.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    environment = {
        **os.environ,
        "CBIR_REPORTS_DIR": str(tmp_path / "reports"),
        "CBIR_FIGURES_DIR": str(tmp_path / "figures"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),  # no user settings or workspaces
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={tmp_path}",
        "--LabApp.expose_app_in_browser=True",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # fmt: skip  (root: CI containers)
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(1)
        else:
            pytest.fail("JupyterLab did not answer within 2 minutes")
        yield f"{url}/lab/tree/{NOTEBOOK}.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_explorer_responds_to_the_widgets_in_chromium(lab):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package: pip install playwright")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root (CI containers)
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(lab)
            page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function(
                "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
                timeout=120_000,
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".jp-OutputArea-output", has_text="slowest change:").wait_for(timeout=600_000)  # last cell
            grid = page.locator(".cbir-grid")
            grid.scroll_into_view_if_needed()
            before = page.eval_on_selector_all(".cbir-grid .cbir-result", RESULTS)
            assert before, "the explorer shows no results"
            explorer = page.locator(".jp-OutputArea-output:has(.cbir-grid)")
            explorer.screenshot(path=str(SCREENSHOTS / "explorer_before.png"))

            query = page.locator(".cbir-query_index input")
            query.fill("5")
            query.press("Enter")
            page.wait_for_function(
                f"Array.from(document.querySelectorAll('.cbir-grid .cbir-result')).map(e => e.dataset.index)"
                f".join(',') !== '{before}'",
                timeout=30_000,
            )
            after_query = page.eval_on_selector_all(".cbir-grid .cbir-result", RESULTS)
            page.locator(".cbir-metric select").select_option("chebyshev")
            page.locator(".cbir-status", has_text="metric chebyshev").wait_for(timeout=30_000)
            after_metric = page.eval_on_selector_all(".cbir-grid .cbir-result", RESULTS)
            status = page.locator(".cbir-status").inner_text()
            explorer.screenshot(path=str(SCREENSHOTS / "explorer_after.png"))
        finally:
            browser.close()
    assert after_query != before, "changing the query left the grid as it was"
    assert "AP " in status and "chebyshev" in status, status
    assert len(after_metric.split(",")) == len(before.split(","))  # still k results
    figure = config.PROJECT_ROOT / "figures" / NOTEBOOK / "search_explorer.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCREENSHOTS / "explorer_after.png", figure)
    assert Path(figure).stat().st_size > 10_000  # a real picture, not a blank
