"""Each schema on realistic layouts: exactly the expected records, entities, files, reports."""

import math

import pandas as pd
import pytest

import nishard as ns
from tests.records import layouts


def _files(records, record_id):
    return {k: v.rsplit("/", 1)[-1] for k, v in records[record_id].files.items()}


def test_fmriprep_current_release(tmp_path):
    layouts.fmriprep_current(tmp_path)
    records = ns.locate(
        tmp_path,
        schema=ns.schemas.fmriprep(res="2"),
        stage=["bold", "mask", "boldref", "confounds", "surface", "cifti"],
        filters=[],
    )
    assert list(records.frame.index) == [
        "sub-01_ses-01_task-rest_run-01",
        "sub-01_ses-02_task-rest_run-01",
    ]
    first = "sub-01_ses-01_task-rest_run-01"
    assert records[first].metadata["session"] == "01"
    assert records[first].metadata["run"] == "01"
    assert _files(records, first) == {
        "bold": f"{first}_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz",
        "mask": f"{first}_space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz",
        "boldref": f"{first}_space-MNI152NLin2009cAsym_res-2_boldref.nii.gz",
        "confounds": f"{first}_desc-confounds_timeseries.tsv",
        "surface_L": f"{first}_space-fsaverage5_hemi-L_bold.func.gii",
        "surface_R": f"{first}_space-fsaverage5_hemi-R_bold.func.gii",
        "cifti": f"{first}_space-fsLR_den-91k_bold.dtseries.nii",
    }
    # Session 02 has no run mask: the anatomical one in the same space stands in.
    second = _files(records, "sub-01_ses-02_task-rest_run-01")
    assert second["mask"] == "sub-01_space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz"
    assert records.frame["t_r"].tolist() == [2.0, 2.0]
    assert records.unparsed == ("sub-01/log/crash-20200101-pid.txt",)
    assert "1 files with names that are not BIDS" in records.summary()


def test_fmriprep_two_resolutions_without_res_is_an_error_naming_both(tmp_path):
    layouts.fmriprep_current(tmp_path)
    with pytest.raises(ns.SpecError, match=r"two bold files, .*res-1.* and .*res-2"):
        ns.locate(tmp_path, schema=ns.schemas.fmriprep(), stage=["bold"], filters=[])


def test_fmriprep_other_space_and_no_match(tmp_path):
    layouts.fmriprep_current(tmp_path)
    nlin6 = ns.locate(
        tmp_path,
        schema=ns.schemas.fmriprep(space="MNI152NLin6Asym", res=2),
        stage=["bold", "mask"],
        filters=[],
    )
    assert len(nlin6) == 2
    assert nlin6.frame["mask"].isna().all()  # no mask in that space, not a wrong one
    t1w = ns.locate(tmp_path, schema=ns.schemas.fmriprep(space="T1w"), stage=["bold"])
    assert len(t1w) == 0 and len(t1w.dropped) == 2  # counted, with where the BOLD is
    assert set(t1w.dropped["reason"]) == {
        "no bold file (desc-preproc_bold in space T1w: found in MNI152NLin2009cAsym res-1, "
        "MNI152NLin2009cAsym res-2, MNI152NLin6Asym res-2)"
    }


def test_fmriprep_older_release_naming(tmp_path):
    layouts.fmriprep_old(tmp_path)
    records = ns.locate(tmp_path, schema=ns.schemas.fmriprep())
    assert list(records.frame.index) == [
        "sub-10_task-balloonanalogrisktask_run-1",
        "sub-11_task-balloonanalogrisktask_run-1",
    ]
    files = _files(records, "sub-10_task-balloonanalogrisktask_run-1")
    assert files["mask"].endswith("_label-brain_mask.nii.gz")
    assert files["confounds"].endswith("_desc-confounds_regressors.tsv")
    assert "session" not in records.frame


