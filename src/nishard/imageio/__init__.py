"""Image I/O: the one place nishard opens NIfTI, CIFTI-2 and GIfTI files.

Every loader reads its images here: a record's BOLD and mask (:mod:`nishard.workflow`), the
headers that give shapes and repetition times (:mod:`nishard.workflow.headers`,
:mod:`nishard.records.metadata`), atlases and masks given by path (:mod:`nishard.transforms`),
and the learners' masks and CIFTI axes (:mod:`nishard.learn`). ``.nii.gz`` files are inflated
with ISA-L (:mod:`.nifti`), five times faster than nibabel's zlib, into nibabel's own images.

:func:`load`, :func:`read`, :func:`read_masked`
    An image (header now, data on access), its data, and its voxels inside a mask.
:func:`load_header`, :class:`ImageHeader`
    A header alone, its data unread.
:func:`load_dtseries`, :func:`load_func_gifti`
    CIFTI-2 dense and GIfTI functional time series as (time, feature) float32 arrays.
:class:`ImageError`
    A file that is not the image it should be, named with what it holds instead.

``import nishard.imageio`` imports neither nibabel nor ISA-L: each function does, when
called.
"""

from __future__ import annotations

from .images import (
    ImageError,
    ImageHeader,
    describe,
    load,
    load_dtseries,
    load_func_gifti,
    load_header,
    read,
    read_masked,
)

__all__ = [
    "ImageError",
    "ImageHeader",
    "describe",
    "load",
    "load_dtseries",
    "load_func_gifti",
    "load_header",
    "read",
    "read_masked",
]
