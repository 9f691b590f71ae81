"""What every transform is: a frozen spec, a pure function on a sample, declared demands."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

#: A sample flowing through a plan: named arrays (``bold``, ``mask``...) and the record's
#: metadata under ``"meta"``.
Sample = dict[str, Any]


@dataclass(frozen=True)
class ArraySpec:
    """The shape and dtype of an array a step reads or writes, known without its data.

    Attributes
    ----------
    shape : tuple of int
        An upper bound where the data decide (censored volumes, labels absent from a run).
    dtype : str
    selected : int or None
        For a boolean mask: how many elements are True (what masking keeps).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    selected: int | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Demands:
    """What a transform needs, so that fusion and executors can reason about it.

    Attributes
    ----------
    memory_factor : float
        Peak working memory as a multiple of the bytes of the array it reads.
    whole_time_axis : bool
        Needs every time point at once (a filter, a z-score over time); False when it can
        stream over blocks of time points.
    voxel_blocks : bool
        Can run on blocks of voxels independently.
    backend : str
        ``"numpy"`` or ``"jax"``.
    """

    memory_factor: float
    whole_time_axis: bool
    voxel_blocks: bool
    backend: str = "numpy"


@dataclass(frozen=True)
class Transform:
    """Base of every transform: subclasses are frozen dataclasses of their options.

    A subclass sets ``name`` (its key in a YAML spec), ``reads`` (sample keys it needs;
    file kinds of a record or products of earlier steps), ``writes`` (the keys it
    produces) and ``demands``, and implements :meth:`__call__` as a pure function of the
    sample: it returns a new sample and never modifies the one it was given.
    """

    name: ClassVar[str]
    demands: ClassVar[Demands]

    @property
    def reads(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def writes(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def drops(self) -> tuple[str, ...]:
        """Keys the step removes from the sample (a series reduced to its connectivity)."""
        return ()

    def __call__(self, sample: Sample) -> Sample:
        raise NotImplementedError

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        """What the step writes, from what it reads, without data (for memory estimates).

        The default suits steps that keep the shape and dtype of the first key they read;
        steps that change them override it.
        """
        first = specs[self.reads[0]]
        return {key: first for key in self.writes}

    def working_memory(self, specs: Mapping[str, ArraySpec]) -> int | None:
        """Peak bytes when they are no multiple of the input (a matrix of regions squared);
        None (the default) lets ``demands.memory_factor`` say it."""
        return None

    def to_dict(self) -> dict:
        """The transform as it appears in a YAML spec: ``{name: {option: value}}``."""
        return {self.name: asdict(self)}


@dataclass(frozen=True)
class SingleKey(Transform):
    """Base of the transforms of the one sample array under their ``key`` field.

    Such a step reads ``key`` and writes its result back under it; a subclass that writes
    elsewhere (a connectivity matrix under ``output``) overrides :attr:`writes`. It adds
    no field, so a subclass's fields, their order and its constructor stay its own.
    """

    if TYPE_CHECKING:  # a field of every subclass, declared there (not one of this class)
        key: str

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key,)

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.key,)
