"""Load a record's staged files into a sample; errors name file, record and expectation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..checksums import sha256_file
from ..errors import RecordError
from ..finite import all_finite
from ..imageio import ImageError, load, load_dtseries, load_func_gifti, read, read_masked
from ..records.table import Record
from ..transforms.base import Sample

T = TypeVar("T")


def _imageio(record: Record, path: str, what: str, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``: an :mod:`~nishard.imageio` function on the record's file ``path``.

    Parameters
    ----------
    record : Record
    path : str
        The file ``call`` opens or reads.
    what : str
        What the file should hold, for the error.
    call : callable
        The imageio function; ``args`` its arguments.

    Raises
    ------
    RecordError
        For the ``ImageError`` of every way the file can be broken (missing, truncated,
        corrupt, not the format), naming the record, the file and ``what``.
    """
    try:
        return call(*args)
    except ImageError as err:
        raise RecordError(record.id, path, what, err.found) from err


def _nifti(record: Record, path: str, ndim: int, what: str):
    """Open a NIfTI header, turning every way a file can be broken into a RecordError.

    A ``.nii.gz`` is inflated with ISA-L, about 5 times faster than nibabel's zlib."""
    img = _imageio(record, path, what, load, path)
    if len(img.shape) != ndim:
        raise RecordError(record.id, path, what, f"a {len(img.shape)}D image of shape {img.shape}")
    return img


def _read(record: Record, path: str, img, what: str, dtype) -> np.ndarray:
    # A truncated or corrupt gzip stream, a short file: errors only the data read finds.
    return _imageio(record, path, what, read, img, path, dtype)


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


BOLD = "a 4D NIfTI image (x, y, z, time)"


def load_bold(record: Record, path: str, sample: Sample) -> np.ndarray:
    img = _nifti(record, path, 4, BOLD)
    sample["affine"] = img.affine
    return _finite(record, path, _read(record, path, img, BOLD, np.float32))


def load_mask(record: Record, path: str, sample: Sample) -> np.ndarray:
    grid = sample["bold"].shape[:3] if "bold" in sample else None
    return _mask(record, path, grid, sample.get("affine"))


def _mask(record: Record, path: str, grid: tuple | None, affine) -> np.ndarray:
    """The record's brain mask, checked to lie on the BOLD ``grid`` (None: unchecked)."""
    what = "a 3D NIfTI brain mask"
    img = _nifti(record, path, 3, what)
    mask = _read(record, path, img, what, np.float32) > 0
    if grid is not None:
        if mask.shape != grid or not np.allclose(img.affine, affine, atol=1e-3):
            raise RecordError(
                record.id,
                path,
                f"a mask on the BOLD grid {grid}",
                f"shape {mask.shape} with affine\n{np.round(img.affine, 3)}",
            )
    if not mask.any():
        raise RecordError(record.id, path, what, "an empty mask (no voxel above 0)")
    return mask


def load_masked_bold(record: Record, sample: Sample) -> None:
    """The record's mask, and its BOLD run's voxels inside it read one volume at a time.

    Sets ``affine``, ``mask`` and ``bold``: the (time, voxel) array that ``Mask()`` makes of
    the 4D run, value for value (:func:`nishard.imageio.read_masked`), without the 4D run in
    memory. Only the masked voxels must be finite: a value outside the brain reaches no
    product.
    """
    path, mask_path = _staged(record, "bold"), _staged(record, "mask")
    img = _nifti(record, path, 4, BOLD)
    sample["affine"] = img.affine
    sample["mask"] = mask = _mask(record, mask_path, tuple(img.shape[:3]), img.affine)
    data = _imageio(record, path, BOLD, read_masked, img, path, mask, np.float32)
    sample["bold"] = _finite(record, path, data)


def _staged(record: Record, kind: str) -> str:
    path = record.files.get(kind)
    if path is None:
        raise RecordError(record.id, None, f"a staged {kind} file", "none")
    return path


def load_confounds(record: Record, path: str, sample: Sample):
    """The confounds table (``n/a`` as NaN) and its JSON sidecar (None when absent)."""
    import json

    from ..transforms.confounds import read_confounds

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise RecordError(record.id, path, "a tab-separated confounds table", "an empty file")
    try:
        table, metadata = read_confounds(path)
    except json.JSONDecodeError as err:
        sidecar = str(Path(path).with_suffix(".json"))
        raise RecordError(record.id, sidecar, "the confounds JSON sidecar", _why(err)) from err
    except Exception as err:
        raise RecordError(record.id, path, "a tab-separated confounds table", _why(err)) from err
    if table.shape[1] < 2 or len(table) < 2:
        raise RecordError(record.id, path, "a confounds table of columns per volume",
                          f"{len(table)} rows and {table.shape[1]} columns")  # fmt: skip
    return table, metadata


