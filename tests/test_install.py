"""The install paths agree and every pin says what it is for."""

import re

import pytest
import yaml

from cbir import config

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PYPROJECT = config.PROJECT_ROOT / "pyproject.toml"
ENVIRONMENT = config.PROJECT_ROOT / "environment.yml"


def _pin_lines(text: str, key: str) -> list[str]:
    block = re.search(rf"^{key} = \[\n(.*?)^\]", text, flags=re.S | re.M).group(1)
    return [line.strip() for line in block.splitlines() if line.strip().startswith('"')]


def test_every_pin_carries_a_comment():
    text = PYPROJECT.read_text()
    lines = _pin_lines(text, "dependencies") + _pin_lines(text, "notebooks") + _pin_lines(text, "dev")
    assert len(lines) >= 10
    for line in lines:
        assert re.match(r'^"[^"]+",\s+#\s*\S', line), f"pin without a comment: {line}"
    environment = yaml.safe_load(ENVIRONMENT.read_text())
    packages = [d for d in environment["dependencies"] if isinstance(d, str)]
    packages += next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    for package in packages:
        line = next(
            line
            for line in ENVIRONMENT.read_text().splitlines()
            if line.strip() == f"- {package}" or line.strip().startswith(f"- {package} ")
        )
        assert "#" in line, f"environment.yml entry without a comment: {line}"


def test_conda_and_pip_paths_install_the_same_package_set():
    environment = yaml.safe_load(ENVIRONMENT.read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    # conda supplies only the interpreter and pip; everything else comes from pyproject.toml.
    assert sorted(name.split("=")[0] for name in conda) == ["pip", "python"]
    assert pip == ["-e .[notebooks,dev]"]
    python = next(d for d in conda if d.startswith("python="))
    minimum = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_tensorflow_221_with_keras_3_and_no_tensorflow_addons():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert "tensorflow>=2.21,<2.22" in dependencies
    assert any(d.startswith("keras>=3") for d in dependencies)
    assert not any("addons" in d for d in dependencies)
    import keras

    assert keras.__version__.startswith("3.")
