"""Synthetic fMRIPrep or HCP derivatives with known ground truth.

``generate(out, size="tiny", seed=0)`` writes a dataset laid out and named as fMRIPrep 23/24
writes its outputs (MNI152NLin2009cAsym space); ``layout="hcp"`` writes the same runs as the
HCP S1200 minimally preprocessed release lays them out (raw and "ICA-FIX cleaned" BOLD,
Movement_Regressors.txt, brainmask_fs); ``surfaces=True`` adds the model sampled at the
fsaverage5 vertices (GIfTI per hemisphere for fMRIPrep) and a CIFTI-2 dense time series. A
``truth/`` folder holds what made it: network maps and time courses, per-subject coupling,
the group effect. The generative model is described in ``_readme`` (written to
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
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from nibabel import cifti2

from nishard._version import __version__
from nishard.datasets import confounds as cf
from nishard.datasets import hcp
from nishard.datasets import networks as nw
from nishard.datasets import surface as sf
from nishard.datasets.grid import CSF, GM, WM, Grid, SmoothField, load_grid
from nishard.datasets.writers import (
    write_bold,
    write_json,
    write_nifti,
    write_table,
)
from nishard.errors import NishardError

#: The ``GeneratedBy`` name of the datasets this module writes.
_GENERATOR = "nishard synth"

SPACE = "MNI152NLin2009cAsym"
LAYOUTS = ("fmriprep", "hcp")
DIAGNOSES = ("control", "patient")
SITES = ("siteA", "siteB", "siteC")
# Site mix differs by diagnosis, as it does in multi-site studies: a site effect is then
# partly confounded with diagnosis, which a harmonization step has to face.
_SITE_PROBABILITIES = {"control": (0.5, 0.3, 0.2), "patient": (0.2, 0.3, 0.5)}
# Relative EPI intensity of the tissues: CSF is bright and white matter dark on T2*.
_TISSUE_INTENSITY = {WM: 0.85, CSF: 1.3}
# Relative weight of physiological noise: largest in CSF and white matter, which is what
# makes aCompCor work (a few components there explain half of the variance, as in real data).
_PHYSIO_WEIGHT = {GM: 0.25, WM: 1.0, CSF: 1.5}
# Slow physiological sources and their relative amplitudes: several sources with distinct
# spatial patterns spread the structured variance over a few components, as in real data.
PHYSIO_SCALES = (1.0, 0.8, 0.6, 0.5, 0.4)
PHYSIO_NAMES = tuple(f"physio{q:02d}" for q in range(len(PHYSIO_SCALES)))
# Motion effect reference: a displacement of this size (mm; rotations as arc length on a 50 mm
# sphere) changes edge voxels by ``motion_amplitude``.
_MOTION_REFERENCE_MM = 0.2
# Motion artefacts decay with depth from the brain's edge with this length constant (mm).
_EDGE_LENGTH_MM = 15.0
_TIME_CHUNK = 64  # frames assembled at once: bounds the temporaries for 2 mm, 1200-frame runs
_SURFACE_STREAM = 1  # spawn key of the surface noise streams
_CIFTI_FMRIPREP = "space-fsLR_den-91k_bold.dtseries.nii"
_CIFTI_HCP = "Atlas_MSMAll"


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic dataset.

    Amplitudes are fractions of the local baseline intensity ``B(v)`` (about ``baseline``):
    ``network_amplitude`` at a network's peak per unit of its time course, ``motion_amplitude``
    at the brain edge per 0.2 mm of displacement, ``drift_amplitude`` per unit of each Legendre
    polynomial, ``physio_amplitude`` per unit of the first (unit-variance) slow physiological
    source in white matter (1.5 times that in CSF, a quarter in grey matter), ``noise_sd`` the
    standard deviation of the white noise.
    """

    n_subjects: int
    n_sessions: int  # 0: no ses- level
    n_runs: int
    n_timepoints: int
    resolution_mm: int
    t_r: float
    task: str = "rest"
    baseline: float = 1000.0
    network_amplitude: float = 0.02
    motion_amplitude: float = 0.01
    drift_amplitude: float = 0.02
    noise_sd: float = 0.01
    physio_amplitude: float = 0.01
    drift_order: int = 2
    network_sigma_mm: float = 15.0
    band_hz: tuple[float, float] = nw.RESTING_BAND_HZ
    coupled_networks: tuple[str, str] = ("default_mode", "frontoparietal_left")
    coupling_control: float = 0.2
    coupling_patient: float = 0.6
    coupling_jitter: float = 0.05
    spikes_per_minute: float = 1.0
    networks: tuple[nw.NetworkSpec, ...] = field(default=nw.DEFAULT_NETWORKS, repr=False)

    def __post_init__(self) -> None:
        checks = {
            "n_subjects": self.n_subjects >= 1,
            "n_sessions": self.n_sessions >= 0,
            "n_runs": self.n_runs >= 1,
            "n_timepoints": self.n_timepoints >= 10,
            "t_r": self.t_r > 0,
            "drift_order": self.drift_order >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"invalid SynthConfig: {values}")
        names = [spec.name for spec in self.networks]
        missing = [name for name in self.coupled_networks if name not in names]
        if missing or self.coupled_networks[0] == self.coupled_networks[1]:
            raise ValueError(
                f"coupled_networks must be two distinct names among {names}, "
                f"got {self.coupled_networks}"
            )

    @property
    def network_names(self) -> tuple[str, ...]:
        """Names of the networks, in the order of ``truth/networks.nii.gz``."""
        return tuple(spec.name for spec in self.networks)


