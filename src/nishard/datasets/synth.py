"""Synthetic fMRIPrep or HCP derivatives with known ground truth.

``generate(out, size="tiny", seed=0)`` writes a dataset laid out and named as fMRIPrep 23/24
writes its outputs (MNI152NLin2009cAsym space); ``layout="hcp"`` writes the same runs as the
HCP S1200 minimally preprocessed release lays them out (raw and "ICA-FIX cleaned" BOLD,
Movement_Regressors.txt, brainmask_fs); ``surfaces=True`` adds the model sampled at the
fsaverage5 vertices (GIfTI per hemisphere for fMRIPrep) and a CIFTI-2 dense time series. A
``truth/`` folder holds what made it: network maps and time courses, per-subject coupling,
the group effect. The generative model is described in ``nishard.datasets.text.readme`` (written to
``truth/README.md``).

Seeding: subject-level draws use ``default_rng([seed, subject])`` and run-level ones
``default_rng([seed, subject, session, run])``, with 1-based subject/session/run numbers and
session 0 when there is no session level (``SeedSequence`` ignores trailing zeros, so 1-based
numbers keep these streams distinct). The noise of the surface samples comes from the run's
seed sequence with spawn key 1 (``SeedSequence([seed, subject, session, run],
spawn_key=(1,))``), so asking for surfaces leaves the volumes unchanged. The HCP subject
labels are drawn from ``default_rng([seed])``; nothing else is drawn at dataset level (the
network maps are fixed by their MNI coordinates). A dataset is therefore deterministic, the
two layouts hold the same truth for the same seed, and adding subjects, sessions or runs
leaves the existing ones unchanged.

This module writes a dataset (:func:`generate`) from the parts in :mod:`.config` (the
configuration and presets), :mod:`.simulation` (the generative model), :mod:`.layouts` (the
files and sidecars of each layout), :mod:`.truth` (the ``truth/`` folder) and :mod:`.text`
(its README and descriptions), and re-exports their public names.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import NishardError
from . import hcp
from . import networks as nw
from . import surface as sf
from .config import (
    CIFTI_FMRIPREP,
    CIFTI_HCP,
    GENERATOR,
    LAYOUTS,
    SIZES,
    SPACE,
    SynthConfig,
    resolve_config,
)
from .grid import load_grid
from .layouts import (
    bold_path_of,
    runs_of,
    sibling,
    subject_label,
    surface_truth_name,
    write_dataset_files,
    write_fmriprep_run,
    write_hcp_run,
    write_hcp_subject_files,
)
from .simulation import (
    DIAGNOSES,
    PHYSIO_NAMES,
    PHYSIO_SCALES,
    SITES,
    Context,
    Run,
    add_components,
    diagnosis_of,
    draw_subject,
    legendre_drifts,
    n_spikes,
    nuisance_columns,
    physio_signals,
    run_model,
    simulate_bold,
    surface_context,
)
from .truth import write_run_truth, write_truth
from .writers import write_table

__all__ = [
    "DIAGNOSES",
    "LAYOUTS",
    "PHYSIO_NAMES",
    "PHYSIO_SCALES",
    "SITES",
    "SIZES",
    "SPACE",
    "SynthConfig",
    "SynthDataset",
    "add_components",
    "diagnosis_of",
    "generate",
    "legendre_drifts",
    "n_spikes",
    "nuisance_columns",
    "physio_signals",
    "simulate_bold",
]


@dataclass(frozen=True)
class SynthDataset:
    """A generated dataset: where it is and what made it.

    Attributes
    ----------
    root : pathlib.Path
        The dataset folder: fMRIPrep derivatives (with ``dataset_description.json``) or the
        HCP folder holding one folder per subject (and ``unrestricted_behavioral.csv``).
    config : SynthConfig
    seed : int
    run_ids : tuple of str
        Prefixes of the runs: ``sub-01_ses-01_task-rest_run-1`` (fMRIPrep) or
        ``<subject>_rfMRI_REST1_LR`` (HCP); they name the files of ``truth/timecourses``.
    bold_paths : tuple of pathlib.Path
        Preprocessed BOLD of each run, in the order of ``run_ids`` (for HCP the raw
        ``rfMRI_REST1_LR.nii.gz``, not the cleaned one).
    layout : {"fmriprep", "hcp"}
    surfaces : bool
        Whether surface (GIfTI, fMRIPrep only) and CIFTI files were written.
    """

    root: Path
    config: SynthConfig
    seed: int
    run_ids: tuple[str, ...]
    bold_paths: tuple[Path, ...]
    layout: str = "fmriprep"
    surfaces: bool = False

    @property
    def truth_dir(self) -> Path:
        """The ``truth/`` folder."""
        return self.root / "truth"

    @property
    def participants_path(self) -> Path:
        """``participants.tsv`` (fMRIPrep) or ``unrestricted_behavioral.csv`` (HCP)."""
        if self.layout == "hcp":
            return self.root / hcp.BEHAVIORAL_FILE
        return self.root / "participants.tsv"

    @property
    def mask_paths(self) -> tuple[Path, ...]:
        """Brain mask of each run (HCP: the subject's ``brainmask_fs.<res>.nii.gz``)."""
        if self.layout == "hcp":
            name = f"brainmask_fs.{self.config.resolution_mm}.nii.gz"
            return tuple(p.parents[2] / name for p in self.bold_paths)
        return tuple(
            sibling(p, "desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz")
            for p in self.bold_paths
        )

    @property
    def confounds_paths(self) -> tuple[Path, ...]:
        """Confounds TSV of each run (fMRIPrep layout only)."""
        self._require("fmriprep", "confounds_paths")
        return self._beside_bold("desc-confounds_timeseries.tsv")

    @property
    def clean_paths(self) -> tuple[Path, ...]:
        """The ``_hp2000_clean.nii.gz`` BOLD of each run (HCP layout only)."""
        self._require("hcp", "clean_paths")
        return tuple(sibling(p, ".nii.gz", "_hp2000_clean.nii.gz") for p in self.bold_paths)

    @property
    def movement_paths(self) -> tuple[Path, ...]:
        """``Movement_Regressors.txt`` of each run (HCP layout only)."""
        self._require("hcp", "movement_paths")
        return tuple(p.parent / hcp.MOVEMENT_FILE for p in self.bold_paths)

    def surface_paths(self, hemi: str) -> tuple[Path, ...]:
        """fsaverage5 GIfTI BOLD of each run for hemisphere ``"L"`` or ``"R"`` (fMRIPrep)."""
        self._require("fmriprep", "surface_paths")
        self._require_surfaces()
        if hemi not in sf.HEMISPHERES:
            raise ValueError(f"hemi must be one of {sf.HEMISPHERES}, got {hemi!r}")
        return self._beside_bold(f"hemi-{hemi}_space-{sf.SURFACE_SPACE}_bold.func.gii")

    @property
    def cifti_paths(self) -> tuple[Path, ...]:
        """CIFTI-2 dense time series of each run (HCP: the raw ``_Atlas_MSMAll`` one)."""
        self._require_surfaces()
        if self.layout == "hcp":
            return tuple(
                sibling(p, ".nii.gz", f"_{CIFTI_HCP}.dtseries.nii") for p in self.bold_paths
            )
        return self._beside_bold(CIFTI_FMRIPREP)

    @property
    def clean_cifti_paths(self) -> tuple[Path, ...]:
        """The ``_Atlas_MSMAll_hp2000_clean.dtseries.nii`` of each run (HCP layout only)."""
        self._require("hcp", "clean_cifti_paths")
        self._require_surfaces()
        suffix = f"_{CIFTI_HCP}_hp2000_clean.dtseries.nii"
        return tuple(sibling(p, ".nii.gz", suffix) for p in self.bold_paths)

    def timecourses_path(self, run_id: str) -> Path:
        """True network time courses of a run."""
        return self.truth_dir / "timecourses" / f"{run_id}_timecourses.tsv"

    def surface_truth_path(self, hemi: str) -> Path:
        """True network maps at the fsaverage5 vertices of a hemisphere (GIfTI)."""
        self._require_surfaces()
        return self.truth_dir / surface_truth_name(hemi)

    def _beside_bold(self, suffix: str) -> tuple[Path, ...]:
        """``<run id>_<suffix>`` in the folder of each run's BOLD, in the order of ``run_ids``.

        Parameters
        ----------
        suffix : str
            What follows the run id in the file name (``desc-confounds_timeseries.tsv``).

        Returns
        -------
        tuple of pathlib.Path
        """
        return tuple(
            p.parent / f"{rid}_{suffix}"
            for rid, p in zip(self.run_ids, self.bold_paths, strict=True)
        )

    def _require(self, layout: str, what: str) -> None:
        if self.layout != layout:
            raise ValueError(f"{what} exist in the {layout} layout only, not in {self.layout}")

    def _require_surfaces(self) -> None:
        if not self.surfaces:
            raise ValueError("this dataset was generated without surfaces=True")


def generate(
    out: str | os.PathLike[str],
    size: str | SynthConfig = "tiny",
    seed: int = 0,
    *,
    subjects: int | None = None,
    sessions: int | None = None,
    runs: int | None = None,
    timepoints: int | None = None,
    layout: str = "fmriprep",
    surfaces: bool = False,
) -> SynthDataset:
    """Write a synthetic fMRIPrep or HCP dataset with known ground truth.

    Parameters
    ----------
    out : str or os.PathLike
        Output folder: created, or replaced whole when it holds an earlier synthetic
        dataset (so no run of a bigger earlier one lingers); any other non-empty folder is
        refused rather than mixed with synthetic files.
    size : {"tiny", "demo", "large"} or SynthConfig
        A preset of ``SIZES`` or a full configuration.
    seed : int
        Non-negative seed; the same seed gives byte-identical files.
    subjects, sessions, runs, timepoints : int, optional
        Override the preset's number of subjects, sessions (0: no ``ses-`` level), runs per
        session and time points per run.
    layout : {"fmriprep", "hcp"}
        ``"fmriprep"``: BIDS derivatives as fMRIPrep 23/24 writes them. ``"hcp"``: the HCP
        S1200 layout (``<subject>/MNINonLinear/Results/rfMRI_REST1_LR/...``), with sessions
        1-2 as REST1/REST2 and runs 1-2 as LR/RL (more are refused). Same runs, same truth.
    surfaces : bool
        Also write the model sampled at the fsaverage5 vertices: per run, GIfTI BOLD of each
        hemisphere and a CIFTI-2 ``space-fsLR_den-91k_bold.dtseries.nii`` (fMRIPrep), or
        ``_Atlas_MSMAll.dtseries.nii`` and its ``_hp2000_clean`` version (HCP). The CIFTI
        files have the structure of HCP grayordinates but fsaverage5 vertices and fewer
        subcortical voxels (see ``nishard.datasets.surface``).

    Returns
    -------
    SynthDataset

    Examples
    --------
    >>> ds = generate("/tmp/synth", "tiny", seed=0)  # doctest: +SKIP
    >>> ds.bold_paths[0].name  # doctest: +SKIP
    'sub-01_ses-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-8_desc-preproc_bold.nii.gz'
    >>> generate("/tmp/hcp", "tiny", layout="hcp").bold_paths[0].name  # doctest: +SKIP
    'rfMRI_REST1_LR.nii.gz'
    """
    config = resolve_config(size, subjects, sessions, runs, timepoints)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
    if layout == "hcp":
        hcp.check_config(config.n_sessions, config.n_runs, config.task)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    root = _fresh_root(Path(out))
    grid = load_grid(config.resolution_mm)
    maps = nw.network_maps(grid.coords, config.networks, config.network_sigma_mm)
    numbers = range(1, config.n_subjects + 1)
    if layout == "hcp":
        labels = hcp.subject_ids(seed, config.n_subjects)
    else:
        labels = [subject_label(n, config) for n in numbers]
    subjects_ = [
        draw_subject(config, grid, seed, n, label) for n, label in zip(numbers, labels, strict=True)
    ]
    context = Context(
        config=config,
        grid=grid,
        maps=maps,
        seed=seed,
        layout=layout,
        surface=surface_context(config, grid) if surfaces else None,
    )

    if layout == "hcp":
        write_hcp_subject_files(root, config, grid, subjects_)
    else:
        write_dataset_files(root, config, seed, subjects_)
    write_truth(root / "truth", context, subjects_)
    runs_ = [run for subject in subjects_ for run in runs_of(root, config, subject, layout)]
    rows = [_generate_run(run, context) for run in runs_]
    write_table(root / "truth" / "runs.tsv", pd.DataFrame(rows))
    return SynthDataset(
        root=root,
        config=config,
        seed=seed,
        run_ids=tuple(run.run_id for run in runs_),
        bold_paths=tuple(bold_path_of(run, config) for run in runs_),
        layout=layout,
        surfaces=bool(surfaces),
    )


def _is_synthetic(root: Path) -> bool:
    """Whether ``root`` holds a dataset this module wrote (either layout)."""
    for marker in (root / "dataset_description.json", root / "truth" / "generator.json"):
        try:
            made_by = json.loads(marker.read_text())["GeneratedBy"][0]["Name"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
        if made_by == GENERATOR:
            return True
    return False


def _fresh_root(root: Path) -> Path:
    """An empty output folder; an earlier synthetic dataset there is removed first."""
    if root.is_dir() and any(root.iterdir()):
        if not _is_synthetic(root):
            raise NishardError(
                f"{root} is not empty and holds no earlier synthetic dataset "
                f"(no dataset_description.json or truth/generator.json generated by "
                f"{GENERATOR!r}); choose an empty folder"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _generate_run(run: Run, context: Context) -> dict[str, object]:
    """Simulate one run, write its files and return its row of ``truth/runs.tsv``."""
    config = context.config
    model = run_model(run, config, context.grid, context.seed)
    run.func_dir.mkdir(parents=True, exist_ok=True)
    if context.layout == "hcp":
        extra = write_hcp_run(run, model, context)
    else:
        extra = write_fmriprep_run(run, model, context)

    files = {"bold": bold_path_of(run, config).relative_to(run.root).as_posix(), **extra}
    return write_run_truth(run, model, context, files)
