"""fMRIPrep namings beyond today's: 1.0-1.1's ``_bold_confounds.tsv`` and ``_bold_space-X_preproc``
(the source suffix before the derivative's entities), and templateflow cohorts
(``space-MNIInfant_cohort-1``, ``space-MNIInfant+1``): parsed, located, valid sample keys.

The old names are those of fMRIPrep 1.0-1.1's documentation ("Outputs of fMRIPrep":
``*bold_confounds.tsv``, ``*bold_space-<space>_brainmask.nii.gz``,
``*bold_space-<space>_preproc.nii.gz``, ``*bold_space-<space>_variant-smoothAROMAnonaggr_preproc
.nii.gz``, ``*bold_space-<space>.[LR].func.gii``); the cohort entity sits after ``space-`` as
niworkflows' path patterns put it (``[_space-{space}][_cohort-{cohort}][_res-{resolution}]``),
and ``space-MNIInfant+1`` is how QSIPrep/QSIRecon (HBCD) name a template's cohort.
"""

import numpy as np
import pytest

import nishard as ns
from nishard.archives.webdataset import WebDataset
from nishard.records.entities import in_space, parse_bids_name, record_id, split_space
from tests.records.layouts import small_nifti, touch

MNI = "space-MNI152NLin2009cAsym"


def _files(records, record_id):
    return {k: v.rsplit("/", 1)[-1] for k, v in records[record_id].files.items()}


def _a_webdataset_key(key: str) -> bool:
    """Whether WebDataset encoding takes ``key`` (it refuses anything but [A-Za-z0-9_-])."""
    try:
        WebDataset().encode(key, {"x": np.zeros(1)}, {})
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------
# fMRIPrep 1.0-1.1
# ------------------------------------------------------------------------------------------


def test_old_names_keep_source_and_derivative_suffix_together():
    confounds = parse_bids_name("sub-01_ses-2_task-rest_run-1_bold_confounds.tsv")
    assert confounds.entities == {"sub": "01", "ses": "2", "task": "rest", "run": "1"}
    assert (confounds.suffix, confounds.extension) == ("bold_confounds", ".tsv")
    bold = parse_bids_name(f"sub-01_task-rest_bold_{MNI}_preproc.nii.gz")
    assert bold.entities == {"sub": "01", "task": "rest", "space": "MNI152NLin2009cAsym"}
    assert bold.suffix == "bold_preproc"  # never "bold": that is a raw run to other schemas
    aroma = parse_bids_name(
        f"sub-01_task-rest_bold_{MNI}_variant-smoothAROMAnonaggr_preproc.nii.gz"
    )
    assert aroma.get("variant") == "smoothAROMAnonaggr"
    assert parse_bids_name("sub-01_T1w_space-MNI152NLin2009cAsym_brainmask.nii.gz").suffix == (
        "T1w_brainmask"
    )
    # One source suffix, after the subject, of those fMRIPrep put there; nothing looser.
    assert parse_bids_name("sub-01_task-rest_bold_bold_confounds.tsv") is None
    assert parse_bids_name("sub-01_task-rest_events_confounds.tsv") is None
    assert parse_bids_name("bold_sub-01_task-rest_confounds.tsv") is None
    assert parse_bids_name("sub-01_task-rest_bold_task-rest_confounds.tsv") is None  # repeated


def fmriprep_1_1(root):
    """fMRIPrep 1.1's func outputs (two runs, MNI and T1w, AROMA), anat outputs, and the
    old surfaces, whose names end in an entity (no suffix: not parsed)."""
    for run in ("1", "2"):
        func = f"sub-01/func/sub-01_task-rest_run-{run}_bold"
        small_nifti(root / f"{func}_{MNI}_preproc.nii.gz", t_r=2.5)
        touch(
            root,
            f"{func}_{MNI}_brainmask.nii.gz",
            f"{func}_{MNI}_variant-smoothAROMAnonaggr_preproc.nii.gz",
            f"{func}_space-T1w_preproc.nii.gz",
            f"{func}_space-T1w_brainmask.nii.gz",
            f"{func}_confounds.tsv",
            f"{func}_AROMAnoiseICs.csv",
            f"{func}_MELODICmix.tsv",
            f"{func}_space-fsaverage5.L.func.gii",
        )
    touch(
        root,
        "sub-01/anat/sub-01_T1w_preproc.nii.gz",
        "sub-01/anat/sub-01_T1w_brainmask.nii.gz",
        f"sub-01/anat/sub-01_T1w_{MNI}_preproc.nii.gz",
    )


