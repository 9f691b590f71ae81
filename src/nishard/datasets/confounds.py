"""Head motion and the fMRIPrep confounds table, computed from the data by fMRIPrep's definitions.

Column names, order and the JSON metadata follow fMRIPrep 21-24 (``desc-confounds_timeseries``),
as in nilearn's packaged ``test-v21_desc-confounds_timeseries.tsv``:

- ``global_signal``, ``csf``, ``white_matter``, ``csf_wm``: mean signal in the brain, CSF,
  white matter and their union, with ``_derivative1`` (backward difference),
  ``_power2`` and ``_derivative1_power2`` expansions;
- ``tcompcor``: mean signal in the tCompCor mask (the 2 % most variable voxels);
- ``dvars`` (after scaling the median in-mask intensity to 1000), ``std_dvars`` (DVARS over
  its expected value under an AR(1) model, Nichols 2013, as nipype's ``ComputeDVARS``);
- ``framewise_displacement`` (Power 2012: sum |d trans| + 50 mm * sum |d rot|) and ``rmsd``
  (Jenkinson 1999 relative RMS displacement, 80 mm sphere);
- ``t_comp_cor_XX``, ``c_comp_cor_XX``, ``w_comp_cor_XX``, ``a_comp_cor_XX``: CompCor
  components after a 128 s cosine high-pass, retaining the first components that explain
  50 % of the variance (the rest are listed in the JSON as ``dropped_N``, ``Retained: false``);
- ``cosineXX``: that discrete cosine high-pass basis;
- ``trans_x`` .. ``rot_z`` (mm, radians) and their expansions;
- ``motion_outlierXX``: one-hot columns for frames with FD > 0.5 mm or std_dvars > 1.5.

The first value of every derivative, of FD, rmsd, dvars and std_dvars is undefined (NaN,
written ``n/a``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .grid import CSF, WM

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
HEAD_RADIUS_MM = 50.0  # Power et al. 2012: rotations converted to arc length on this sphere
RMS_RADIUS_MM = 80.0  # FSL's (mcflirt, rmsdiff) sphere for the RMS displacement
FD_SPIKE_THRESHOLD = 0.5  # fMRIPrep --fd-spike-threshold default
DVARS_SPIKE_THRESHOLD = 1.5  # fMRIPrep --dvars-spike-threshold default
HIGH_PASS_CUTOFF_S = 128.0
COMPCOR_VARIANCE = 0.5
TCOMPCOR_FRACTION = 0.02
DVARS_INTENSITY = 1000.0

# Voxels processed at a time in the per-voxel passes: a (T, chunk) float64 block stays small
# (1200 x 8192 x 8 bytes = 79 MB) even for HCP-length runs.
_CHUNK = 8192


# --------------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------------


def _round_significant(x: np.ndarray, digits: int = 6) -> np.ndarray:
    # mcflirt writes 6 significant digits; fMRIPrep's motion columns carry exactly those.
    flat = [float(f"{v:.{digits}g}") for v in np.ravel(x)]
    return np.asarray(flat, dtype=np.float64).reshape(np.shape(x))


def spike_frames(
    rng: np.random.Generator, n_timepoints: int, n_spikes: int, margin: int = 6, gap: int = 8
) -> np.ndarray:
    """Frames of isolated motion spikes, away from the run edges and from each other.

    The margins keep nilearn's scrubbing (which also drops segments shorter than 5 volumes)
    from removing much more than the spikes.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_timepoints : int
    n_spikes : int
        Requested number; fewer are returned if the run is too short to fit them.
    margin : int
        Minimum distance from either end of the run.
    gap : int
        Minimum distance between spikes.

    Returns
    -------
    numpy.ndarray
        Sorted int64 frame indices.
    """
    free = np.arange(margin, n_timepoints - margin - 1)
    chosen: list[int] = []
    while len(chosen) < n_spikes and free.size:
        frame = int(rng.choice(free))
        chosen.append(frame)
        free = free[np.abs(free - frame) >= gap]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def motion_parameters(
    rng: np.random.Generator,
    n_timepoints: int,
    n_spikes: int,
    trans_step_mm: float = 0.03,
    rot_step_rad: float = 0.0005,
    spike_mm: tuple[float, float] = (0.7, 1.2),
) -> tuple[np.ndarray, np.ndarray]:
    """Head motion: a smooth random walk plus isolated spikes.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_timepoints : int
    n_spikes : int
        Number of spikes: frames displaced (and back at the next frame) by ``spike_mm``
        (L1 norm of the translation), so FD exceeds 0.5 mm at the spike and just after it.
    trans_step_mm, rot_step_rad : float
        Standard deviation of the per-frame increments of the random walk.
    spike_mm : tuple of float
        Range of the spike translation (mm, L1 norm).

    Returns
    -------
    params : numpy.ndarray
        float64, shape (T, 6): trans_x, trans_y, trans_z (mm), rot_x, rot_y, rot_z (radians),
        rounded to 6 significant digits as mcflirt writes them.
    spikes : numpy.ndarray
        Frame indices of the spikes.
    """
    scale = np.array([trans_step_mm] * 3 + [rot_step_rad] * 3)
    steps = rng.standard_normal((n_timepoints, 6)) * scale
    # A 3-frame moving average makes the motion smooth, as real head motion is.
    kernel = np.ones(3) / 3.0
    steps = np.stack([np.convolve(steps[:, j], kernel, mode="same") for j in range(6)], axis=1)
    params = np.cumsum(steps, axis=0)
    params -= params[0]
    spikes = spike_frames(rng, n_timepoints, n_spikes)
    for frame in spikes:
        share = rng.dirichlet(np.ones(3))
        signs = rng.choice([-1.0, 1.0], size=3)
        params[frame, :3] += rng.uniform(*spike_mm) * share * signs
        params[frame, 3:] += rng.normal(0.0, 0.002, size=3)
    return _round_significant(params), spikes


def framewise_displacement(params: np.ndarray, radius_mm: float = HEAD_RADIUS_MM) -> np.ndarray:
    """Framewise displacement (Power et al. 2012).

    Parameters
    ----------
    params : numpy.ndarray
        Shape (T, 6): three translations (mm) then three rotations (radians).
    radius_mm : float
        Head radius converting rotations to displacements.

    Returns
    -------
    numpy.ndarray
        Shape (T,), NaN in the first frame.
    """
    delta = np.abs(np.diff(params, axis=0))
    fd = delta[:, :3].sum(axis=1) + radius_mm * delta[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def rigid_matrices(params: np.ndarray) -> np.ndarray:
    """4x4 rigid-body matrices of motion parameters (rotation R = Rz Ry Rx, then translation).

    Parameters
    ----------
    params : numpy.ndarray
        Shape (T, 6).

    Returns
    -------
    numpy.ndarray
        Shape (T, 4, 4).
    """
    n = params.shape[0]
    cx, cy, cz = (np.cos(params[:, j]) for j in (3, 4, 5))
    sx, sy, sz = (np.sin(params[:, j]) for j in (3, 4, 5))
    one, zero = np.ones(n), np.zeros(n)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], axis=1).reshape(n, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], axis=1).reshape(n, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], axis=1).reshape(n, 3, 3)
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, :3] = rz @ ry @ rx
    out[:, :3, 3] = params[:, :3]
    return out


def rms_displacement(params: np.ndarray, radius_mm: float = RMS_RADIUS_MM) -> np.ndarray:
    """Relative RMS displacement between consecutive frames (Jenkinson 1999).

    For ``M = T_t T_{t-1}^-1 - I`` with linear part ``A`` and translation ``t``, the mean
    squared displacement over a sphere of radius R centred at the origin is
    ``R**2 / 5 * trace(A.T A) + t.T t``.

    Parameters
    ----------
    params : numpy.ndarray
        Shape (T, 6).
    radius_mm : float

    Returns
    -------
    numpy.ndarray
        Shape (T,), NaN in the first frame.
    """
    mats = rigid_matrices(params)
    m = mats[1:] @ np.linalg.inv(mats[:-1]) - np.eye(4)
    a, t = m[:, :3, :3], m[:, :3, 3]
    msd = radius_mm**2 / 5.0 * np.einsum("nij,nij->n", a, a) + np.einsum("ni,ni->n", t, t)
    return np.concatenate([[np.nan], np.sqrt(msd)])


# --------------------------------------------------------------------------------------------
# Time-series helpers
# --------------------------------------------------------------------------------------------


def cosine_basis(n_timepoints: int, t_r: float, cutoff_s: float = HIGH_PASS_CUTOFF_S) -> np.ndarray:
    """Discrete cosine (DCT-II) high-pass basis, as fMRIPrep's ``cosineXX`` columns.

    Column k (1-based) is ``sqrt(2 / n) * cos(pi * k * (t + 0.5) / n)``; there are
    ``floor(2 * n * TR / cutoff)`` of them (periods longer than the cut-off).

    Parameters
    ----------
    n_timepoints : int
    t_r : float
        Repetition time (s).
    cutoff_s : float
        Cut-off period (s).

    Returns
    -------
    numpy.ndarray
        Shape (T, n_cosines), orthonormal columns.
    """
    order = min(n_timepoints - 1, int(np.floor(2.0 * n_timepoints * t_r / cutoff_s)))
    t = np.arange(n_timepoints)[:, None] + 0.5
    k = np.arange(1, order + 1)[None, :]
    return np.sqrt(2.0 / n_timepoints) * np.cos(np.pi * k * t / n_timepoints)


def derivative1(x: np.ndarray) -> np.ndarray:
    """Backward difference along the first axis, NaN in the first row."""
    x = np.asarray(x, dtype=np.float64)
    first = np.full((1, *x.shape[1:]), np.nan)
    return np.concatenate([first, np.diff(x, axis=0)], axis=0)


def _column_chunks(n_columns: int, size: int = _CHUNK) -> Iterator[slice]:
    for start in range(0, n_columns, size):
        yield slice(start, min(start + size, n_columns))


def _highpass_projector(n_timepoints: int, t_r: float) -> np.ndarray:
    # Orthonormal basis of the constant and the cosines: the part of the signal CompCor drops.
    basis = np.column_stack([np.ones(n_timepoints), cosine_basis(n_timepoints, t_r)])
    q, _ = np.linalg.qr(basis)
    return q


def dvars(bold: np.ndarray, intensity: float = DVARS_INTENSITY) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and standardized DVARS (Nichols 2013), as nipype's ``ComputeDVARS``.

    The data are scaled so their median is ``intensity``; the expected standard deviation of a
    voxel's temporal difference is ``sqrt(2 * (1 - ar1)) * robust_sd`` (robust sd from the
    interquartile range, lag-1 autocorrelation from the demeaned series), and std_dvars is
    DVARS over the mean of those expectations.

    Parameters
    ----------
    bold : numpy.ndarray
        In-mask data, shape (T, V).
    intensity : float
        Target median intensity.

    Returns
    -------
    dvars : numpy.ndarray
        Shape (T,), NaN in the first frame.
    std_dvars : numpy.ndarray
        Shape (T,), NaN in the first frame.
    """
    n_timepoints, n_voxels = bold.shape
    diff_sq = np.zeros(n_timepoints - 1)
    expected_sd = np.zeros(n_voxels)
    for cols in _column_chunks(n_voxels):
        block = bold[:, cols].astype(np.float64)
        q75 = np.percentile(block, 75, axis=0, method="lower")
        q25 = np.percentile(block, 25, axis=0, method="lower")
        robust_sd = (q75 - q25) / 1.349
        centred = block - block.mean(axis=0)
        denom = np.einsum("tv,tv->v", centred, centred)
        lag1 = np.einsum("tv,tv->v", centred[1:], centred[:-1])
        ar1 = np.divide(lag1, denom, out=np.zeros_like(lag1), where=denom > 0)
        expected_sd[cols] = np.sqrt(2.0 * (1.0 - ar1)) * robust_sd
        step = np.diff(block, axis=0)
        diff_sq += np.einsum("tv,tv->t", step, step)
    raw = np.sqrt(diff_sq / n_voxels)
    # Scaling to a median of 1000 multiplies DVARS and leaves std_dvars unchanged.
    scale = intensity / float(np.median(bold))
    standardized = raw / expected_sd.mean()
    return (np.concatenate([[np.nan], raw * scale]), np.concatenate([[np.nan], standardized]))


