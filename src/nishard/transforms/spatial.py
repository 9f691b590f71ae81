"""Spatial transforms: brain masking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Demands, Sample, Transform


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


@dataclass(frozen=True)
class Mask(Transform):
    """Keep the voxels inside the record's brain mask: (x, y, z, t) -> (t, voxels).

    Parameters
    ----------
    key : str
        The sample key of the 4D image to mask; the mask is the record's ``mask`` file.
    """

    key: str = "bold"

    name: ClassVar[str] = "mask"
    demands: ClassVar[Demands] = Demands(
        memory_factor=2.0, whole_time_axis=False, voxel_blocks=True
    )

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key, "mask")

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.key,)

    def __call__(self, sample: Sample) -> Sample:
        return {**sample, self.key: apply_mask(sample[self.key], sample["mask"])}