def test_fmriprep_locates_a_1_1_derivative_with_its_bold_confounds(tmp_path):
    fmriprep_1_1(tmp_path)
    records = ns.locate(
        tmp_path, schema=ns.schemas.fmriprep(), stage=["bold", "mask", "confounds"], filters=[]
    )
    assert list(records.frame.index) == ["sub-01_task-rest_run-1", "sub-01_task-rest_run-2"]
    stem = "sub-01_task-rest_run-1_bold"
    assert _files(records, "sub-01_task-rest_run-1") == {
        "bold": f"{stem}_{MNI}_preproc.nii.gz",  # not AROMA's variant, not T1w
        "mask": f"{stem}_{MNI}_brainmask.nii.gz",
        "confounds": f"{stem}_confounds.tsv",
    }
    assert records.frame["t_r"].tolist() == [2.5, 2.5]  # no sidecar then: the header's
    assert records.unparsed == tuple(
        f"sub-01/func/sub-01_task-rest_run-{run}_bold_space-fsaverage5.L.func.gii"
        for run in ("1", "2")
    )
    t1w = ns.locate(
        tmp_path, schema=ns.schemas.fmriprep(space="T1w"), stage=["bold", "mask"], filters=[]
    )
    assert _files(t1w, "sub-01_task-rest_run-2") == {
        "bold": "sub-01_task-rest_run-2_bold_space-T1w_preproc.nii.gz",
        "mask": "sub-01_task-rest_run-2_bold_space-T1w_brainmask.nii.gz",
    }


def test_the_raw_bids_schema_takes_no_old_derivative_for_a_raw_run(tmp_path):
    fmriprep_1_1(tmp_path)
    touch(tmp_path, "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz")  # one raw run
    records = ns.locate(tmp_path, schema=ns.schemas.bids(), filters=[])
    assert list(records.frame.index) == ["sub-01_task-rest_run-1"]
    assert _files(records, "sub-01_task-rest_run-1") == {
        "bold": "sub-01_task-rest_run-1_bold.nii.gz"
    }


# ------------------------------------------------------------------------------------------
# templateflow cohorts
# ------------------------------------------------------------------------------------------


def test_cohort_entity_and_plus_in_a_space_label_are_parsed():
    named = parse_bids_name(
        "sub-01_ses-1mo_task-rest_space-MNIInfant_cohort-1_res-2_desc-preproc_bold.nii.gz"
    )
    assert named.entities == {
        "sub": "01", "ses": "1mo", "task": "rest", "space": "MNIInfant", "cohort": "1",
        "res": "2", "desc": "preproc",
    }  # fmt: skip
    joined = parse_bids_name("sub-01_ses-V02_space-MNIInfant+1_model-tensor_param-fa_dwimap.nii.gz")
    assert joined.get("space") == "MNIInfant+1"
    # "+" joins a template and a cohort, in a space label only; labels stay alphanumeric.
    assert parse_bids_name("sub-01+2_task-rest_bold.nii.gz") is None
    assert parse_bids_name("sub-01_task-rest+1_bold.nii.gz") is None
    assert parse_bids_name("sub-01_cohort-1+2_bold.nii.gz") is None
    assert parse_bids_name("sub-01_space-MNIInfant+1+2_bold.nii.gz") is None
    assert parse_bids_name("sub-01_space-+1_bold.nii.gz") is None
    assert parse_bids_name("sub-01_space-MNIInfant+_bold.nii.gz") is None


def test_a_space_with_a_cohort_matches_either_spelling():
    assert split_space("MNIInfant+1") == split_space("MNIInfant:cohort-1") == ("MNIInfant", "1")
    assert split_space("MNI152NLin2009cAsym") == ("MNI152NLin2009cAsym", None)
    plus, entity = {"space": "MNIInfant+1"}, {"space": "MNIInfant", "cohort": "01"}
    for space in ("MNIInfant+1", "MNIInfant:cohort-1", "MNIInfant"):
        assert in_space(plus, space) and in_space(entity, space), space
    for space in ("MNIInfant+2", "MNIInfant:cohort-2", "MNI152NLin2009cAsym", "MNIInfant1"):
        assert not in_space(plus, space) and not in_space(entity, space), space
    assert not in_space({"space": "MNIInfant+1", "cohort": "2"}, "MNIInfant")  # says both
    assert not in_space({"cohort": "1"}, "MNIInfant+1")  # no space at all


