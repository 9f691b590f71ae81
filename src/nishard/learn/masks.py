"""Where the features of a key come from: the brain mask of volume data, found or given.

Masked voxel samples are ``(time, voxels)`` arrays in the mask's C order (as
``NiftiMasker`` gives them); writing components back as images needs that mask's
array and affine. :func:`resolve_mask` finds it, in this order:

1. the ``mask=`` the user gives (a path or a nibabel image);
2. a mask the writer stored beside the shards: ``manifest["masks"][key]`` with
   ``{"file": <name in the folder>, "sha256": ...}`` (read when present);
3. the shards' spec: the last ``mask`` step writing the key. A given mask file
   (``source: FILE``) is read relative to the spec's folder (found from ``output.path``,
   else the shard folder's parent or the current folder) and, when it is not on the
   BOLD grid, resampled to it exactly as the Mask transform did (nearest neighbour,
   :func:`nishard.transforms.resampling.image_on_grid`, on the grid of one of the
   manifest's input BOLD files). The record's own mask (``source: record`` or
   ``intersection``) is found among the manifest's ``inputs``: every record must have
   the same mask (one sha256, or equal arrays), since group learning needs one.

Every mask found is checked against the shards' feature count, and the masks of several
folders against each other: shards of different masks mixed are refused with both named.
Surface keys (``surface_L``, ``surface_R``) need no mask; CIFTI keys take their
brain-model axis from an input CIFTI file (see :mod:`nishard.learn.spaces`).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..imageio import load as load_image
from .errors import LearnError


@dataclass(frozen=True, eq=False)
class VolumeMask:
    """A 3D brain mask: which voxels the features are, in C order.

    Attributes
    ----------
    mask : ndarray of bool, shape (x, y, z)
    affine : ndarray, shape (4, 4)
    origin : str
        Where it came from (a path, "the spec's mask step"...), for messages and reports.
    """

    mask: np.ndarray
    affine: np.ndarray
    origin: str = ""

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())

    @property
    def digest(self) -> str:
        """sha256 of the mask's shape, voxels and affine (rounded to 1e-4 mm)."""
        h = hashlib.sha256(str(self.mask.shape).encode())
        h.update(np.packbits(self.mask.ravel()).tobytes())
        h.update(np.round(self.affine, 4).astype(np.float64).tobytes())
        return h.hexdigest()

    def same_as(self, other: VolumeMask) -> bool:
        return (
            self.mask.shape == other.mask.shape
            and bool(np.array_equal(self.mask, other.mask))
            and bool(np.allclose(self.affine, other.affine, atol=1e-4))
        )

    def coordinates(self) -> np.ndarray:
        """World coordinates (mm) of the mask's voxels, shape (voxels, 3)."""
        ijk = np.argwhere(self.mask)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def unmask(self, maps: np.ndarray) -> np.ndarray:
        """Maps ``(n, voxels)`` as a volume ``(x, y, z, n)`` float32, zero outside."""
        maps = np.atleast_2d(maps)
        if maps.shape[1] != self.n_voxels:
            raise LearnError(f"maps of {maps.shape[1]} voxels for a mask of {self.n_voxels}")
        volume = np.zeros((*self.mask.shape, maps.shape[0]), dtype=np.float32)
        volume[self.mask] = maps.T
        return volume

    def to_image(self, maps: np.ndarray):
        """A 4D ``Nifti1Image`` of the maps (one volume per map)."""
        image = nib.Nifti1Image(self.unmask(maps), self.affine)
        image.header.set_xyzt_units("mm")
        return image

    def mask_image(self):
        return nib.Nifti1Image(self.mask.astype(np.uint8), self.affine)


def load_volume_mask(mask: object, origin: str | None = None) -> VolumeMask:
    """A :class:`VolumeMask` from a path or a nibabel image (non-zero voxels are in)."""
    if isinstance(mask, VolumeMask):
        return mask
    name = origin or (str(mask) if isinstance(mask, (str, os.PathLike)) else "the mask given")
    try:
        image = load_image(mask) if isinstance(mask, (str, os.PathLike)) else mask
        data = np.asanyarray(image.dataobj)
        affine = np.asarray(image.affine, dtype=np.float64)
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise LearnError(f"mask {name}: not a readable NIfTI image ({err})") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise LearnError(f"mask {name}: expected a 3D image, found shape {data.shape}")
    return VolumeMask(np.asarray(data != 0), affine, name)


