import subprocess
import sys
from pathlib import Path

from cbir import config


def test_defaults_live_under_the_project_root():
    assert (config.PROJECT_ROOT / "src" / "cbir" / "config.py").is_file()
    assert config.RAW_DATA_DIR == config.DATA_DIR / "raw"


def test_every_path_is_overridable_by_environment(tmp_path):
    env_names = ["CBIR_PROJECT_ROOT", "CBIR_DATA_DIR", "CBIR_FIGURES_DIR", "CBIR_REPORTS_DIR"]
    environment = {name: str(tmp_path / name.lower()) for name in env_names}
    script = (
        "from cbir import config; print(config.PROJECT_ROOT, config.DATA_DIR, config.FIGURES_DIR, config.REPORTS_DIR)"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], env={**environment, "PATH": ""}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [Path(p) for p in output] == [tmp_path / name.lower() for name in env_names]
