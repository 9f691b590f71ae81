"""Surface outputs: fsaverage5 vertices, GIfTI functional files and CIFTI-2 dense time series.

The vertices are those of nilearn's packaged fsaverage5 mesh (10,242 per hemisphere, no
download): the midpoint of the white and pial surfaces (FreeSurfer's midthickness), whose
coordinates are taken as MNI152 millimetres (fsaverage lives in MNI305, a few mm away; this
is immaterial for maps with 15 mm nodes, and the truth is defined at these very points).

GIfTI files follow what FreeSurfer's ``mri_vol2surf`` writes and fMRIPrep ships: one
float32 ``NIFTI_INTENT_TIME_SERIES`` data array per frame, gzip-base64 encoded, with the
``AnatomicalStructurePrimary`` of the hemisphere in the file's metadata, so that
``nilearn.surface.load_surf_data`` returns (n_vertices, n_timepoints).

The CIFTI-2 files have the structure of HCP grayordinates (cortex left and right as surface
models, then subcortical voxel models in the 91k order) but not its size: the cortex is the
fsaverage5 mesh (all 10,242 vertices, no medial-wall mask) rather than fsLR 32k, and the
subcortical structures are the run grid's voxels nearest to approximate MNI centroids of
each structure (no atlas is packaged): 33,858 grayordinates at 2 mm, 22,173 at 4 mm and
20,698 at 8 mm, not 91,282.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel import cifti2
from scipy.spatial import cKDTree

from .grid import Grid

HEMISPHERES = ("L", "R")
SURFACE_SPACE = "fsaverage5"
_STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}
_CIFTI_CORTEX = {"L": "CIFTI_STRUCTURE_CORTEX_LEFT", "R": "CIFTI_STRUCTURE_CORTEX_RIGHT"}
# As FreeSurfer and fMRIPrep write them. nibabel compresses each array with zlib's default
# level: about 0.17 s per 120-frame hemisphere, most of the cost of the surface files;
# "GIFTI_ENCODING_B64BIN" (no compression, files 25 % larger) would cut it sixfold.
GIFTI_ENCODING = "GIFTI_ENCODING_B64GZ"

# Approximate MNI152 centroids (mm) and radii (mm) of the subcortical structures of the HCP
# grayordinates, in the order of the 91k files. A stand-in for an atlas: each voxel within a
# radius goes to the structure whose centroid is nearest relative to its radius.
SUBCORTICAL: tuple[tuple[str, tuple[float, float, float], float], ...] = (
    ("ACCUMBENS_LEFT", (-10.0, 12.0, -8.0), 7.0),
    ("ACCUMBENS_RIGHT", (10.0, 12.0, -8.0), 7.0),
    ("AMYGDALA_LEFT", (-23.0, -5.0, -18.0), 8.0),
    ("AMYGDALA_RIGHT", (24.0, -4.0, -18.0), 8.0),
    ("BRAIN_STEM", (0.0, -28.0, -32.0), 12.0),
    ("CAUDATE_LEFT", (-13.0, 10.0, 10.0), 8.0),
    ("CAUDATE_RIGHT", (14.0, 11.0, 10.0), 8.0),
    ("CEREBELLUM_LEFT", (-25.0, -62.0, -34.0), 20.0),
    ("CEREBELLUM_RIGHT", (25.0, -62.0, -34.0), 20.0),
    ("DIENCEPHALON_VENTRAL_LEFT", (-11.0, -16.0, -9.0), 7.0),
    ("DIENCEPHALON_VENTRAL_RIGHT", (11.0, -16.0, -9.0), 7.0),
    ("HIPPOCAMPUS_LEFT", (-26.0, -22.0, -13.0), 9.0),
    ("HIPPOCAMPUS_RIGHT", (28.0, -21.0, -13.0), 9.0),
    ("PALLIDUM_LEFT", (-19.0, -4.0, 0.0), 6.0),
    ("PALLIDUM_RIGHT", (20.0, -4.0, 0.0), 6.0),
    ("PUTAMEN_LEFT", (-25.0, 2.0, 1.0), 9.0),
    ("PUTAMEN_RIGHT", (26.0, 3.0, 1.0), 9.0),
    ("THALAMUS_LEFT", (-11.0, -18.0, 7.0), 9.0),
    ("THALAMUS_RIGHT", (12.0, -18.0, 7.0), 9.0),
)


@dataclass(frozen=True, eq=False)
class Surface:
    """The vertices of both hemispheres, left then right.

    Attributes
    ----------
    coords : numpy.ndarray
        Midthickness coordinates (mm), shape (N, 3), left hemisphere first.
    n_left : int
        Number of left-hemisphere vertices.
    """

    coords: np.ndarray
    n_left: int

    @property
    def n_vertices(self) -> int:
        """Vertices of both hemispheres."""
        return int(self.coords.shape[0])

    def hemisphere(self, hemi: str) -> slice:
        """Columns of hemisphere ``"L"`` or ``"R"`` in arrays over all vertices."""
        if hemi not in HEMISPHERES:
            raise ValueError(f"hemi must be one of {HEMISPHERES}, got {hemi!r}")
        return slice(0, self.n_left) if hemi == "L" else slice(self.n_left, self.n_vertices)


@functools.lru_cache(maxsize=1)
def load_fsaverage5() -> Surface:
    """nilearn's packaged fsaverage5 mesh, midway between the white and pial surfaces.

    Returns
    -------
    Surface
        10,242 vertices per hemisphere; cached, arrays read-only.
    """
    from nilearn import datasets  # imported lazily: nilearn takes about a second to import

    mesh = datasets.load_fsaverage(SURFACE_SPACE)
    parts = []
    for part in ("left", "right"):
        white = np.asarray(mesh["white_matter"].parts[part].coordinates, dtype=np.float64)
        pial = np.asarray(mesh["pial"].parts[part].coordinates, dtype=np.float64)
        parts.append((white + pial) / 2.0)
    coords = np.concatenate(parts)
    coords.setflags(write=False)
    return Surface(coords=coords, n_left=int(parts[0].shape[0]))


def nearest_voxels(grid: Grid, coords: np.ndarray) -> np.ndarray:
    """Index (into the in-brain voxels) of the voxel nearest to each point.

    Parameters
    ----------
    grid : Grid
    coords : numpy.ndarray
        Points (mm), shape (N, 3).

    Returns
    -------
    numpy.ndarray
        int64, shape (N,).
    """
    _, index = cKDTree(grid.coords).query(coords)
    return np.asarray(index, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# GIfTI
# --------------------------------------------------------------------------------------------


def write_func_gifti(path, data: np.ndarray, hemi: str) -> None:
    """Write a functional GIfTI file: one time-series data array per frame.

    Parameters
    ----------
    path : str or os.PathLike
        ``.func.gii`` file.
    data : numpy.ndarray
        Shape (T, n_vertices) of one hemisphere.
    hemi : {"L", "R"}
    """
    frames = np.ascontiguousarray(data, dtype="<f4")
    darrays = [
        nib.gifti.GiftiDataArray(
            frame,
            intent="NIFTI_INTENT_TIME_SERIES",
            datatype="NIFTI_TYPE_FLOAT32",
            encoding=GIFTI_ENCODING,
            coordsys=None,
        )
        for frame in frames
    ]
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": _STRUCTURE[hemi]})
    nib.gifti.GiftiImage(meta=meta, darrays=darrays).to_filename(path)


def write_maps_gifti(path, maps: np.ndarray, names: list[str], hemi: str) -> None:
    """Write maps as a GIfTI file, one named data array per map.

    Parameters
    ----------
    path : str or os.PathLike
    maps : numpy.ndarray
        Shape (K, n_vertices) of one hemisphere.
    names : list of str
        The ``Name`` metadata of each array.
    hemi : {"L", "R"}
    """
    darrays = [
        nib.gifti.GiftiDataArray(
            np.ascontiguousarray(values, dtype="<f4"),
            intent="NIFTI_INTENT_NONE",
            datatype="NIFTI_TYPE_FLOAT32",
            encoding=GIFTI_ENCODING,
            coordsys=None,
            meta=nib.gifti.GiftiMetaData({"Name": name}),
        )
        for values, name in zip(maps, names, strict=True)
    ]
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": _STRUCTURE[hemi]})
    nib.gifti.GiftiImage(meta=meta, darrays=darrays).to_filename(path)


# --------------------------------------------------------------------------------------------
# CIFTI-2
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Grayordinates:
    """The brain models of a dense CIFTI file and where their values come from.

    Attributes
    ----------
    axis : nibabel.cifti2.BrainModelAxis
        Cortex left, cortex right (all surface vertices), then subcortical voxel structures.
    voxels : numpy.ndarray
        In-brain voxel index of each volume grayordinate, in the axis order.
    structures : tuple of (str, int)
        Name (without the ``CIFTI_STRUCTURE_`` prefix) and size of every brain model.
    """

    axis: cifti2.BrainModelAxis
    voxels: np.ndarray
    structures: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        """Number of grayordinates."""
        return int(self.axis.size)


def subcortical_labels(grid: Grid) -> np.ndarray:
    """Structure of every in-brain voxel: an index into ``SUBCORTICAL`` or -1.

    A voxel within a structure's radius of its centroid goes to the structure whose
    centroid is nearest relative to its radius; a structure left without any voxel (a
    coarse grid) gets the free in-brain voxel nearest to its centroid, so that every
    structure is present at every resolution.

    Parameters
    ----------
    grid : Grid

    Returns
    -------
    numpy.ndarray
        int64, shape (V,).
    """
    centres = np.array([c for _, c, _ in SUBCORTICAL])
    radii = np.array([r for _, _, r in SUBCORTICAL])
    distance = np.stack([np.linalg.norm(grid.coords - c, axis=1) for c in centres], axis=1)
    relative = distance / radii
    labels = np.where(relative.min(axis=1) <= 1.0, relative.argmin(axis=1), -1)
    for s in range(len(SUBCORTICAL)):
        if not np.any(labels == s):
            free = np.flatnonzero(labels < 0)
            labels[free[np.argmin(distance[free, s])]] = s
    return labels.astype(np.int64)


def grayordinates(grid: Grid, surface: Surface) -> Grayordinates:
    """Brain models for dense files of ``surface`` and the subcortical voxels of ``grid``.

    Parameters
    ----------
    grid : Grid
    surface : Surface

    Returns
    -------
    Grayordinates
    """
    names, vertices, voxels, indices, structures = [], [], [], [], []
    nvertices = {}
    for hemi in HEMISPHERES:
        n = surface.hemisphere(hemi).stop - surface.hemisphere(hemi).start
        names += [_CIFTI_CORTEX[hemi]] * n
        vertices.append(np.arange(n))
        voxels.append(np.full((n, 3), -1))
        nvertices[_CIFTI_CORTEX[hemi]] = n
        structures.append((_CIFTI_CORTEX[hemi].removeprefix("CIFTI_STRUCTURE_"), n))
    labels = subcortical_labels(grid)
    index = np.full(grid.shape, -1, dtype=np.int64)
    index[grid.brain] = np.arange(grid.n_voxels)
    for s, (name, _, _) in enumerate(SUBCORTICAL):
        mask = np.zeros(grid.shape, dtype=bool)
        mask[grid.brain] = labels == s
        ijk = np.argwhere(mask)  # C order, as nibabel's BrainModelAxis.from_mask lists them
        names += [f"CIFTI_STRUCTURE_{name}"] * len(ijk)
        vertices.append(np.full(len(ijk), -1))
        voxels.append(ijk)
        indices.append(index[mask])
        structures.append((name, len(ijk)))
    # One constructor call: adding per-structure axes re-validates every name each time.
    axis = cifti2.BrainModelAxis(
        names,
        voxel=np.concatenate(voxels),
        vertex=np.concatenate(vertices),
        affine=grid.affine,
        volume_shape=grid.shape,
        nvertices=nvertices,
    )
    return Grayordinates(axis=axis, voxels=np.concatenate(indices), structures=tuple(structures))


def dtseries_header(
    grayordinates_: Grayordinates, n_timepoints: int, t_r: float
) -> cifti2.Cifti2Header:
    """The CIFTI-2 header of dense time series: a series axis (s) and the brain models.

    Building it walks every grayordinate in Python, so it is made once per dataset.
    """
    series = cifti2.SeriesAxis(start=0.0, step=float(t_r), size=n_timepoints, unit="SECOND")
    return cifti2.Cifti2Header.from_axes((series, grayordinates_.axis))


def write_dtseries(
    path,
    header: cifti2.Cifti2Header,
    grayordinates_: Grayordinates,
    surface_data: np.ndarray,
    volume_data: np.ndarray,
) -> None:
    """Write a CIFTI-2 dense time series (``.dtseries.nii``), float32.

    Parameters
    ----------
    path : str or os.PathLike
    header : nibabel.cifti2.Cifti2Header
        From ``dtseries_header``.
    grayordinates_ : Grayordinates
    surface_data : numpy.ndarray
        Shape (T, n_vertices), both hemispheres, left first.
    volume_data : numpy.ndarray
        Shape (T, V): every in-brain voxel (the subcortical ones are picked).
    """
    data = np.concatenate(
        [surface_data.astype(np.float32), volume_data[:, grayordinates_.voxels]], axis=1
    ).astype("<f4")
    image = cifti2.Cifti2Image(data, header=header)
    image.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES")
    image.to_filename(path)
