"""Fusion: which contiguous steps run together as one node, and what a node costs.

A node is the unit of work a workflow engine schedules and the cache stores; the steps
inside it hand arrays to each other in memory. Fusing saves writing and reading the
arrays between steps; the price is that whatever a later step of the node (or the plan)
still needs stays in memory while the earlier ones run. :func:`node_peak` estimates a
node's peak memory from the shapes of its inputs, and :class:`Greedy` fuses as long as that
peak stays under a budget. A fusion heuristic is any object with a ``fuse`` method of the
signature below: swap it by passing another one to ``assemble``.

A node whose first step masks the BOLD run it loads by the record's mask
(:func:`masks_as_read`) never holds the run: its read gathers the mask's voxels volume by
volume (:func:`~.inputs.load_masked_bold`), and :func:`node_peak` costs it so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..registry import Registry
from ..transforms.base import ArraySpec, Transform
from ..transforms.spatial import Mask
from ..units import parse_bytes


def chain_specs(
    steps: Sequence[Transform], inputs: Mapping[str, ArraySpec]
) -> list[dict[str, ArraySpec]]:
    """The specs of every key available before each step, and after the last (len + 1)."""
    available = dict(inputs)
    out = [dict(available)]
    for step in steps:
        if all(key in available for key in step.reads):
            available.update(step.infer(available))
        # A dropped key is gone from memory too (connectivity without its series).
        for key in set(step.drops) - set(step.writes):
            available.pop(key, None)
        out.append(dict(available))
    return out


def needed_after(steps: Sequence[Transform], products: Sequence[str]) -> list[set[str]]:
    """Keys that some step after step i, or the plan's products, still read."""
    needed = set(products)
    out: list[set[str]] = [set()] * len(steps)
    for i in range(len(steps) - 1, -1, -1):
        out[i] = set(needed)
        needed |= set(steps[i].reads)
    return out


#: What a read that masks holds beside its output and one volume: ISA-L's compressed
#: input and inflated output chunks (``2 * nishard.imageio.nifti.CHUNK``).
READ_BUFFERS = 2 << 20


def masks_as_read(step: Transform, loaded: Collection[str]) -> bool:
    """Whether ``step`` is ``Mask()`` of the BOLD run by the record's mask, both read from
    the record's files (among ``loaded``): the read then does the masking, one volume at a
    time, without the 4D run in memory."""
    return (
        isinstance(step, Mask) and step.key == "bold" and step.source == "record"
        and {"bold", "mask"} <= set(loaded)
    )  # fmt: skip


def node_peak(
    steps: Sequence[Transform],
    first: int,
    last: int,
    specs: list[dict[str, ArraySpec]],
    after: list[set[str]],
) -> int:
    """Estimated peak bytes of steps ``first..last`` run as one node.

    While a step runs, the node holds what the step reads times its ``memory_factor`` (the
    step's working memory, its output included) plus every other array a later step or the
    plan still needs. Arrays nobody needs any more are released. A step holds at least its
    input and its output at once, whatever its factor: a step whose output outgrows its
    input (overlapping windows) is costed by it. A step whose memory is no multiple of its
    input (a connectivity matrix grows as the square of the regions) defines
    ``working_memory(specs) -> int``, the bytes it holds at its peak given the specs of
    the keys available to it; it replaces the factor. A first step that masks as the run
    is read (:func:`masks_as_read`) holds its output, the mask and one volume.
    """
    held: set[str] = {key for step in steps[first : last + 1] for key in step.reads}
    held &= set(specs[first])
    peak = 0
    for i in range(first, last + 1):
        step, available = steps[i], specs[i]
        reads = [key for key in step.reads if key in available]
        read = sum(available[key].nbytes for key in reads)
        inferred = len(reads) == len(step.reads)  # else chain_specs skipped the step
        written = sum(specs[i + 1][k].nbytes for k in step.writes if inferred and k in specs[i + 1])
        custom = step.working_memory(available) if inferred else None
        if i == first and inferred and masks_as_read(step, _from_files(steps, first, reads)):
            run = available[step.key]  # the read holds one volume of it, and its output
            volume = run.nbytes // max(run.shape[-1], 1)
            working = read - run.nbytes + written + volume + READ_BUFFERS
        elif custom is not None:
            working = custom
        else:
            working = max(step.demands.memory_factor * read, read + written)
        others = sum(available[key].nbytes for key in held - set(reads) if key in available)
        peak = max(peak, int(working + others))
        held = (held | set(step.writes)) & (after[i] | _later_reads(steps, i + 1, last))
    return peak


def _from_files(steps: Sequence[Transform], first: int, keys: Sequence[str]) -> set[str]:
    """The ``keys`` no step before ``first`` writes: a node starting there loads them."""
    return {key for key in keys if not any(key in step.writes for step in steps[:first])}


def _later_reads(steps: Sequence[Transform], start: int, last: int) -> set[str]:
    return {key for step in steps[start : last + 1] for key in step.reads}


class Fusion(Protocol):
    """A fusion heuristic: groups of contiguous step indices."""

    name: ClassVar[str]

    def fuse(
        self,
        steps: Sequence[Transform],
        specs: list[dict[str, ArraySpec]] | None,
        after: list[set[str]],
    ) -> list[tuple[int, ...]]: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class ByBackend:
    """Fuse every run of contiguous steps on the same backend (crossing one costs a copy)."""

    name: ClassVar[str] = "by_backend"

    def fuse(self, steps, specs, after) -> list[tuple[int, ...]]:
        groups: list[list[int]] = []
        for i, step in enumerate(steps):
            if groups and steps[groups[-1][-1]].demands.backend == step.demands.backend:
                groups[-1].append(i)
            else:
                groups.append([i])
        return [tuple(g) for g in groups]

    def to_dict(self) -> dict:
        return {"name": self.name}


@dataclass(frozen=True)
class Greedy:
    """Fuse contiguous steps on one backend while the node's estimated peak fits ``memory_budget``.

    Without shapes to estimate from (no example record), it fuses as :class:`ByBackend`. A
    step that alone exceeds the budget becomes a node of its own; running it on a record
    that large is refused for that record (see ``Plan.run``).

    Parameters
    ----------
    memory_budget : int or str
        The budget per node, e.g. ``"4GiB"``.
    """

    memory_budget: int | str = "8GiB"

    name: ClassVar[str] = "greedy"

    def __post_init__(self) -> None:
        parse_bytes(self.memory_budget)

    @property
    def budget(self) -> int:
        return parse_bytes(self.memory_budget)

    def fuse(self, steps, specs, after) -> list[tuple[int, ...]]:
        if specs is None:
            return ByBackend().fuse(steps, specs, after)
        groups: list[list[int]] = []
        for i, step in enumerate(steps):
            if groups:
                current = groups[-1]
                same = steps[current[-1]].demands.backend == step.demands.backend
                if same and node_peak(steps, current[0], i, specs, after) <= self.budget:
                    current.append(i)
                    continue
            groups.append([i])
        return [tuple(g) for g in groups]

    def to_dict(self) -> dict:
        return {"name": self.name, "memory_budget": self.memory_budget}


#: Fusion heuristics by the name a spec gives them.
FUSIONS: Registry = Registry("fusion", (ByBackend, Greedy))
