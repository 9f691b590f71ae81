"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import nishard
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


# ------------------------------------------------------------ runs as an unprivileged user

#: The unprivileged user (nobody) the builds that root's rights would hide run as.
NOBODY = 65534

#: The marks of a build as an unprivileged user.
AS_NOBODY = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="runs builds as another user: needs root (CI runs as root)",
    ),
    pytest.mark.skipif(
        shutil.which("setpriv") is None or shutil.which("unshare") is None,
        reason="needs util-linux's setpriv and unshare",
    ),
]


def _symlink_hops(path: str) -> list[str]:
    """``path``, and every link it goes through, each as a path whose folder is real."""
    hops, seen = [], set()
    while True:
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if path in seen:
            break
        seen.add(path)
        hops.append(path)
        if not os.path.islink(path):
            break
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return hops


def _closed_folders(paths: list[str]) -> dict[str, set[str]]:
    """Folders on the way to ``paths`` that others cannot enter, with the entries needed
    in each (the next component of each path)."""
    closed: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for depth in range(1, len(parts)):
            folder = os.path.join(*parts[:depth])
            if not os.stat(folder).st_mode & 0o001:
                closed.setdefault(folder, set()).add(parts[depth])
    return closed


def _opening_script(closed: dict[str, set[str]], stash: str) -> str:
    """Shell lines that, in a private mount namespace, replace each closed folder by an
    open tmpfs holding bind mounts of the entries needed (outermost folders first)."""
    lines = ["set -e"]
    number = 0
    for folder in sorted(closed, key=lambda f: len(Path(f).parts)):
        moves = []
        for entry in sorted(closed[folder]):
            real, kept = os.path.join(folder, entry), f"{stash}/{number}"
            number += 1
            make = "mkdir" if os.path.isdir(real) else "touch"
            lines += [f"{make} {shlex.quote(kept)}", f"mount --bind {shlex.quote(real)} {kept}"]
            moves.append((make, real, kept))
        lines.append(f"mount -t tmpfs -o mode=0755,size=64k nishard-open {shlex.quote(folder)}")
        for make, real, kept in moves:
            lines += [f"{make} {shlex.quote(real)}", f"mount --bind {kept} {shlex.quote(real)}"]
    return "\n".join(lines)


def as_nobody(argv: list[str], folder: Path) -> subprocess.CompletedProcess:
    """``python argv`` as an unprivileged user that can reach the interpreter, the
    package and ``folder`` (and nothing else of root's)."""
    needed = [
        *_symlink_hops(sys.executable),
        sys.prefix,
        sys.base_prefix,
        *{p for p in sysconfig.get_paths().values() if os.path.exists(p)},
        str(Path(nishard.__file__).resolve().parent),
        str(folder.resolve()),
    ]
    closed = _closed_folders(needed)
    home = folder / "home"
    home.mkdir(exist_ok=True)
    os.chown(home, NOBODY, NOBODY)
    command = shlex.join(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                          "--clear-groups", sys.executable, *argv])  # fmt: skip
    env = {**os.environ, "HOME": str(home), "NO_ET": "1"}
    # Where the entries wait while their folder is covered: outside every covered folder.
    stash = tempfile.mkdtemp(prefix="nishard-stash-", dir="/tmp")
    try:
        script = f"{_opening_script(closed, stash)}\nexec {command}\n"
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True, text=True, env=env, cwd=home, timeout=240,
        )  # fmt: skip
    finally:
        shutil.rmtree(stash)


def nobody_runs_nishard(folder: Path) -> None:
    """Skip (saying why) when this system cannot run a Python process as another user;
    ``folder``: an empty folder for the probe."""
    probe = "import nishard.cli, joblib, pydra; print('ok')"
    done = as_nobody(["-c", probe], folder)
    if done.returncode != 0 or done.stdout.strip() != "ok":
        pytest.skip(f"cannot run nishard as an unprivileged user here: {done.stderr[-500:]}")


def run_setup_script(script: Path, what: str) -> subprocess.CompletedProcess:
    """Run a service's set-up script (``scripts/*/start.sh``, ``install.sh``): it installs
    and starts what tests marked for ``what`` need.

    Where it cannot (not root, no apt-get, no network for the packages) the test skips with
    the script's reason; under ``CI=true`` it fails instead, so that CI never passes with
    those tests skipped.
    """
    try:
        run = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                             timeout=900, stdin=subprocess.DEVNULL)  # fmt: skip
        failed = run.returncode != 0
        reason = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as err:
        failed, reason, run = True, f"{type(err).__name__}: {err}", None
    if failed:
        root = Path(__file__).resolve().parents[1]
        named = script.relative_to(root) if script.is_relative_to(root) else script
        message = f"no {what}: {named}: {reason}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}\n{run.stderr if run else ''}", pytrace=False)
        pytest.skip(message)
    return run
