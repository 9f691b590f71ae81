"""Synthetic fMRIPrep derivatives with known ground truth.

``generate(out, size="tiny", seed=0)`` writes a dataset laid out and named as fMRIPrep 23/24
writes its outputs (MNI152NLin2009cAsym space), with a ``truth/`` folder holding what made it:
network maps and time courses, per-subject coupling, the group effect. The generative model is
described in ``_readme`` (written to ``truth/README.md``).

Seeding: subject-level draws use ``default_rng([seed, subject])`` and run-level ones
``default_rng([seed, subject, session, run])``, with 1-based subject/session/run numbers and
session 0 when there is no session level (``SeedSequence`` ignores trailing zeros, so 1-based
numbers keep these streams distinct). Nothing is drawn at dataset level: the network maps are
fixed by their MNI coordinates (``default_rng([seed])`` is reserved for such draws). A dataset
is therefore deterministic, and adding subjects, sessions or runs leaves the existing ones
unchanged.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from nishard import __version__
from nishard.datasets import confounds as cf
from nishard.datasets import networks as nw
from nishard.datasets.grid import CSF, GM, WM, Grid, load_grid, smooth_field
from nishard.errors import NishardError

#: The ``GeneratedBy`` name of the datasets this module writes.
_GENERATOR = "nishard synth"

SPACE = "MNI152NLin2009cAsym"
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
# NIfTI code 4: coordinates are MNI152 (as in fMRIPrep's standard-space outputs).
_MNI_XFORM_CODE = 4
_GZIP_LEVEL = 1  # nibabel's default: the BOLD data compress little, speed matters more
_TIME_CHUNK = 64  # frames assembled at once: bounds the temporaries for 2 mm, 1200-frame runs


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
    "demo": SynthConfig(
        n_subjects=24, n_sessions=0, n_runs=2, n_timepoints=120, resolution_mm=4, t_r=2.0
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
        The derivatives folder (holds ``dataset_description.json``).
    config : SynthConfig
    seed : int
    run_ids : tuple of str
        BIDS prefixes of the runs, e.g. ``sub-01_ses-01_task-rest_run-1``.
    bold_paths : tuple of pathlib.Path
        Preprocessed BOLD of each run, in the order of ``run_ids``.
    """

    root: Path
    config: SynthConfig
    seed: int
    run_ids: tuple[str, ...]
    bold_paths: tuple[Path, ...]

    @property
    def truth_dir(self) -> Path:
        """The ``truth/`` folder."""
        return self.root / "truth"

    @property
    def participants_path(self) -> Path:
        """``participants.tsv``."""
        return self.root / "participants.tsv"

    @property
    def mask_paths(self) -> tuple[Path, ...]:
        """Brain mask of each run."""
        return tuple(
            _sibling(p, "desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz")
            for p in self.bold_paths
        )

    @property
    def confounds_paths(self) -> tuple[Path, ...]:
        """Confounds TSV of each run."""
        return tuple(
            p.parent / f"{rid}_desc-confounds_timeseries.tsv"
            for rid, p in zip(self.run_ids, self.bold_paths, strict=True)
        )

    def timecourses_path(self, run_id: str) -> Path:
        """True network time courses of a run."""
        return self.truth_dir / "timecourses" / f"{run_id}_timecourses.tsv"


@dataclass(frozen=True)
class _Subject:
    number: int
    label: str
    diagnosis: str
    age: float
    sex: str
    site: str
    coupling: float
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
) -> SynthDataset:
    """Write a synthetic fMRIPrep derivatives dataset with known ground truth.

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

    Returns
    -------
    SynthDataset

    Examples
    --------
    >>> ds = generate("/tmp/synth", "tiny", seed=0)  # doctest: +SKIP
    >>> ds.bold_paths[0].name  # doctest: +SKIP
    'sub-01_ses-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-8_desc-preproc_bold.nii.gz'
    """
    config = _resolve_config(size, subjects, sessions, runs, timepoints)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    root = _fresh_root(Path(out))
    grid = load_grid(config.resolution_mm)
    maps = nw.network_maps(grid.coords, config.networks, config.network_sigma_mm)
    subjects_ = [_draw_subject(config, grid, seed, n) for n in range(1, config.n_subjects + 1)]

    _write_dataset_files(root, config, seed, subjects_)
    _write_network_truth(root / "truth", config, grid, maps)
    runs_ = [run for subject in subjects_ for run in _runs_of(root, config, subject)]
    rows = [_generate_run(run, config, grid, maps, seed) for run in runs_]
    _write_tsv(root / "truth" / "runs.tsv", pd.DataFrame(rows))
    return SynthDataset(
        root=root,
        config=config,
        seed=seed,
        run_ids=tuple(run.run_id for run in runs_),
        bold_paths=tuple(run.func_dir / _bold_name(run.run_id, config) for run in runs_),
    )


