"""A study laid out as fMRIPrep 23.x/24.x leaves it: the README's "Your own fMRIPrep folder".

The README section walks from an fMRIPrep output folder to a training loop, and
``tests/test_docs.py`` runs every command of it here. The folder is what a user has after
``fmriprep my-study my-study/derivatives/fmriprep participant --output-spaces
MNI152NLin2009cAsym:res-2 T1w MNI152NLin6Asym:res-2 fsaverage5 --cifti-output 91k``:

- ``my-study/``: the raw BIDS dataset's own files (``dataset_description.json``,
  ``participants.tsv`` and ``.json``, ``README``); the raw images are left out (nothing
  reads them);
- ``my-study/derivatives/fmriprep/``: ``dataset_description.json`` with ``GeneratedBy``
  fMRIPrep 24.1.1, ``.bidsignore``, ``logs/CITATION.*``, ``desc-aseg_dseg.tsv``,
  ``sourcedata/freesurfer/``, ``sub-XX.html``, and per subject ``anat/`` (T1w, masks,
  segmentations, transforms, surfaces: the names of fMRIPrep's CI outputs), ``figures/``,
  ``log/`` and ``ses-XX/func/`` with, per run, the BOLD, brain mask and boldref in
  ``MNI152NLin2009cAsym`` ``res-2``, ``MNI152NLin6Asym`` ``res-2`` and ``T1w`` (no ``res-``:
  the BOLD's own grid), ``desc-confounds_timeseries.tsv``/``.json``, the fsaverage5 GIfTI
  of each hemisphere, ``space-fsLR_den-91k_bold.dtseries.nii``, sidecars and transforms.

The images are real (readable, one grid per run, TR in the sidecars and headers) but made
by :func:`nishard.datasets.generate` (whose fMRIPrep layout writes the MNI BOLD, mask,
confounds with fMRIPrep's columns, GIfTI and CIFTI) on its 8 mm grid and renamed
``res-2``: a 2 mm grid takes about 8 s a run to simulate on 2 cores, and nothing reads a
resolution from a name except to choose files. The other spaces hold copies of the
``MNI152NLin2009cAsym`` run (same voxels: only the names matter to the schema); the
anatomical images, transforms and surfaces other than the BOLD's are small placeholders.

Two realistic flaws give the filters something to report: ``sub-03``'s ``diagnosis`` is
``n/a`` in ``participants.tsv``, and ``sub-05``'s second session was (re)run with
``--output-spaces T1w`` only, so its run has no ``MNI152NLin2009cAsym`` BOLD.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from nishard.datasets import SIZES, generate

STUDY = "my-study"
FMRIPREP = f"{STUDY}/derivatives/fmriprep"
VERSION = "24.1.1"
MNI, NLIN6 = "space-MNI152NLin2009cAsym", "space-MNI152NLin6Asym"
#: 5 subjects of 2 sessions of one 2-minute resting run (TR 2 s) on the 8 mm grid of ``"tiny"``.
CONFIG = dataclasses.replace(SIZES["tiny"], n_subjects=5, n_sessions=2, n_runs=1, n_timepoints=60)
#: The run written in T1w space only, and the subject whose diagnosis is unknown.
T1W_ONLY = ("05", "02")
NO_DIAGNOSIS = "sub-03"
#: The files of a run in each volumetric space.
SPACE_SUFFIXES = ("desc-preproc_bold.nii.gz", "desc-preproc_bold.json", "desc-brain_mask.nii.gz",
                  "desc-brain_mask.json", "boldref.nii.gz")  # fmt: skip


def _text(path: Path, content: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")


def _json(path: Path, content: dict) -> None:
    _text(path, json.dumps(content, indent=2) + "\n")


def _placeholders(root: Path, *relatives: str) -> None:
    """Files only named, never read: a line saying so instead of their content."""
    for relative in relatives:
        _text(root / relative, "placeholder: not read by nishard\n")


def fmriprep_study(folder: Path) -> Path:
    """Write ``folder/my-study`` (raw dataset files, fMRIPrep derivatives); return the
    fMRIPrep folder."""
    out = folder / FMRIPREP
    generate(out, CONFIG, seed=0, surfaces=True)
    shutil.rmtree(out / "truth")  # fMRIPrep writes no ground truth
    raw = folder / STUDY
    _raw_dataset(raw, out)
    _dataset_files(out)
    for bold in sorted(out.glob("sub-*/ses-*/func/*_desc-preproc_bold.nii.gz")):
        _run_files(bold)
    for subject in sorted(p for p in out.glob("sub-*") if p.is_dir()):
        _subject_files(out, subject.name)
    return out


def _raw_dataset(raw: Path, out: Path) -> None:
    """The raw dataset's own files; participants.tsv and .json move there from the
    derivative (fMRIPrep does not copy them)."""
    table = pd.read_csv(out / "participants.tsv", sep="\t", dtype=str)
    table.loc[table["participant_id"] == NO_DIAGNOSIS, "diagnosis"] = "n/a"
    table.to_csv(raw / "participants.tsv", sep="\t", index=False)
    (out / "participants.tsv").unlink()
    shutil.move(out / "participants.json", raw / "participants.json")
    _json(raw / "dataset_description.json", {
        "Name": "My study", "BIDSVersion": "1.9.0", "DatasetType": "raw", "License": "CC0",
    })  # fmt: skip
    _text(raw / "README", "Resting-state fMRI, 5 participants, 2 sessions.\n")
    _json(raw / "task-rest_bold.json", {"TaskName": "rest", "RepetitionTime": CONFIG.t_r})


def _dataset_files(out: Path) -> None:
    _json(out / "dataset_description.json", {
        "Name": "fMRIPrep - fMRI PREProcessing workflow",
        "BIDSVersion": "1.4.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "fMRIPrep", "Version": VERSION,
            "CodeURL": f"https://github.com/nipreps/fmriprep/archive/{VERSION}.tar.gz",
        }],
        "HowToAcknowledge": "Please cite our paper (https://doi.org/10.1038/s41592-018-0235-4)"
        ", and include the generated citation boilerplate within the Methods section of the "
        "text.",
        "License": "This dataset is made available under the Public Domain Dedication and "
        "License v1.0.",
    })  # fmt: skip
    _text(out / ".bidsignore", "*.html\nlogs/\nfigures/\n*_xfm.*\n*.surf.gii\n*_sphere.surf.gii\n")
    for ext in ("bib", "html", "md", "tex"):
        _text(out / "logs" / f"CITATION.{ext}", "Results included in this manuscript come from "
              f"preprocessing performed using fMRIPrep {VERSION}.\n")  # fmt: skip
    for name in ("aseg", "aparcaseg"):
        _text(out / f"desc-{name}_dseg.tsv", "index\tname\n0\tUnknown\n")
    _placeholders(out, "sourcedata/freesurfer/fsaverage/surf/lh.white")


def _run_files(bold: Path) -> None:
    """The run in fMRIPrep's names (res-2), its boldref, its other spaces and transforms."""
    func = bold.parent
    for path in sorted(func.glob("*_res-8_*")):
        path.rename(path.with_name(path.name.replace("_res-8_", "_res-2_")))
    stem = bold.name.split(f"_{MNI}_")[0]  # sub-01_ses-01_task-rest_run-1
    mni = f"{stem}_{MNI}_res-2"
    image = nib.load(func / f"{mni}_desc-preproc_bold.nii.gz")
    boldref = nib.Nifti1Image(np.asarray(image.dataobj[..., 0]), image.affine)
    nib.save(boldref, func / f"{mni}_boldref.nii.gz")
    for space in (f"{NLIN6}_res-2", "space-T1w"):
        for suffix in SPACE_SUFFIXES:
            shutil.copyfile(func / f"{mni}_{suffix}", func / f"{stem}_{space}_{suffix}")
    for suffix in ("desc-coreg_boldref.nii.gz", "desc-hmc_boldref.nii.gz"):
        shutil.copyfile(func / f"{mni}_boldref.nii.gz", func / f"{stem}_{suffix}")
    _placeholders(func, f"{stem}_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt",
                  f"{stem}_from-orig_to-boldref_mode-image_desc-hmc_xfm.txt")  # fmt: skip
    subject, session = stem.split("_")[0][4:], stem.split("_")[1][4:]
    if (subject, session) == T1W_ONLY:
        for path in func.glob(f"{stem}_*"):
            if not (path.name.startswith(f"{stem}_space-T1w_") or "confounds" in path.name):
                path.unlink()