def highpass_variance(bold: np.ndarray, projector: np.ndarray) -> np.ndarray:
    """Temporal variance of each voxel after removing the mean and the cosine drifts.

    Parameters
    ----------
    bold : numpy.ndarray
        Shape (T, V).
    projector : numpy.ndarray
        Orthonormal (T, P) basis to remove.

    Returns
    -------
    numpy.ndarray
        Shape (V,).
    """
    out = np.empty(bold.shape[1])
    for cols in _column_chunks(bold.shape[1]):
        block = bold[:, cols].astype(np.float64)
        block -= projector @ (projector.T @ block)
        out[cols] = np.einsum("tv,tv->v", block, block) / block.shape[0]
    return out


# --------------------------------------------------------------------------------------------
# CompCor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompCor:
    """A CompCor decomposition: all non-null components and the number retained."""

    components: np.ndarray  # (T, n), unit-norm left singular vectors
    singular_values: np.ndarray  # (n,)
    variance_explained: np.ndarray  # (n,)
    n_retained: int


def compcor(
    bold: np.ndarray,
    columns: np.ndarray,
    projector: np.ndarray,
    variance_threshold: float = COMPCOR_VARIANCE,
) -> CompCor:
    """Principal components of high-passed, variance-normalized voxel time series.

    As nipype's CompCor with ``pre_filter='cosine'``: every voxel is high-passed (mean and
    cosines removed) and scaled to unit variance; the components are the left singular vectors
    of that (T, V) matrix, obtained from its (T, T) Gram matrix accumulated chunk by chunk so
    that large masks never need a full float64 copy. The first components reaching
    ``variance_threshold`` of the variance are retained.

    Parameters
    ----------
    bold : numpy.ndarray
        Shape (T, V).
    columns : numpy.ndarray
        Indices of the voxels of the mask.
    projector : numpy.ndarray
        Orthonormal (T, P) basis removed first.
    variance_threshold : float

    Returns
    -------
    CompCor
    """
    n_timepoints = bold.shape[0]
    gram = np.zeros((n_timepoints, n_timepoints))
    for part in _column_chunks(columns.size):
        block = bold[:, columns[part]].astype(np.float64)
        block -= projector @ (projector.T @ block)
        sd = block.std(axis=0)
        sd[sd == 0] = 1.0
        block /= sd
        gram += block @ block.T
    eigvals, eigvecs = np.linalg.eigh(gram)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = np.clip(eigvals[order], 0.0, None), eigvecs[:, order]
    # Components with (numerically) null variance are not components: the high-pass removes
    # P dimensions, and a mask with fewer voxels than time points has a smaller rank.
    keep = eigvals > eigvals[0] * 1e-10
    eigvals, eigvecs = eigvals[keep], eigvecs[:, keep]
    # An eigenvector's sign is arbitrary; make the largest-magnitude entry positive.
    peak = eigvecs[np.argmax(np.abs(eigvecs), axis=0), np.arange(eigvecs.shape[1])]
    eigvecs = eigvecs * np.sign(peak)
    explained = eigvals / eigvals.sum()
    n_retained = int(np.searchsorted(np.cumsum(explained), variance_threshold) + 1)
    return CompCor(
        components=eigvecs,
        singular_values=np.sqrt(eigvals),
        variance_explained=explained,
        n_retained=min(n_retained, eigvals.size),
    )


