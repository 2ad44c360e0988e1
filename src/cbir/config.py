"""Project paths, in one place.

Every path can be overridden by an environment variable, which is how tests and the report
runner redirect output to a scratch directory without touching the repository:

================  =========================  ==================================
attribute         environment variable       default
================  =========================  ==================================
``PROJECT_ROOT``  ``CBIR_PROJECT_ROOT``      the checkout holding ``src/cbir``
``DATA_DIR``      ``CBIR_DATA_DIR``          ``PROJECT_ROOT / "data"``
``FIGURES_DIR``   ``CBIR_FIGURES_DIR``       ``PROJECT_ROOT / "figures"``
``REPORTS_DIR``   ``CBIR_REPORTS_DIR``       ``PROJECT_ROOT / "reports"``
================  =========================  ==================================

Derived: ``RAW_DATA_DIR = DATA_DIR / "raw"`` (downloaded datasets, never modified in place),
``CACHE_DIR = DATA_DIR / "cache"`` (features and converted weights; safe to delete),
``NOTEBOOKS_DIR`` and ``PARAMS_DIR`` under ``PROJECT_ROOT``.

The values are read once, at import. Child processes (papermill kernels) inherit the
environment, so setting the variables before starting the runner redirects the notebooks too.
"""

from __future__ import annotations

import os
from pathlib import Path


def _path_from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


PROJECT_ROOT: Path = _path_from_env("CBIR_PROJECT_ROOT", Path(__file__).resolve().parents[2])
DATA_DIR: Path = _path_from_env("CBIR_DATA_DIR", PROJECT_ROOT / "data")
FIGURES_DIR: Path = _path_from_env("CBIR_FIGURES_DIR", PROJECT_ROOT / "figures")
REPORTS_DIR: Path = _path_from_env("CBIR_REPORTS_DIR", PROJECT_ROOT / "reports")

RAW_DATA_DIR: Path = DATA_DIR / "raw"
CACHE_DIR: Path = DATA_DIR / "cache"
NOTEBOOKS_DIR: Path = PROJECT_ROOT / "notebooks"
PARAMS_DIR: Path = PROJECT_ROOT / "params"


def figures_dir(notebook: str) -> Path:
    """Return (and create) ``FIGURES_DIR / notebook``, where a notebook saves its figures."""
    path = FIGURES_DIR / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path
