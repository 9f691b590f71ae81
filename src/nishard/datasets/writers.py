"""Deterministic writers of the synthetic datasets: tables, JSON and NIfTI images.

Every writer gives byte-identical files for identical inputs: fixed float formatting, sorted
JSON keys, gzip streams with mtime 0.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .grid import Grid

# NIfTI code 4: coordinates are MNI152 (as in fMRIPrep's standard-space outputs).
MNI_XFORM_CODE = 4
GZIP_LEVEL = 1  # nibabel's default: the BOLD data compress little, speed matters more


def format_value(value: object) -> str:
    """A table cell: ``repr`` of floats (exact round trip), ``n/a`` for NaN."""
    if isinstance(value, float | np.floating):
        return "n/a" if np.isnan(value) else repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def write_table(path: Path, table: pd.DataFrame, sep: str = "\t") -> None:
    """Write a table with a header line, one row per line (TSV by default)."""
    lines = [sep.join(map(str, table.columns))]
    columns = [table[c].tolist() for c in table.columns]
    for row in zip(*columns, strict=True):
        lines.append(sep.join(format_value(v) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_json(path: Path, content: object) -> None:
    """Write JSON with sorted keys and a final newline."""
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def nifti_header(
    shape: Sequence[int], affine: np.ndarray, dtype: type, t_r: float | None = None
) -> nib.Nifti1Header:
    """A NIfTI-1 header in MNI space (qform and sform code 4); ``t_r`` goes to pixdim[4]."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(tuple(shape))
    header.set_qform(affine, code=MNI_XFORM_CODE)
    header.set_sform(affine, code=MNI_XFORM_CODE)
    zooms = list(header.get_zooms())
    if t_r is not None:
        zooms[3] = t_r
        header.set_xyzt_units("mm", "sec")
    else:
        header.set_xyzt_units("mm")
    header.set_zooms(zooms)
    return header


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a 3D image (nibabel writes gzip streams with mtime 0)."""
    header = nifti_header(data.shape, affine, data.dtype.type)
    nib.Nifti1Image(data, affine, header).to_filename(path)


def write_bold(path: Path, bold: np.ndarray, grid: Grid, t_r: float) -> None:
    """Stream a (T, V) in-brain matrix into a 4D .nii.gz, one volume at a time.

    NIfTI stores x fastest and time slowest, so each frame is one contiguous volume: no 4D
    array is ever built (a 2 mm, 1200-frame run would be 5.3 GB).

    Parameters
    ----------
    path : pathlib.Path
    bold : numpy.ndarray
        Shape (T, V), in the C order of ``grid.brain``.
    grid : Grid
    t_r : float
        Repetition time (s), written to pixdim[4] with units of seconds.
    """
    header = nifti_header((*grid.shape, bold.shape[0]), grid.affine, np.float32, t_r)
    header["vox_offset"] = 352  # single-file header (348) + 4-byte "no extension" flag
    ijk = np.argwhere(grid.brain)
    nx, ny, _ = grid.shape
    fortran_index = ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])
    volume = np.zeros(int(np.prod(grid.shape)), dtype="<f4")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0
        ) as stream,
    ):
        header.write_to(stream)
        for frame in bold:
            volume[fortran_index] = frame
            stream.write(volume.tobytes())
