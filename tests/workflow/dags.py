"""Helpers of the plan, fusion, cache and drawing tests (fixtures: conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nishard.records import Fmriprep, locate
from nishard.records.table import Record
from nishard.transforms import Transform
from nishard.transforms.base import Demands
from tests.helpers import TINY_RES

#: The band of the Clean steps: nilearn's usual resting-state band.
BAND = {"low_pass": 0.1, "high_pass": 0.01}


@dataclass(frozen=True)
class EachStep:
    """A fusion heuristic that fuses nothing: one node per step (a swapped-in primitive)."""

    name: ClassVar[str] = "each_step"

    def fuse(self, steps: Sequence[Transform], specs, after) -> list[tuple[int, ...]]:
        return [(i,) for i in range(len(steps))]

    def to_dict(self) -> dict:
        return {"name": self.name}


@dataclass(frozen=True)
class Hog(Transform):
    """Passes ``bold`` through after filling ``nbytes`` of fresh memory (a known peak)."""

    nbytes: int = 0

    name: ClassVar[str] = "hog"
    demands: ClassVar[Demands] = Demands(1.0, whole_time_axis=False, voxel_blocks=True)

    @property
    def reads(self) -> tuple[str, ...]:
        return ("bold",)

    @property
    def writes(self) -> tuple[str, ...]:
        return ("bold",)

    def __call__(self, sample):
        np.ones(self.nbytes, dtype=np.uint8)  # written, so resident, not just reserved
        return dict(sample)


def records(root) -> list[Record]:
    return list(locate(root, Fmriprep(res=TINY_RES), stage=["bold", "mask", "confounds"]))


def outcome_products(plan, record, cache=None) -> dict:
    """The products of a record, raising the error that would quarantine it."""
    outcome = plan.run(record, cache)
    if outcome.error is not None:
        raise outcome.error
    return outcome.products
