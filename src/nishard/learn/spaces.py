"""The space of a key's features, to write maps back as images: volume, surface or CIFTI.

- ``VolumeSpace``: masked voxels; maps become a 4D NIfTI (one volume per map) through
  the mask (:mod:`nishard.learn.masks`).
- ``SurfaceSpace``: the vertices of one hemisphere (keys ``surface_L``, ``surface_R``);
  maps become a GIfTI file with one data array per map.
- ``CiftiSpace``: grayordinates (keys holding ``cifti``); maps become a CIFTI-2 dense
  scalar file with the brain-model axis of an input dense time series.
- ``ArraySpace``: features of unknown geometry; maps stay arrays (``.npy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..imageio import load_header
from .errors import LearnError
from .masks import VolumeMask, manifest_mask, resolve_mask

#: The vertices of one fsaverage5 hemisphere: such maps are drawn on nilearn's mesh.
FSAVERAGE5_VERTICES = 10242


class _ImageSpace:
    """Base of the spaces whose maps become an image that nibabel writes.

    A subclass sets ``suffix`` (the file extension) and defines ``to_image(maps)``.
    """

    suffix: str

    def save(self, maps: np.ndarray, path: Path) -> Path:
        """Write ``maps`` as the space's image at ``path`` plus ``suffix``; the path written."""
        path = Path(str(path) + self.suffix)
        nib.save(self.to_image(maps), path)
        return path


@dataclass(frozen=True, eq=False)
class VolumeSpace(_ImageSpace):
    mask: VolumeMask
    kind = "volume"
    suffix = ".nii.gz"

    @property
    def description(self) -> str:
        return f"volume, {self.mask.n_voxels} voxels in the mask ({self.mask.origin})"

    def to_image(self, maps: np.ndarray):
        return self.mask.to_image(maps)

    def to_series(self, data: np.ndarray):
        """A ``(time, voxels)`` array as a 4D NIfTI, one volume per frame."""
        return self.mask.to_image(data)


@dataclass(frozen=True)
class SurfaceSpace(_ImageSpace):
    hemisphere: str  # "left" or "right"
    n_vertices: int
    kind = "surface"
    suffix = ".func.gii"

    @property
    def description(self) -> str:
        return f"surface, {self.hemisphere} hemisphere, {self.n_vertices} vertices"

    def to_image(self, maps: np.ndarray):
        return self._gifti(maps, "NIFTI_INTENT_ESTIMATE", "component")

    def to_series(self, data: np.ndarray):
        """A ``(time, vertices)`` array as a GIfTI time series, one data array per frame."""
        return self._gifti(data, "NIFTI_INTENT_TIME_SERIES", "frame")

    def _gifti(self, rows: np.ndarray, intent: str, name: str):
        structure = "CortexLeft" if self.hemisphere == "left" else "CortexRight"
        meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure})
        arrays = [
            nib.gifti.GiftiDataArray(
                np.asarray(m, dtype=np.float32),
                intent=intent,
                datatype="NIFTI_TYPE_FLOAT32",
                meta=nib.gifti.GiftiMetaData({"Name": f"{name} {i}"}),
            )
            for i, m in enumerate(np.atleast_2d(rows))
        ]
        return nib.gifti.GiftiImage(darrays=arrays, meta=meta)


@dataclass(frozen=True, eq=False)
class CiftiSpace(_ImageSpace):
    axis: object  # nibabel.cifti2.BrainModelAxis
    origin: str = ""
    kind = "cifti"
    suffix = ".dscalar.nii"

    @property
    def description(self) -> str:
        return f"CIFTI grayordinates, {len(self.axis)} (brain models of {self.origin})"

    def to_image(self, maps: np.ndarray):
        maps = np.atleast_2d(np.asarray(maps, dtype=np.float32))
        names = nib.cifti2.ScalarAxis([f"component {i}" for i in range(maps.shape[0])])
        header = nib.cifti2.Cifti2Header.from_axes((names, self.axis))
        return nib.Cifti2Image(maps, header)

    def to_series(self, data: np.ndarray):
        """A ``(time, grayordinates)`` array as a CIFTI-2 dense time series; its series axis
        counts frames (start 0, step 1): the fit does not know the repetition time."""
        data = np.atleast_2d(np.asarray(data, dtype=np.float32))
        series = nib.cifti2.SeriesAxis(0.0, 1.0, data.shape[0])
        header = nib.cifti2.Cifti2Header.from_axes((series, self.axis))
        return nib.Cifti2Image(data, header)