def test_record_ids_stay_webdataset_keys_when_a_space_has_a_cohort():
    entities = {"sub": "01", "task": "rest", "space": "MNIInfant+1"}
    assert record_id(entities) == "sub-01_task-rest"  # space identifies no run
    # Asked to include the space, the "+" (refused in a sample key) becomes "-".
    assert not _a_webdataset_key("sub-01_space-MNIInfant+1")
    with_space = record_id(entities, ("sub", "space"))
    assert with_space == "sub-01_space-MNIInfant-1"
    assert _a_webdataset_key(with_space)
    assert record_id({"sub": "01", "space": "MNIInfant1"}, ("sub", "space")) != with_space


def nibabies(root):
    """Infant runs in MNIInfant: cohort entity (NiBabies), cohort in the label (QSIPrep
    style), and another cohort."""
    stems = {
        "01": "space-MNIInfant_cohort-1_res-2",
        "02": "space-MNIInfant+1_res-2",
        "03": "space-MNIInfant_cohort-2_res-2",
    }
    for sub, space in stems.items():
        func = f"sub-{sub}/ses-1mo/func/sub-{sub}_ses-1mo_task-rest"
        touch(
            root,
            f"{func}_{space}_desc-preproc_bold.nii.gz",
            f"{func}_{space}_desc-brain_mask.nii.gz",
            f"{func}_desc-confounds_timeseries.tsv",
        )
    touch(root, f"sub-01/anat/sub-01_{stems['01']}_desc-brain_mask.nii.gz")


@pytest.mark.parametrize("space", ["MNIInfant+1", "MNIInfant:cohort-1"])
def test_fmriprep_locates_the_runs_of_a_cohort(tmp_path, space):
    nibabies(tmp_path)
    schema = ns.schemas.fmriprep(space=space, res=2)
    records = ns.locate(tmp_path, schema=schema, stage=["bold", "mask"])
    assert list(records.frame.index) == ["sub-01_ses-1mo_task-rest", "sub-02_ses-1mo_task-rest"]
    # The run of another cohort is no record of this space, and says where its BOLD is.
    dropped = records.dropped.set_index("record")["reason"]
    assert "MNIInfant cohort-2 res-2" in dropped["sub-03_ses-1mo_task-rest"]
    assert _files(records, "sub-01_ses-1mo_task-rest") == {
        "bold": "sub-01_ses-1mo_task-rest_space-MNIInfant_cohort-1_res-2_desc-preproc_bold.nii.gz",
        "mask": "sub-01_ses-1mo_task-rest_space-MNIInfant_cohort-1_res-2_desc-brain_mask.nii.gz",
    }
    assert _files(records, "sub-02_ses-1mo_task-rest")["bold"] == (
        "sub-02_ses-1mo_task-rest_space-MNIInfant+1_res-2_desc-preproc_bold.nii.gz"
    )
    assert all(_a_webdataset_key(key) for key in records.frame.index)
    two = ns.locate(tmp_path, schema=ns.schemas.fmriprep(space="MNIInfant+2"), stage=["bold"])
    assert list(two.frame.index) == ["sub-03_ses-1mo_task-rest"]


def test_a_space_without_cohort_takes_any_and_two_cohorts_of_a_run_are_an_error(tmp_path):
    nibabies(tmp_path)
    every = ns.locate(
        tmp_path, schema=ns.schemas.fmriprep(space="MNIInfant"), stage=["bold"], filters=[]
    )
    assert len(every) == 3
    touch(
        tmp_path,
        "sub-01/ses-1mo/func/"
        "sub-01_ses-1mo_task-rest_space-MNIInfant_cohort-2_res-2_desc-preproc_bold.nii.gz",
    )
    with pytest.raises(ns.SpecError, match=r"two bold files, .*cohort-1.* and .*cohort-2"):
        ns.locate(tmp_path, schema=ns.schemas.fmriprep(space="MNIInfant"), stage=["bold"])
    one = ns.locate(tmp_path, schema=ns.schemas.fmriprep(space="MNIInfant+1"), stage=["bold"])
    assert list(one.frame.index) == ["sub-01_ses-1mo_task-rest", "sub-02_ses-1mo_task-rest"]
