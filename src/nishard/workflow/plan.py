"""assemble(): compile a sequence of transforms into a plan of fused nodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import RecordError, SampleError, SpecError
from ..records.table import Record
from ..transforms.base import Sample, Transform
from .inputs import LOADERS, input_checksums, load_inputs


@dataclass(frozen=True)
class Node:
    """Contiguous steps run as one unit of work (one task of a workflow engine)."""

    steps: tuple[Transform, ...]

    @property
    def backend(self) -> str:
        return self.steps[0].demands.backend


@dataclass(frozen=True)
class Outcome:
    """What running a plan on one record gave: products, or the error that quarantines it."""

    record: Record
    products: dict | None
    error: RecordError | None
    checksums: dict[str, str]


def fuse_by_backend(steps: Sequence[Transform]) -> tuple[Node, ...]:
    """Fuse contiguous steps that run on the same backend into one node.

    This is the simplest fusion heuristic: it never splits a run of same-backend steps,
    because crossing a backend boundary is what costs a copy (host to device).
    """
    nodes: list[list[Transform]] = []
    for step in steps:
        if nodes and nodes[-1][-1].demands.backend == step.demands.backend:
            nodes[-1].append(step)
        else:
            nodes.append([step])
    return tuple(Node(tuple(group)) for group in nodes)


@dataclass(frozen=True)
class Plan:
    """Transforms compiled into nodes, with the inputs they load and the products they leave.

    Build one with :func:`assemble`.
    """

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    products: tuple[str, ...]

    @property
    def steps(self) -> tuple[Transform, ...]:
        return tuple(step for node in self.nodes for step in node.steps)

    def to_list(self) -> list[dict]:
        """The transforms section of a YAML spec."""
        return [step.to_dict() for step in self.steps]

    def explain(self) -> str:
        """A readable account of the nodes, their steps, demands and backends."""
        lines = [
            f"plan: {len(self.steps)} steps in {len(self.nodes)} nodes",
            f"loads: {', '.join(self.inputs)}",
        ]
        for number, node in enumerate(self.nodes, 1):
            names = " -> ".join(step.name for step in node.steps)
            lines.append(f"node {number} [{node.backend}]: {names}")
            for step in node.steps:
                d = step.demands
                lines.append(
                    f"  {step.name:<12} reads {', '.join(step.reads):<12} "
                    f"writes {', '.join(step.writes):<8} memory x{d.memory_factor:g} of input, "
                    f"{'whole time axis' if d.whole_time_axis else 'streams over time'}"
                    f"{', voxel blocks' if d.voxel_blocks else ''}"
                )
        lines.append(f"products: {', '.join(self.products)}")
        return "\n".join(lines)

    def apply(self, sample: Sample, record: Record | None = None) -> Sample:
        """Run the steps on a loaded sample (pure: the input sample is not modified).

        Any exception a step raises becomes a :class:`RecordError` naming the record, the
        step and, for a :class:`SampleError`, the file at fault, so that one record the math
        cannot handle (or cannot fit in memory) is quarantined rather than ending the build.
        """
        record_id = "<array>" if record is None else record.id
        for step in self.steps:
            try:
                sample = step(sample)
            except SampleError as err:
                path = None if record is None or err.kind is None else record.files.get(err.kind)
                expected = f"{err.expected} ({step.name})"
                raise RecordError(record_id, path, expected, err.found) from err
            except Exception as err:
                found = f"{type(err).__name__}: {err}"
                raise RecordError(record_id, None, f"data {step.name} can process", found) from err
        return sample

    def run(self, record: Record) -> Outcome:
        """Load a record, run every step, keep the products; a bad record gives an error."""
        checksums: dict[str, str] = {}
        try:
            checksums = input_checksums(record, self.inputs)
            sample = self.apply(load_inputs(record, self.inputs), record)
        except RecordError as err:
            return Outcome(record, None, err, checksums)
        return Outcome(record, {key: sample[key] for key in self.products}, None, checksums)


def assemble(transforms: Sequence[Transform]) -> Plan:
    """Compile transforms into a plan.

    Parameters
    ----------
    transforms : sequence of Transform
        Applied in order. Each reads sample keys that are either file kinds of a record
        (``bold``, ``mask``, ``confounds``) or written by an earlier step.

    Returns
    -------
    Plan

    Raises
    ------
    SpecError
        When a step reads a key that neither a record nor an earlier step provides.
    """
    steps = tuple(transforms)
    for step in steps:
        if not isinstance(step, Transform):
            raise SpecError(f"a transform, got {step!r}")
    produced: list[str] = []
    inputs: list[str] = []
    for step in steps:
        for key in step.reads:
            if key in produced or key in inputs:
                continue
            if key not in LOADERS:
                raise SpecError(f"step {step.name} reads {key!r}, which no earlier step writes")
            inputs.append(key)
        produced += [key for key in step.writes if key not in produced]
    return Plan(
        nodes=fuse_by_backend(steps),
        inputs=tuple(inputs) or ("bold",),
        products=tuple(produced) or tuple(inputs) or ("bold",),
    )