def _subject_files(out: Path, subject: str) -> None:
    """anat/ (the subject's T1w, masks, segmentations, transforms, surfaces), figures/,
    log/, the report and FreeSurfer's folder."""
    anat = out / subject / "anat"
    anat.mkdir()
    mask = next((out / subject).glob(f"ses-01/func/*_{MNI}_res-2_desc-brain_mask.nii.gz"))
    shutil.copyfile(mask, anat / f"{subject}_{MNI}_res-2_desc-brain_mask.nii.gz")
    t1w = nib.load(mask)
    image = nib.Nifti1Image(np.asarray(t1w.dataobj, np.float32) * 100, t1w.affine)
    for name in ("desc-preproc_T1w", f"{MNI}_res-2_desc-preproc_T1w"):
        nib.save(image, anat / f"{subject}_{name}.nii.gz")
        _json(anat / f"{subject}_{name}.json", {"SkullStripped": False})
    shutil.copyfile(mask, anat / f"{subject}_desc-brain_mask.nii.gz")
    _placeholders(
        anat,
        *(f"{subject}_{name}" for name in (
            "dseg.nii.gz", "desc-aseg_dseg.nii.gz", "desc-aparcaseg_dseg.nii.gz",
            "label-GM_probseg.nii.gz", "label-WM_probseg.nii.gz", "label-CSF_probseg.nii.gz",
            "from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5",
            "from-MNI152NLin2009cAsym_to-T1w_mode-image_xfm.h5",
            "from-T1w_to-MNI152NLin6Asym_mode-image_xfm.h5",
            "from-fsnative_to-T1w_mode-image_xfm.txt",
        )),
        *(f"{subject}_hemi-{hemi}_{surf}" for hemi in "LR" for surf in (
            "white.surf.gii", "pial.surf.gii", "midthickness.surf.gii", "inflated.surf.gii",
            "sphere.surf.gii", "space-fsLR_desc-reg_sphere.surf.gii", "thickness.shape.gii",
        )),
    )  # fmt: skip
    runs = sorted(p.name.split(f"_{MNI}_")[0] for p in (out / subject).glob(
        f"ses-*/func/*_{MNI}_res-2_desc-preproc_bold.nii.gz"))  # fmt: skip
    _placeholders(
        out / subject / "figures",
        f"{subject}_desc-summary_T1w.html", f"{subject}_desc-about_T1w.html",
        f"{subject}_desc-reconall_T1w.svg", f"{subject}_space-MNI152NLin2009cAsym_T1w.svg",
        *(f"{run}_desc-{kind}_bold.svg" for run in runs
          for kind in ("carpetplot", "confoundcorr", "rois", "coreg", "summary")),
    )  # fmt: skip
    _placeholders(
        out / subject / "log" / "20250114-093012_0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
        "fmriprep.toml",
    )
    _text(out / f"{subject}.html", f"<html><body>fMRIPrep report of {subject}</body></html>\n")
    freesurfer = ("mri/aseg.mgz", "surf/lh.white", "surf/rh.white", "scripts/recon-all.done")
    _placeholders(out / "sourcedata" / "freesurfer" / subject, *freesurfer)