SIZES: dict[str, SynthConfig] = {
    # Tests: a few seconds, 12 runs of 4 minutes on an 8 mm grid (3,666 brain voxels). Not
    # shorter: 2 minutes hold only 11 frequencies of the 0.01-0.1 Hz band, too few to recover
    # every network map from a single run at these amplitudes.
    "tiny": SynthConfig(
        n_subjects=6, n_sessions=2, n_runs=1, n_timepoints=120, resolution_mm=8, t_r=2.0
    ),
    # Examples and the tutorial: 48 runs of 120 frames on the 4 mm grid (29,398 brain voxels).
    # Nodes of 10 mm: with 15 mm ones the default-mode map overlaps its neighbours so much
    # that CanICA splits it (|r| 0.4-0.7 with 10 maps, against 0.92 or more for every
    # network with 10 mm nodes). A clear group effect (coupling 0 against 0.8, measured
    # -0.06 against 0.52 after denoising; 0.2 against 0.6 measures 0.07 against 0.28, sd
    # 0.17), so that the demo's classifier, trained on 34 runs, finds it.
    "demo": SynthConfig(
        n_subjects=24,
        n_sessions=0,
        n_runs=2,
        n_timepoints=120,
        resolution_mm=4,
        t_r=2.0,
        network_sigma_mm=10.0,
        coupling_control=0.0,
        coupling_patient=0.8,
    ),
    # Benchmarks, HCP-like: 1200 frames at TR 0.72 s on the 2 mm grid (5.3 GB per run raw).
    "large": SynthConfig(
        n_subjects=8, n_sessions=0, n_runs=1, n_timepoints=1200, resolution_mm=2, t_r=0.72
    ),
}


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
            _sibling(p, "desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz")
            for p in self.bold_paths
        )

    @property
    def confounds_paths(self) -> tuple[Path, ...]:
        """Confounds TSV of each run (fMRIPrep layout only)."""
        self._require("fmriprep", "confounds_paths")
        return tuple(
            p.parent / f"{rid}_desc-confounds_timeseries.tsv"
            for rid, p in zip(self.run_ids, self.bold_paths, strict=True)
        )

    @property
    def clean_paths(self) -> tuple[Path, ...]:
        """The ``_hp2000_clean.nii.gz`` BOLD of each run (HCP layout only)."""
        self._require("hcp", "clean_paths")
        return tuple(_sibling(p, ".nii.gz", "_hp2000_clean.nii.gz") for p in self.bold_paths)

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
        return tuple(
            p.parent / f"{rid}_hemi-{hemi}_space-{sf.SURFACE_SPACE}_bold.func.gii"
            for rid, p in zip(self.run_ids, self.bold_paths, strict=True)
        )

    @property
    def cifti_paths(self) -> tuple[Path, ...]:
        """CIFTI-2 dense time series of each run (HCP: the raw ``_Atlas_MSMAll`` one)."""
        self._require_surfaces()
        if self.layout == "hcp":
            return tuple(
                _sibling(p, ".nii.gz", f"_{_CIFTI_HCP}.dtseries.nii") for p in self.bold_paths
            )
        return tuple(
            p.parent / f"{rid}_{_CIFTI_FMRIPREP}"
            for rid, p in zip(self.run_ids, self.bold_paths, strict=True)
        )

    @property
    def clean_cifti_paths(self) -> tuple[Path, ...]:
        """The ``_Atlas_MSMAll_hp2000_clean.dtseries.nii`` of each run (HCP layout only)."""
        self._require("hcp", "clean_cifti_paths")
        self._require_surfaces()
        suffix = f"_{_CIFTI_HCP}_hp2000_clean.dtseries.nii"
        return tuple(_sibling(p, ".nii.gz", suffix) for p in self.bold_paths)

    def timecourses_path(self, run_id: str) -> Path:
        """True network time courses of a run."""
        return self.truth_dir / "timecourses" / f"{run_id}_timecourses.tsv"

    def surface_truth_path(self, hemi: str) -> Path:
        """True network maps at the fsaverage5 vertices of a hemisphere (GIfTI)."""
        self._require_surfaces()
        return self.truth_dir / _surface_truth_name(hemi)

    def _require(self, layout: str, what: str) -> None:
        if self.layout != layout:
            raise ValueError(f"{what} exist in the {layout} layout only, not in {self.layout}")

    def _require_surfaces(self) -> None:
        if not self.surfaces:
            raise ValueError("this dataset was generated without surfaces=True")


@dataclass(frozen=True, eq=False)
class _SubjectFields:
    """The random spatial fields of a subject, evaluable at any point (voxels, vertices)."""

    baseline: SmoothField
    motion: tuple[SmoothField, ...]
    physio: tuple[SmoothField, ...]


@dataclass(frozen=True)
class _Subject:
    number: int
    label: str
    diagnosis: str
    age: float
    sex: str
    site: str
    coupling: float
    fields: _SubjectFields
    baseline: np.ndarray  # (V,) float32
    motion_weights: np.ndarray  # (6, V) float32, fraction of baseline per reference motion
    physio_weights: np.ndarray  # (Q, V) float32, fraction of baseline per unit signal


@dataclass(frozen=True)
class _Run:
    root: Path
    run_id: str
    func_dir: Path
    subject: _Subject
    session: int
    run: int
    name: str = ""  # HCP run name, e.g. rfMRI_REST1_LR


@dataclass(frozen=True, eq=False)
class _SurfaceContext:
    surface: sf.Surface
    edge_distance: np.ndarray  # (N,) depth (mm) of the in-brain voxel nearest to each vertex
    maps: np.ndarray  # (K, N) float32, the network maps at the vertices
    grayordinates: sf.Grayordinates
    header: cifti2.Cifti2Header  # of the dense time series (same for every run)

    def write_dtseries(self, path: Path, samples: np.ndarray, bold: np.ndarray) -> None:
        """A CIFTI file of surface samples (T, N) and volume BOLD (T, V)."""
        sf.write_dtseries(path, self.header, self.grayordinates, samples, bold)