def _spec_bases(folder: Path, spec: dict) -> list[Path]:
    """Folders a spec's relative paths may be relative to, most likely first."""
    bases = []
    out = (spec.get("output") or {}).get("path")
    if out and not os.path.isabs(out):
        parts = Path(out).parts
        folder_abs = folder.absolute()
        if ".." not in parts and folder_abs.parts[-len(parts) :] == parts:
            bases.append(Path(*folder_abs.parts[: -len(parts)]))
    bases += [folder.absolute().parent, Path.cwd()]
    unique = []
    for base in bases:
        if base not in unique:
            unique.append(base)
    return unique


def _find(path: str, bases: list[Path]) -> Path | None:
    if os.path.isabs(path):
        return Path(path) if os.path.isfile(path) else None
    for base in bases:
        candidate = base / path
        if candidate.is_file():
            return candidate
    return None


def _mask_step(spec: dict, key: str) -> dict | None:
    """The options of the last mask step writing ``key``."""
    found = None
    for step in spec.get("transforms") or []:
        if isinstance(step, dict) and "mask" in step:
            options = step["mask"] or {}
            if options.get("key", "bold") == key:
                found = options
    return found


def _input_files(folder: Path, manifest: dict, bases: list[Path]) -> tuple[Path | None, dict]:
    """The dataset root holding the manifest's inputs, and the inputs (relative path: sha)."""
    inputs = manifest.get("inputs") or {}
    root_text = ((manifest.get("spec") or {}).get("input") or {}).get("path")
    if not root_text or not inputs:
        return None, inputs
    probe = next(iter(inputs))
    for base in bases:
        root = Path(root_text) if os.path.isabs(root_text) else base / root_text
        if (root / probe).is_file():
            return root, inputs
    return None, inputs


def _record_masks(folder: Path, root: Path | None, inputs: dict) -> VolumeMask | None:
    """The one mask every record used, from the manifest's inputs (refused when several)."""
    names = [p for p in inputs if "mask" in Path(p).name.lower() and ".nii" in Path(p).name]
    if not names:
        return None
    by_sha: dict[str, str] = {}
    for name in sorted(names):
        by_sha.setdefault(inputs[name], name)
    if root is None:
        if len(by_sha) > 1:
            raise LearnError(
                f"{folder}: the records were masked by {len(by_sha)} different mask files "
                f"(e.g. {', '.join(list(by_sha.values())[:2])}); group learning needs one "
                "mask: rebuild the shards with mask: {source: MASK.nii.gz}"
            )
        return None
    masks = [load_volume_mask(root / name) for name in by_sha.values()]
    first = masks[0]
    for other, name in zip(masks[1:], list(by_sha.values())[1:], strict=True):
        if not first.same_as(other):
            raise LearnError(
                f"{folder}: records were masked by different brain masks "
                f"({first.origin}: {first.n_voxels} voxels, {name}: {other.n_voxels}); group "
                "learning needs one mask: rebuild the shards with mask: {source: MASK.nii.gz}"
            )
    return first


def _bold_grid(root: Path | None, inputs: dict) -> tuple[tuple[int, ...], np.ndarray] | None:
    """Shape and affine of an input 4D image (the BOLD grid the shards were masked on)."""
    if root is None:
        return None
    for name in sorted(inputs):
        if ".nii" in name and "mask" not in Path(name).name.lower():
            try:
                image = load_image(root / name)
            except (OSError, ValueError):
                continue
            if len(image.shape) == 4:
                return tuple(image.shape), np.asarray(image.affine, dtype=np.float64)
    return None


