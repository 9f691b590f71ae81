"""A shard task: write one group's samples in every format and give its partial manifest.

A group is a shard: the task writes shard ``group.index`` of its split in every format
(and family), each holding the same samples, the group's records that were not
quarantined, in the plan's order. It takes the group's outcomes (records computed by an
executor), writes each sample to the group's writers, quarantines what cannot be written,
and accumulates the group's statistics; closing it gives a
:class:`~nishard.archives.manifest.PartialManifest`. Today the build's one process feeds
every group's task (:func:`nishard.builder.driver.write`); a task on a cluster node feeds
its own.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..archives.families import Family, family_name, family_products, unwrap
from ..archives.manifest import KeyStats, PartialManifest, describe
from ..archives.shards import Format, ShardInfo, ShardWriter
from ..archives.stats import Moments, SplitStats, sample_moments
from ..errors import RecordError
from ..workflow.cache import NodeCache
from ..workflow.executors import Executor
from ..workflow.plan import Outcome, Plan
from .planning import ShardGroup
from .resume import Journal, Resumed


class ShardTask:
    """Writes the samples of one :class:`~.planning.ShardGroup`.

    Parameters
    ----------
    folder : Path
        The output folder.
    group : ShardGroup
    writing : sequence of Format or Family
        Each gets the group's samples in its shard; the first one's shard carries the
        group's statistics in the journal, for a resumed build to reuse.
    journal : Journal or None
        Told of each finished shard (with the statistics, for the first) once it is on
        disk; None for a task run apart, whose partial manifest is its record.
    resumed : Resumed
        What an interrupted build of the same plan finished: a format whose shard of
        the group is done is not written again, nor are its statistics counted again.
    """

    def __init__(
        self,
        folder: Path,
        group: ShardGroup,
        writing: Sequence[Format | Family],
        journal: Journal | None,
        resumed: Resumed,
    ):
        self.group = group
        block = resumed.blocks.get((group.split, group.index))
        self.stats = SplitStats(blocks=[] if block is None else [block])
        self.writers = [
            _writer(folder, group, item, journal, self.stats, i == 0, resumed)
            for i, item in enumerate(writing)
        ]
        self.keys = KeyStats()
        self.inputs: dict[str, str] = {}
        self.quarantine: list[dict] = []
        self.warnings: list[dict] = []
        self.qc: dict[str, dict] = {}
        self.records: list[str] = []
        self.written = 0

    def write(self, outcome: Outcome, position: int, root: str) -> dict:
        """Write one record's sample (or quarantine it); its journal entry, not yet counted
        (:meth:`take` counts it)."""
        error = outcome.error
        entry = {
            "position": position, "id": outcome.record.id, "split": self.group.split,
            "inputs": {relative(p, root): h for p, h in outcome.checksums.items()},
            "quarantine": None, "keys": None,
            "warnings": [
                {"record": outcome.record.id, "file": relative(path, root), "warning": text}
                for path, text in outcome.warnings
            ],
        }  # fmt: skip
        if error is None:
            error = self._write_sample(outcome)
        if error is None:
            entry["keys"] = describe(outcome.products)
            if outcome.qc:  # (measured by the worker: nishard.workflow.qc)
                entry["qc"] = outcome.qc
        else:
            entry["quarantine"] = quarantine_entry(error, root)
        return entry

    def take(self, entry: dict) -> None:
        """Count a record's entry, whether just written or done by an earlier run."""
        self.records.append(entry["id"])
        self.inputs.update(entry["inputs"])
        self.warnings += entry.get("warnings", [])  # (an older journal has none)
        if entry["quarantine"] is not None:
            self.quarantine.append(entry["quarantine"])
        else:
            for name, (dtype, shape) in sorted(entry["keys"].items()):
                self.keys.add(name, dtype, shape)
            if entry.get("qc"):
                self.qc[entry["id"]] = entry["qc"]
            self.written += 1

    @property
    def complete(self) -> bool:
        """Every record of the group taken (written or quarantined)."""
        return len(self.records) == len(self.group.records)

    @property
    def done(self) -> bool:
        """Every format's shard of the group finished (by this build or an earlier one)."""
        return all(writer.shards for writer in self.writers)

    def finish(self) -> None:
        """Finish the group's shards; they are synced and published in the background."""
        for writer in self.writers:
            writer.finish()

    def close(self) -> PartialManifest:
        """Finish the shards, wait until every one is on disk; the partial manifest."""
        shards = tuple(info for writer in self.writers for info in writer.close())
        return PartialManifest(
            split=self.group.split, group=self.group.index, records=tuple(self.records),
            written=self.written, shards=shards, keys=self.keys.to_dict(),
            inputs=dict(self.inputs), quarantine=tuple(self.quarantine),
            warnings=tuple(self.warnings), qc=dict(self.qc), moments=self.stats.total(),
        )  # fmt: skip

    def abort(self) -> None:
        """Drop the unfinished shards; finished ones stay for a resumed build."""
        for writer in self.writers:
            writer.abort()

    def _write_sample(self, outcome: Outcome) -> RecordError | None:
        """Encode and write one sample; an encoding failure quarantines it, as bad data does.

        A writer whose shard of the group an interrupted build finished skips it, and so
        do the statistics if the first format's is.
        """
        record, index = outcome.record, self.written
        try:
            encoded = [
                w.fmt.encode(record.id, only(outcome.products, w.products), record.metadata)
                for w in self.writers
            ]
        except (ValueError, TypeError) as err:
            found = f"{type(err).__name__}: {err}"
            expected = "products and metadata the format can encode"
            return RecordError(record.id, None, expected, found)
        counted = index >= self.writers[0].done
        for writer, fields in zip(self.writers, encoded, strict=True):
            if index >= writer.done:
                writer.add(record.id, fields)
        if counted:
            given = outcome.summaries or {}
            moments: dict[str, Moments] = {}
            for name, array in outcome.products.items():  # in the products' order, as observe
                if isinstance(given.get(name), Moments):
                    moments[name] = given[name]
                else:  # a product the worker did not summarise (a staged file kept as it is)
                    moments |= sample_moments({name: array})
            self.stats.add(moments)
        return None


