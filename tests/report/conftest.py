"""A real browser for the reports: Debian's chromium, installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import nishard as ns
from nishard.builder.splits import Random
from tests.helpers import TINY_RES, bold_files

INSTALL = Path(__file__).resolve().parents[2] / "scripts" / "chromium" / "install.sh"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path (``scripts/chromium/install.sh`` installs it when missing).

    Where it cannot be installed (not root, no apt-get, no network) the test skips with the
    script's reason; under ``CI=true`` it fails instead, so that CI never passes with the
    browser tests skipped.
    """
    try:
        run = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True,
                             timeout=900, stdin=subprocess.DEVNULL)  # fmt: skip
        failed = run.returncode != 0
        reason = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as err:
        failed, reason, run = True, f"{type(err).__name__}: {err}", None
    if failed:
        message = f"no chromium: scripts/chromium/install.sh: {reason}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}\n{run.stderr if run else ''}", pytrace=False)
        pytest.skip(message)
    return run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def built(tiny, tmp_path_factory):
    """A build with everything a report shows: two splits by subject, records dropped by a
    filter, one quarantined (its BOLD file broken), censoring, two formats.

    Returns the shard folder, the manifest and the (unbroken) records.
    """
    root = tmp_path_factory.mktemp("report")
    data = Path(shutil.copytree(tiny, root / "fmriprep"))
    broken = bold_files(data)[-1]
    broken.write_bytes(b"not a NIfTI file")
    return build(data, root / "shards"), broken


def build(data: Path, out: Path) -> tuple[Path, dict]:
    """The report's build of ``data`` into ``out``; the folder and the manifest."""
    records = ns.locate(
        data, schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
        filters=[ns.filters.complete(), ns.filters.where("age >= 30")],
    )  # fmt: skip
    clean = ns.t.Clean(confounds={"strategy": "scrubbing", "fd_threshold": 0.3})
    manifest = ns.write(
        records, ns.assemble([ns.t.Mask(), clean]), out, progress=False,
        formats=[ns.formats.webdataset(), ns.formats.tfrecord()],
        shards=ns.shards.by_count(3),
        split=Random(fractions={"train": 0.6, "test": 0.4}, seed=0),
    )  # fmt: skip
    return out, manifest
