"""Open NIfTI, CIFTI-2 and GIfTI files; every way a file can be broken is an ImageError.

:func:`load` opens an image with its header read and its data left on disk (NIfTI and
CIFTI; a ``.nii.gz`` through the ISA-L reader of :mod:`.nifti`), :func:`read` reads the
data, :func:`read_masked` only a mask's voxels of each volume (:mod:`.masked`),
:func:`load_header` reads a header only (no data: a 2 mm run's gigabytes are not inflated
to learn its shape). :func:`load_dtseries` and :func:`load_func_gifti` read the
(time, grayordinate) and (time, vertex) series of CIFTI and GIfTI files.

Each raises :class:`ImageError` naming the file and what it holds instead of an image:
``no such file``, ``an empty file (0 bytes)``, ``an unreadable file (EOFError: ...)``,
``unreadable data (...)``. The callers that know more (the record, what the file was
staged as) add it: :mod:`nishard.workflow.inputs` turns each into a ``RecordError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NishardError


class ImageError(NishardError, OSError):
    """A file that cannot be read as the image it should be.

    An ``OSError``, as a missing or unreadable file is, so that code that caught nibabel's
    ``FileNotFoundError`` and ``OSError`` catches it too.

    Parameters
    ----------
    path : str or Path
        The file.
    found : str
        What it holds instead: ``no such file``, ``an empty file (0 bytes)``,
        ``an unreadable file (EOFError: ...)``...
    """

    def __init__(self, path: str | Path, found: str):
        self.path = str(path)
        self.found = found
        super().__init__(f"{self.path}: {found}")

    def __reduce__(self):
        # Exceptions unpickle as cls(*args); args holds the message only.
        return type(self), (self.path, self.found)


def describe(err: BaseException) -> str:
    """``EOFError: Compressed file ended ...``: an exception as an error message cites it.

    An ``OSError`` about a file (``PermissionError: Permission denied``) is cited without
    its path: the error that cites it names the file, and the manifest keeps input paths
    relative to the dataset, so that builds in two places compare byte for byte."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{type(err).__name__}: {err.strerror}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _existing(path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise ImageError(path, "no such file")
    if file.stat().st_size == 0:
        raise ImageError(path, "an empty file (0 bytes)")


def load(path: str | os.PathLike):
    """Open a NIfTI-1/2, CIFTI-2 or GIfTI image: the header now, the data when read.

    A ``.nii.gz`` is opened by the ISA-L reader (:func:`.nifti.load_nifti`: nibabel's image,
    inflated 5 times faster); other files by ``nibabel.load`` (a ``.nii`` is memory-mapped,
    a ``.dtseries.nii`` is a ``Cifti2Image``, a GIfTI is parsed whole).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    nibabel image
        ``Nifti1Image``, ``Nifti2Image``, ``Cifti2Image`` or ``GiftiImage``.

    Raises
    ------
    ImageError
        ``no such file``, ``an empty file (0 bytes)`` or ``an unreadable file (...)`` (not an
        image, a header cut short, a corrupt gzip stream).
    """
    from .nifti import load_nifti

    path = os.fspath(path)
    _existing(path)
    try:
        return load_nifti(path)
    except Exception as err:
        raise ImageError(path, f"an unreadable file ({describe(err)})") from err


def read(image, path: str | os.PathLike, dtype=None) -> np.ndarray:
    """The data of a NIfTI or CIFTI image, as ``np.asarray(image.dataobj, dtype)``.

    Parameters
    ----------
    image : nibabel image
        From :func:`load`.
    path : str or os.PathLike
        Its file, which an error names.
    dtype : numpy dtype, optional
        Scaled data in this type (``scl_slope`` and ``scl_inter`` applied); default: the
        type nibabel gives.

    Raises
    ------
    ImageError
        ``unreadable data (...)``: a truncated or corrupt gzip stream, a file shorter than
        its header says.
    """
    try:
        return np.asarray(image.dataobj, dtype=dtype)
    except Exception as err:
        raise ImageError(path, f"unreadable data ({describe(err)})") from err