def _fresh_root(root: Path) -> Path:
    """An empty output folder; an earlier synthetic dataset there is removed first."""
    if root.is_dir() and any(root.iterdir()):
        description = root / "dataset_description.json"
        try:
            made_by = json.loads(description.read_text())["GeneratedBy"][0]["Name"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            made_by = None
        if made_by != _GENERATOR:
            raise NishardError(
                f"{root} is not empty and holds no earlier synthetic dataset "
                f"(no {description.name} generated by {_GENERATOR!r}); choose an empty folder"
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


def _draw_subject(config: SynthConfig, grid: Grid, seed: int, number: int) -> _Subject:
    rng = np.random.default_rng([seed, number])
    diagnosis = diagnosis_of(number)
    age = round(float(rng.uniform(18.0, 70.0)), 1)
    sex = str(rng.choice(["F", "M"]))
    site = SITES[int(rng.choice(len(SITES), p=_SITE_PROBABILITIES[diagnosis]))]
    mean = config.coupling_patient if diagnosis == "patient" else config.coupling_control
    coupling = float(np.clip(mean + rng.normal(0.0, config.coupling_jitter), -0.95, 0.95))
    tissue = np.ones(grid.n_voxels)
    for label, factor in _TISSUE_INTENSITY.items():
        tissue[grid.compartment == label] = factor
    baseline = config.baseline * tissue * (1.0 + 0.08 * smooth_field(rng, grid.coords))
    edge = np.exp(-(grid.edge_distance - grid.resolution_mm) / _EDGE_LENGTH_MM)
    weights = np.stack([smooth_field(rng, grid.coords) for _ in range(6)])
    motion_weights = config.motion_amplitude * edge * weights
    physio_tissue = np.zeros(grid.n_voxels)
    for label, factor in _PHYSIO_WEIGHT.items():
        physio_tissue[grid.compartment == label] = factor
    physio_weights = np.stack(
        [
            config.physio_amplitude * scale * physio_tissue * (0.3 + smooth_field(rng, grid.coords))
            for scale in PHYSIO_SCALES
        ]
    )
    return _Subject(
        number=number,
        label=_subject_label(number, config),
        diagnosis=diagnosis,
        age=age,
        sex=sex,
        site=site,
        coupling=round(coupling, 6),
        baseline=baseline.astype(np.float32),
        motion_weights=motion_weights.astype(np.float32),
        physio_weights=physio_weights.astype(np.float32),
    )


def _runs_of(root: Path, config: SynthConfig, subject: _Subject) -> Iterable[_Run]:
    sessions = range(1, config.n_sessions + 1) if config.n_sessions else [0]
    for session in sessions:
        ses = f"ses-{session:02d}" if session else ""
        func_dir = root / subject.label / ses / "func" if ses else root / subject.label / "func"
        for run in range(1, config.n_runs + 1):
            parts = [subject.label, ses, f"task-{config.task}", f"run-{run}"]
            run_id = "_".join(p for p in parts if p)
            yield _Run(root, run_id, func_dir, subject, session, run)


def _bold_name(run_id: str, config: SynthConfig) -> str:
    return f"{run_id}_space-{SPACE}_res-{config.resolution_mm}_desc-preproc_bold.nii.gz"


def _sibling(path: Path, old: str, new: str) -> Path:
    return path.with_name(path.name.replace(old, new))


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
    for start in range(0, n_timepoints, _TIME_CHUNK):
        rows = slice(start, start + _TIME_CHUNK)
        bold[rows] += design32[rows] @ weights32
    bold += np.float32(1.0)
    bold *= baseline.astype(np.float32)
    return bold


@dataclass(frozen=True)
class _RunData:
    bold: np.ndarray  # (T, V) float32
    timecourses: np.ndarray  # (T, K)
    physio: np.ndarray  # (T, Q)
    motion: np.ndarray  # (T, 6)
    spikes: np.ndarray  # frame indices


def _simulate_run(
    run: _Run, config: SynthConfig, grid: Grid, maps: np.ndarray, seed: int
) -> _RunData:
    subject = run.subject
    rng = np.random.default_rng([seed, subject.number, run.session, run.run])
    n_time = config.n_timepoints
    names = config.network_names
    pair = (names.index(config.coupled_networks[0]), names.index(config.coupled_networks[1]))
    timecourses = nw.network_timecourses(
        rng, n_time, config.t_r, len(names), pair, subject.coupling, config.band_hz
    )
    motion, spikes = cf.motion_parameters(rng, n_time, n_spikes(config))
    # Drift: a global part common to the brain plus smooth spatial variation around it.
    drift_maps = np.zeros((config.drift_order, grid.n_voxels))
    for p in range(config.drift_order):
        drift_maps[p] = rng.standard_normal() + 0.5 * smooth_field(rng, grid.coords)
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
    weights = np.concatenate(
        [
            config.network_amplitude * maps,
            subject.motion_weights,
            config.drift_amplitude * drift_maps,
            subject.physio_weights,
        ]
    )
    bold = simulate_bold(rng, subject.baseline, design, weights, config.noise_sd)
    return _RunData(bold, timecourses, physio, motion, spikes)


def _generate_run(
    run: _Run, config: SynthConfig, grid: Grid, maps: np.ndarray, seed: int
) -> dict[str, object]:
    """Simulate one run, write its files and return its row of ``truth/runs.tsv``."""
    data = _simulate_run(run, config, grid, maps, seed)
    table, metadata = cf.confounds_table(data.bold, grid.compartment, data.motion, config.t_r)
    run.func_dir.mkdir(parents=True, exist_ok=True)
    bold_path = run.func_dir / _bold_name(run.run_id, config)
    _write_bold(bold_path, data.bold, grid, config.t_r)
    _write_json(_sibling(bold_path, ".nii.gz", ".json"), _bold_sidecar(config))
    mask_path = _sibling(bold_path, "desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz")
    _write_nifti(mask_path, grid.brain.astype(np.uint8), grid.affine)
    _write_json(_sibling(mask_path, ".nii.gz", ".json"), {"Type": "Brain"})
    confounds_path = run.func_dir / f"{run.run_id}_desc-confounds_timeseries.tsv"
    _write_tsv(confounds_path, table)
    _write_json(confounds_path.with_suffix(".json"), metadata)

    truth = run.root / "truth" / "timecourses"
    truth.mkdir(parents=True, exist_ok=True)
    names = list(config.network_names)
    _write_tsv(
        truth / f"{run.run_id}_timecourses.tsv", pd.DataFrame(data.timecourses, columns=names)
    )
    _write_tsv(
        truth / f"{run.run_id}_physio.tsv", pd.DataFrame(data.physio, columns=list(PHYSIO_NAMES))
    )
    pair = [names.index(n) for n in config.coupled_networks]
    realized = np.corrcoef(data.timecourses[:, pair].T)[0, 1]
    return {
        "run_id": run.run_id,
        "participant_id": run.subject.label,
        "session": f"ses-{run.session:02d}" if run.session else "n/a",
        "run": run.run,
        "bold": bold_path.relative_to(run.root).as_posix(),
        "coupling": round(float(realized), 6),
        "spike_frames": ";".join(str(int(f)) for f in data.spikes) or "n/a",
    }


# --------------------------------------------------------------------------------------------
# Writers (all deterministic: fixed float formatting, sorted JSON keys, gzip mtime 0)
# --------------------------------------------------------------------------------------------


def _format_value(value: object) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if np.isnan(value) else repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    lines = ["\t".join(map(str, table.columns))]
    columns = [table[c].tolist() for c in table.columns]
    for row in zip(*columns, strict=True):
        lines.append("\t".join(_format_value(v) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _nifti_header(
    shape: Sequence[int], affine: np.ndarray, dtype: type, t_r: float | None = None
) -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(tuple(shape))
    header.set_qform(affine, code=_MNI_XFORM_CODE)
    header.set_sform(affine, code=_MNI_XFORM_CODE)
    zooms = list(header.get_zooms())
    if t_r is not None:
        zooms[3] = t_r
        header.set_xyzt_units("mm", "sec")
    else:
        header.set_xyzt_units("mm")
    header.set_zooms(zooms)
    return header


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    header = _nifti_header(data.shape, affine, data.dtype.type)
    nib.Nifti1Image(data, affine, header).to_filename(path)


def _write_bold(path: Path, bold: np.ndarray, grid: Grid, t_r: float) -> None:
    """Stream a (T, V) in-brain matrix into a 4D .nii.gz, one volume at a time.

    NIfTI stores x fastest and time slowest, so each frame is one contiguous volume: no 4D
    array is ever built (a 2 mm, 1200-frame run would be 5.3 GB).
    """
    header = _nifti_header((*grid.shape, bold.shape[0]), grid.affine, np.float32, t_r)
    header["vox_offset"] = 352  # single-file header (348) + 4-byte "no extension" flag
    ijk = np.argwhere(grid.brain)
    nx, ny, _ = grid.shape
    fortran_index = ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])
    volume = np.zeros(int(np.prod(grid.shape)), dtype="<f4")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0
        ) as stream,
    ):
        header.write_to(stream)
        for frame in bold:
            volume[fortran_index] = frame
            stream.write(volume.tobytes())


