"""Locating the real derivative: every run found under fMRIPrep's names, with its TR.

The layout is tests/realdata/layout.py: three runs of real BOLD (nitime, nibabel) with real
fMRIPrep confounds (nilearn), both confounds namings, no ``res-`` entity.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import nishard as ns
from nishard.errors import SpecError
from tests.realdata.layout import SPACE


def test_the_fixture_is_real_data_cropped_to_its_confounds(real):
    # What the other tests rely on: real int16 runs as long as their confounds tables,
    # a non-empty EPI mask inside each image, and the TR of the header in the sidecar.
    shapes = {"01": (10, 10, 18, 30), "02": (10, 10, 18, 30), "03": (17, 21, 3, 20)}
    for run in real.runs:
        image = nib.load(run.bold)
        assert image.shape == shapes[run.subject] and image.get_data_dtype() == np.int16
        assert len(pd.read_csv(run.confounds, sep="\t")) == run.n_volumes == image.shape[3]
        mask = np.asarray(nib.load(run.mask).dataobj)
        assert mask.shape == image.shape[:3] and 0 < mask.sum() < mask.size
        sidecar = run.bold.with_name(run.bold.name.replace(".nii.gz", ".json"))
        assert json.loads(sidecar.read_text())["RepetitionTime"] == run.t_r
        assert abs(float(image.header.get_zooms()[3]) - run.t_r) < 1e-6
    # nibabel's run is stored scaled (scl_slope, scl_inter), as it ships.
    scaled = nib.load(real.run("03").bold).dataobj
    assert scaled.slope != 1.0 and scaled.inter != 0.0
    assert [r.confounds.name.rsplit("_", 1)[1] for r in real.runs] == [
        "timeseries.tsv", "regressors.tsv", "regressors.tsv",
    ]  # fmt: skip


def test_locate_finds_every_run_with_its_files_tr_and_variables(real, records):
    assert [r.id for r in records] == [run.record for run in real.runs]
    assert records.dropped.empty and not records.unmatched
    for run in real.runs:
        record = records[run.record]
        assert record.files == {
            "bold": str(run.bold), "mask": str(run.mask), "confounds": str(run.confounds),
        }  # fmt: skip
        assert record.metadata["t_r"] == run.t_r  # the sidecar's, in seconds
        assert record.metadata["subject"] == run.subject and record.metadata["task"] == "rest"
        assert record.metadata["age"] == run.source.age
        assert record.metadata["sex"] == run.source.sex
    complete = ns.locate(real.root, schema=ns.schemas.fmriprep(task="rest"),
                         filters=[ns.filters.complete()])  # fmt: skip
    assert [r.id for r in complete] == [r.id for r in records]


@pytest.mark.parametrize(
    "options",
    [{"res": "2"}, {"space": "MNI152NLin6Asym"}, {"task": "motor"}],
)
def test_another_space_resolution_or_task_finds_none_and_says_what_is_there(real, options):
    # fMRIPrep writes no res- entity at the native resolution: res="2" must not match it.
    schema = ns.schemas.fmriprep(**{"space": SPACE, **options})
    if "task" in options:  # no run of that task at all: nothing located, an error
        with pytest.raises(SpecError, match=f"BOLD runs there are in: {SPACE}$"):
            ns.locate(real.root, schema=schema)
        return
    # Runs fMRIPrep processed, in another space or resolution: each counted, and dropped
    # saying where its BOLD is.
    records = ns.locate(real.root, schema=schema)
    assert len(records) == 0 and len(records.dropped) == len(ns.locate(real.root))
    wanted = f"{schema.space}{f' res-{schema.res}' if schema.res else ''}"
    assert set(records.dropped["reason"]) == {
        f"no bold file (desc-preproc_bold in space {wanted}: found in {SPACE}); no mask file"
    }
