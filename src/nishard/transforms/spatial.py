"""Spatial transforms: brain masking, by the record's mask, a given one, or both."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import SampleError
from ..imageio.resampling import image_on_grid
from .base import ArraySpec, Demands, Sample, Transform


def apply_mask(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Voxels of a 4D image inside a 3D mask, as a (time, voxel) array.

    Voxels come in C order of the mask (x slowest), as nilearn's ``NiftiMasker`` gives them,
    so that a column index means the same voxel in nishard's and nilearn's output.

    Parameters
    ----------
    data : ndarray, shape (x, y, z, t)
    mask : ndarray of bool, shape (x, y, z)

    Returns
    -------
    ndarray, shape (t, n_voxels), same dtype as ``data``
    """
    if data.ndim != 4 or mask.shape != data.shape[:3]:
        raise ValueError(
            f"a 4D image and a 3D mask of its spatial shape, got {data.shape} and {mask.shape}"
        )
    # Boolean indexing gives (voxel, time) in C order; the transpose is a free view whose
    # columns are contiguous, which is the layout the time-axis steps after it want.
    return data[mask.astype(bool, copy=False)].T


#: Mask sources that are not a path: the record's own mask, or its intersection with ``path``.
SOURCES: tuple[str, ...] = ("record", "intersection")


@dataclass(frozen=True)
class Mask(Transform):
    """Keep the voxels inside a brain mask: (x, y, z, t) -> (t, voxels).

    Equal to ``NiftiMasker(mask_img=M)`` where ``M`` is the mask on the BOLD grid; a mask
    file on another grid is first resampled to it by nearest neighbour, as
    ``nilearn.image.resample_to_img(M, bold, interpolation="nearest")`` (NiftiMasker itself
    would resample the BOLD to the mask instead).

    Parameters
    ----------
    key : str
        The sample key of the 4D image to mask.
    source : str
        ``"record"``: the record's ``mask`` file; a path: that mask NIfTI (voxels > 0);
        ``"intersection"``: voxels in both the record's mask and the one at ``path``.
    path : str or None
        The mask file to intersect with, for ``source="intersection"`` only.
    """

    key: str = "bold"
    source: str = "record"
    path: str | None = None

    name: ClassVar[str] = "mask"
    demands: ClassVar[Demands] = Demands(
        memory_factor=2.0, whole_time_axis=False, voxel_blocks=True
    )

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(
                f"source: 'record', 'intersection' or a mask path; got {self.source!r}"
            )
        if self.source == "intersection":
            if not self.path:
                raise ValueError(
                    "source 'intersection' needs the path of the mask to intersect with"
                )
            given = self.path
        elif self.path is not None:
            raise ValueError(
                f"path goes with source 'intersection' only, got source {self.source!r}"
            )
        else:
            given = None if self.source == "record" else self.source
        if given is not None and not Path(given).is_file():
            raise ValueError(f"mask: no such file {given!r}")

    @property
    def given(self) -> str | None:
        """The mask file this step reads, if any."""
        if self.source == "intersection":
            return self.path
        return None if self.source == "record" else self.source

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key,) if self.source not in SOURCES else (self.key, "mask")

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.key,)

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        image = specs[self.key]
        mask = specs.get("mask") if self.source in SOURCES else None
        # A given mask's count is known only on the BOLD grid: bound it by the grid.
        kept = mask.selected if mask is not None and mask.selected is not None else None
        kept = math.prod(image.shape[:3]) if kept is None else kept
        return {self.key: ArraySpec((image.shape[-1], kept), image.dtype)}

    def __call__(self, sample: Sample) -> Sample:
        data = sample[self.key]
        mask = sample["mask"] if self.source in SOURCES else None
        given = self.given
        if given is not None:
            if data.ndim != 4:
                raise SampleError("bold", f"a 4D volume under {self.key!r}", f"shape {data.shape}")
            on_grid = image_on_grid(given, "mask", data.shape, sample["affine"])
            mask = on_grid if mask is None else mask & on_grid
            if not mask.any():
                raise SampleError(
                    "mask", f"a brain mask overlapping the mask {given}", "no voxel in both"
                )
        return {**sample, self.key: apply_mask(data, mask)}
