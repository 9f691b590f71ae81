"""The template grid: nilearn's MNI152 (2009) brain mask and tissue compartments.

Everything here is a pure function of the requested resolution. The grid is built once per
resolution and cached, and its arrays are read-only so that a caller cannot change the cached
copy by accident.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Tissue labels of the in-brain voxels (``Grid.compartment``).
GM, WM, CSF = 1, 2, 3

# nilearn resamples its 1 mm template itself for these resolutions; coarser grids are derived
# from the 4 mm one by nearest-neighbour resampling (cheap and keeps the mask binary).
_NILEARN_MAX_RESOLUTION = 4

# Thresholds for nilearn's tissue masks. The defaults (0.2, two dilations) make grey and white
# matter overlap over half the brain, which leaves no room for a CSF compartment; 0.5 with one
# dilation gives a core white matter and a ventricle/sulcal CSF compartment of plausible size.
_TISSUE_THRESHOLD = 0.5
_TISSUE_ITERATIONS = 1


@dataclass(frozen=True, eq=False)
class Grid:
    """A template grid with its brain mask and tissue compartments.

    Attributes
    ----------
    resolution_mm : int
        Isotropic voxel size in millimetres.
    affine : numpy.ndarray
        Voxel to MNI world (mm) affine, shape (4, 4).
    brain : numpy.ndarray
        Boolean brain mask, shape (X, Y, Z).
    compartment : numpy.ndarray
        Tissue label (``GM``, ``WM`` or ``CSF``) of every in-brain voxel, in the C order of
        ``brain``; shape (V,).
    coords : numpy.ndarray
        MNI coordinates (mm) of every in-brain voxel, shape (V, 3).
    edge_distance : numpy.ndarray
        Distance (mm) of every in-brain voxel to the outside of the brain, shape (V,).
    """

    resolution_mm: int
    affine: np.ndarray
    brain: np.ndarray
    compartment: np.ndarray
    coords: np.ndarray
    edge_distance: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape of the grid."""
        return tuple(int(n) for n in self.brain.shape)  # type: ignore[return-value]

    @property
    def n_voxels(self) -> int:
        """Number of in-brain voxels."""
        return int(self.compartment.size)

    @property
    def wm(self) -> np.ndarray:
        """Boolean (V,) selector of white-matter voxels."""
        return self.compartment == WM

    @property
    def csf(self) -> np.ndarray:
        """Boolean (V,) selector of CSF voxels."""
        return self.compartment == CSF

    def to_volume(self, values: np.ndarray) -> np.ndarray:
        """Scatter in-brain values into volumes.

        Parameters
        ----------
        values : numpy.ndarray
            Shape (V,) or (N, V).

        Returns
        -------
        numpy.ndarray
            Shape (X, Y, Z) or (X, Y, Z, N), zero outside the brain, same dtype as ``values``.
        """
        values = np.asarray(values)
        if values.ndim == 1:
            out = np.zeros(self.shape, dtype=values.dtype)
            out[self.brain] = values
            return out
        out = np.zeros((*self.shape, values.shape[0]), dtype=values.dtype)
        out[self.brain] = values.T
        return out


def resample_nearest(
    data: np.ndarray,
    affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, int, int],
) -> np.ndarray:
    """Nearest-neighbour resampling of a 3D volume onto another grid.

    Parameters
    ----------
    data : numpy.ndarray
        Source volume, shape (X, Y, Z).
    affine : numpy.ndarray
        Source voxel-to-world affine.
    target_affine : numpy.ndarray
        Target voxel-to-world affine.
    target_shape : tuple of int
        Target spatial shape.

    Returns
    -------
    numpy.ndarray
        Resampled volume of ``target_shape``, same dtype as ``data``; zero where the target
        voxel centre falls outside the source grid.
    """
    ijk = np.indices(target_shape).reshape(3, -1)
    world = target_affine[:3, :3] @ ijk + target_affine[:3, 3:4]
    src = np.linalg.inv(affine)
    # Round half up explicitly so the result does not depend on float noise at .5.
    src_ijk = np.floor(src[:3, :3] @ world + src[:3, 3:4] + 0.5).astype(np.int64)
    inside = np.all((src_ijk >= 0) & (src_ijk < np.array(data.shape)[:, None]), axis=0)
    out = np.zeros(int(np.prod(target_shape)), dtype=data.dtype)
    i, j, k = src_ijk[:, inside]
    out[inside] = data[i, j, k]
    return out.reshape(target_shape)


