"""A real browser for the reports: Debian's chromium, installed when missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nishard as ns
from nishard.builder.splits import Random
from tests.helpers import TINY_RES, bold_files, run_setup_script

INSTALL = Path(__file__).resolve().parents[2] / "scripts" / "chromium" / "install.sh"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path (``scripts/chromium/install.sh`` installs it when missing);
    skipped, or failed under ``CI=true``, where it cannot (``run_setup_script``)."""
    run = run_setup_script(INSTALL, "chromium")
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
