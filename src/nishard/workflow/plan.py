"""assemble(): compile transforms into a DAG of fused nodes; a Plan runs it per record.

Steps name the sample keys they read and write, so the data flow is a DAG even when the
list is written in order: a step depends on the last earlier step that wrote each key it
reads, and a spec branches by writing to new keys (region signals under ``regions`` and
their connectivity under ``connectivity``, both from the same cleaned ``bold``). Fusion
(:mod:`.fusion`) groups contiguous steps into nodes; nodes depend on the nodes that wrote
what they read; the products are the keys a shard keeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecordError, SampleError, SpecError
from ..records.table import Record
from ..threads import one_blas_thread
from ..transforms.base import ArraySpec, Sample, Transform
from ..units import format_bytes
from .cache import NodeCache, node_key, step_files
from .fusion import ByBackend, Fusion, Greedy, chain_specs, masks_as_read, needed_after, node_peak
from .headers import describe_inputs
from .inputs import LOADERS, input_checksums, load_inputs
from .qc import QC_KEY, combine, measure_inputs, measure_outputs
from .timing import settle_timing
from .usage import Usage

#: What an executor may run on each record's products where they are made: per product
#: key, a summary computed from that key's array alone (so that an engine running a plan
#: node by node can summarise each node's products in the task that makes them).
Summarize = Callable[[dict[str, Any]], dict[str, Any]]

#: Sample entries that travel with the arrays without being declared: the record's
#: metadata and the affine of its image.
COMPANIONS = ("meta", "affine")


@dataclass(frozen=True)
class Node:
    """Contiguous steps run as one unit of work (one task of a workflow engine).

    Attributes
    ----------
    steps : tuple of Transform
    first : int
        Index of its first step in the plan.
    loads : tuple of str
        Record file kinds it loads itself.
    parents : tuple of int
        Indices of the nodes whose outputs it reads.
    outputs : tuple of str
        Keys it hands on: read by a later node or kept as products.
    """

    steps: tuple[Transform, ...]
    first: int = 0
    loads: tuple[str, ...] = ()
    parents: tuple[int, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def backend(self) -> str:
        return self.steps[0].demands.backend

    @property
    def last(self) -> int:
        return self.first + len(self.steps) - 1

    @property
    def masks_on_read(self) -> bool:
        """Whether its first step masks the BOLD run it loads by the record's mask, so that
        the read gathers the mask's voxels volume by volume instead (same values, without
        the 4D run in memory: :func:`~.inputs.load_masked_bold`)."""
        return masks_as_read(self.steps[0], self.loads)


@dataclass(frozen=True)
class Outcome:
    """What running a plan on one record gave: products, or the error that quarantines it.

    Attributes
    ----------
    record : Record
    products : dict or None
        The arrays a sample keeps; None when the record failed.
    error : RecordError or None
    checksums : dict of str to str
        sha256 of each input file, by path.
    usage : Usage or None
        Peak memory and CPU time of the worker process that ran the record; None when it
        ran in the writer's own process (serial).
    summaries : dict or None
        Per product, what the executor's ``summarize`` computed from it where it was made
        (the statistics of :mod:`nishard.archives.stats`); products without one are
        summarised by the writer.
    warnings : tuple of (str, str)
        What the worker noticed and the manifest reports for the record without
        quarantining it, each as the file and a line (a header TR that disagrees with
        the sidecar's).
    qc : dict or None
        The record's quality figures, measured where its files were loaded (see
        :mod:`.qc`); None when the plan loads nothing they are measured on.

    Notes
    -----
    ``record`` is the record as the worker left it: its metadata's ``t_r`` and
    ``t_r_source`` settled from the image header (:mod:`.timing`).
    """

    record: Record
    products: dict | None
    error: RecordError | None
    checksums: dict[str, str]
    usage: Usage | None = None
    summaries: dict[str, Any] | None = None
    warnings: tuple[tuple[str, str], ...] = ()
    qc: dict[str, float] | None = None


def fuse_by_backend(steps: Sequence[Transform]) -> tuple[Node, ...]:
    """Contiguous steps on the same backend as one node each (kept for callers of 0.1)."""
    return tuple(Node(tuple(steps[i] for i in g), g[0]) for g in ByBackend().fuse(steps, None, []))


@dataclass(frozen=True)
class Plan:
    """Transforms compiled into a DAG of nodes. Build one with :func:`assemble`.

    Attributes
    ----------
    nodes : tuple of Node
    inputs : tuple of str
        Record file kinds the plan loads.
    products : tuple of str
        Keys every sample of the output keeps.
    fusion : Fusion
        The heuristic that made the nodes; with a budget (:class:`~.fusion.Greedy`), a
        record whose estimated node peak exceeds it is quarantined before loading.
    example : dict of ArraySpec or None
        The input shapes fusion was decided on (an example record's).
    """

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    products: tuple[str, ...]
    fusion: Fusion = dataclasses.field(default_factory=ByBackend)
    example: dict[str, ArraySpec] | None = None

    @property
    def steps(self) -> tuple[Transform, ...]:
        return tuple(step for node in self.nodes for step in node.steps)

    def to_list(self) -> list[dict]:
        """The transforms section of a YAML spec."""
        return [step.to_dict() for step in self.steps]

    # ----------------------------------------------------------------------- estimates

    def estimate(self, inputs: dict[str, ArraySpec]) -> list[int]:
        """Estimated peak bytes of each node, for inputs of these shapes."""
        steps = self.steps
        specs = chain_specs(steps, inputs)
        after = needed_after(steps, self.products)
        return [node_peak(steps, n.first, n.last, specs, after) for n in self.nodes]

    def estimate_record(self, record: Record) -> list[int]:
        """:meth:`estimate` from the record's file headers (the data are not read)."""
        return self.estimate(describe_inputs(record, self.inputs))

    def draw(self, path: str | Path, example: Record | dict[str, ArraySpec] | None = None) -> Path:
        """Draw the DAG to a PNG or SVG file (by suffix); see :func:`.draw.draw`."""
        from .draw import draw

        return draw(self, path, example)

    def explain(self) -> str:
        """A readable account of the DAG: nodes, their steps, demands, backends, estimates."""
        budget = getattr(self.fusion, "budget", None)
        peaks = self.estimate(self.example) if self.example else None
        lines = [
            f"plan: {len(self.steps)} steps in {len(self.nodes)} nodes "
            f"(fusion: {self.fusion.name}"
            f"{f', budget {format_bytes(budget)}' if budget else ''})",
            f"loads: {', '.join(self.inputs)}",
        ]
        if self.example:
            shapes = ", ".join(f"{k} {v.shape}" for k, v in self.example.items())
            lines.append(f"estimates for inputs of shape: {shapes}")
        for number, node in enumerate(self.nodes):
            names = " -> ".join(step.name for step in node.steps)
            after = f" after node {', '.join(map(str, node.parents))}" if node.parents else ""
            peak = f", peak ~{format_bytes(peaks[number])}" if peaks else ""
            lines.append(f"node {number} [{node.backend}{peak}]{after}: {names}")
            if node.loads:
                fused = " (bold masked as it is read)" if node.masks_on_read else ""
                lines.append(f"  loads {', '.join(node.loads)}{fused}")
            for step in node.steps:
                d = step.demands
                memory = (
                    "memory by its own model"  # not a multiple of its input: see node_peak
                    if type(step).working_memory is not Transform.working_memory
                    else f"memory x{d.memory_factor:g} of input"
                )
                lines.append(
                    f"  {step.name:<12} reads {', '.join(step.reads):<16} "
                    f"writes {', '.join(step.writes):<16} {memory}, "
                    f"{'whole time axis' if d.whole_time_axis else 'streams over time'}"
                    f"{', voxel blocks' if d.voxel_blocks else ''}"
                )
            lines.append(f"  hands on {', '.join(node.outputs)}")
        lines.append(f"products: {', '.join(self.products)}")
        return "\n".join(lines)

    # ----------------------------------------------------------------------- running

    def apply(self, sample: Sample, record: Record | None = None) -> Sample:
        """Run every step on a loaded sample (pure: the input sample is not modified), on
        one BLAS thread as a build computes its records: the same bits as its products."""
        with one_blas_thread():
            return _apply(self.steps, sample, record)

    def run(self, record: Record, cache: NodeCache | None = None) -> Outcome:
        """Load a record, run every node, keep the products; a bad record gives an error.

        With a ``cache``, node outputs already stored under the same content key are
        loaded instead of computed, and new ones are stored.
        """
        return self._run(record, cache, None)

    def _run(
        self,
        record: Record,
        cache: NodeCache | None,
        checksums: dict[str, str] | None,
        mapped: bool = False,
        settled: bool = False,
    ) -> Outcome:
        known: dict[str, str] = checksums or {}
        warnings: tuple[tuple[str, str], ...] = ()
        # Nothing needs the checksums before the products when there are no cache keys to
        # make: the inputs are then hashed on a second thread while they are read and
        # computed on (hashlib and ISA-L let go of the GIL), instead of before. (A pool of
        # the call's own: a module-wide one would not survive the executors' forks.)
        overlap = checksums is None and cache is None
        error: RecordError | None = None
        with ThreadPoolExecutor(1) as pool:  # (no thread starts unless one is submitted)
            hashing = pool.submit(input_checksums, record, self.inputs) if overlap else None
            try:
                if checksums is None and not overlap:
                    known = input_checksums(record, self.inputs)
                if not settled:  # (a workflow engine's task settled it where it loaded)
                    record, warnings = settle_timing(record, self.inputs)
                self.check_memory(record)
                with one_blas_thread():
                    products, qc = self._products(record, known, cache, mapped)
            except RecordError as err:
                error = err
            if hashing is not None:
                try:
                    known = hashing.result()
                except RecordError as err:
                    # A file the hash could not read is the record's error, as when it
                    # was hashed first: the read would have failed on it too.
                    error = err
        if error is not None:
            return Outcome(record, None, error, known, warnings=warnings)
        return Outcome(record, products, None, known, warnings=warnings, qc=qc)

    def check_memory(self, record: Record) -> None:
        """Refuse a record whose estimated node peak exceeds the fusion's budget."""
        budget = getattr(self.fusion, "budget", None)
        if budget is None:
            return
        try:
            peaks = self.estimate_record(record)
        except RecordError:
            raise
        except Exception as err:  # shapes a step cannot take: it would fail on the data too
            kind = "bold" if "bold" in self.inputs else self.inputs[0]
            found = f"{type(err).__name__}: {err}"
            raise RecordError(
                record.id, record.files.get(kind), "inputs of known shapes", found
            ) from err
        for number, peak in enumerate(peaks):
            if peak > budget:
                kind = "bold" if "bold" in self.inputs else self.inputs[0]
                raise RecordError(
                    record.id, record.files.get(kind),
                    f"node {number} ({'+'.join(s.name for s in self.nodes[number].steps)}) "
                    f"to fit the memory budget of {format_bytes(budget)}",
                    f"an estimated peak of {format_bytes(peak)}",
                )  # fmt: skip

    def node_keys(self, record: Record, checksums: dict[str, str]) -> list[str]:
        """Content keys of every node's output for this record (see :mod:`.cache`)."""
        keys: list[str] = []
        for node in self.nodes:
            files = {kind: checksums.get(str(record.files.get(kind)), "") for kind in node.loads}
            # A step's own files (an atlas, a mask path) are content too: their bytes, not
            # their names, decide the output.
            steps = [{**step.to_dict(), "files": step_files(step)} for step in node.steps]
            # The outputs belong in the key: asking for another product from the same steps
            # must not find a stored output that lacks it.
            parents = [keys[p] for p in node.parents]
            keys.append(node_key(steps, parents, files, record.metadata, node.outputs))
        return keys

    def run_node(self, number: int, record: Record, cache: NodeCache) -> str:
        """Compute node ``number`` for a record into the cache (its parents must be there).

        What a workflow engine's task calls: it passes the record and the cache folder and
        gets back the key under which the node's outputs are stored.
        """
        return self.compute_node(number, record, cache)[0]

    def compute_node(
        self,
        number: int,
        record: Record,
        cache: NodeCache,
        checksums: dict[str, str] | None = None,
    ) -> tuple[str, Sample | None]:
        """:meth:`run_node`, also giving the node's outputs when it computed them (None
        when they were stored already), so that the task can summarise its products
        without reading them back. ``checksums`` of the inputs, when known, save hashing
        them again."""
        if checksums is None:
            checksums = input_checksums(record, self.inputs)
        key = self.node_keys(record, checksums)
        if key[number] in cache:
            return key[number], None
        with one_blas_thread():
            return key[number], self._node_outputs(number, record, key, cache, {})

    def node_products(self, number: int) -> tuple[str, ...]:
        """The products whose final value node ``number`` writes."""
        return tuple(key for key in self.products if _producer(self.nodes, key) == number)

    def collect(
        self, record: Record, cache: NodeCache, checksums: dict[str, str] | None = None
    ) -> Outcome:
        """The products of a record whose nodes a workflow engine has run into ``cache``.

        ``checksums``: the input checksums the engine's tasks computed, so that the
        writer's process does not hash the inputs again (None: it does). ``record``: as
        the engine's first task settled its timing (:func:`.timing.settle_timing`).

        The products are read-only mappings of the stored files, not copies: the writer
        reads each byte once, from the page cache, as the local executor's hand-off does
        (a mapping outlives the file's removal).
        """
        return self._run(record, cache, checksums, mapped=True, settled=True)

    def _products(self, record, checksums, cache, mapped: bool = False) -> tuple[dict, dict]:
        keys = self.node_keys(record, checksums) if cache is not None else None
        done: dict[int, Sample] = {}
        out = {}
        for key in self.products:
            producer = _producer(self.nodes, key)
            if producer is None:  # a product no step writes: the loaded file itself
                out[key] = load_inputs(record, (key,))[key]
            else:
                outputs = self._node_outputs(producer, record, keys, cache, done, mapped)
                out[key] = outputs[key]
        # The QC figures of every node that measures some: a node a product needed but
        # taken from the cache below a stored product was not loaded; it is now, mapped
        # (its arrays are not read), so that the figures do not depend on the cache.
        parts = []
        for number in self._measuring():
            outputs = self._node_outputs(number, record, keys, cache, done, True)
            parts.append(outputs.get(QC_KEY, {}))
        return out, combine(parts)

    def _measuring(self) -> list[int]:
        """The nodes that measure QC figures (:mod:`.qc`): those that load files or write
        ``volumes``, among the ancestors of the products' nodes (the nodes that run)."""
        needed: set[int] = set()
        stack = [p for key in self.products if (p := _producer(self.nodes, key)) is not None]
        while stack:
            number = stack.pop()
            if number not in needed:
                needed.add(number)
                stack += self.nodes[number].parents
        return [
            n for n in sorted(needed)
            if self.nodes[n].loads or any("volumes" in s.writes for s in self.nodes[n].steps)
        ]  # fmt: skip

    def _node_outputs(self, number, record, keys, cache, done, mapped: bool = False) -> Sample:
        # ``mapped``: load this node's stored outputs as mappings (they leave as products).
        # Parents, needed only when this node must be rerun, are loaded as copies (or
        # reused as already loaded: steps never modify what they are given).
        if number in done:
            return done[number]
        node = self.nodes[number]
        stored = cache.load(keys[number], mmap=mapped) if cache is not None else None
        if stored is None:
            sample: Sample = {"meta": record.metadata}
            for parent in node.parents:
                given = self._node_outputs(parent, record, keys, cache, done)
                sample.update({k: v for k, v in given.items() if k != QC_KEY})
            figures, steps = {}, node.steps
            if node.loads:
                sample.update(load_inputs(record, node.loads, masked_bold=node.masks_on_read))
                figures = measure_inputs(sample)
                if node.masks_on_read:
                    steps = steps[1:]  # the read applied the mask
            sample = _apply(steps, sample, record, consume=True)
            figures |= measure_outputs(sample)
            stored = {k: sample[k] for k in (*node.outputs, "affine") if k in sample}
            if figures:
                stored[QC_KEY] = figures
            if cache is not None:
                cache.save(keys[number], stored)
        done[number] = stored
        return stored


def _apply(
    steps: Sequence[Transform], sample: Sample, record: Record | None, consume: bool = False
) -> Sample:
    """Run steps in order; any exception becomes a RecordError naming the record and step,
    so that one record the math cannot handle is quarantined rather than ending the build.

    With ``consume``, the given dict is emptied: the caller's reference to it would
    otherwise keep the loaded inputs (a whole 4D run) alive through every step, beyond
    what the node's memory estimate allows for.
    """
    record_id = "<array>" if record is None else record.id
    if consume:
        sample, given = dict(sample), sample
        given.clear()
    for step in steps:
        try:
            sample = step(sample)
        except SampleError as err:
            path = None if record is None or err.kind is None else record.files.get(err.kind)
            expected = f"{err.expected} ({step.name})"
            raise RecordError(record_id, path, expected, err.found) from err
        except Exception as err:
            # Every product of a record comes from its BOLD run: name that file, where the
            # user will look, rather than none.
            path = None if record is None else record.files.get("bold")
            found = f"{type(err).__name__}: {err}"
            raise RecordError(record_id, path, f"data {step.name} can process", found) from err
    return sample


def _producer(nodes: Sequence[Node], key: str) -> int | None:
    for number in range(len(nodes) - 1, -1, -1):
        if any(key in step.writes for step in nodes[number].steps):
            return number
    return None


def assemble(
    transforms: Sequence[Transform],
    *,
    products: Sequence[str] | None = None,
    fusion: Fusion | None = None,
    example: Record | dict[str, ArraySpec] | None = None,
) -> Plan:
    """Compile transforms into a plan: a DAG of fused nodes.

    Parameters
    ----------
    transforms : sequence of Transform
        Applied in order. Each reads sample keys that are either file kinds of a record
        (``bold``, ``mask``, ``confounds``, ``cifti``...) or written by an earlier step.
    products : sequence of str, optional
        The keys a sample keeps; default: every key a step writes (the loaded ``bold``
        when there is no step).
    fusion : Fusion, optional
        The heuristic grouping steps into nodes; default :class:`~.fusion.ByBackend`.
        :class:`~.fusion.Greedy` fuses under a memory budget, estimated on ``example``.
    example : Record or dict of ArraySpec, optional
        The record (its file headers) or input shapes to estimate memory on; pass the
        largest record. Without one, a budget is checked per record when it runs.

    Returns
    -------
    Plan

    Raises
    ------
    SpecError
        When a step reads a key that neither a record nor an earlier step provides, or a
        product that nothing provides.
    """
    steps = tuple(transforms)
    for step in steps:
        if not isinstance(step, Transform):
            raise SpecError(f"a transform, got {step!r}")
    fusion = fusion or ByBackend()
    inputs: list[str] = []
    written: list[str] = []
    dropped: set[str] = set()
    for step in steps:
        for key in step.reads:
            if key in dropped:
                raise SpecError(f"step {step.name} reads {key!r}, which an earlier step drops")
            if key not in written and key not in inputs:
                if key not in LOADERS:
                    raise SpecError(f"step {step.name} reads {key!r}, which no earlier step writes")
                inputs.append(key)
        written += [key for key in step.writes if key not in written]
        gone = set(step.drops) - set(step.writes)
        written = [key for key in written if key not in gone]
        dropped = (dropped | gone) - set(step.writes)
    if products is None:
        products = tuple(written) or tuple(inputs) or ("bold",)
    products = tuple(products)
    for key in products:
        if key in dropped:
            raise SpecError(f"product {key!r}: a step drops it (keep_timeseries: true keeps it)")
        if key not in written and key not in inputs and key not in LOADERS:
            raise SpecError(f"product {key!r}: no step writes it and no record file gives it")
        if key not in written and key not in inputs:
            inputs.append(key)  # a staged file kept as it is: checksummed like the others
    if not inputs:
        inputs = ["bold"]

    if isinstance(example, Record):
        example = describe_inputs(example, tuple(inputs))
    after = needed_after(steps, products)
    specs = chain_specs(steps, example) if example else None
    groups = fusion.fuse(steps, specs, after)
    return Plan(
        nodes=_nodes(steps, groups, products),
        inputs=tuple(inputs),
        products=products,
        fusion=fusion,
        example=example,
    )


def _nodes(steps, groups, products) -> tuple[Node, ...]:
    node_of = {i: n for n, group in enumerate(groups) for i in group}
    nodes = []
    for n, group in enumerate(groups):
        loads: list[str] = []
        parents: set[int] = set()
        for i in group:
            for key in steps[i].reads:
                writer = next((j for j in range(i - 1, -1, -1) if key in steps[j].writes), None)
                if writer is None:
                    loads += [key] if key not in loads else []
                elif node_of[writer] != n:
                    parents.add(node_of[writer])
        nodes.append(Node(tuple(steps[i] for i in group), group[0], tuple(loads),
                          tuple(sorted(parents))))  # fmt: skip
    # Outputs: what a later node reads from this one, and the products it writes last.
    outputs: list[set[str]] = [set() for _ in nodes]
    for n, node in enumerate(nodes):
        for i in range(node.first, node.last + 1):
            for key in steps[i].reads:
                writer = next((j for j in range(i - 1, -1, -1) if key in steps[j].writes), None)
                if writer is not None and node_of[writer] != n:
                    outputs[node_of[writer]].add(key)
    for key in products:
        producer = _producer(nodes, key)
        if producer is not None:
            outputs[producer].add(key)
    return tuple(
        Node(node.steps, node.first, node.loads, node.parents, tuple(sorted(outputs[n])))
        for n, node in enumerate(nodes)
    )


__all__ = ["ByBackend", "Greedy", "Node", "Outcome", "Plan", "assemble", "fuse_by_backend"]
