"""Read the voxels of a brain mask from a 4D NIfTI image, one volume at a time.

Masking after reading inflates the whole run into memory (880 MB for a 2 mm run of 200
volumes; 5.4 GB for HCP's 1,200), then gathers the mask's voxels from it: the first touch
of that much fresh memory and a gather over it cost about as much as a third of the read
itself. Here each volume is read (or inflated) into one reused buffer of a volume's size
and its masked voxels are gathered from it while it is in the cache, straight into the
(time, voxel) output: one pass over the data, and a peak of the output plus one volume.

The output is what ``np.asarray(image.dataobj, dtype)[mask].T`` gives, value for value:
voxels in C order of the mask (nilearn's ``NiftiMasker`` order), and nibabel's own
scaling (``scl_slope``, ``scl_inter``) and casting applied to the gathered values, which
are elementwise.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from nibabel.arrayproxy import ArrayProxy

from .nifti import GzipStream, _read_exactly, _skip


def mask_columns(mask: np.ndarray) -> np.ndarray:
    """Where each voxel of ``mask`` lies in a volume stored in Fortran order.

    Parameters
    ----------
    mask : ndarray of bool, shape (x, y, z)

    Returns
    -------
    ndarray of intp, shape (n_voxels,)
        The linear index in the on-disk (x fastest) volume of each voxel inside the mask,
        the voxels in C order of the mask (x slowest), as ``data[mask]`` lists them.
    """
    return np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")


def read_masked(image, path: str | Path, mask: np.ndarray, dtype=None) -> np.ndarray:
    """The (time, voxel) series of a 4D NIfTI image's voxels inside ``mask``.

    Parameters
    ----------
    image : nibabel.Nifti1Image or nibabel.Nifti2Image
        As :func:`~nishard.imageio.load` opens it (its data unread).
    path : str or Path
        Its file: ``.nii.gz`` is inflated with ISA-L, anything else read as it is.
    mask : ndarray of bool, shape ``image.shape[:3]``
        On the image's grid (:func:`nishard.imageio.read_masked` checks it).
    dtype : numpy dtype, optional
        As for ``np.asarray(image.dataobj, dtype)``.

    Returns
    -------
    ndarray, shape (time, n_voxels)
        Equal to ``np.asarray(image.dataobj, dtype)[mask].T``; C-contiguous when read volume
        by volume (every NIfTI file).

    Raises
    ------
    EOFError, OSError, isal.igzip_lib.IsalError
        When the file is shorter than its header says, or its gzip stream corrupt.
    """
    shape = tuple(image.shape)
    proxy = image.dataobj
    if not isinstance(proxy, ArrayProxy) or proxy.order != "F":
        return np.asarray(proxy, dtype=dtype)[mask].T  # not a file of volumes: read it whole
    raw_dtype = np.dtype(proxy.dtype)
    columns = mask_columns(mask)
    raw = np.empty((shape[3], columns.size), dtype=raw_dtype)
    volume = np.empty(int(np.prod(shape[:3], dtype=np.int64)), dtype=raw_dtype)
    path = str(path)
    with open(path, "rb", buffering=0) as file:
        if path.endswith(".gz"):
            stream = GzipStream(file)
            _skip(stream, proxy.offset)
        else:
            file.seek(proxy.offset)
            stream = file
        for t in range(shape[3]):
            _read_exactly(stream, volume, f"volume {t} of {shape[3]}")
            # The indices are in range: "wrap" skips the bounds check "raise" makes.
            np.take(volume, columns, out=raw[t], mode="wrap")
    return _scaled(proxy, raw, dtype)


def _scaled(proxy: ArrayProxy, raw: np.ndarray, dtype) -> np.ndarray:
    """``raw`` on-disk values scaled and cast as ``np.asarray(proxy, dtype)`` would.

    nibabel's proxy is asked, with its raw read answered by ``raw``: the scale factors'
    types, the promotion rules and the cast stay nibabel's own (no copy when the data are
    unscaled and already ``dtype``).
    """
    twin = copy.copy(proxy)
    twin._get_unscaled = lambda slicer: raw  # nibabel's one hook for the raw read
    return np.asarray(twin, dtype=dtype)
