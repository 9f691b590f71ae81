"""A wheel built from this repository installs in a fresh venv with the demo's extra alone
(``nishard[torch]``, what ``make demo`` installs) and its ``nishard demo`` runs there: no
test-only dependency is needed by the library or the demo.

It downloads from the package index (pip's cache makes a rerun quick) and runs the demo, a
few minutes: it runs under CI and with NISHARD_TEST_INSTALL=1, and skips otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WANTED = (
    os.environ.get("CI", "").lower() in ("1", "true", "yes")
    or os.environ.get("NISHARD_TEST_INSTALL") == "1"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not WANTED, reason="installs a fresh venv (CI, or NISHARD_TEST_INSTALL=1)"),
]

# Packages of the test extra that the light install must not hold.
TEST_ONLY = ["tensorflow", "datalad", "bids", "bids2table", "pydra", "h5py", "zarr", "jax"]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_a_wheel_installs_alone_and_runs_the_demo(tmp_path):
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
          str(tmp_path / "wheel"), str(ROOT)])  # fmt: skip
    [wheel] = (tmp_path / "wheel").glob("nishard-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"),
          f"{wheel}[torch]"])  # fmt: skip

    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
    )
    found = _run([str(python), "-c", probe, *TEST_ONLY])
    assert json.loads(found.stdout) == [], "the demo's install holds test-only packages"
    # The installed package, not this checkout: run from elsewhere, with no PYTHONPATH.
    where = _run([str(python), "-c", "import nishard; print(nishard.__file__)"], cwd=tmp_path,
                 env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})  # fmt: skip
    assert str(venv) in where.stdout

    out = tmp_path / "demo"
    done = _run([str(venv / "bin" / "nishard"), "demo", "--out", str(out)], cwd=tmp_path,
                env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})  # fmt: skip
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert manifest["records"]["written"] == 48
    results = json.loads((out / "canica" / "results.json").read_text())
    assert (out / "canica" / "components.nii.gz").is_file()
    # The demo's own check: each of the 7 true networks is matched by a learned map.
    assert "7 of 7 true networks matched" in done.stdout + done.stderr, results
