"""The generative model: subjects, runs and the BOLD signal they make.

Subjects (:func:`draw_subject`): demographics, the coupling of the two coupled networks,
and the smooth random fields of their baseline, motion and physiological weights. Runs
(:func:`run_model`): network time courses, motion, drifts and physiological sources, the
design whose spatial weights :meth:`RunModel.weights` gives at any points (voxels or
surface vertices); :func:`simulate_bold` and :func:`add_components` make the signal. The
model is described in :func:`nishard.datasets.text.readme` (``truth/README.md``); how the
random streams are seeded, in :mod:`nishard.datasets.synth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nibabel import cifti2

from . import confounds as cf
from . import networks as nw
from . import surface as sf
from .config import SynthConfig
from .grid import CSF, GM, WM, Grid, SmoothField

DIAGNOSES = ("control", "patient")
SITES = ("siteA", "siteB", "siteC")
# Site mix differs by diagnosis, as it does in multi-site studies: a site effect is then
# partly confounded with diagnosis, which a harmonization step has to face.
_SITE_PROBABILITIES = {"control": (0.5, 0.3, 0.2), "patient": (0.2, 0.3, 0.5)}
# Relative EPI intensity of the tissues: CSF is bright and white matter dark on T2*.
TISSUE_INTENSITY = {WM: 0.85, CSF: 1.3}
# Relative weight of physiological noise: largest in CSF and white matter, which is what
# makes aCompCor work (a few components there explain half of the variance, as in real data).
PHYSIO_WEIGHT = {GM: 0.25, WM: 1.0, CSF: 1.5}
# Slow physiological sources and their relative amplitudes: several sources with distinct
# spatial patterns spread the structured variance over a few components, as in real data.
PHYSIO_SCALES = (1.0, 0.8, 0.6, 0.5, 0.4)
PHYSIO_NAMES = tuple(f"physio{q:02d}" for q in range(len(PHYSIO_SCALES)))
# Motion effect reference: a displacement of this size (mm; rotations as arc length on a 50 mm
# sphere) changes edge voxels by ``motion_amplitude``.
MOTION_REFERENCE_MM = 0.2
# Motion artefacts decay with depth from the brain's edge with this length constant (mm).
EDGE_LENGTH_MM = 15.0
_TIME_CHUNK = 64  # frames assembled at once: bounds the temporaries for 2 mm, 1200-frame runs
_SURFACE_STREAM = 1  # spawn key of the surface noise streams


@dataclass(frozen=True, eq=False)
class SubjectFields:
    """The random spatial fields of a subject, evaluable at any point (voxels, vertices)."""

    baseline: SmoothField
    motion: tuple[SmoothField, ...]
    physio: tuple[SmoothField, ...]


@dataclass(frozen=True)
class Subject:
    """A subject's demographics, coupling, fields and their weights on the voxels."""

    number: int
    label: str
    diagnosis: str
    age: float
    sex: str
    site: str
    coupling: float
    fields: SubjectFields
    baseline: np.ndarray  # (V,) float32
    motion_weights: np.ndarray  # (6, V) float32, fraction of baseline per reference motion
    physio_weights: np.ndarray  # (Q, V) float32, fraction of baseline per unit signal


@dataclass(frozen=True)
class Run:
    """Where a run is written and whose it is (the layouts name it, the model seeds it)."""

    root: Path
    run_id: str
    func_dir: Path
    subject: Subject
    session: int
    run: int
    name: str = ""  # HCP run name, e.g. rfMRI_REST1_LR


@dataclass(frozen=True, eq=False)
class SurfaceContext:
    """What every run of a dataset shares at the surface vertices."""

    surface: sf.Surface
    edge_distance: np.ndarray  # (N,) depth (mm) of the in-brain voxel nearest to each vertex
    maps: np.ndarray  # (K, N) float32, the network maps at the vertices
    grayordinates: sf.Grayordinates
    header: cifti2.Cifti2Header  # of the dense time series (same for every run)

    def write_dtseries(self, path: Path, samples: np.ndarray, bold: np.ndarray) -> None:
        """A CIFTI file of surface samples (T, N) and volume BOLD (T, V)."""
        sf.write_dtseries(path, self.header, self.grayordinates, samples, bold)


