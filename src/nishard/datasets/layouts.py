"""The layouts: where each file of a run goes, what it is called, and the writers of the files
and sidecars of each layout.

``fmriprep``: BIDS derivatives as fMRIPrep 23/24 writes them (BOLD, brain mask, confounds,
their JSON sidecars; GIfTI and CIFTI with surfaces; ``participants.tsv`` and
``dataset_description.json``). ``hcp``: the HCP S1200 minimally preprocessed layout (raw and
cleaned BOLD, ``Movement_Regressors.txt``, ``brainmask_fs``, ``unrestricted_behavioral.csv``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import confounds as cf
from . import hcp
from . import surface as sf
from .config import CIFTI_FMRIPREP, CIFTI_HCP, SPACE, SynthConfig
from .grid import Grid
from .simulation import (
    Context,
    Run,
    RunModel,
    Subject,
    add_components,
    nuisance_columns,
    signal_columns,
    simulate_bold,
    surface_model,
)
from .text import dataset_description, participants_sidecar
from .writers import write_bold, write_json, write_nifti, write_table

# --------------------------------------------------------------------------------------------
# Names and paths
# --------------------------------------------------------------------------------------------


def subject_label(number: int, config: SynthConfig) -> str:
    """``sub-01``: zero-padded to two digits or to the width of the largest number."""
    width = max(2, len(str(config.n_subjects)))
    return f"sub-{number:0{width}d}"


def runs_of(root: Path, config: SynthConfig, subject: Subject, layout: str) -> Iterable[Run]:
    """A subject's runs in the layout's folders, sessions then runs in order."""
    sessions = range(1, config.n_sessions + 1) if config.n_sessions else [0]
    for session in sessions:
        if layout == "hcp":
            for run in range(1, config.n_runs + 1):
                name = hcp.run_name(config.task, session, run)
                func_dir = root / subject.label / "MNINonLinear" / "Results" / name
                yield Run(root, f"{subject.label}_{name}", func_dir, subject, session, run, name)
            continue
        ses = f"ses-{session:02d}" if session else ""
        func_dir = root / subject.label / ses / "func" if ses else root / subject.label / "func"
        for run in range(1, config.n_runs + 1):
            parts = [subject.label, ses, f"task-{config.task}", f"run-{run}"]
            run_id = "_".join(p for p in parts if p)
            yield Run(root, run_id, func_dir, subject, session, run)


def _bold_name(run_id: str, config: SynthConfig) -> str:
    return f"{run_id}_space-{SPACE}_res-{config.resolution_mm}_desc-preproc_bold.nii.gz"


def bold_path_of(run: Run, config: SynthConfig) -> Path:
    """The run's BOLD file (HCP: the raw one)."""
    if run.name:
        return run.func_dir / f"{run.name}.nii.gz"
    return run.func_dir / _bold_name(run.run_id, config)


def sibling(path: Path, old: str, new: str) -> Path:
    """A file beside ``path`` whose name has ``old`` replaced by ``new``."""
    return path.with_name(path.name.replace(old, new))


def surface_truth_name(hemi: str) -> str:
    """File name of the true network maps at a hemisphere's vertices (``truth/``)."""
    if hemi not in sf.HEMISPHERES:
        raise ValueError(f"hemi must be one of {sf.HEMISPHERES}, got {hemi!r}")
    return f"networks_hemi-{hemi}_space-{sf.SURFACE_SPACE}.func.gii"


# --------------------------------------------------------------------------------------------
# The files of a run
# --------------------------------------------------------------------------------------------


def write_fmriprep_run(run: Run, model: RunModel, context: Context) -> dict[str, object]:
    """BOLD, mask, confounds and their sidecars (GIfTI and CIFTI with surfaces)."""
    config, grid, subject = context.config, context.grid, run.subject
    weights = model.weights(
        config, context.maps, subject.motion_weights, subject.physio_weights, grid.coords
    )
    bold = simulate_bold(model.rng, subject.baseline, model.design, weights, config.noise_sd)
    table, metadata = cf.confounds_table(bold, grid.compartment, model.motion, config.t_r)
    bold_path = bold_path_of(run, config)
    write_bold(bold_path, bold, grid, config.t_r)
    write_json(sibling(bold_path, ".nii.gz", ".json"), _bold_sidecar(config))
    mask_path = sibling(bold_path, "desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz")
    write_nifti(mask_path, grid.brain.astype(np.uint8), grid.affine)
    write_json(sibling(mask_path, ".nii.gz", ".json"), {"Type": "Brain"})
    confounds_path = run.func_dir / f"{run.run_id}_desc-confounds_timeseries.tsv"
    write_table(confounds_path, table)
    write_json(confounds_path.with_suffix(".json"), metadata)

    if context.surface is not None:
        surface = context.surface
        rng, baseline, surface_weights = surface_model(run, model, context)
        samples = simulate_bold(rng, baseline, model.design, surface_weights, config.noise_sd)
        for hemi in sf.HEMISPHERES:
            stem = f"{run.run_id}_hemi-{hemi}_space-{sf.SURFACE_SPACE}_bold"
            sf.write_func_gifti(
                run.func_dir / f"{stem}.func.gii",
                samples[:, surface.surface.hemisphere(hemi)],
                hemi,
            )
            write_json(run.func_dir / f"{stem}.json", _surface_sidecar(config))
        cifti_path = run.func_dir / f"{run.run_id}_{CIFTI_FMRIPREP}"
        surface.write_dtseries(cifti_path, samples, bold)
        write_json(
            sibling(cifti_path, ".dtseries.nii", ".json"),
            _cifti_sidecar(config, surface.grayordinates),
        )
    return {}


