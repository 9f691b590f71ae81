"""A schema that finds none of its records says where they are: the fMRIPrep schema given a
raw dataset's root points to its derivatives, the BIDS schema given fMRIPrep's outputs
points to the fMRIPrep schema."""

import re

import pytest

import nishard as ns
from tests.records import layouts


def _no_records(root, schema) -> str:
    with pytest.raises(ns.SpecError, match=r"no .* records under") as error:
        ns.locate(root, schema=schema)
    return str(error.value)


@pytest.fixture
def raw_with_fmriprep(tmp_path):
    """A raw dataset with fMRIPrep's outputs in derivatives/fmriprep and another
    pipeline's, without preprocessed runs, beside them."""
    root = tmp_path / "ds"
    layouts.raw_bids(root)
    layouts.fmriprep_current(root / "derivatives" / "fmriprep")
    layouts.touch(root, "derivatives/freesurfer/sub-01/mri/aparc+aseg.mgz")
    return root


def test_fmriprep_given_a_raw_root_points_to_its_derivatives(raw_with_fmriprep):
    fmriprep = raw_with_fmriprep / "derivatives" / "fmriprep"
    message = _no_records(raw_with_fmriprep, ns.schemas.fmriprep())
    assert message.endswith(
        f"no preprocessed BOLD there, but in {fmriprep}: give that folder as the root"
    )
    assert "freesurfer" not in message
    # The same from the derivatives folder itself, and the folder named is the right one.
    assert _no_records(raw_with_fmriprep / "derivatives", ns.schemas.fmriprep()) == (
        message.replace(f"under {raw_with_fmriprep} ", f"under {fmriprep.parent} ")
    )
    assert len(ns.locate(fmriprep, schema=ns.schemas.fmriprep(res="2"))) > 0


def test_any_pipeline_folder_with_preprocessed_runs_is_named_fmriprep_first(tmp_path):
    root = tmp_path / "ds"
    layouts.raw_bids(root)  # its derivatives/fmriprep holds a desc-preproc BOLD
    layouts.touch(
        root, "derivatives/fmriprep-20.2.1/sub-01/func/sub-01_task-rest_space-T1w_bold.nii.gz"
    )
    message = _no_records(root, ns.schemas.fmriprep())
    derivatives = root / "derivatives"
    assert message.endswith(
        f"but in {derivatives / 'fmriprep'} and {derivatives / 'fmriprep-20.2.1'}: "
        "give one of them as the root"
    )


def test_a_raw_root_without_derivatives_gets_no_pointer(tmp_path):
    root = tmp_path / "ds"
    layouts.raw_bids(root)
    layouts.touch(root, "derivatives/freesurfer/sub-01/mri/aparc+aseg.mgz")
    (root / "derivatives" / "fmriprep").rename(root / "derivatives" / "other")
    for bold in (root / "derivatives" / "other").rglob("*_bold.nii.gz"):
        bold.rename(bold.with_name(bold.name.replace("desc-preproc_", "")))
    message = _no_records(root, ns.schemas.fmriprep())
    assert message.endswith("BOLD runs there are in: none")


def test_bids_given_fmriprep_outputs_points_to_the_fmriprep_schema(tmp_path):
    # fMRIPrep outputs that are all CIFTI and surfaces: no NIfTI BOLD the BIDS schema takes.
    root = tmp_path / "derivatives"
    func = "sub-01/func/sub-01_task-rest"
    layouts.touch(
        root,
        f"{func}_space-fsLR_den-91k_bold.dtseries.nii",
        f"{func}_hemi-L_space-fsaverage5_bold.func.gii",
        f"{func}_desc-confounds_timeseries.tsv",
    )
    message = _no_records(root, ns.schemas.bids())
    assert re.search(
        r"; sub-01/func/sub-01_task-rest_\S+_bold\.\S+ is a preprocessed run, not a raw one: "
        r"use the fmriprep schema \(--schema fmriprep, schema=ns\.schemas\.fmriprep\(\) in "
        r"Python, schema: fmriprep in a spec\)$",
        message,
    )


def test_bids_hint_tells_preprocessed_from_raw_runs(tmp_path):
    layouts.fmriprep_current(tmp_path / "fmriprep")
    layouts.raw_bids(tmp_path / "raw")  # its derivatives folder is not looked into
    assert "use the fmriprep schema" in ns.schemas.bids().hint(tmp_path / "fmriprep")
    assert ns.schemas.bids().hint(tmp_path / "raw") == "raw BIDS runs are func/sub-*_bold.nii[.gz]"


def test_bids_given_fmriprep_volumes_points_to_the_fmriprep_schema(tmp_path):
    layouts.fmriprep_current(tmp_path / "fmriprep")
    message = _no_records(tmp_path / "fmriprep", ns.schemas.bids())
    assert "use the fmriprep schema (--schema fmriprep" in message