def _bold_sidecar(config: SynthConfig) -> dict[str, object]:
    return {
        "RepetitionTime": config.t_r,
        "SkullStripped": False,
        "SliceTimingCorrected": False,
        "TaskName": config.task,
    }


def _write_dataset_files(
    root: Path, config: SynthConfig, seed: int, subjects: Sequence[_Subject]
) -> None:
    _write_json(
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
    _write_json(
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
    truth = root / "truth"
    truth.mkdir(parents=True, exist_ok=True)
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
    _write_json(
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
            "seed": seed,
        },
    )
    (truth / "README.md").write_text(_readme(config), encoding="utf-8")


def _write_network_truth(truth: Path, config: SynthConfig, grid: Grid, maps: np.ndarray) -> None:
    truth.mkdir(parents=True, exist_ok=True)
    _write_nifti(truth / "networks.nii.gz", grid.to_volume(maps), grid.affine)
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


def _readme(config: SynthConfig) -> str:
    c = config
    names = ", ".join(f"{k}: {name}" for k, name in enumerate(c.network_names))
    return f"""# Ground truth of this synthetic dataset

Generated by nishard {__version__} (`nishard.datasets.synth.generate`).

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
- m_j: the six motion parameters of the confounds file (trans_x/y/z in mm, rot_x/y/z in
  radians times 50 mm), a smooth random walk plus about {c.spikes_per_minute:g} spike(s) per
  minute (one displaced frame, listed in `runs.tsv`, FD > 0.5 mm there and just after).
  W_j: smooth random fields (per subject) times exp(-(depth - voxel size) / {_EDGE_LENGTH_MM:g}
  mm): strongest at the brain's edge, where {_MOTION_REFERENCE_MM} mm of motion changes the
  signal by about {c.motion_amplitude:.1%}.
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
session, {c.n_timepoints} frames at TR {c.t_r:g} s, MNI152NLin2009cAsym at {c.resolution_mm} mm
(nilearn's packaged MNI152 brain mask). White matter and CSF (for the confounds) come from
nilearn's MNI152 tissue masks.

## Files

- `networks.nii.gz`, `networks.tsv`: the maps M_k, their names, peaks and nodes (MNI mm).
- `subjects.tsv`: participant_id, diagnosis, coupling (the subject's true correlation).
- `runs.tsv`: per run, its BOLD file, realized coupling and the frames of the motion spikes.
- `timecourses/<run_id>_timecourses.tsv`: s_k of the run, one named column per network.
- `timecourses/<run_id>_physio.tsv`: r_q of the run.
- `effect.json`: the coupled pair and the coupling per group.

## Using the truth

- Regressing a run's masked BOLD on [s_k, r_q, motion parameters, Legendre drifts,
  intercept] returns beta maps proportional to B(v) * M_k(v) (spatial correlation with M_k
  above 0.9 for every network and run of the `tiny` preset).
- Extracting network time courses (e.g. spatial regression on `networks.nii.gz` after
  confound removal) and correlating the coupled pair separates the groups: patients higher.
- The motion spikes are the frames a scrubbing strategy (FD > 0.5 mm or std_dvars > 1.5)
  should remove.

Seeding: `default_rng([seed, subject])` for subject-level draws (demographics, coupling,
baseline and spatial weights), `[seed, subject, session, run]` for run-level ones (time courses,
motion, drift, noise), with 1-based numbers (session 0 without sessions); the maps are fixed.
Adding subjects or runs changes nothing already generated.
"""