def write_hcp_run(run: Run, model: RunModel, context: Context) -> dict[str, object]:
    """The raw run, its cleaned version (motion and physiology removed) and the regressors.

    The cleaned data are made first (noise, networks, drifts), written, then the motion and
    physiological parts are added in place to make the raw data: one (T, V) array at a time.
    """
    config, grid, subject = context.config, context.grid, run.subject
    weights = model.weights(
        config, context.maps, subject.motion_weights, subject.physio_weights, grid.coords
    )
    signal, nuisance = signal_columns(config), nuisance_columns(config)
    bold_path = bold_path_of(run, config)
    clean_path = sibling(bold_path, ".nii.gz", "_hp2000_clean.nii.gz")
    bold = simulate_bold(
        model.rng, subject.baseline, model.design, weights, config.noise_sd, columns=signal
    )
    write_bold(clean_path, bold, grid, config.t_r)
    samples = None
    if context.surface is not None:
        rng, baseline, surface_weights = surface_model(run, model, context)
        samples = simulate_bold(
            rng, baseline, model.design, surface_weights, config.noise_sd, columns=signal
        )
        clean_cifti = sibling(bold_path, ".nii.gz", f"_{CIFTI_HCP}_hp2000_clean.dtseries.nii")
        context.surface.write_dtseries(clean_cifti, samples, bold)
        add_components(samples, baseline, model.design, surface_weights, nuisance)
    add_components(bold, subject.baseline, model.design, weights, nuisance)
    write_bold(bold_path, bold, grid, config.t_r)
    if context.surface is not None:
        cifti_path = sibling(bold_path, ".nii.gz", f"_{CIFTI_HCP}.dtseries.nii")
        context.surface.write_dtseries(cifti_path, samples, bold)
    (run.func_dir / hcp.MOVEMENT_FILE).write_text(
        hcp.movement_regressors(model.motion), encoding="utf-8"
    )
    return {"clean": clean_path.relative_to(run.root).as_posix()}


# --------------------------------------------------------------------------------------------
# Sidecars
# --------------------------------------------------------------------------------------------


def _bold_sidecar(config: SynthConfig) -> dict[str, object]:
    return {
        "RepetitionTime": config.t_r,
        "SkullStripped": False,
        "SliceTimingCorrected": False,
        "TaskName": config.task,
    }


def _surface_sidecar(config: SynthConfig) -> dict[str, object]:
    return {
        "RepetitionTime": config.t_r,
        "SliceTimingCorrected": False,
        "TaskName": config.task,
    }


def _cifti_sidecar(config: SynthConfig, grayordinates: sf.Grayordinates) -> dict[str, object]:
    counts = dict(grayordinates.structures)
    return {
        **_surface_sidecar(config),
        "Density": (
            f"{grayordinates.size} grayordinates (synthetic, not HCP's 91,282): "
            f"{counts['CORTEX_LEFT']} + {counts['CORTEX_RIGHT']} fsaverage5 vertices and "
            f"{sum(n for s, n in counts.items() if not s.startswith('CORTEX'))} subcortical "
            f"voxels of the {config.resolution_mm} mm grid"
        ),
        "SpatialReference": {
            "CIFTI_STRUCTURE_CORTEX_LEFT": f"nilearn {sf.SURFACE_SPACE} midthickness, left",
            "CIFTI_STRUCTURE_CORTEX_RIGHT": f"nilearn {sf.SURFACE_SPACE} midthickness, right",
            "VolumeReference": f"{SPACE} {config.resolution_mm} mm (nilearn brain mask)",
        },
    }


# --------------------------------------------------------------------------------------------
# Dataset-level files
# --------------------------------------------------------------------------------------------


def write_dataset_files(
    root: Path, config: SynthConfig, seed: int, subjects: Sequence[Subject]
) -> None:
    """``dataset_description.json``, ``participants.tsv`` and ``participants.json``."""
    write_json(root / "dataset_description.json", dataset_description(seed))
    participants = pd.DataFrame(
        {
            "participant_id": [s.label for s in subjects],
            "age": [s.age for s in subjects],
            "sex": [s.sex for s in subjects],
            "diagnosis": [s.diagnosis for s in subjects],
            "site": [s.site for s in subjects],
        }
    )
    write_table(root / "participants.tsv", participants)
    write_json(root / "participants.json", participants_sidecar(config))


def write_hcp_subject_files(
    root: Path, config: SynthConfig, grid: Grid, subjects: Sequence[Subject]
) -> None:
    """``unrestricted_behavioral.csv`` (sorted by Subject) and each subject's brain mask."""
    rows = sorted(subjects, key=lambda s: s.label)
    table = pd.DataFrame(
        {
            "Subject": [s.label for s in rows],
            "Gender": [s.sex for s in rows],
            "Age": [hcp.age_band(s.age) for s in rows],
            "diagnosis": [s.diagnosis for s in rows],
            "site": [s.site for s in rows],
        }
    )
    write_table(root / hcp.BEHAVIORAL_FILE, table, sep=",")
    mask = grid.brain.astype(np.float32)  # FSL writes its masks as float
    for subject in subjects:
        folder = root / subject.label / "MNINonLinear"
        folder.mkdir(parents=True, exist_ok=True)
        write_nifti(folder / f"brainmask_fs.{config.resolution_mm}.nii.gz", mask, grid.affine)
