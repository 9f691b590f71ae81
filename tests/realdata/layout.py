"""Real fMRI laid out as an fMRIPrep derivative, from files that ship inside pip packages.

No data set can be downloaded at test time, but real data ships with packages the tests
install (nitime is in the ``dev`` extra for this alone):

- nitime's ``nitime/data/fmri1.nii.gz`` and ``fmri2.nii.gz``: real BOLD, 10x10x18x40 int16,
  2.08 x 2.08 x 2.3 mm voxels, TR 1.35 s, both on one grid (the same oblique affine);
- nibabel's ``nibabel/tests/data/functional.nii``: a functional run, 17x21x3x20 int16 stored
  with ``scl_slope``/``scl_inter`` scaling, 4 x 4 x 8 mm voxels, TR 2 s;
- nilearn's real fMRIPrep confounds in ``nilearn/interfaces/fmriprep/data/``, 30 rows each:
  fMRIPrep 21 (``desc-confounds_timeseries``, 84 columns, 3 non-steady-state volumes,
  framewise displacement above 0.2 mm in 29 of 30 volumes), fMRIPrep 1.4
  (``desc-confounds_regressors``, 189 columns, 1 non-steady-state volume) and the same
  without its non-steady-state column (188 columns, no JSON of its own: 1.4's is used).

They are laid out under fMRIPrep's real names (entities in BIDS order; ``space-`` and no
``res-``, as fMRIPrep names outputs at the native resolution):

======  ====================  ==================================================  =======
sub     BOLD                  confounds                                           volumes
======  ====================  ==================================================  =======
sub-01  nitime ``fmri1``      ``desc-confounds_timeseries`` (fMRIPrep 21)         30
sub-02  nitime ``fmri2``      ``desc-confounds_regressors`` (fMRIPrep 1.4)        30
sub-03  nibabel functional    ``desc-confounds_regressors`` (1.4, no non-steady)  20
======  ====================  ==================================================  =======

A run and its confounds must have as many volumes as rows, and here they come from unrelated
sources: nitime's runs (40 volumes) are **cropped to their first 30**, the confounds'
length; nibabel's run (20 volumes) is kept whole, byte for byte, and its confounds table is
**cropped to its first 20 rows** (the JSON, which describes the CompCor components, is kept
as is). sub-03 is short: 20 volumes cannot carry 24P's 24 regressors (see
tests/realdata/test_denoise.py for how each comparison copes), but it brings a second grid,
a second TR and scaled integers.

Each run has its BOLD JSON sidecar (``RepetitionTime`` from the NIfTI header, ``TaskName``),
a ``desc-brain_mask`` computed from the run itself with nilearn's ``compute_epi_mask``
(:func:`epi_mask`; 1392, 159 and 852 voxels with nilearn 0.14.1), and the confounds TSV
with its JSON; the root has fMRIPrep's ``dataset_description.json`` and a
``participants.tsv`` (age, sex).
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.masking import compute_epi_mask

SPACE = "MNI152NLin2009cAsym"
TASK = "rest"


def packaged(package: str, relative: str) -> Path:
    """A data file installed with ``package`` (found without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{package} is not installed: it ships {relative}")
    return Path(spec.origin).parent / relative


def confounds_data() -> Path:
    """nilearn's folder of real fMRIPrep confounds files."""
    return packaged("nilearn", "interfaces/fmriprep/data")


V21 = "test-v21_desc-confounds_timeseries"
V14 = "test_desc-confounds_regressors"
NO_NSS = "no_nonsteady_desc-confounds_regressors"


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one subject's files come from."""

    subject: str
    package: str  # the package that ships the BOLD run
    file: str  # its path inside the package
    confounds: str  # stem of the TSV in nilearn's data folder
    sidecar: str  # stem of the JSON that describes it
    naming: str  # fMRIPrep's suffix for that release: timeseries or regressors
    age: float
    sex: str

    @property
    def bold(self) -> Path:
        return packaged(self.package, self.file)


SOURCES = (
    Source("01", "nitime", "data/fmri1.nii.gz", V21, V21, "timeseries", 24.0, "F"),
    Source("02", "nitime", "data/fmri2.nii.gz", V14, V14, "regressors", 31.5, "M"),
    Source("03", "nibabel", "tests/data/functional.nii", NO_NSS, V14, "regressors", 45.0, "F"),
)


@dataclasses.dataclass(frozen=True)
class RealRun:
    """One run of the real derivative: its files and what the fixture knows of them."""

    subject: str
    bold: Path
    mask: Path
    confounds: Path
    t_r: float
    n_volumes: int
    source: Source

    @property
    def record(self) -> str:
        return f"sub-{self.subject}_task-{TASK}"


@dataclasses.dataclass(frozen=True)
class RealDerivative:
    root: Path
    runs: tuple[RealRun, ...]

    def run(self, subject: str) -> RealRun:
        return next(r for r in self.runs if r.subject == subject)


def epi_mask(image: nib.Nifti1Image) -> nib.Nifti1Image:
    """nilearn's EPI mask of a run, without the morphological opening.

    The packaged runs are cut-outs of the brain with no background around them: the default
    opening (2 iterations, sized for whole-head images) erodes each of them to nothing
    (nilearn warns "Computed an empty mask"). The histogram threshold and the largest
    connected component are nilearn's defaults.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's notes on the non-standard cut-outs
        mask = compute_epi_mask(image, opening=False)
    return nib.Nifti1Image(np.asarray(mask.dataobj).astype(np.uint8), image.affine)


def _write_bold(source: Source, n_volumes: int, target: Path) -> nib.Nifti1Image:
    image = nib.load(source.bold)
    if image.shape[3] == n_volumes:
        # Whole run: the original bytes, gzipped, so the reader meets its int16 scaling.
        target.write_bytes(gzip.compress(source.bold.read_bytes(), mtime=0))
        return nib.load(target)
    # Cropped run: the stored int16 values and the header (so the TR in pixdim[4]) as they are.
    raw = np.asarray(image.dataobj.get_unscaled())[..., :n_volumes]
    header = image.header.copy()
    cropped = nib.Nifti1Image(raw, image.affine, header)
    cropped.header.set_slope_inter(image.dataobj.slope, image.dataobj.inter)
    nib.save(cropped, target)
    return nib.load(target)


def _write_confounds(source: Source, n_volumes: int, target: Path) -> None:
    table = pd.read_csv(confounds_data() / f"{source.confounds}.tsv", sep="\t", dtype=str,
                        keep_default_na=False)  # fmt: skip
    if len(table) == n_volumes:
        shutil.copy(confounds_data() / f"{source.confounds}.tsv", target)
    else:
        # The first rows as written (text kept as is: 'n/a' in the first row of derivatives).
        table.iloc[:n_volumes].to_csv(target, sep="\t", index=False)
    shutil.copy(confounds_data() / f"{source.sidecar}.json", target.with_suffix(".json"))


def make_derivative(root: Path) -> RealDerivative:
    """Lay the packaged real runs out as fMRIPrep derivatives under ``root``."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep - fMRI PREProcessing workflow",
        "BIDSVersion": "1.4.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "21.0.0"}],
    }, indent=2))  # fmt: skip
    runs = []
    for source in SOURCES:
        n_rows = len(pd.read_csv(confounds_data() / f"{source.confounds}.tsv", sep="\t"))
        n_volumes = min(nib.load(source.bold).shape[3], n_rows)
        func = root / f"sub-{source.subject}" / "func"
        func.mkdir(parents=True)
        stem = f"sub-{source.subject}_task-{TASK}"
        bold_path = func / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"
        bold = _write_bold(source, n_volumes, bold_path)
        t_r = round(float(bold.header.get_zooms()[3]), 6)  # 1.35, not float32 1.3500000238
        bold_path.with_name(bold_path.name.replace(".nii.gz", ".json")).write_text(
            json.dumps({"RepetitionTime": t_r, "TaskName": TASK, "SkullStripped": False})
        )
        mask_path = func / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz"
        nib.save(epi_mask(bold), mask_path)
        confounds_path = func / f"{stem}_desc-confounds_{source.naming}.tsv"
        _write_confounds(source, n_volumes, confounds_path)
        runs.append(RealRun(source.subject, bold_path, mask_path, confounds_path, t_r,
                            n_volumes, source))  # fmt: skip
    participants = pd.DataFrame({
        "participant_id": [f"sub-{s.subject}" for s in SOURCES],
        "age": [s.age for s in SOURCES],
        "sex": [s.sex for s in SOURCES],
    })  # fmt: skip
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    return RealDerivative(root, tuple(runs))
