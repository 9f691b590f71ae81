"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from nishard.datasets import SIZES

TINY_RES = f"{SIZES['tiny'].resolution_mm:g}"


def bold_files(root: Path) -> list[Path]:
    return sorted(root.glob("sub-*/**/func/*_desc-preproc_bold.nii.gz"))


def write_spec(folder: Path, data: Path, **changes) -> Path:
    """A pipeline spec file in ``folder`` reading ``data``; ``changes`` replace sections."""
    import yaml

    spec = {
        "input": {
            "path": str(data),
            "schema": {"name": "fmriprep", "res": TINY_RES},
            "variables": ["age", "sex", "diagnosis", "site"],
        },
        "transforms": [{"mask": {}}, {"standardize": {"method": "zscore_sample"}}],
        "output": {"path": "shards", "shards": {"max_samples": 3}},
        "execution": {"executor": "serial"},
    }
    spec.update(changes)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_tensorflow(script: str, **values) -> str:
    """Run ``script`` with TensorFlow in a fresh interpreter (importing TensorFlow here
    would load it into every test process); its stdout. ``values`` are JSON-able names
    the script sees. Skips when TensorFlow is not installed."""
    import importlib.util
    import json
    import os
    import subprocess
    import sys
    import textwrap

    import pytest

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    header = "import json, sys\nimport numpy as np\nimport tensorflow as tf\n"
    header += "".join(f"{name} = json.loads({json.dumps(v)!r})\n" for name, v in values.items())
    done = subprocess.run([sys.executable, "-c", header + textwrap.dedent(script)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