def _compcor_entries(
    result: CompCor, prefix: str, method: str, mask: str | None, first_dropped: int
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, object]]]:
    columns: dict[str, np.ndarray] = {}
    meta: dict[str, dict[str, object]] = {}
    cumulative = np.cumsum(result.variance_explained)
    for i in range(result.singular_values.size):
        retained = i < result.n_retained
        dropped = f"dropped_{first_dropped + i - result.n_retained}"
        name = f"{prefix}_{i:02d}" if retained else dropped
        entry: dict[str, object] = {
            "CumulativeVarianceExplained": round(float(cumulative[i]), 10),
            "Method": method,
            "Retained": retained,
            "SingularValue": round(float(result.singular_values[i]), 10),
            "VarianceExplained": round(float(result.variance_explained[i]), 10),
        }
        if mask is not None:
            entry["Mask"] = mask
        meta[name] = entry
        if retained:
            columns[name] = result.components[:, i]
    return columns, meta


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


#: The order of a column's expansions in fMRIPrep's files: the mean signals (global, CSF,
#: white matter) list them in one order, the motion parameters in another.
_MEAN_ORDER = ("", "_derivative1", "_derivative1_power2", "_power2")
_MOTION_ORDER = ("", "_derivative1", "_power2", "_derivative1_power2")