def read_masked(image, path: str | os.PathLike, mask: np.ndarray, dtype=None) -> np.ndarray:
    """A 4D NIfTI image's voxels inside ``mask``, as (time, voxel), read one volume at a time.

    Equal to ``read(image, path, dtype)[mask].T`` with a peak of the output plus one volume
    (see :mod:`.masked`).

    Raises
    ------
    ImageError
        ``unreadable data (...)``, as :func:`read`.
    ValueError
        When the mask is not on the image's grid.
    """
    from .masked import read_masked as masked

    if len(image.shape) != 4 or mask.shape != tuple(image.shape[:3]):
        raise ValueError(f"a 4D image and a mask of its grid, got {image.shape} and {mask.shape}")
    try:
        return masked(image, path, mask, dtype)
    except Exception as err:
        raise ImageError(path, f"unreadable data ({describe(err)})") from err


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, its data unread.

    Attributes
    ----------
    path : str
    kind : {"nifti1", "nifti2", "cifti2", "gifti"}
    shape : tuple of int
        The image's shape (NIfTI, CIFTI); ``()`` for GIfTI, whose data arrays each have
        their own (``arrays``).
    header : nibabel header or None
        ``Nifti1Header``, ``Nifti2Header``, ``Cifti2Header``; None for GIfTI.
    arrays : tuple of tuple of int
        GIfTI: the dimensions of each data array, in file order (``darray.dims``).
    """

    path: str
    kind: str
    shape: tuple[int, ...]
    header: object = None
    arrays: tuple[tuple[int, ...], ...] = ()


def load_header(path: str | os.PathLike) -> ImageHeader:
    """Read a NIfTI, CIFTI-2 or GIfTI file's header, and none of its data.

    A ``.nii.gz`` is inflated up to the end of its header only; a GIfTI file's XML is
    scanned for the dimensions of its data arrays, which are not decoded.

    Raises
    ------
    ImageError
        ``no such file``, ``an empty file (0 bytes)``, ``an unreadable header (...)``.
    """
    path = os.fspath(path)
    _existing(path)
    try:
        if path.endswith(".gii"):
            return ImageHeader(path, "gifti", (), None, _gifti_arrays(path))
        from .nifti import load_nifti

        image = load_nifti(path)
        return ImageHeader(path, _kind(image), tuple(image.shape), image.header)
    except Exception as err:
        raise ImageError(path, f"an unreadable header ({describe(err)})") from err


def _kind(image) -> str:
    import nibabel as nib

    if isinstance(image, nib.Cifti2Image):
        return "cifti2"
    if isinstance(image, nib.Nifti2Image):
        return "nifti2"
    if isinstance(image, nib.Nifti1Image):
        return "nifti1"
    raise ValueError(f"a {type(image).__name__}, not a NIfTI, CIFTI-2 or GIfTI image")


def _gifti_arrays(path: str) -> tuple[tuple[int, ...], ...]:
    """The ``Dim0..DimN`` of each ``DataArray`` element, their data skipped, not decoded."""
    from xml.etree.ElementTree import iterparse

    arrays = []
    seen_root = False
    for event, element in iterparse(path, events=("start", "end")):
        if event == "start" and not seen_root:
            if element.tag != "GIFTI":
                raise ValueError(f"a <{element.tag}> document, not GIfTI")
            seen_root = True
        elif event == "start" and element.tag == "DataArray":
            rank = int(element.get("Dimensionality", "0"))
            arrays.append(tuple(int(element.get(f"Dim{i}", "0")) for i in range(rank)))
        elif event == "end" and element.tag == "DataArray":
            element.clear()  # drop the encoded data as soon as the array ends
    return tuple(arrays)


def load_dtseries(path: str | os.PathLike) -> np.ndarray:
    """A CIFTI-2 dense time series as a (time, grayordinate) float32 array.

    Raises
    ------
    ImageError
        ``no such file``, ``an empty file (0 bytes)``, ``an unreadable file (...)``, or
        what the file is instead (``Nifti1Image of shape (...)``, ``a first axis
        ScalarAxis``).
    """
    import nibabel as nib

    path = os.fspath(path)
    _existing(path)
    try:
        image = nib.load(path)
        if not isinstance(image, nib.Cifti2Image) or len(image.shape) != 2:
            raise ImageError(path, f"{type(image).__name__} of shape {image.shape}")
        series = image.header.get_axis(0)
        if not isinstance(series, nib.cifti2.SeriesAxis):
            raise ImageError(path, f"a first axis {type(series).__name__}")
        return np.asarray(image.dataobj, dtype=np.float32)
    except ImageError:
        raise
    except Exception as err:
        raise ImageError(path, f"an unreadable file ({describe(err)})") from err


def load_func_gifti(path: str | os.PathLike) -> np.ndarray:
    """A GIfTI functional surface (one data array per volume) as (time, vertex) float32.

    A single (vertex, time) data array, as some writers store a series, is read too.

    Raises
    ------
    ImageError
        ``no such file``, ``an empty file (0 bytes)``, ``an unreadable file (...)``, or
        ``3 data arrays of shapes [...]`` when they are no series.
    """
    import nibabel as nib

    path = os.fspath(path)
    _existing(path)
    try:
        image = nib.load(path)
        arrays = [np.asarray(d.data) for d in image.darrays]
    except Exception as err:
        raise ImageError(path, f"an unreadable file ({describe(err)})") from err
    if len(arrays) == 1 and arrays[0].ndim == 2:  # one (vertex, time) array: another writer
        data = arrays[0].T
    elif arrays and all(a.ndim == 1 and a.shape == arrays[0].shape for a in arrays):
        data = np.stack(arrays)
    else:
        shapes = sorted({a.shape for a in arrays})
        raise ImageError(path, f"{len(arrays)} data arrays of shapes {shapes}")
    return data.astype(np.float32, copy=False)
