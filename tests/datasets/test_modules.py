"""The synthetic datasets are a leaf: no module of theirs imports the package root, and the
names the library, the tests and users import stay where they were."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import nishard.datasets

FOLDER = Path(nishard.datasets.__file__).parent
MODULES = sorted(FOLDER.glob("*.py"))


def _root_imports(path: Path) -> list[str]:
    """``import nishard``, ``from nishard import x`` and ``from .. import x`` in a module:
    imports of the package root (which imports the whole library)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "nishard"]
        elif isinstance(node, ast.ImportFrom):
            relative_root = node.level == 2 and node.module is None
            if (node.module == "nishard" and node.level == 0) or relative_root:
                found.append(f"from {'.' * node.level}{node.module or ''} import ...")
    return found


def test_the_folder_has_its_modules():
    assert {"config.py", "simulation.py", "layouts.py", "text.py", "truth.py", "synth.py"} <= {
        p.name for p in MODULES
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_imports_the_package_root(path):
    assert _root_imports(path) == []


def test_the_check_finds_a_root_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from nishard import errors\nfrom .. import units\nimport nishard\n")
    assert len(_root_imports(module)) == 3


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("nishard.datasets", ["SIZES", "SynthConfig", "SynthDataset", "generate"]),
        (
            "nishard.datasets.synth",
            ["SIZES", "SPACE", "LAYOUTS", "DIAGNOSES", "SITES", "PHYSIO_NAMES",
             "PHYSIO_SCALES", "SynthConfig", "SynthDataset", "generate", "diagnosis_of",
             "legendre_drifts", "n_spikes", "physio_signals", "simulate_bold",
             "add_components", "nuisance_columns"],
        ),
    ],
)  # fmt: skip
def test_public_names_stay_importable(module, names):
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == []
    assert imported.SynthConfig is importlib.import_module("nishard.datasets.config").SynthConfig
