"""The real fMRIPrep derivative of :mod:`tests.realdata.layout`, made once per session, and
the build every test of this folder runs on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import nishard as ns
from nishard.records import RecordTable
from tests.realdata.layout import SPACE, RealDerivative, make_derivative

#: Nilearn's presets with the options (both libraries take them) that leave degrees of
#: freedom on runs of 20-30 volumes; see tests/realdata/test_denoise.py.
SIMPLE_BASIC = {"strategy": "simple", "motion": "basic"}


@pytest.fixture(scope="session")
def real(tmp_path_factory) -> RealDerivative:
    """The real fMRIPrep derivative (read-only: copy it to change anything)."""
    pytest.importorskip("nitime", reason="nitime (dev extra) ships the real BOLD runs")
    return make_derivative(tmp_path_factory.mktemp("realdata") / "fmriprep")


@pytest.fixture(scope="session")
def records(real) -> RecordTable:
    """Every run of the derivative with its BOLD, mask and confounds, age and sex."""
    return ns.locate(
        real.root,
        schema=ns.schemas.fmriprep(space=SPACE),
        stage=["bold", "mask", "confounds"],
        variables=ns.tables.participants(["age", "sex"]),
    )


def build(
    records: RecordTable, steps: Sequence, out: Path, **options
) -> tuple[dict, dict[str, dict]]:
    """Write ``steps`` over ``records`` to ``out``: the manifest, and each written sample
    (its arrays, ``__meta__``) as ``ns.stream`` reads it, by record id."""
    options.setdefault("shards", ns.shards.by_count(2))
    manifest = ns.write(records, ns.assemble(list(steps)), out, progress=False, **options)
    stream = ns.stream.open(out, "*").fields(float32=False)
    samples = {sample["__key__"]: sample for sample in stream.arrays()}
    return manifest, samples


def quarantined(manifest: dict) -> dict[str, dict]:
    """The manifest's quarantine entries by record id."""
    return {entry["record"]: entry for entry in manifest["quarantine"]}
