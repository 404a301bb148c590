"""Data flows one way: import rules between the packages of src/spikeforge (AST scan of
every import, including those inside functions and under TYPE_CHECKING), no private
names imported across files, and ``import spikeforge`` gives lazy subpackages."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "spikeforge"

UPPER = {"experiments", "commands", "cli"}
FORBIDDEN = {
    # package: the top-level spikeforge packages it must not import from
    "neurons": {"engine", "nn", "train", "data", "export", "energy", "convert"} | UPPER,
    "model": {"engine", "nn", "train", "data", "export", "energy", "convert"} | UPPER,
    "data": {"engine", "nn", "train", "export", "energy", "convert"} | UPPER,
    "engine": {"nn", "train", "data", "export", "energy", "convert"} | UPPER,
    "nn": {"train", "data", "export", "energy", "convert"} | UPPER,
    "train": {"export", "energy", "convert"} | UPPER,
    "energy": {"export", "train", "convert"} | UPPER,
    "export": {"energy", "convert"} | UPPER,
    "experiments": {"commands", "cli"},
}
"""Lower layers never reach up: model (what a network is), the neuron models (where
that package exists) and data know nothing of how networks run; engine knows nothing of
nn or train; train takes specs and plain settings, never run configs; energy and export
take loaded networks (the run loader is experiments.loading); only the CLI layer sees
everything."""

EXPORT_MAY_USE_FROM_TRAIN = {"spikeforge.train.losses", "spikeforge.train.checkpoint"}
"""export reads class scores with the training readout rules and writes model files as
checkpoints; it never uses the trainer."""

PRIVATE_CHECKED = ["model", "data", "train", "export", "energy", "__init__.py",
                   "experiments/loading.py", "experiments/report.py", "commands/export.py"]
"""Where no ``from x import _private`` across files is allowed (the packages whose
layering is fixed; engine/, nn/ and neurons/ are being restructured)."""


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path):
    """(line, imported module, names) of every absolute spikeforge import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "spikeforge":
                names = [alias.name for alias in node.names]
                if node.module == "spikeforge":  # from spikeforge import nn -> spikeforge.nn
                    for name in names:
                        yield node.lineno, f"spikeforge.{name}", []
                else:
                    yield node.lineno, node.module, names
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "spikeforge":
                    yield node.lineno, alias.name, []


def _target(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _files(*where: str):
    for item in where:
        path = SRC / item
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_the_scan_sees_every_package():
    packages = {_package(p) for p in SRC.rglob("*.py")}
    assert set(FORBIDDEN) - {"neurons"} <= packages  # neurons/: where it exists
    found = [module for _, module, _ in _imports(SRC / "commands" / "export.py")]
    assert "spikeforge.experiments.loading" in found  # imports inside functions count


def test_no_package_imports_upwards():
    problems = []
    for path in SRC.rglob("*.py"):
        package = _package(path)
        for line, module, _ in _imports(path):
            target = _target(module)
            if target in FORBIDDEN.get(package, set()):
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module}")
            if (package == "export" and target == "train"
                    and module not in EXPORT_MAY_USE_FROM_TRAIN):
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert problems == []


def test_no_private_names_imported_across_files():
    problems = []
    for path in _files(*PRIVATE_CHECKED):
        for line, module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private_module = any(part.startswith("_") and not part.startswith("__")
                                 for part in module.split("."))
            if private or private_module:
                problems.append(f"{path.relative_to(SRC)}:{line} from {module} "
                                f"import {', '.join(names)}")
    assert problems == []


def test_rules_catch_an_upward_import(tmp_path):
    """The scan itself: an upward import under TYPE_CHECKING is found."""
    source = tmp_path / "probe.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from spikeforge.experiments.config import RunConfig\n"
                      "def f():\n    from spikeforge import export\n")
    found = [(line, module) for line, module, _ in _imports(source)]
    assert found == [(3, "spikeforge.experiments.config"), (5, "spikeforge.export")]
    assert {_target(m) for _, m in found} & FORBIDDEN["train"] == {"experiments", "export"}


def _fresh_python(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_spikeforge_is_cheap_and_subpackages_are_attributes():
    result = _fresh_python(
        "import json, sys\n"
        "import spikeforge\n"
        "heavy = sorted(m for m in ('torch', 'numba', 'spikeforge.nn') if m in sys.modules)\n"
        "layer = spikeforge.nn.LIF(4, 3)\n"
        "try:\n"
        "    spikeforge.no_such_package\n"
        "    missing = False\n"
        "except AttributeError:\n"
        "    missing = True\n"
        "print(json.dumps({'heavy': heavy, 'weight': list(layer.weight.shape),\n"
        "                  'type': type(layer).__module__ + '.' + type(layer).__name__,\n"
        "                  'missing': missing, 'model': spikeforge.model.__name__,\n"
        "                  'in_dir': 'nn' in dir(spikeforge)}))\n")
    assert result["heavy"] == []  # nothing heavy until a subpackage is touched
    assert result["weight"] == [3, 4] and result["type"] == "spikeforge.nn.layers.LIF"
    assert result["missing"] and result["model"] == "spikeforge.model" and result["in_dir"]


@pytest.mark.parametrize("name", ["convert", "data", "energy", "engine", "experiments",
                                  "export", "train"])
def test_each_subpackage_is_a_lazy_attribute(name):
    result = _fresh_python(
        "import json, sys, spikeforge\n"
        f"before = 'spikeforge.{name}' in sys.modules\n"
        f"module = spikeforge.{name}\n"
        "print(json.dumps({'before': before, 'name': module.__name__}))\n")
    assert result == {"before": False, "name": f"spikeforge.{name}"}
