"""Realistic layouts made in tests: the real names of fMRIPrep releases, raw BIDS and HCP,
with empty placeholder files as public example datasets ship them."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def touch(root: Path, *relatives: str) -> None:
    for relative in relatives:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def small_nifti(path: Path, t_r: float, shape=(2, 2, 2, 3)) -> None:
    """A real (tiny) NIfTI whose header carries the repetition time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4))
    img.header.set_zooms((2.0, 2.0, 2.0, t_r))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)


MNI = "space-MNI152NLin2009cAsym"


def fmriprep_current(root: Path) -> None:
    """fMRIPrep 20+ with sessions: two spaces and resolutions, surfaces, CIFTI, one run
    without its own mask (anatomical fallback), a run with no BOLD in MNI."""
    write_json(root / "dataset_description.json", {"Name": "x", "DatasetType": "derivative"})
    for ses in ("01", "02"):
        func = f"sub-01/ses-{ses}/func/sub-01_ses-{ses}_task-rest_run-01"
        touch(
            root,
            f"{func}_{MNI}_res-2_desc-preproc_bold.nii.gz",
            f"{func}_{MNI}_res-2_boldref.nii.gz",
            f"{func}_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz",
            f"{func}_{MNI}_res-1_desc-preproc_bold.nii.gz",
            f"{func}_desc-confounds_timeseries.tsv",
            f"{func}_space-fsaverage5_hemi-L_bold.func.gii",
            f"{func}_space-fsaverage5_hemi-R_bold.func.gii",
            f"{func}_space-fsLR_den-91k_bold.dtseries.nii",
        )
        write_json(root / f"{func}_{MNI}_res-2_desc-preproc_bold.json", {"RepetitionTime": 2.0})
        if ses == "01":
            touch(root, f"{func}_{MNI}_res-2_desc-brain_mask.nii.gz")
    touch(
        root,
        f"sub-01/anat/sub-01_{MNI}_res-2_desc-brain_mask.nii.gz",
        "sub-01/anat/sub-01_desc-brain_mask.nii.gz",  # T1w space: not ours
        "sub-01/figures/sub-01_ses-01_task-rest_run-01_desc-carpetplot_bold.svg",
        "sub-01/log/crash-20200101-pid.txt",  # not a BIDS name
        "sub-01.html",
    )


def fmriprep_old(root: Path) -> None:
    """fMRIPrep 1.x naming: no res-, desc-confounds_regressors, label-brain masks."""
    for sub in ("10", "11"):
        func = f"sub-{sub}/func/sub-{sub}_task-balloonanalogrisktask_run-1"
        touch(
            root,
            f"{func}_{MNI}_desc-preproc_bold.nii.gz",
            f"{func}_{MNI}_label-brain_mask.nii.gz",
            f"{func}_desc-confounds_regressors.tsv",
        )
        write_json(root / f"{func}_{MNI}_desc-preproc_bold.json", {"RepetitionTime": 2.0})


def raw_bids(root: Path) -> None:
    """Raw BIDS with sidecars at dataset, subject and run level, events, sessions for one
    subject, a derivatives folder and a stray file."""
    write_json(root / "dataset_description.json", {"Name": "raw", "BIDSVersion": "1.8.0"})
    write_json(root / "task-rest_bold.json", {"RepetitionTime": 2.0, "EchoTime": 0.03})
    write_json(root / "task-nback_bold.json", {"RepetitionTime": 1.5})
    (root / "participants.tsv").write_text(
        "participant_id\tage\tgroup\nsub-01\t30\tcontrol\nsub-02\tn/a\tpatient\n"
    )
    touch(
        root,
        "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz",
        "sub-01/func/sub-01_task-rest_run-2_bold.nii.gz",
        "sub-01/func/sub-01_task-nback_bold.nii.gz",
        "sub-01/func/sub-01_task-nback_events.tsv",
        "sub-01/func/sub-01_task-rest_run-1_sbref.nii.gz",
        "sub-01/anat/sub-01_T1w.nii.gz",
        "sub-02/ses-a/func/sub-02_ses-a_task-rest_bold.nii.gz",
        "sub-02/ses-b/func/sub-02_ses-b_task-rest_bold.nii.gz",
        "sub-02/ses-b/func/notes from the scanner.txt",
        "derivatives/fmriprep/sub-01/func/sub-01_task-rest_run-1_desc-preproc_bold.nii.gz",
    )
    write_json(root / "sub-02/sub-02_task-rest_bold.json", {"RepetitionTime": 2.5})
    write_json(root / "sub-02/ses-b/sub-02_ses-b_task-rest_bold.json", {"RepetitionTime": 2.2})
    write_json(root / "sub-01/func/sub-01_task-rest_run-2_bold.json", {"RepetitionTime": 3.0})


HCP_RUNS = ("rfMRI_REST1_LR", "rfMRI_REST1_RL", "rfMRI_REST2_LR", "tfMRI_WM_RL")


def hcp(root: Path) -> None:
    """HCP S1200: two subjects, rest and task runs, FIX and CIFTI files, masks."""
    for subject in ("100307", "100408"):
        results = root / subject / "MNINonLinear" / "Results"
        for run in HCP_RUNS:
            small_nifti(results / run / f"{run}.nii.gz", t_r=0.72)
            touch(
                results / run,
                f"{run}_hp2000_clean.nii.gz",
                "Movement_Regressors.txt",
                f"{run}_Atlas_MSMAll.dtseries.nii",
                f"{run}_SBRef.nii.gz",
            )
        touch(root / subject / "MNINonLinear", "brainmask_fs.2.nii.gz", "T1w_restore.2.nii.gz")
        touch(results, "Some_Other_Folder/readme.txt")