def outcomes(
    executor: Executor, plan: Plan, records: list, cache: NodeCache | None
) -> Iterator[Outcome]:
    """The executor's outcomes, each with its products' statistics where it can.

    The statistics of each sample are computed by the worker that made it: a pass over
    every array that would otherwise take the writer's process, which also writes (and
    hashes) every byte, from the cores the workers need. An executor whose ``map`` takes
    no ``summarize`` (one written for nishard 0.1) still works: the writer computes them.
    """
    try:
        takes = "summarize" in inspect.signature(executor.map).parameters
    except (TypeError, ValueError):  # no signature to read: call it as 0.1 did
        takes = False
    if takes:
        return executor.map(plan, records, cache, summarize=sample_moments)
    return executor.map(plan, records, cache)


def _writer(
    folder: Path,
    group: ShardGroup,
    item: Format | Family,
    journal: Journal | None,
    stats: SplitStats,
    first: bool,
    resumed: Resumed,
) -> ShardWriter:
    """The group's writer in one format: its one shard, numbered by the group, or none
    where an interrupted build finished it.

    The group's statistics are journaled with its first format's shard.
    """

    def finished(info: ShardInfo) -> Callable[[], None] | None:
        # The journal lists the shard once it is on disk under its name (the writer
        # calls this back then).
        block = stats.close_block() if first else None
        if journal is None:
            return None
        return lambda: journal.shard(info, block, group.index)

    fmt, family = unwrap(item), family_name(item)
    done = resumed.shards.get((group.split, group.index, fmt.name, family))
    # No limit: the plan cut the group to fit them, in every format.
    return ShardWriter(folder, group.split, fmt, None, finished=[] if done is None else [done],
                       on_finish=finished, family=family, products=family_products(item),
                       first=group.index)  # fmt: skip


def only(products: dict, names: tuple[str, ...] | None) -> dict:
    """The products a family holds (all for None), in the order of ``products``."""
    return products if names is None else {k: v for k, v in products.items() if k in names}


def quarantine_entry(error: RecordError, root: str) -> dict:
    """The manifest's entry of a record refused: record, file (relative), expected, found."""
    return {
        "record": error.record,
        "file": None if error.path is None else relative(error.path, root),
        "expected": error.expected,
        "found": error.found,
    }


def relative(path: str, root: str) -> str:
    """A path relative to the dataset root, so manifests compare across machines."""
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path
