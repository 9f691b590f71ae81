"""Shapes and dtypes of a record's inputs from file headers, without reading the data.

What the memory estimates of a plan start from: a 2 mm BOLD run's header says (97, 115, 97,
1200) without decompressing its gigabytes. Masks are small and are read, since what masking
keeps is their count of voxels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import RecordError
from ..imageio import ImageError, ImageHeader, load, load_header, read
from ..records.table import Record
from ..transforms.base import ArraySpec


def _header(record: Record, path: str, what: str) -> ImageHeader:
    try:
        return load_header(path)
    except ImageError as err:
        raise RecordError(record.id, path, what, err.found) from err


def _image(record: Record, path: str) -> ArraySpec:
    # Loaders give float32 whatever is on disk (int16 with scaling included).
    return ArraySpec(_header(record, path, "a NIfTI or CIFTI image").shape, "float32")


def _mask(record: Record, path: str) -> ArraySpec:
    try:
        img = load(path)
    except ImageError as err:
        raise RecordError(record.id, path, "a 3D NIfTI brain mask", err.found) from err
    try:
        selected = int(np.count_nonzero(read(img, path) > 0))
    except ImageError as err:
        raise RecordError(record.id, path, "a readable brain mask", err.found) from err
    return ArraySpec(tuple(img.shape), "bool", selected)


def _confounds(record: Record, path: str) -> ArraySpec:
    # A missing table is the loader's to report; an OSError here would end the whole run.
    try:
        with open(path, "rb") as f:
            header = f.readline()
            rows = sum(1 for _ in f)
    except OSError as err:
        raise RecordError(record.id, path, "a tab-separated confounds table", str(err)) from err
    return ArraySpec((rows, header.count(b"\t") + 1), "float64")


def _surface(record: Record, path: str) -> ArraySpec:
    arrays = _header(record, path, "a GIfTI functional surface").arrays
    if len(arrays) == 1:
        return ArraySpec(tuple(arrays[0][::-1]), "float32")
    return ArraySpec((len(arrays), *arrays[0]), "float32") if arrays else ArraySpec((0,))


#: How each staged kind is described; a kind without an entry is estimated at 0 bytes.
DESCRIBERS: dict[str, Callable[[Record, str], ArraySpec]] = {
    "bold": _image,
    "cifti": _image,
    "mask": _mask,
    "confounds": _confounds,
    "surface_L": _surface,
    "surface_R": _surface,
}


def describe_inputs(record: Record, kinds: tuple[str, ...]) -> dict[str, ArraySpec]:
    """The :class:`ArraySpec` of each staged file of ``kinds`` the record has.

    Raises
    ------
    RecordError
        When a header cannot be read: the record would fail to load anyway.
    """
    specs = {}
    for kind in kinds:
        path = record.files.get(kind)
        if path is not None and kind in DESCRIBERS:
            specs[kind] = DESCRIBERS[kind](record, path)
    return specs