def coarser_grid(
    affine: np.ndarray, shape: tuple[int, int, int], resolution_mm: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a coarser isotropic grid covering the same field of view.

    The first voxel centre is kept, so that grids of multiple resolutions nest.

    Parameters
    ----------
    affine : numpy.ndarray
        Voxel-to-world affine of the finer (diagonal) grid.
    shape : tuple of int
        Shape of the finer grid.
    resolution_mm : int
        Voxel size of the coarser grid.

    Returns
    -------
    affine : numpy.ndarray
    shape : tuple of int
    """
    zooms = np.abs(np.diag(affine)[:3])
    new_shape = tuple(math.ceil(n * z / resolution_mm) for n, z in zip(shape, zooms, strict=True))
    new_affine = affine.copy()
    new_affine[:3, :3] = np.diag(np.sign(np.diag(affine)[:3]) * resolution_mm)
    return new_affine, new_shape  # type: ignore[return-value]


def voxel_coordinates(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates of the voxels of a mask, in the C order of ``mask``.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean 3D mask.
    affine : numpy.ndarray
        Voxel-to-world affine.

    Returns
    -------
    numpy.ndarray
        Shape (V, 3), float64 millimetres.
    """
    ijk = np.argwhere(mask).T.astype(np.float64)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).T