@dataclass(frozen=True, eq=False)
class _Context:
    config: SynthConfig
    grid: Grid
    maps: np.ndarray
    seed: int
    layout: str
    surface: _SurfaceContext | None


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


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
    config = _resolve_config(size, subjects, sessions, runs, timepoints)
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
        labels = [_subject_label(n, config) for n in numbers]
    subjects_ = [
        _draw_subject(config, grid, seed, n, label)
        for n, label in zip(numbers, labels, strict=True)
    ]
    context = _Context(
        config=config,
        grid=grid,
        maps=maps,
        seed=seed,
        layout=layout,
        surface=_surface_context(config, grid) if surfaces else None,
    )

    if layout == "hcp":
        _write_hcp_subject_files(root, config, grid, subjects_)
    else:
        _write_dataset_files(root, config, seed, subjects_)
    _write_truth(root / "truth", context, subjects_)
    runs_ = [run for subject in subjects_ for run in _runs_of(root, config, subject, layout)]
    rows = [_generate_run(run, context) for run in runs_]
    _write_tsv(root / "truth" / "runs.tsv", pd.DataFrame(rows))
    return SynthDataset(
        root=root,
        config=config,
        seed=seed,
        run_ids=tuple(run.run_id for run in runs_),
        bold_paths=tuple(_bold_path(run, config) for run in runs_),
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
        if made_by == _GENERATOR:
            return True
    return False


def _fresh_root(root: Path) -> Path:
    """An empty output folder; an earlier synthetic dataset there is removed first."""
    if root.is_dir() and any(root.iterdir()):
        if not _is_synthetic(root):
            raise NishardError(
                f"{root} is not empty and holds no earlier synthetic dataset "
                f"(no dataset_description.json or truth/generator.json generated by "
                f"{_GENERATOR!r}); choose an empty folder"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _resolve_config(
    size: str | SynthConfig,
    subjects: int | None,
    sessions: int | None,
    runs: int | None,
    timepoints: int | None,
) -> SynthConfig:
    if isinstance(size, SynthConfig):
        config = size
    elif size in SIZES:
        config = SIZES[size]
    else:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)} or a SynthConfig")
    overrides = {
        "n_subjects": subjects,
        "n_sessions": sessions,
        "n_runs": runs,
        "n_timepoints": timepoints,
    }
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _surface_context(config: SynthConfig, grid: Grid) -> _SurfaceContext:
    surface = sf.load_fsaverage5()
    nearest = sf.nearest_voxels(grid, surface.coords)
    maps = nw.network_maps(
        surface.coords, config.networks, config.network_sigma_mm, reference=grid.coords
    )
    grayordinates = sf.grayordinates(grid, surface)
    return _SurfaceContext(
        surface=surface,
        edge_distance=grid.edge_distance[nearest],
        maps=maps,
        grayordinates=grayordinates,
        header=sf.dtseries_header(grayordinates, config.n_timepoints, config.t_r),
    )


# --------------------------------------------------------------------------------------------
# Subjects and runs
# --------------------------------------------------------------------------------------------


def diagnosis_of(number: int) -> str:
    """Diagnosis of subject ``number`` (1-based): a fixed pattern, independent of the seed.

    Every second subject is a patient except every 24th pair, so groups are balanced but not
    equal (24 subjects: 13 controls, 11 patients; 6 subjects: 4 and 2) and adding subjects
    never changes existing ones.

    Parameters
    ----------
    number : int

    Returns
    -------
    str
        ``"control"`` or ``"patient"``.
    """
    index = number - 1
    return "patient" if index % 2 == 1 and index % 24 != 5 else "control"


def _subject_label(number: int, config: SynthConfig) -> str:
    width = max(2, len(str(config.n_subjects)))
    return f"sub-{number:0{width}d}"


