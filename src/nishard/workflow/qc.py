"""Per-record quality figures, measured in the worker where a record's files are loaded.

A record's QC is a few numbers, so that a manifest of 100,000 records stays small:

- ``volumes``: the run's length as loaded;
- ``tsnr``: temporal signal-to-noise ratio of the BOLD data as loaded (before any step),
  the median over voxels of ``mean / std`` along time (nipype's ``TSNR`` without
  detrending, as fMRIPrep's reports give it), over the brain mask's voxels when a mask is
  loaded, else over the voxels whose mean is positive; at most :data:`MAX_VOXELS` voxels,
  evenly spaced in the array's order, are measured (a deterministic sample, so that
  measuring stays a small fraction of a record's cost);
- ``fd_mean``, ``fd_max``: framewise displacement (Power et al., 2012) in mm, from the
  confounds' ``framewise_displacement`` column, or from the six motion parameters
  (rotations on a 50 mm sphere, as fMRIPrep computes it) when the table has only those
  (HCP's ``Movement_Regressors.txt``); absent without confounds;
- ``censored``: the fraction of volumes a :class:`~nishard.transforms.denoise.Clean`
  step removed (its ``volumes`` output: the kept ones); absent when no step censors.

The node that loads the files measures them (:func:`measure_inputs`), a node whose step
writes ``volumes`` counts them (:func:`measure_outputs`); each node's figures travel
with its outputs under :data:`QC_KEY`, so a node taken from the cache brings them too and
every executor gives the same numbers; :func:`combine` makes the record's entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

#: The key under which a node's figures travel among its outputs (and in the node cache).
QC_KEY = "_qc"
#: At most this many voxels (or grayordinates) are measured for the temporal SNR.
MAX_VOXELS = 20_000
#: Significant digits kept: the figures are read, not computed with.
DIGITS = 5
#: The radius (mm) that turns rotations (radians) into displacements, as fMRIPrep's.
RADIUS_MM = 50.0


def measure_inputs(sample: Mapping) -> dict[str, float]:
    """The figures of a freshly loaded sample (its ``bold``/``cifti`` and confounds).

    Parameters
    ----------
    sample : mapping
        As :func:`~.inputs.load_inputs` gives it.

    Returns
    -------
    dict
        ``volumes`` and ``tsnr`` when BOLD data is loaded, ``fd_mean`` and ``fd_max``
        when confounds are; empty when neither is.
    """
    figures: dict[str, float] = {}
    series = _series(sample)
    if series is not None:
        voxels, masked = series
        figures["volumes"] = int(voxels.shape[1])
        tsnr = _median_tsnr(voxels, masked)
        if tsnr is not None:
            figures["tsnr"] = tsnr
    fd = framewise_displacement(sample)
    if fd is not None and fd.size:
        figures["fd_mean"] = _round(float(np.mean(fd)))
        figures["fd_max"] = _round(float(np.max(fd)))
    return figures


def measure_outputs(sample: Mapping) -> dict[str, float]:
    """The figures of a node's outputs: how many volumes a censoring step kept."""
    volumes = sample.get("volumes")
    if isinstance(volumes, np.ndarray) and volumes.ndim == 1:
        return {"kept": int(volumes.shape[0])}
    return {}


def combine(parts: Iterable[Mapping]) -> dict[str, float] | None:
    """A record's QC entry from its nodes' figures; None when there are none."""
    merged: dict[str, float] = {}
    for part in parts:
        merged.update(part)
    kept = merged.pop("kept", None)
    if kept is not None and merged.get("volumes"):
        merged["censored"] = _round(1.0 - kept / merged["volumes"])
    return dict(sorted(merged.items())) or None


def temporal_snr(data: np.ndarray, inside: np.ndarray | None = None) -> float | None:
    """Median temporal SNR of a (voxel, time) array, over ``inside`` voxels (a boolean
    mask) or, without one, over the voxels whose mean is positive; None when no voxel
    varies. At most :data:`MAX_VOXELS` voxels, evenly spaced, are measured."""
    chosen = _evenly(np.arange(data.shape[0]) if inside is None else np.flatnonzero(inside))
    return _median_tsnr(data[chosen], inside is not None)


def _median_tsnr(voxels: np.ndarray, masked: bool) -> float | None:
    values = np.asarray(voxels, dtype=np.float64)
    mean = values.mean(axis=1)
    std = values.std(axis=1)
    useful = std > 0
    if not masked:
        useful &= mean > 0
    if not useful.any():
        return None
    return _round(float(np.median(mean[useful] / std[useful])))


def _evenly(indices: np.ndarray) -> np.ndarray:
    """At most :data:`MAX_VOXELS` of ``indices``, evenly spaced."""
    if indices.size <= MAX_VOXELS:
        return indices
    return indices[np.linspace(0, indices.size - 1, MAX_VOXELS).astype(np.int64)]


def framewise_displacement(sample: Mapping) -> np.ndarray | None:
    """Framewise displacement per volume (mm), the first (undefined) one left out; None
    without a confounds table that gives it."""
    table = None
    for kind in ("confounds", "movement"):
        entry = sample.get(kind)
        if isinstance(entry, tuple) and entry:
            table = entry[0]
            break
    if table is None:
        return None
    if "framewise_displacement" in table.columns:
        fd = np.asarray(table["framewise_displacement"], dtype=np.float64)[1:]
        return fd[np.isfinite(fd)]
    motion = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    if not all(name in table.columns for name in motion):
        return None
    values = np.asarray(table[motion], dtype=np.float64)
    steps = np.abs(np.diff(values, axis=0))
    steps[:, 3:] *= RADIUS_MM
    fd = steps.sum(axis=1)
    return fd[np.isfinite(fd)]


def _series(sample: Mapping) -> tuple[np.ndarray, bool] | None:
    """The measured voxels' time series, (voxel, time), and whether they are the mask's.

    Only the chosen voxels are copied: a 4-D image is indexed by their coordinates, as a
    reshape of the whole array would copy it (the loaders give Fortran-ordered arrays).
    """
    bold, mask = sample.get("bold"), sample.get("mask")
    if isinstance(bold, np.ndarray) and bold.ndim == 4:
        masked = isinstance(mask, np.ndarray) and mask.shape == bold.shape[:3]
        inside = np.flatnonzero(np.asarray(mask) > 0) if masked else np.arange(bold[..., 0].size)
        return bold[np.unravel_index(_evenly(inside), bold.shape[:3])], masked
    if isinstance(bold, np.ndarray) and bold.ndim == 2 and isinstance(mask, np.ndarray):
        # Read masked (:func:`~.inputs.load_masked_bold`): its columns are the mask's
        # voxels in the order above, so the same voxels are measured.
        if bold.shape[1] == np.count_nonzero(mask):
            return bold[:, _evenly(np.arange(bold.shape[1]))].T, True
    for kind in ("cifti", "bold"):
        series = sample.get(kind)
        if isinstance(series, np.ndarray) and series.ndim == 2:  # (time, grayordinate)
            return series[:, _evenly(np.arange(series.shape[1]))].T, False
    return None


def _round(value: float) -> float:
    """``value`` to :data:`DIGITS` significant digits (a float JSON writes briefly)."""
    return float(f"{value:.{DIGITS}g}")