def tissue_labels(brain: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Label every in-brain voxel as grey matter, white matter or CSF.

    White matter is the white-matter mask minus the grey-matter mask (a core, as fMRIPrep's
    eroded mask is), CSF is what is in neither mask, the rest is grey matter.

    Parameters
    ----------
    brain, gm, wm : numpy.ndarray
        Boolean 3D masks on the same grid.

    Returns
    -------
    numpy.ndarray
        uint8 labels (``GM``, ``WM``, ``CSF``), shape (V,), in the C order of ``brain``.
    """
    labels = np.full(brain.shape, GM, dtype=np.uint8)
    labels[wm & ~gm] = WM
    labels[~wm & ~gm] = CSF
    return labels[brain]


@dataclass(frozen=True, eq=False)
class SmoothField:
    """A smooth random spatial field: a sum of plane waves, defined at any point in mm.

    Normalised to zero mean and unit variance over the reference points it was drawn for (the
    brain voxels), so evaluating it elsewhere (e.g. at surface vertices) gives the same field.

    Attributes
    ----------
    wavevectors : numpy.ndarray
        Shape (n_waves, 3), radians per mm.
    phase, weight : numpy.ndarray
        Shape (n_waves,).
    mean, sd : float
        Mean and standard deviation of the raw sum over the reference points.
    """

    wavevectors: np.ndarray
    phase: np.ndarray
    weight: np.ndarray
    mean: float
    sd: float

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        reference: np.ndarray,
        n_waves: int = 8,
        wavelength_mm: tuple[float, float] = (60.0, 160.0),
    ) -> SmoothField:
        """Draw random directions, wavelengths, phases and weights.

        Parameters
        ----------
        rng : numpy.random.Generator
        reference : numpy.ndarray
            Points (mm) over which the field has zero mean and unit variance, shape (V, 3).
        n_waves : int
            Number of plane waves.
        wavelength_mm : tuple of float
            Range of wavelengths.

        Returns
        -------
        SmoothField
        """
        direction = rng.standard_normal((n_waves, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        wavelength = rng.uniform(*wavelength_mm, size=n_waves)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        weight = rng.standard_normal(n_waves)
        k = direction * (2.0 * np.pi / wavelength)[:, None]
        raw = np.cos(reference @ k.T + phase) @ weight
        mean = float(raw.mean())
        return cls(k, phase, weight, mean, float((raw - mean).std()))

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """The field at points ``coords`` (mm), shape (N, 3); float64, shape (N,)."""
        field = np.cos(coords @ self.wavevectors.T + self.phase) @ self.weight
        field -= self.mean
        return field / self.sd if self.sd > 0 else field


def smooth_field(
    rng: np.random.Generator,
    coords: np.ndarray,
    n_waves: int = 8,
    wavelength_mm: tuple[float, float] = (60.0, 160.0),
) -> np.ndarray:
    """A smooth random spatial field with zero mean and unit variance (over the brain).

    A sum of plane waves of random direction, phase and long wavelength: smooth at any
    resolution and defined in millimetres, so the field does not depend on the grid. The
    values of ``SmoothField.draw(rng, coords, ...)`` at ``coords``.

    Parameters
    ----------
    rng : numpy.random.Generator
    coords : numpy.ndarray
        Voxel coordinates (mm), shape (V, 3).
    n_waves, wavelength_mm
        As for :meth:`SmoothField.draw`.

    Returns
    -------
    numpy.ndarray
        float64, shape (V,).
    """
    return SmoothField.draw(rng, coords, n_waves, wavelength_mm)(coords)


def _nilearn_masks(resolution_mm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets  # imported lazily: nilearn takes about a second to import

    brain_img = datasets.load_mni152_brain_mask(resolution=resolution_mm)
    kwargs = {"threshold": _TISSUE_THRESHOLD, "n_iter": _TISSUE_ITERATIONS}
    gm = datasets.load_mni152_gm_mask(resolution=resolution_mm, **kwargs)
    wm = datasets.load_mni152_wm_mask(resolution=resolution_mm, **kwargs)
    return (
        np.asarray(brain_img.dataobj) > 0,
        np.asarray(gm.dataobj) > 0,
        np.asarray(wm.dataobj) > 0,
        np.asarray(brain_img.affine, dtype=np.float64),
    )


@functools.lru_cache(maxsize=4)
def load_grid(resolution_mm: int) -> Grid:
    """The MNI152NLin2009cAsym template grid at an isotropic resolution.

    Resolutions up to 4 mm come from nilearn's packaged masks
    (``load_mni152_brain_mask(resolution=r)``: 99x117x95 at 2 mm, 50x59x48 at 4 mm); coarser
    ones are the 4 mm masks resampled (nearest neighbour) onto a grid with the same origin.

    Parameters
    ----------
    resolution_mm : int
        Isotropic voxel size (mm), a positive integer (it names the ``res-`` entity).

    Returns
    -------
    Grid
        Cached; its arrays are read-only.
    """
    if int(resolution_mm) != resolution_mm or resolution_mm < 1:
        raise ValueError(f"resolution_mm must be a positive integer, got {resolution_mm!r}")
    resolution_mm = int(resolution_mm)
    source = min(resolution_mm, _NILEARN_MAX_RESOLUTION)
    brain, gm, wm, affine = _nilearn_masks(source)
    if resolution_mm != source:
        affine_new, shape = coarser_grid(affine, brain.shape, resolution_mm)
        brain, gm, wm = (resample_nearest(m, affine, affine_new, shape) for m in (brain, gm, wm))
        affine = affine_new
    # Distance to the nearest voxel outside the brain: motion artefacts are strongest there.
    distance = ndimage.distance_transform_edt(brain, sampling=resolution_mm)
    arrays = {
        "affine": affine,
        "brain": brain,
        "compartment": tissue_labels(brain, gm, wm),
        "coords": voxel_coordinates(brain, affine),
        "edge_distance": distance[brain],
    }
    for array in arrays.values():
        array.setflags(write=False)
    return Grid(resolution_mm=resolution_mm, **arrays)