def manifest_mask(folder: Path, manifest: dict, key: str) -> tuple[VolumeMask | None, str]:
    """The mask a shard folder's key was built with, or None and why it was not found.

    Raises
    ------
    LearnError
        When the records of the folder were masked by different masks.
    """
    stored = (manifest.get("masks") or {}).get(key)
    if isinstance(stored, dict) and stored.get("file"):
        path = folder / stored["file"]
        if path.is_file():
            return load_volume_mask(path), f"{path} (stored with the shards)"
    spec = manifest.get("spec") or {}
    step = _mask_step(spec, key)
    if step is None:
        return None, f"the spec of {folder} has no mask step for {key!r}"
    bases = _spec_bases(folder, spec)
    root, inputs = _input_files(folder, manifest, bases)
    source, extra = step.get("source", "record"), step.get("path")
    given_text = extra if source == "intersection" else (None if source == "record" else source)
    record = _record_masks(folder, root, inputs) if source in ("record", "intersection") else None
    if source in ("record", "intersection") and record is None:
        return None, f"the records' mask files of {folder} are not found (moved?)"
    if given_text is None:
        return record, record.origin
    given = _find(given_text, bases)
    if given is None:
        return None, f"the spec's mask file {given_text!r} is not found from {folder}"
    mask = load_volume_mask(given)
    grid = _bold_grid(root, inputs)
    on_grid = grid is not None and (
        mask.mask.shape != grid[0][:3] or not np.allclose(mask.affine, grid[1], atol=1e-4)
    )
    if on_grid:
        from ..imageio.resampling import image_on_grid

        resampled = image_on_grid(given, "mask", grid[0], grid[1])
        mask = VolumeMask(np.asarray(resampled, dtype=bool), grid[1], f"{given} on the BOLD grid")
    if record is not None:
        mask = VolumeMask(mask.mask & record.mask, mask.affine, f"{given} and the records' mask")
    return mask, mask.origin


def _check_voxel_count(
    mask: VolumeMask, key: str, n_features: int, which: str, note: str = ""
) -> None:
    """Refuse a mask whose voxel count is not the feature count of the key's samples.

    Parameters
    ----------
    mask : VolumeMask
    key : str
        The samples' key.
    n_features : int
        Features per sample of ``key``.
    which : str
        Which mask it is, the start of the error (``"the mask given"``).
    note : str
        What the error adds at its end.

    Raises
    ------
    LearnError
        When the counts differ.
    """
    if mask.n_voxels != n_features:
        raise LearnError(
            f"{which} ({mask.origin}) has {mask.n_voxels} voxels but the samples of {key!r} "
            f"have {n_features} features{note}"
        )


def resolve_mask(
    folders: tuple[Path, ...],
    manifests: tuple[dict, ...],
    key: str,
    n_features: int,
    given: object = None,
) -> VolumeMask | None:
    """The one mask of a key over several shard folders (see the module's docstring).

    Returns
    -------
    VolumeMask or None
        None when no folder's mask can be found and none is given (components are then
        arrays only, without images).

    Raises
    ------
    LearnError
        A mask whose voxel count is not the shards' feature count, folders built with
        different masks, a given mask that differs from the one the shards were built with.
    """
    found: list[tuple[Path, VolumeMask]] = []
    missing: list[str] = []
    for folder, manifest in zip(folders, manifests, strict=True):
        mask, why = manifest_mask(folder, manifest, key)
        if mask is None:
            missing.append(why)
            continue
        _check_voxel_count(mask, key, n_features, f"{folder}: the mask the shards were built with")
        for other_folder, other in found:
            if not mask.same_as(other):
                raise LearnError(
                    f"shards of different masks mixed: {other_folder} ({other.origin}) and "
                    f"{folder} ({mask.origin}); learn from folders built with one mask"
                )
        found.append((folder, mask))
    if given is not None:
        mask = load_volume_mask(given)
        _check_voxel_count(
            mask, key, n_features, "the mask given", ": it is not the mask of these shards"
        )
        for folder, other in found:
            if not mask.same_as(other):
                raise LearnError(
                    f"the mask given ({mask.origin}) differs from the one {folder} was built "
                    f"with ({other.origin})"
                )
        return mask
    if found and missing:
        warnings.warn(
            f"mask checked on {len(found)} of {len(folders)} folders only: " + "; ".join(missing),
            UserWarning,
            stacklevel=2,
        )
    elif missing and len(folders) > 1:
        warnings.warn(
            f"no mask found for any of the {len(folders)} folders, so their masks could not "
            "be compared: the same voxel count does not mean the same voxels; "
            + "; ".join(missing),
            UserWarning,
            stacklevel=2,
        )
    return found[0][1] if found else None