def _existing(record: Record, path: str, what: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise RecordError(record.id, path, what, "no such file")
    if file.stat().st_size == 0:
        raise RecordError(record.id, path, what, "an empty file (0 bytes)")


def _finite(record: Record, path: str, data: np.ndarray) -> np.ndarray:
    if not all_finite(data):
        raise RecordError(record.id, path, "finite values", "NaN or infinite values")
    return data


def load_cifti(record: Record, path: str, sample: Sample) -> np.ndarray:
    """A CIFTI-2 dense time series as a (time, grayordinate) float32 array."""
    what = "a CIFTI-2 dense time series (.dtseries.nii: time x grayordinates)"
    return _finite(record, path, _imageio(record, path, what, load_dtseries, path))


def load_surface(record: Record, path: str, sample: Sample) -> np.ndarray:
    """A GIfTI functional surface (one data array per volume) as (time, vertex) float32."""
    what = "a GIfTI functional surface (.func.gii: one data array per volume)"
    return _finite(record, path, _imageio(record, path, what, load_func_gifti, path))


def load_movement(record: Record, path: str, sample: Sample):
    """HCP's ``Movement_Regressors.txt`` as a confounds table with fMRIPrep's column names.

    Its 12 columns (translations in mm, rotations in degrees, then their backward
    differences) become ``trans_x`` ... ``rot_z`` with rotations in radians as fMRIPrep
    writes them, ``*_derivative1``, and the squares (``*_power2``,
    ``*_derivative1_power2``), so that the motion strategies (``24P``, ``motion="full"``)
    apply to HCP runs as they do to fMRIPrep's.
    """
    import pandas as pd

    what = "HCP Movement_Regressors.txt: 12 whitespace-separated columns per volume"
    _existing(record, path, what)
    try:
        values = np.loadtxt(path, ndmin=2)
    except Exception as err:
        raise RecordError(record.id, path, what, f"unparsable text ({_why(err)})") from err
    if values.shape[1] != 12 or len(values) < 2:
        raise RecordError(record.id, path, what, f"{len(values)} rows of {values.shape[1]} values")
    values[:, 3:6] = np.radians(values[:, 3:6])
    values[:, 9:12] = np.radians(values[:, 9:12])
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    columns = {
        **dict(zip(names, values[:, :6].T, strict=True)),
        **{f"{n}_derivative1": v for n, v in zip(names, values[:, 6:].T, strict=True)},
    }
    columns |= {f"{name}_power2": v**2 for name, v in list(columns.items())}
    return pd.DataFrame(columns), None


#: Loader of each staged file kind; bold loads first so that the others can check its grid.
LOADERS: dict[str, Callable[[Record, str, Sample], object]] = {
    "bold": load_bold,
    "mask": load_mask,
    "confounds": load_confounds,
    "movement": load_movement,
    "cifti": load_cifti,
    "surface_L": load_surface,
    "surface_R": load_surface,
}


def load_inputs(record: Record, kinds: tuple[str, ...], masked_bold: bool = False) -> Sample:
    """Read the files a plan needs.

    Parameters
    ----------
    record : Record
    kinds : tuple of str
        The staged files to read (``bold``, ``mask``, ``confounds``...).
    masked_bold : bool
        Read ``bold`` as its (time, voxel) series inside the record's ``mask`` (both among
        ``kinds``), one volume at a time (:func:`load_masked_bold`): what a plan whose
        first step is ``Mask()`` asks for.

    Returns
    -------
    dict
        Kind to loaded data, plus ``meta`` (the record's metadata) and ``affine``.

    Raises
    ------
    RecordError
        When a file is missing, empty, unreadable or not what its kind requires.
    """
    sample: Sample = {"meta": record.metadata}
    if masked_bold:
        load_masked_bold(record, sample)
    for kind in sorted(kinds, key=lambda k: (k != "bold", k)):
        if kind not in sample:
            sample[kind] = LOADERS[kind](record, _staged(record, kind), sample)
    return sample


def input_checksums(record: Record, kinds: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each file of ``kinds`` that exists, for the manifest's provenance.

    Raises
    ------
    RecordError
        When a file exists but cannot be read (permissions, I/O error).
    """
    checksums = {}
    for kind in kinds:
        path = record.files.get(kind)
        if path is None or not Path(path).is_file():
            continue  # the loader names what is missing
        try:
            checksums[path] = sha256_file(path)
        except OSError as err:
            raise RecordError(record.id, path, "a readable file", _os_error(err, path)) from err
    return checksums


def _os_error(err: OSError, path: str) -> str:
    """``PermissionError: Permission denied (mode 0000, owner uid 0)``: what stopped the
    read, without the path (the error names the file, and the manifest keeps input paths
    relative to the dataset), with the file's mode and owner when permission is denied."""
    if not err.strerror:
        return _why(err)
    found = f"{type(err).__name__}: {err.strerror}"
    if isinstance(err, PermissionError):
        try:
            stat = Path(path).stat()
        except OSError:
            return found
        found += f" (mode {stat.st_mode & 0o7777:04o}, owner uid {stat.st_uid})"
    return found
