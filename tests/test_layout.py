"""The package layout keeps its promises: layers import one way, the NumPy core is free of TensorFlow,
modules stay short, and no cbir import hides inside a function (except in the command line)."""

import ast
import subprocess
import sys

from cbir import config

PACKAGE = config.PROJECT_ROOT / "src" / "cbir"
# A module may import from its own layer and the layers to its left, never to its right. The NumPy core
# (retrieval, then evaluation) comes first: every TensorFlow layer may use it, it uses none of them.
LAYERS = [
    "config",
    "_io",
    "retrieval",
    "evaluation",
    "data",
    "testing",
    "descriptors",
    "models",
    "features",
    "scale",
    "viz",
    "experiments",
    "benchmark_records",
    "report_tables",
    "reports",
    "cli",
]
SAME_RANK = [{"data", "testing"}]


def _rank(layer: str) -> int:
    for group in SAME_RANK:
        if layer in group:
            return min(LAYERS.index(name) for name in group)
    return LAYERS.index(layer)


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _layer(path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _cbir_imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cbir":
            names = [node.module] if node.module != "cbir" else [f"cbir.{alias.name}" for alias in node.names]
            yield node, names
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cbir":
                    yield node, [alias.name]


def test_retrieval_evaluation_and_descriptors_import_no_tensorflow():
    script = (
        "import importlib, pkgutil, sys, cbir.retrieval, cbir.evaluation, cbir.descriptors\n"
        "for package in (cbir.retrieval, cbir.evaluation, cbir.descriptors):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_imports_point_one_way():
    wrong = []
    for path, tree in _modules():
        layer = _layer(path)
        if layer == "__init__.py" or layer not in LAYERS:
            continue
        for node, names in _cbir_imports(tree):
            for name in names:
                target = name.split(".")[1] if "." in name else None
                if target in LAYERS and _rank(target) > _rank(layer):
                    wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_modules_are_at_most_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long


def test_no_cbir_import_inside_a_function_outside_the_cli():
    hidden = []
    for path, tree in _modules():
        if "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue  # the command line imports lazily for start-up time
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node, names in _cbir_imports(function):
                    hidden.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {names}")
    assert not hidden


def test_every_layer_is_a_package_with_a_docstring():
    for layer in ("data", "descriptors", "models", "retrieval", "evaluation", "viz", "experiments", "scale", "cli"):
        init = PACKAGE / layer / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), layer