def _expand(name: str, x: np.ndarray, order: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A column, its first derivative and their squares, named and ordered as fMRIPrep does.

    Parameters
    ----------
    name : str
        The column's name; each expansion appends its suffix.
    x : numpy.ndarray
        Shape (T,).
    order : tuple of str
        The suffixes in the order of the columns (:data:`_MEAN_ORDER` or
        :data:`_MOTION_ORDER`).

    Returns
    -------
    dict of str to numpy.ndarray
    """
    d = derivative1(x)
    terms = {"": x, "_derivative1": d, "_power2": x**2, "_derivative1_power2": d**2}
    return {f"{name}{suffix}": terms[suffix] for suffix in order}


def motion_outliers(fd: np.ndarray, std_dvars: np.ndarray) -> np.ndarray:
    """Frames flagged as motion outliers: FD > 0.5 mm or std_dvars > 1.5.

    Parameters
    ----------
    fd, std_dvars : numpy.ndarray
        Shape (T,), NaN in the first frame (never flagged).

    Returns
    -------
    numpy.ndarray
        Sorted frame indices.
    """
    with np.errstate(invalid="ignore"):
        flagged = (fd > FD_SPIKE_THRESHOLD) | (std_dvars > DVARS_SPIKE_THRESHOLD)
    return np.flatnonzero(flagged)


def _noise_masks(
    bold: np.ndarray, compartment: np.ndarray, projector: np.ndarray
) -> dict[str, np.ndarray]:
    # Column indices of the CompCor masks. tCompCor takes the 2 % of voxels with the highest
    # high-passed variance; a stable sort keeps ties from depending on the sort algorithm.
    variance = highpass_variance(bold, projector)
    n_top = max(1, round(TCOMPCOR_FRACTION * bold.shape[1]))
    return {
        "CSF": np.flatnonzero(compartment == CSF),
        "WM": np.flatnonzero(compartment == WM),
        "combined": np.flatnonzero((compartment == WM) | (compartment == CSF)),
        "temporal": np.sort(np.argsort(-variance, kind="stable")[:n_top]),
    }


def _mean_columns(bold: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    def mean_of(cols: np.ndarray) -> np.ndarray:
        return bold[:, cols].mean(axis=1, dtype=np.float64)

    columns: dict[str, np.ndarray] = {}
    columns |= _expand("global_signal", bold.mean(axis=1, dtype=np.float64), _MEAN_ORDER)
    columns |= _expand("csf", mean_of(masks["CSF"]), _MEAN_ORDER)
    columns |= _expand("white_matter", mean_of(masks["WM"]), _MEAN_ORDER)
    columns["csf_wm"] = mean_of(masks["combined"])
    columns["tcompcor"] = mean_of(masks["temporal"])
    return columns


def _compcor_columns(
    bold: np.ndarray, masks: dict[str, np.ndarray], projector: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, object]]]:
    # fMRIPrep's order: tCompCor, then aCompCor in CSF, WM and both; dropped components are
    # numbered across all decompositions (their JSON keys must not collide).
    columns: dict[str, np.ndarray] = {}
    metadata: dict[str, dict[str, object]] = {}
    n_dropped = 0
    decompositions = (
        ("t_comp_cor", "tCompCor", None, masks["temporal"]),
        ("c_comp_cor", "aCompCor", "CSF", masks["CSF"]),
        ("w_comp_cor", "aCompCor", "WM", masks["WM"]),
        ("a_comp_cor", "aCompCor", "combined", masks["combined"]),
    )
    for prefix, method, mask, cols in decompositions:
        result = compcor(bold, cols, projector)
        comp_cols, comp_meta = _compcor_entries(result, prefix, method, mask, n_dropped)
        n_dropped += result.singular_values.size - result.n_retained
        columns |= comp_cols
        metadata |= comp_meta
    return columns, metadata


def confounds_table(
    bold: np.ndarray, compartment: np.ndarray, motion: np.ndarray, t_r: float
) -> tuple[pd.DataFrame, dict[str, dict[str, object]]]:
    """The fMRIPrep confounds table of one run and its JSON metadata.

    Parameters
    ----------
    bold : numpy.ndarray
        In-brain data, shape (T, V).
    compartment : numpy.ndarray
        Tissue label of each voxel (``grid.GM``, ``grid.WM``, ``grid.CSF``), shape (V,).
    motion : numpy.ndarray
        Motion parameters, shape (T, 6).
    t_r : float
        Repetition time (s).

    Returns
    -------
    table : pandas.DataFrame
        float64 columns in fMRIPrep's order, NaN where fMRIPrep writes ``n/a``.
    metadata : dict
        The ``desc-confounds_timeseries.json`` content.
    """
    n_timepoints = bold.shape[0]
    projector = _highpass_projector(n_timepoints, t_r)
    masks = _noise_masks(bold, compartment, projector)
    columns = _mean_columns(bold, masks)
    dv, std_dv = dvars(bold)
    fd = framewise_displacement(motion)
    columns |= {
        "std_dvars": std_dv,
        "dvars": dv,
        "framewise_displacement": fd,
        "rmsd": rms_displacement(motion),
    }
    metadata: dict[str, dict[str, object]] = {
        name: {"Method": "Mean"}
        for name in ("global_signal", "csf", "white_matter", "csf_wm", "tcompcor")
    }
    comp_columns, comp_metadata = _compcor_columns(bold, masks, projector)
    columns |= comp_columns
    metadata |= comp_metadata
    cosines = cosine_basis(n_timepoints, t_r)
    columns |= {f"cosine{k:02d}": cosines[:, k] for k in range(cosines.shape[1])}
    for j, name in enumerate(MOTION_COLUMNS):
        columns |= _expand(name, motion[:, j], _MOTION_ORDER)
    for k, frame in enumerate(motion_outliers(fd, std_dv)):
        spike = np.zeros(n_timepoints)
        spike[frame] = 1.0
        columns[f"motion_outlier{k:02d}"] = spike
    return pd.DataFrame(columns), metadata