def _spatial_weights(
    fields: _SubjectFields,
    config: SynthConfig,
    coords: np.ndarray,
    tissue: np.ndarray,
    physio_tissue: np.ndarray,
    edge_distance: np.ndarray,
    resolution_mm: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline, motion and physiological weights of a subject at points (voxels, vertices)."""
    baseline = config.baseline * tissue * (1.0 + 0.08 * fields.baseline(coords))
    edge = np.exp(-(edge_distance - resolution_mm) / _EDGE_LENGTH_MM)
    weights = np.stack([f(coords) for f in fields.motion])
    motion_weights = config.motion_amplitude * edge * weights
    physio_weights = np.stack(
        [
            config.physio_amplitude * scale * physio_tissue * (0.3 + f(coords))
            for scale, f in zip(PHYSIO_SCALES, fields.physio, strict=True)
        ]
    )
    return (
        baseline.astype(np.float32),
        motion_weights.astype(np.float32),
        physio_weights.astype(np.float32),
    )


def _draw_subject(config: SynthConfig, grid: Grid, seed: int, number: int, label: str) -> _Subject:
    rng = np.random.default_rng([seed, number])
    diagnosis = diagnosis_of(number)
    age = round(float(rng.uniform(18.0, 70.0)), 1)
    sex = str(rng.choice(["F", "M"]))
    site = SITES[int(rng.choice(len(SITES), p=_SITE_PROBABILITIES[diagnosis]))]
    mean = config.coupling_patient if diagnosis == "patient" else config.coupling_control
    coupling = float(np.clip(mean + rng.normal(0.0, config.coupling_jitter), -0.95, 0.95))
    fields = _SubjectFields(
        baseline=SmoothField.draw(rng, grid.coords),
        motion=tuple(SmoothField.draw(rng, grid.coords) for _ in range(6)),
        physio=tuple(SmoothField.draw(rng, grid.coords) for _ in PHYSIO_SCALES),
    )
    tissue = np.ones(grid.n_voxels)
    for tissue_label, factor in _TISSUE_INTENSITY.items():
        tissue[grid.compartment == tissue_label] = factor
    physio_tissue = np.zeros(grid.n_voxels)
    for tissue_label, factor in _PHYSIO_WEIGHT.items():
        physio_tissue[grid.compartment == tissue_label] = factor
    baseline, motion_weights, physio_weights = _spatial_weights(
        fields,
        config,
        grid.coords,
        tissue,
        physio_tissue,
        grid.edge_distance,
        grid.resolution_mm,
    )
    return _Subject(
        number=number,
        label=label,
        diagnosis=diagnosis,
        age=age,
        sex=sex,
        site=site,
        coupling=round(coupling, 6),
        fields=fields,
        baseline=baseline,
        motion_weights=motion_weights,
        physio_weights=physio_weights,
    )


def _runs_of(root: Path, config: SynthConfig, subject: _Subject, layout: str) -> Iterable[_Run]:
    sessions = range(1, config.n_sessions + 1) if config.n_sessions else [0]
    for session in sessions:
        if layout == "hcp":
            for run in range(1, config.n_runs + 1):
                name = hcp.run_name(config.task, session, run)
                func_dir = root / subject.label / "MNINonLinear" / "Results" / name
                yield _Run(root, f"{subject.label}_{name}", func_dir, subject, session, run, name)
            continue
        ses = f"ses-{session:02d}" if session else ""
        func_dir = root / subject.label / ses / "func" if ses else root / subject.label / "func"
        for run in range(1, config.n_runs + 1):
            parts = [subject.label, ses, f"task-{config.task}", f"run-{run}"]
            run_id = "_".join(p for p in parts if p)
            yield _Run(root, run_id, func_dir, subject, session, run)


def _bold_name(run_id: str, config: SynthConfig) -> str:
    return f"{run_id}_space-{SPACE}_res-{config.resolution_mm}_desc-preproc_bold.nii.gz"


def _bold_path(run: _Run, config: SynthConfig) -> Path:
    if run.name:
        return run.func_dir / f"{run.name}.nii.gz"
    return run.func_dir / _bold_name(run.run_id, config)


def _sibling(path: Path, old: str, new: str) -> Path:
    return path.with_name(path.name.replace(old, new))


def _surface_truth_name(hemi: str) -> str:
    if hemi not in sf.HEMISPHERES:
        raise ValueError(f"hemi must be one of {sf.HEMISPHERES}, got {hemi!r}")
    return f"networks_hemi-{hemi}_space-{sf.SURFACE_SPACE}.func.gii"


# --------------------------------------------------------------------------------------------
# The generative model of one run
# --------------------------------------------------------------------------------------------


def legendre_drifts(n_timepoints: int, order: int) -> np.ndarray:
    """Legendre polynomials of degree 1..order on the run, time mapped to [-1, 1].

    Parameters
    ----------
    n_timepoints : int
    order : int

    Returns
    -------
    numpy.ndarray
        Shape (T, order).
    """
    x = np.linspace(-1.0, 1.0, n_timepoints)
    out = np.empty((n_timepoints, order))
    for p in range(1, order + 1):
        out[:, p - 1] = np.polynomial.legendre.Legendre.basis(p)(x)
    return out


def n_spikes(config: SynthConfig) -> int:
    """Number of motion spikes per run (``spikes_per_minute`` times the run length)."""
    if config.spikes_per_minute <= 0:
        return 0
    minutes = config.n_timepoints * config.t_r / 60.0
    return max(1, round(config.spikes_per_minute * minutes))


def physio_signals(rng: np.random.Generator, n_timepoints: int, t_r: float) -> np.ndarray:
    """Low-frequency physiological fluctuations, unit variance.

    Slow changes of breathing depth and heart rate, vasomotion (Birn 2006, Chang 2009) reach
    the BOLD signal below 0.1 Hz, mostly in CSF, white matter and large vessels: band-limited
    Gaussian signals in 0.01-0.1 Hz. Being slow, they add variance without inflating DVARS.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_timepoints : int
    t_r : float
        Repetition time (s).

    Returns
    -------
    numpy.ndarray
        Shape (T, len(PHYSIO_NAMES)).
    """
    return nw.band_limited(rng, n_timepoints, t_r, len(PHYSIO_NAMES), nw.RESTING_BAND_HZ)


def simulate_bold(
    rng: np.random.Generator,
    baseline: np.ndarray,
    design: np.ndarray,
    weights: np.ndarray,
    noise_sd: float,
    columns: np.ndarray | None = None,
) -> np.ndarray:
    """``Y = B * (1 + design @ weights + noise_sd * e)`` with white Gaussian ``e``, float32.

    Built in place, a block of frames at a time, so that the only large array is the result.

    Parameters
    ----------
    rng : numpy.random.Generator
    baseline : numpy.ndarray
        B, shape (V,).
    design : numpy.ndarray
        Time courses, shape (T, P).
    weights : numpy.ndarray
        Their spatial weights as fractions of B, shape (P, V).
    noise_sd : float
        Noise standard deviation as a fraction of B.
    columns : numpy.ndarray, optional
        Use only these columns of ``design`` (rows of ``weights``); ``add_components`` adds
        the others later.

    Returns
    -------
    numpy.ndarray
        float32, shape (T, V).
    """
    n_timepoints = design.shape[0]
    bold = np.empty((n_timepoints, baseline.size), dtype=np.float32)
    rng.standard_normal(out=bold, dtype=np.float32)
    bold *= np.float32(noise_sd)
    design32 = design.astype(np.float32)
    weights32 = weights.astype(np.float32)
    if columns is not None:
        design32, weights32 = design32[:, columns], weights32[columns]
    for start in range(0, n_timepoints, _TIME_CHUNK):
        rows = slice(start, start + _TIME_CHUNK)
        bold[rows] += design32[rows] @ weights32
    bold += np.float32(1.0)
    bold *= baseline.astype(np.float32)
    return bold


def add_components(
    bold: np.ndarray,
    baseline: np.ndarray,
    design: np.ndarray,
    weights: np.ndarray,
    columns: np.ndarray,
) -> None:
    """Add ``B * design[:, columns] @ weights[columns]`` to ``bold`` in place.

    Parameters
    ----------
    bold : numpy.ndarray
        float32, shape (T, V).
    baseline, design, weights, columns
        As for ``simulate_bold``.
    """
    design32 = design.astype(np.float32)[:, columns]
    weights32 = weights.astype(np.float32)[columns]
    baseline32 = baseline.astype(np.float32)
    for start in range(0, bold.shape[0], _TIME_CHUNK):
        rows = slice(start, start + _TIME_CHUNK)
        bold[rows] += (design32[rows] @ weights32) * baseline32


def nuisance_columns(config: SynthConfig) -> np.ndarray:
    """Columns of the run design that ICA-FIX cleaning removes: motion and physiology.

    The design is [network time courses (K), motion (6), Legendre drifts, physio (Q)].

    Parameters
    ----------
    config : SynthConfig

    Returns
    -------
    numpy.ndarray
        int64 column indices.
    """
    k = len(config.networks)
    drifts_end = k + 6 + config.drift_order
    return np.r_[k : k + 6, drifts_end : drifts_end + len(PHYSIO_NAMES)].astype(np.int64)


def _signal_columns(config: SynthConfig) -> np.ndarray:
    n_columns = len(config.networks) + 6 + config.drift_order + len(PHYSIO_NAMES)
    return np.setdiff1d(np.arange(n_columns), nuisance_columns(config))


@dataclass(frozen=True, eq=False)
class _RunModel:
    rng: np.random.Generator  # the run's stream, positioned at the noise draw
    timecourses: np.ndarray  # (T, K)
    physio: np.ndarray  # (T, Q)
    motion: np.ndarray  # (T, 6) mm and radians
    spikes: np.ndarray  # frame indices
    drift_coefficients: tuple[float, ...]
    drift_fields: tuple[SmoothField, ...]
    design: np.ndarray  # (T, K + 6 + drift order + Q)

    def weights(
        self,
        config: SynthConfig,
        maps: np.ndarray,
        motion_weights: np.ndarray,
        physio_weights: np.ndarray,
        coords: np.ndarray,
    ) -> np.ndarray:
        """Spatial weights of the design columns at points ``coords``, shape (P, N)."""
        # Drift: a global part common to the brain plus smooth spatial variation around it.
        drift_maps = np.zeros((config.drift_order, coords.shape[0]))
        for p, (coefficient, field_) in enumerate(
            zip(self.drift_coefficients, self.drift_fields, strict=True)
        ):
            drift_maps[p] = coefficient + 0.5 * field_(coords)
        return np.concatenate(
            [
                config.network_amplitude * maps,
                motion_weights,
                config.drift_amplitude * drift_maps,
                physio_weights,
            ]
        )


def _run_model(run: _Run, config: SynthConfig, grid: Grid, seed: int) -> _RunModel:
    subject = run.subject
    rng = np.random.default_rng([seed, subject.number, run.session, run.run])
    n_time = config.n_timepoints
    names = config.network_names
    pair = (names.index(config.coupled_networks[0]), names.index(config.coupled_networks[1]))
    timecourses = nw.network_timecourses(
        rng, n_time, config.t_r, len(names), pair, subject.coupling, config.band_hz
    )
    motion, spikes = cf.motion_parameters(rng, n_time, n_spikes(config))
    coefficients, fields = [], []
    for _ in range(config.drift_order):
        coefficients.append(rng.standard_normal())
        fields.append(SmoothField.draw(rng, grid.coords))
    physio = physio_signals(rng, n_time, config.t_r)
    motion_mm = np.column_stack([motion[:, :3], motion[:, 3:] * cf.HEAD_RADIUS_MM])
    design = np.column_stack(
        [
            timecourses,
            motion_mm / _MOTION_REFERENCE_MM,
            legendre_drifts(n_time, config.drift_order),
            physio,
        ]
    )
    return _RunModel(
        rng=rng,
        timecourses=timecourses,
        physio=physio,
        motion=motion,
        spikes=spikes,
        drift_coefficients=tuple(coefficients),
        drift_fields=tuple(fields),
        design=design,
    )


def _surface_model(
    run: _Run, model: _RunModel, context: _Context
) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """Noise stream, baseline (N,) and weights (P, N) of a run at the surface vertices.

    The same model as in the volume, evaluated at the vertices: grey-matter tissue factors,
    the subject's and run's smooth fields at the vertex coordinates, the motion edge factor
    of the nearest voxel, the network maps as functions of position.
    """
    surface = context.surface
    assert surface is not None
    config = context.config
    n = surface.surface.n_vertices
    baseline, motion_weights, physio_weights = _spatial_weights(
        run.subject.fields,
        config,
        surface.surface.coords,
        np.ones(n),
        np.full(n, _PHYSIO_WEIGHT[GM]),
        surface.edge_distance,
        context.grid.resolution_mm,
    )
    weights = model.weights(
        config, surface.maps, motion_weights, physio_weights, surface.surface.coords
    )
    entropy = [context.seed, run.subject.number, run.session, run.run]
    sequence = np.random.SeedSequence(entropy, spawn_key=(_SURFACE_STREAM,))
    return np.random.default_rng(sequence), baseline, weights


def _generate_run(run: _Run, context: _Context) -> dict[str, object]:
    """Simulate one run, write its files and return its row of ``truth/runs.tsv``."""
    config = context.config
    model = _run_model(run, config, context.grid, context.seed)
    run.func_dir.mkdir(parents=True, exist_ok=True)
    if context.layout == "hcp":
        extra = _write_hcp_run(run, model, context)
    else:
        extra = _write_fmriprep_run(run, model, context)

    truth = run.root / "truth" / "timecourses"
    truth.mkdir(parents=True, exist_ok=True)
    names = list(config.network_names)
    _write_tsv(
        truth / f"{run.run_id}_timecourses.tsv", pd.DataFrame(model.timecourses, columns=names)
    )
    _write_tsv(
        truth / f"{run.run_id}_physio.tsv", pd.DataFrame(model.physio, columns=list(PHYSIO_NAMES))
    )
    pair = [names.index(n) for n in config.coupled_networks]
    realized = np.corrcoef(model.timecourses[:, pair].T)[0, 1]
    if context.layout == "hcp":
        session, run_label = run.name.split("_")[1], hcp.DIRECTIONS[run.run - 1]
    else:
        session, run_label = (f"ses-{run.session:02d}" if run.session else "n/a"), run.run
    return {
        "run_id": run.run_id,
        "participant_id": run.subject.label,
        "session": session,
        "run": run_label,
        "bold": _bold_path(run, config).relative_to(run.root).as_posix(),
        **extra,
        "coupling": round(float(realized), 6),
        "spike_frames": ";".join(str(int(f)) for f in model.spikes) or "n/a",
    }


def _write_fmriprep_run(run: _Run, model: _RunModel, context: _Context) -> dict[str, object]:
    config, grid, subject = context.config, context.grid, run.subject
    weights = model.weights(
        config, context.maps, subject.motion_weights, subject.physio_weights, grid.coords
    )
    bold = simulate_bold(model.rng, subject.baseline, model.design, weights, config.noise_sd)
    table, metadata = cf.confounds_table(bold, grid.compartment, model.motion, config.t_r)
    bold_path = _bold_path(run, config)
    write_bold(bold_path, bold, grid, config.t_r)
    write_json(_sibling(bold_path, ".nii.gz", ".json"), _bold_sidecar(config))
    mask_path = _sibling(bold_path, "desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz")
    write_nifti(mask_path, grid.brain.astype(np.uint8), grid.affine)
    write_json(_sibling(mask_path, ".nii.gz", ".json"), {"Type": "Brain"})
    confounds_path = run.func_dir / f"{run.run_id}_desc-confounds_timeseries.tsv"
    _write_tsv(confounds_path, table)
    write_json(confounds_path.with_suffix(".json"), metadata)

    if context.surface is not None:
        surface = context.surface
        rng, baseline, surface_weights = _surface_model(run, model, context)
        samples = simulate_bold(rng, baseline, model.design, surface_weights, config.noise_sd)
        for hemi in sf.HEMISPHERES:
            stem = f"{run.run_id}_hemi-{hemi}_space-{sf.SURFACE_SPACE}_bold"
            sf.write_func_gifti(
                run.func_dir / f"{stem}.func.gii",
                samples[:, surface.surface.hemisphere(hemi)],
                hemi,
            )
            write_json(run.func_dir / f"{stem}.json", _surface_sidecar(config))
        cifti_path = run.func_dir / f"{run.run_id}_{_CIFTI_FMRIPREP}"
        surface.write_dtseries(cifti_path, samples, bold)
        write_json(
            _sibling(cifti_path, ".dtseries.nii", ".json"),
            _cifti_sidecar(config, surface.grayordinates),
        )
    return {}


def _write_hcp_run(run: _Run, model: _RunModel, context: _Context) -> dict[str, object]:
    """The raw run, its cleaned version (motion and physiology removed) and the regressors.

    The cleaned data are made first (noise, networks, drifts), written, then the motion and
    physiological parts are added in place to make the raw data: one (T, V) array at a time.
    """
    config, grid, subject = context.config, context.grid, run.subject
    weights = model.weights(
        config, context.maps, subject.motion_weights, subject.physio_weights, grid.coords
    )
    signal, nuisance = _signal_columns(config), nuisance_columns(config)
    bold_path = _bold_path(run, config)
    clean_path = _sibling(bold_path, ".nii.gz", "_hp2000_clean.nii.gz")
    bold = simulate_bold(
        model.rng, subject.baseline, model.design, weights, config.noise_sd, columns=signal
    )
    write_bold(clean_path, bold, grid, config.t_r)
    samples = None
    if context.surface is not None:
        rng, baseline, surface_weights = _surface_model(run, model, context)
        samples = simulate_bold(
            rng, baseline, model.design, surface_weights, config.noise_sd, columns=signal
        )
        clean_cifti = _sibling(bold_path, ".nii.gz", f"_{_CIFTI_HCP}_hp2000_clean.dtseries.nii")
        context.surface.write_dtseries(clean_cifti, samples, bold)
        add_components(samples, baseline, model.design, surface_weights, nuisance)
    add_components(bold, subject.baseline, model.design, weights, nuisance)
    write_bold(bold_path, bold, grid, config.t_r)
    if context.surface is not None:
        cifti_path = _sibling(bold_path, ".nii.gz", f"_{_CIFTI_HCP}.dtseries.nii")
        context.surface.write_dtseries(cifti_path, samples, bold)
    (run.func_dir / hcp.MOVEMENT_FILE).write_text(
        hcp.movement_regressors(model.motion), encoding="utf-8"
    )
    return {"clean": clean_path.relative_to(run.root).as_posix()}


# --------------------------------------------------------------------------------------------
# Dataset-level files
# --------------------------------------------------------------------------------------------


def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    write_table(path, table)


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


def _write_dataset_files(
    root: Path, config: SynthConfig, seed: int, subjects: Sequence[_Subject]
) -> None:
    write_json(
        root / "dataset_description.json",
        {
            "BIDSVersion": "1.8.0",
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": _GENERATOR,
                    "Version": __version__,
                    "Description": "Synthetic fMRIPrep-style derivatives with known ground truth "
                    f"(seed {seed}); see truth/README.md.",
                }
            ],
            "Name": "nishard synthetic resting-state dataset",
        },
    )
    participants = pd.DataFrame(
        {
            "participant_id": [s.label for s in subjects],
            "age": [s.age for s in subjects],
            "sex": [s.sex for s in subjects],
            "diagnosis": [s.diagnosis for s in subjects],
            "site": [s.site for s in subjects],
        }
    )
    _write_tsv(root / "participants.tsv", participants)
    write_json(
        root / "participants.json",
        {
            "participant_id": {"Description": "Unique participant identifier"},
            "age": {"Description": "Age of the participant at the first scan", "Units": "year"},
            "sex": {
                "Description": "Sex of the participant",
                "Levels": {"F": "female", "M": "male"},
            },
            "diagnosis": {
                "Description": "Diagnostic group",
                "Levels": {
                    "control": "healthy control",
                    "patient": "patient (stronger "
                    f"{config.coupled_networks[0]}-{config.coupled_networks[1]} coupling)",
                },
            },
            "site": {
                "Description": "Acquisition site",
                "Levels": {s: f"site {s[-1]}" for s in SITES},
            },
        },
    )


def _write_hcp_subject_files(
    root: Path, config: SynthConfig, grid: Grid, subjects: Sequence[_Subject]
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


def _write_truth(truth: Path, context: _Context, subjects: Sequence[_Subject]) -> None:
    config, grid, maps = context.config, context.grid, context.maps
    truth.mkdir(parents=True, exist_ok=True)
    write_json(
        truth / "generator.json",
        {
            "GeneratedBy": [{"Name": _GENERATOR, "Version": __version__}],
            "layout": context.layout,
            "seed": context.seed,
            "surfaces": context.surface is not None,
        },
    )
    _write_tsv(
        truth / "subjects.tsv",
        pd.DataFrame(
            {
                "participant_id": [s.label for s in subjects],
                "diagnosis": [s.diagnosis for s in subjects],
                "coupling": [s.coupling for s in subjects],
            }
        ),
    )
    write_json(
        truth / "effect.json",
        {
            "coupled_networks": list(config.coupled_networks),
            "measure": "Pearson correlation between the two networks' true time courses; every "
            "run of a subject has exactly the subject's coupling",
            "coupling_mean": {
                "control": config.coupling_control,
                "patient": config.coupling_patient,
            },
            "coupling_jitter_sd": config.coupling_jitter,
            "coupling_observed_mean": {
                d: round(float(np.mean([s.coupling for s in subjects if s.diagnosis == d])), 6)
                for d in DIAGNOSES
                if any(s.diagnosis == d for s in subjects)
            },
            "seed": context.seed,
        },
    )
    (truth / "README.md").write_text(
        _readme(config, context.layout, context.surface), encoding="utf-8"
    )
    write_nifti(truth / "networks.nii.gz", grid.to_volume(maps), grid.affine)
    peaks = nw.map_peaks(maps, grid.coords)
    _write_tsv(
        truth / "networks.tsv",
        pd.DataFrame(
            {
                "index": range(len(config.networks)),
                "name": [spec.name for spec in config.networks],
                "description": [spec.description for spec in config.networks],
                "peak_x": peaks[:, 0],
                "peak_y": peaks[:, 1],
                "peak_z": peaks[:, 2],
                "nodes": [
                    "; ".join(" ".join(f"{c:g}" for c in node) for node in spec.centres)
                    for spec in config.networks
                ],
            }
        ),
    )
    if context.surface is not None:
        surface = context.surface
        for hemi in sf.HEMISPHERES:
            sf.write_maps_gifti(
                truth / _surface_truth_name(hemi),
                surface.maps[:, surface.surface.hemisphere(hemi)],
                list(config.network_names),
                hemi,
            )


def _layout_readme(config: SynthConfig, layout: str, surface: _SurfaceContext | None) -> str:
    c = config
    if layout == "fmriprep":
        text = f"""## Layout: fMRIPrep

BIDS derivatives as fMRIPrep 23/24 writes them:
`sub-<label>/[ses-<label>/]func/<run_id>_space-{SPACE}_res-{c.resolution_mm}_desc-preproc_bold.nii.gz`
(+ `.json` with RepetitionTime), `..._desc-brain_mask.nii.gz`,
`<run_id>_desc-confounds_timeseries.tsv` (+ `.json`); `participants.tsv` and
`dataset_description.json` at the root. The motion parameters m_j are the confounds'
trans_x .. rot_z (mm, radians).
"""
    else:
        name = hcp.run_name(c.task, 1, 1)
        text = f"""## Layout: HCP

The HCP S1200 minimally preprocessed layout, for the same runs, time courses and truth as the
fMRIPrep layout with the same seed (sessions 1-2 are REST1/REST2, runs 1-2 are LR/RL):

- `<subject>/MNINonLinear/Results/{name}/{name}.nii.gz`: the BOLD Y (TR in pixdim[4]).
- `..._hp2000_clean.nii.gz`: the "ICA-FIX cleaned" data, Y without the motion and
  physiological parts: B(v) * [1 + a_net sum_k M_k s_k + a_drift sum_p C_p L_p + sd_noise e]
  (same noise). Y minus it is exactly B(v) * [sum_j W_j m_j / {_MOTION_REFERENCE_MM} mm +
  sum_q P_q r_q] up to float32 rounding. HCP's 2000 s high-pass is not emulated: the drifts
  stay.
- `Movement_Regressors.txt`: 12 columns, no header, one row per frame, as HCP's FLIRT-based
  motion correction writes them (`%10.6f ` each): trans x, y, z (mm), rot x, y, z (DEGREES,
  the truth's radians times 180/pi), then their backward differences (0 on the first row).
- `<subject>/MNINonLinear/brainmask_fs.{c.resolution_mm}.nii.gz`: the brain mask (float32 0/1).
- `unrestricted_behavioral.csv`: Subject (six-digit labels drawn from the seed), Gender (M/F),
  Age in HCP's bands (22-25, 26-30, 31-35; the synthetic ages span 18-70, so 18-21 and
  further five-year bands 36-40, ... are added); `diagnosis` and `site` are this dataset's
  own columns (not HCP's), carrying the group effect.
- Real HCP grids are 91x109x91 at 2 mm (FSL's MNI152); this one is nilearn's
  {SPACE} grid at {c.resolution_mm} mm, as in the fMRIPrep layout.
"""
    if surface is None:
        return text
    counts = dict(surface.grayordinates.structures)
    n_sub = sum(n for s, n in counts.items() if not s.startswith("CORTEX"))
    if layout == "fmriprep":
        files = (
            "- `<run_id>_hemi-L_space-fsaverage5_bold.func.gii` and `hemi-R` (+ `.json`): one\n"
            "  float32 NIFTI_INTENT_TIME_SERIES data array per frame, as FreeSurfer and fMRIPrep\n"
            "  write them; `nilearn.surface.load_surf_data` reads (10242, T).\n"
            f"- `<run_id>_{_CIFTI_FMRIPREP}` (+ `.json`): CIFTI-2 dense time series."
        )
    else:
        files = (
            f"- `{hcp.run_name(c.task, 1, 1)}_{_CIFTI_HCP}.dtseries.nii` and "
            f"`..._{_CIFTI_HCP}_hp2000_clean.dtseries.nii`:\n"
            "  CIFTI-2 dense time series of the raw and cleaned data."
        )
    return (
        text
        + f"""
## Surfaces

The same model evaluated at the {surface.surface.n_vertices} vertices of nilearn's packaged
fsaverage5 mesh (midpoint of the white and pial surfaces, coordinates taken as MNI mm; fsaverage
is MNI305, a few mm away): the network maps as functions of position (scaled by the volume's
peak, so they may slightly exceed 1), the subject's and run's smooth fields at the vertices,
grey-matter tissue factors, the motion edge factor of the nearest voxel, the same time courses;
only the white noise is drawn anew (`SeedSequence([seed, subject, session, run],
spawn_key=(1,))`).

{files}

The CIFTI files have the structure of HCP grayordinates but not their size: CORTEX_LEFT and
CORTEX_RIGHT are the fsaverage5 vertices (all 10242 each, no medial-wall mask; fsLR 32k is not
packaged), followed by {n_sub} voxels of the {c.resolution_mm} mm grid in the 19 subcortical
structures (approximate MNI centroids and radii, not an atlas; see
`nishard.datasets.surface.SUBCORTICAL`): {surface.grayordinates.size} grayordinates, not 91,282.
The surface part holds the vertex samples (the data of the GIfTI files in the fMRIPrep layout),
the volume part the BOLD of the same run (raw or cleaned) at those voxels.

- `truth/networks_hemi-L_space-fsaverage5.func.gii`, `hemi-R`: M_k at the vertices, one named
  data array per network (`load_surf_data` reads (10242, K)).
"""
    )


def _readme(config: SynthConfig, layout: str, surface: _SurfaceContext | None) -> str:
    c = config
    names = ", ".join(f"{k}: {name}" for k, name in enumerate(c.network_names))
    motion_source = (
        "the six motion parameters of the confounds file (trans_x/y/z in mm, rot_x/y/z\n"
        "  in radians"
        if layout == "fmriprep"
        else "the six motion parameters (translations in mm, rotations in radians; degrees\n"
        "  in Movement_Regressors.txt"
    )
    regressors = (
        "motion parameters" if layout == "fmriprep" else "Movement_Regressors.txt columns 1-6"
    )
    return f"""# Ground truth of this synthetic dataset

Generated by nishard {__version__} (`nishard.datasets.synth.generate`, layout `{layout}`).

## Model

Inside the brain mask (0 outside), for voxel v and frame t:

    Y(v,t) = B(v) * [1 + a_net * sum_k M_k(v) s_k(t)
                        + sum_j W_j(v) m_j(t) / {_MOTION_REFERENCE_MM} mm
                        + a_drift * sum_p C_p(v) L_p(t)
                        + sum_q P_q(v) r_q(t)
                        + sd_noise * e(v,t)]

- B(v): baseline, {c.baseline:g} times a tissue factor (GM 1, WM {_TISSUE_INTENSITY[WM]},
  CSF {_TISSUE_INTENSITY[CSF]}) times (1 + 0.08 * a smooth random field); one per subject.
- M_k: network maps (`networks.nii.gz`, volume k; peak 1): union 1 - prod(1 - g) of
  Gaussian nodes g (sigma {c.network_sigma_mm:g} mm) at the MNI coordinates of
  `networks.tsv`, set to 0 below 0.01. Networks: {names}.
- s_k: band-limited ({c.band_hz[0]:g}-{c.band_hz[1]:g} Hz, FFT), zero-mean, unit-variance time
  courses (`timecourses/<run_id>_timecourses.tsv`), drawn per run. The pair
  {c.coupled_networks[0]} / {c.coupled_networks[1]} has a sample correlation of exactly the
  subject's coupling in every run (`subjects.tsv`, `runs.tsv`): controls
  {c.coupling_control:g}, patients {c.coupling_patient:g}, plus N(0, {c.coupling_jitter:g})
  per subject (`effect.json`). All other pairs have a sample correlation of exactly 0.
- m_j: {motion_source} times 50 mm), a smooth random walk plus about {c.spikes_per_minute:g}
  spike(s) per minute (one displaced frame, listed in `runs.tsv`, FD > 0.5 mm there and just
  after). W_j: smooth random fields (per subject) times exp(-(depth - voxel size) /
  {_EDGE_LENGTH_MM:g} mm): strongest at the brain's edge, where {_MOTION_REFERENCE_MM} mm of
  motion changes the signal by about {c.motion_amplitude:.1%}.
- L_p: Legendre polynomials of degree 1..{c.drift_order} on the run (time mapped to [-1, 1]);
  C_p: a global N(0, 1) coefficient plus 0.5 times a smooth random field, per run.
- r_q: {len(PHYSIO_NAMES)} slow physiological sources (respiration volume, heart rate,
  vasomotion: band-limited {c.band_hz[0]:g}-{c.band_hz[1]:g} Hz, unit variance;
  `timecourses/<run_id>_physio.tsv`), drawn per run. P_q: {c.physio_amplitude:g} times
  {PHYSIO_SCALES} (source q) times a tissue weight (GM {_PHYSIO_WEIGHT[GM]}, WM
  {_PHYSIO_WEIGHT[WM]}, CSF {_PHYSIO_WEIGHT[CSF]}) times (0.3 + a smooth random field); per
  subject. They make the white matter and CSF signals low-dimensional, so that aCompCor
  retains a few components, as with real data.
- e: white Gaussian noise, N(0, 1), per voxel and frame.

Amplitudes (fractions of B): a_net = {c.network_amplitude:g}, motion {c.motion_amplitude:g},
a_drift = {c.drift_amplitude:g}, physiological {c.physio_amplitude:g}, sd_noise =
{c.noise_sd:g}. Everything is float32.

## Grid and runs

{c.n_subjects} subjects, {c.n_sessions or "no"} sessions, {c.n_runs} run(s) per
session, {c.n_timepoints} frames at TR {c.t_r:g} s, {SPACE} at {c.resolution_mm} mm
(nilearn's packaged MNI152 brain mask). White matter and CSF (for the confounds) come from
nilearn's MNI152 tissue masks.

{_layout_readme(config, layout, surface)}
## Files

- `networks.nii.gz`, `networks.tsv`: the maps M_k, their names, peaks and nodes (MNI mm).
- `subjects.tsv`: participant_id, diagnosis, coupling (the subject's true correlation).
- `runs.tsv`: per run, its BOLD file (HCP: also the cleaned one), session and run (HCP:
  REST1/REST2 and LR/RL), realized coupling and the frames of the motion spikes.
- `timecourses/<run_id>_timecourses.tsv`: s_k of the run, one named column per network.
- `timecourses/<run_id>_physio.tsv`: r_q of the run.
- `effect.json`: the coupled pair and the coupling per group.
- `generator.json`: the generator, layout, seed and whether surfaces were written.

## Using the truth

- Regressing a run's masked BOLD on [s_k, r_q, {regressors}, Legendre drifts,
  intercept] returns beta maps proportional to B(v) * M_k(v) (spatial correlation with M_k
  above 0.9 for every network and run of the `tiny` preset).
- Extracting network time courses (e.g. spatial regression on `networks.nii.gz` after
  confound removal) and correlating the coupled pair separates the groups: patients higher.
- The motion spikes are the frames a scrubbing strategy (FD > 0.5 mm or std_dvars > 1.5)
  should remove.

Seeding: `default_rng([seed, subject])` for subject-level draws (demographics, coupling,
baseline and spatial weights), `[seed, subject, session, run]` for run-level ones (time courses,
motion, drift, noise), with 1-based numbers (session 0 without sessions); HCP subject labels
from `default_rng([seed])`; the maps are fixed. Adding subjects or runs changes nothing already
generated.
"""
