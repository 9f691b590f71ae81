"""Gaussian smoothing of a BOLD volume series by a FWHM in mm, as ``nilearn.image.smooth_img``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import SampleError
from .base import Demands, Sample, SingleKey

#: FWHM of a Gaussian over its standard deviation: sqrt(8 ln 2).
FWHM_PER_SIGMA = math.sqrt(8 * math.log(2))

Fwhm = float | tuple[float, float, float] | str


def voxel_sigmas(affine: np.ndarray, fwhm: float | tuple[float, ...]) -> np.ndarray:
    """Standard deviation of the kernel in voxels along each axis.

    The voxel size of an axis is the length of its column of the affine, so oblique grids
    get the size along their own axes (nilearn's rule).
    """
    values = [0.0 if f is None else f for f in np.ravel(np.asarray(fwhm, dtype=object))]
    widths = np.broadcast_to(np.asarray(values, dtype=np.float64), (3,))
    sizes = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return widths / (FWHM_PER_SIGMA * sizes)


def smooth(
    data: np.ndarray,
    affine: np.ndarray | None,
    fwhm: Fwhm,
    *,
    ensure_finite: bool = True,
) -> np.ndarray:
    """Smooth each volume with a Gaussian kernel, as ``nilearn.image.smooth_img``.

    Parameters
    ----------
    data : ndarray, shape (x, y, z) or (x, y, z, t)
        Not modified. Integer data become float32 (float64 for 64-bit integers).
    affine : ndarray (4, 4) or (3, 3)
        Gives the voxel sizes; unused for ``fwhm="fast"``.
    fwhm : float, sequence of 3 floats, or "fast"
        Full width at half maximum in mm, one for all axes or one per axis (0 or None:
        that axis is not smoothed). ``"fast"``: nilearn's quick 6-neighbour average
        (weights 0.2 on each face neighbour, normalised by 2.2).
    ensure_finite : bool
        Replace NaN and infinite values by 0 before smoothing (``smooth_img`` always does;
        without it they spread over the kernel's reach).

    Returns
    -------
    ndarray, same shape as ``data``
        Each axis is filtered in turn by ``scipy.ndimage.gaussian_filter1d`` (kernel cut at
        4 sigma, borders reflected), as nilearn filters.
    """
    from scipy.ndimage import gaussian_filter1d

    if data.ndim not in (3, 4):
        raise ValueError(f"a 3D or 4D volume to smooth, got shape {data.shape}")
    if data.dtype.kind in "iub":
        out = data.astype(np.float64 if data.dtype.itemsize == 8 else np.float32)
    else:
        out = data.copy()
    if ensure_finite:
        out[~np.isfinite(out)] = 0
    if isinstance(fwhm, str):
        if fwhm != "fast":
            raise ValueError(f"fwhm: mm, 3 mm values or 'fast'; got {fwhm!r}")
        return _fast(out)
    if affine is None:
        raise ValueError("smoothing by a FWHM in mm needs the image's affine")
    for axis, sigma in enumerate(voxel_sigmas(affine, fwhm)):
        if sigma > 0:
            gaussian_filter1d(out, sigma, axis=axis, output=out)
    return out


def _fast(data: np.ndarray) -> np.ndarray:
    # A uniform image stays uniform away from the borders: 1 + 6 * 0.2 = 2.2.
    weight = 0.2
    out = data.copy()
    part = weight * data
    for axis in range(3):
        lead = [slice(None)] * data.ndim
        rest = [slice(None)] * data.ndim
        lead[axis], rest[axis] = slice(None, -1), slice(1, None)
        out[tuple(lead)] += part[tuple(rest)]
        out[tuple(rest)] += part[tuple(lead)]
    out /= 1 + 6 * weight
    return out


def _check_fwhm(fwhm) -> None:
    if isinstance(fwhm, str):
        if fwhm != "fast":
            raise ValueError(f"fwhm: mm, 3 mm values or 'fast'; got {fwhm!r}")
        return
    values = fwhm if isinstance(fwhm, tuple | list) else (fwhm,)
    if len(values) not in (1, 3):
        raise ValueError(f"fwhm: one value in mm or one per axis (3), got {fwhm!r}")
    for value in values:
        ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if not ok or (value is not None and not (math.isfinite(value) and value >= 0)):
            raise ValueError(f"fwhm: mm values >= 0, got {fwhm!r}")
    if all(v in (None, 0) for v in values):
        raise ValueError(f"fwhm: a positive width somewhere, got {fwhm!r} (no smoothing)")


@dataclass(frozen=True)
class Smooth(SingleKey):
    """Gaussian smoothing of the 4D image before masking; see :func:`smooth`.

    Equal to ``nilearn.image.smooth_img(img, fwhm)`` and to a masker's
    ``smoothing_fwhm``. Uses the BOLD affine the loader puts next to ``bold``.

    Parameters
    ----------
    fwhm : float, list of 3 floats, or "fast"
        Full width at half maximum in mm.
    ensure_finite : bool
        Replace NaN and infinite values by zeros first (nilearn always does).
    key : str
        The sample key of the 4D image (x, y, z, t). Surface data (time, vertex) is refused.
    """

    fwhm: Fwhm = 6.0
    ensure_finite: bool = True
    key: str = "bold"

    name: ClassVar[str] = "smooth"
    demands: ClassVar[Demands] = Demands(
        memory_factor=2.5, whole_time_axis=False, voxel_blocks=False
    )

    def __post_init__(self) -> None:
        _check_fwhm(self.fwhm)

    def __call__(self, sample: Sample) -> Sample:
        data = sample[self.key]
        if data.ndim != 4:
            surface = (
                " (surface data, GIfTI or CIFTI, cannot be smoothed here)" if data.ndim == 2 else ""
            )
            raise SampleError(
                "bold",
                f"a 4D volume (x, y, z, time) under {self.key!r}, before mask{surface}",
                f"an array of shape {data.shape}",
            )
        affine = sample.get("affine")
        if affine is None and self.fwhm != "fast":
            raise SampleError("bold", f"the BOLD affine next to {self.key!r}", "no 'affine'")
        return {
            **sample,
            self.key: smooth(data, affine, self.fwhm, ensure_finite=self.ensure_finite),
        }