@dataclass(frozen=True, eq=False)
class Context:
    """What every run of a dataset shares: configuration, grid, maps, seed, layout."""

    config: SynthConfig
    grid: Grid
    maps: np.ndarray
    seed: int
    layout: str
    surface: SurfaceContext | None


def surface_context(config: SynthConfig, grid: Grid) -> SurfaceContext:
    """The fsaverage5 mesh, the network maps at its vertices and the CIFTI structure."""
    surface = sf.load_fsaverage5()
    nearest = sf.nearest_voxels(grid, surface.coords)
    maps = nw.network_maps(
        surface.coords, config.networks, config.network_sigma_mm, reference=grid.coords
    )
    grayordinates = sf.grayordinates(grid, surface)
    return SurfaceContext(
        surface=surface,
        edge_distance=grid.edge_distance[nearest],
        maps=maps,
        grayordinates=grayordinates,
        header=sf.dtseries_header(grayordinates, config.n_timepoints, config.t_r),
    )


# --------------------------------------------------------------------------------------------
# Subjects
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


def subject_label(number: int, config: SynthConfig) -> str:
    width = max(2, len(str(config.n_subjects)))
    return f"sub-{number:0{width}d}"


def _spatial_weights(
    fields: SubjectFields,
    config: SynthConfig,
    coords: np.ndarray,
    tissue: np.ndarray,
    physio_tissue: np.ndarray,
    edge_distance: np.ndarray,
    resolution_mm: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline, motion and physiological weights of a subject at points (voxels, vertices)."""
    baseline = config.baseline * tissue * (1.0 + 0.08 * fields.baseline(coords))
    edge = np.exp(-(edge_distance - resolution_mm) / EDGE_LENGTH_MM)
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


def draw_subject(config: SynthConfig, grid: Grid, seed: int, number: int, label: str) -> Subject:
    rng = np.random.default_rng([seed, number])
    diagnosis = diagnosis_of(number)
    age = round(float(rng.uniform(18.0, 70.0)), 1)
    sex = str(rng.choice(["F", "M"]))
    site = SITES[int(rng.choice(len(SITES), p=_SITE_PROBABILITIES[diagnosis]))]
    mean = config.coupling_patient if diagnosis == "patient" else config.coupling_control
    coupling = float(np.clip(mean + rng.normal(0.0, config.coupling_jitter), -0.95, 0.95))
    fields = SubjectFields(
        baseline=SmoothField.draw(rng, grid.coords),
        motion=tuple(SmoothField.draw(rng, grid.coords) for _ in range(6)),
        physio=tuple(SmoothField.draw(rng, grid.coords) for _ in PHYSIO_SCALES),
    )
    tissue = np.ones(grid.n_voxels)
    for tissue_label, factor in TISSUE_INTENSITY.items():
        tissue[grid.compartment == tissue_label] = factor
    physio_tissue = np.zeros(grid.n_voxels)
    for tissue_label, factor in PHYSIO_WEIGHT.items():
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
    return Subject(
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
    rng, n_timepoints, t_r
        As for :func:`~.networks.band_limited`.

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


def signal_columns(config: SynthConfig) -> np.ndarray:
    n_columns = len(config.networks) + 6 + config.drift_order + len(PHYSIO_NAMES)
    return np.setdiff1d(np.arange(n_columns), nuisance_columns(config))


@dataclass(frozen=True, eq=False)
class RunModel:
    """The random draws of one run and its design."""

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


def run_model(run: Run, config: SynthConfig, grid: Grid, seed: int) -> RunModel:
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
            motion_mm / MOTION_REFERENCE_MM,
            legendre_drifts(n_time, config.drift_order),
            physio,
        ]
    )
    return RunModel(
        rng=rng,
        timecourses=timecourses,
        physio=physio,
        motion=motion,
        spikes=spikes,
        drift_coefficients=tuple(coefficients),
        drift_fields=tuple(fields),
        design=design,
    )


def surface_model(
    run: Run, model: RunModel, context: Context
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
        np.full(n, PHYSIO_WEIGHT[GM]),
        surface.edge_distance,
        context.grid.resolution_mm,
    )
    weights = model.weights(
        config, surface.maps, motion_weights, physio_weights, surface.surface.coords
    )
    entropy = [context.seed, run.subject.number, run.session, run.run]
    sequence = np.random.SeedSequence(entropy, spawn_key=(_SURFACE_STREAM,))
    return np.random.default_rng(sequence), baseline, weights