def test_raw_bids_with_inherited_metadata(tmp_path):
    layouts.raw_bids(tmp_path)
    records = ns.locate(
        tmp_path,
        schema=ns.schemas.bids(metadata=["EchoTime"]),
        stage=["bold", "events"],
        variables=ns.tables.participants(),
        filters=[],
    )
    frame = records.frame
    assert list(frame.index) == [
        "sub-01_task-nback",
        "sub-01_task-rest_run-1",
        "sub-01_task-rest_run-2",
        "sub-02_ses-a_task-rest",
        "sub-02_ses-b_task-rest",
    ]
    entities = frame[["subject", "session", "task", "run"]].astype(object)
    expected = pd.DataFrame(
        [["01", None, "nback", None], ["01", None, "rest", "1"], ["01", None, "rest", "2"],
         ["02", "a", "rest", None], ["02", "b", "rest", None]],
        index=frame.index, columns=entities.columns, dtype=object,
    )  # fmt: skip
    pd.testing.assert_frame_equal(entities.where(entities.notna(), None), expected)
    # dataset level 2.0 (1.5 for nback), run level 3.0 for run-2, subject level 2.5 for
    # sub-02, session level 2.2 for its ses-b: the closest sidecar wins
    assert frame["t_r"].tolist() == [1.5, 2.0, 3.0, 2.5, 2.2]
    assert frame["EchoTime"].tolist()[1:] == [0.03] * 4
    assert math.isnan(frame["EchoTime"].iloc[0])
    assert frame["events"].notna().tolist() == [True, False, False, False, False]
    assert frame["group"].tolist() == ["control"] * 3 + ["patient"] * 2
    assert isinstance(frame["group"].dtype, pd.CategoricalDtype)
    assert frame["age"].dtype.kind == "f"
    assert frame["age"].isna().tolist() == [False] * 3 + [True] * 2
    assert records.unparsed == ("sub-02/ses-b/func/notes from the scanner.txt",)
    assert not any("derivatives" in p for p in frame["bold"])


def test_hcp_layout(tmp_path):
    layouts.hcp(tmp_path)
    records = ns.locate(
        tmp_path, schema=ns.schemas.hcp(), stage=["bold", "mask", "movement", "cifti"]
    )
    assert list(records.frame.index) == [
        "sub-100307_ses-1_task-rest_dir-LR",
        "sub-100307_ses-1_task-rest_dir-RL",
        "sub-100307_ses-2_task-rest_dir-LR",
        "sub-100307_task-wm_dir-RL",
        "sub-100408_ses-1_task-rest_dir-LR",
        "sub-100408_ses-1_task-rest_dir-RL",
        "sub-100408_ses-2_task-rest_dir-LR",
        "sub-100408_task-wm_dir-RL",
    ]
    assert _files(records, "sub-100307_ses-1_task-rest_dir-LR") == {
        "bold": "rfMRI_REST1_LR.nii.gz",
        "mask": "brainmask_fs.2.nii.gz",
        "movement": "Movement_Regressors.txt",
        "cifti": "rfMRI_REST1_LR_Atlas_MSMAll.dtseries.nii",
    }
    # HCP's protocol TR, no header opened at index time (the worker compares it).
    assert records.frame["t_r"].tolist() == pytest.approx([0.72] * 8)
    assert set(records.frame["t_r_source"]) == {"protocol"}
    first = records.frame.iloc[:4]
    assert first["session"].tolist()[:3] == ["1", "1", "2"] and pd.isna(first["session"].iloc[3])
    assert first["task"].tolist() == ["rest", "rest", "rest", "wm"]
    assert first["direction"].tolist() == ["LR", "RL", "LR", "RL"]
    assert set(records.frame["subject"]) == {"100307", "100408"}
    assert records.unparsed == (
        "100307/MNINonLinear/Results/Some_Other_Folder",
        "100408/MNINonLinear/Results/Some_Other_Folder",
    )
    fix = ns.locate(
        tmp_path, schema=ns.schemas.hcp(fix=True, task="rest"), stage=["bold"], filters=[]
    )
    assert len(fix) == 6
    assert all(p.endswith("_hp2000_clean.nii.gz") for p in fix.frame["bold"])
    # The cleaned files are empty placeholders (not fetched yet): still every run, with
    # the protocol's TR, and complete() keeps them.
    assert fix.frame["t_r"].tolist() == pytest.approx([0.72] * 6)
    assert len(ns.locate(tmp_path, schema=ns.schemas.hcp(fix=True, task="rest"))) == 6


def test_regex_layout_with_a_subject_level_file(tmp_path):
    layouts.touch(
        tmp_path,
        "lab/s01/rest1.nii.gz",
        "lab/s01/rest2.nii.gz",
        "lab/s02/rest1.nii.gz",
        "lab/s01/brain.nii.gz",
        "lab/s02/brain.nii.gz",
        "lab/readme.md",
    )
    schema = ns.schemas.regex(
        {
            "bold": r"lab/s(?P<subject>\d+)/rest(?P<run>\d)\.nii\.gz",
            "mask": r"lab/s(?P<subject>\d+)/brain\.nii\.gz",
        },
        t_r=0.8,
    )
    records = ns.locate(tmp_path, schema=schema, stage=["bold", "mask"])
    assert list(records.frame.index) == ["sub-01_run-1", "sub-01_run-2", "sub-02_run-1"]
    assert _files(records, "sub-01_run-2") == {"bold": "rest2.nii.gz", "mask": "brain.nii.gz"}
    assert records.frame["t_r"].tolist() == [0.8] * 3
    with pytest.raises(ValueError, match="groups \\['site'\\] the first one lacks"):
        ns.schemas.regex({"bold": r"(?P<subject>\d+)", "mask": r"(?P<site>\d+)"})