@dataclass(frozen=True)
class ArraySpace:
    n_features: int
    kind = "array"
    suffix = ".npy"

    @property
    def description(self) -> str:
        return f"{self.n_features} features of unknown geometry (no mask found or given)"

    def to_image(self, maps: np.ndarray):
        return None

    def to_series(self, data: np.ndarray) -> np.ndarray:
        """Features of unknown geometry stay an array."""
        return np.asarray(data)

    def save(self, maps: np.ndarray, path: Path) -> Path:
        path = Path(str(path) + self.suffix)
        np.save(path, np.asarray(maps, dtype=np.float32))
        return path


Space = VolumeSpace | SurfaceSpace | CiftiSpace | ArraySpace


def _hemisphere(key: str) -> str | None:
    lowered = key.lower()
    if not lowered.startswith("surface"):
        return None
    if lowered.endswith(("_l", "_left", "lh")):
        return "left"
    if lowered.endswith(("_r", "_right", "rh")):
        return "right"
    return None


def _cifti_axis(folders, manifests, n_features: int):
    """The brain-model axis of an input dense time series of the manifests, if found."""
    from .masks import _input_files, _spec_bases

    for folder, manifest in zip(folders, manifests, strict=True):
        bases = _spec_bases(folder, manifest.get("spec") or {})
        root, inputs = _input_files(folder, manifest, bases)
        if root is None:
            continue
        for name in sorted(inputs):
            if name.endswith(".dtseries.nii") and (root / name).is_file():
                axis = load_header(root / name).header.get_axis(1)
                if len(axis) == n_features:
                    return axis, str(root / name)
    return None, ""


def resolve_space(
    folders, manifests, key: str, n_features: int, mask: object = None
) -> VolumeSpace | SurfaceSpace | CiftiSpace | ArraySpace:
    """The space of ``key``'s features over shard folders (see the module's docstring).

    Parameters
    ----------
    folders, manifests : sequences
        The shard folders and their manifests (empty for arrays not in shards).
    key : str
    n_features : int
    mask : path, nibabel image or None
        For volume keys: the mask, overriding (and checked against) the manifests'.
        For CIFTI keys: a CIFTI file whose brain-model axis to use.

    Raises
    ------
    LearnError
        See :func:`nishard.learn.masks.resolve_mask`.
    """
    hemi = _hemisphere(key)
    if hemi is not None:
        return SurfaceSpace(hemi, n_features)
    if "cifti" in key.lower():
        if mask is not None:
            axis = load_header(mask).header.get_axis(1)
            if len(axis) != n_features:
                raise LearnError(
                    f"the CIFTI file given ({mask}) has {len(axis)} grayordinates, the "
                    f"samples of {key!r} {n_features}"
                )
            return CiftiSpace(axis, str(mask))
        axis, origin = _cifti_axis(folders, manifests, n_features)
        return CiftiSpace(axis, origin) if axis is not None else ArraySpace(n_features)
    if folders:
        found = resolve_mask(tuple(folders), tuple(manifests), key, n_features, mask)
    elif mask is not None:
        found = resolve_mask((), (), key, n_features, mask)
    else:
        found = None
    return VolumeSpace(found) if found is not None else ArraySpace(n_features)


__all__ = [
    "ArraySpace",
    "CiftiSpace",
    "Space",
    "SurfaceSpace",
    "VolumeSpace",
    "manifest_mask",
    "resolve_space",
]
