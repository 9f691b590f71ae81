"""A shard task: write one group's samples in every format and give its partial manifest.

The task takes the group's outcomes (records computed by an executor) in the plan's
order, writes each sample to the group's shard writers (one per format or family),
quarantines what cannot be written, and accumulates the group's statistics; closing it
gives a :class:`~nishard.archives.manifest.PartialManifest`. Today the build's one
process feeds every group's task (:func:`nishard.builder.driver.write`); a task on a
cluster node feeds its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..archives.families import Family, family_name, family_products, unwrap
from ..archives.manifest import KeyStats, PartialManifest, describe
from ..archives.shards import Format, ShardInfo, ShardSpec, ShardWriter
from ..archives.stats import Moments, SplitStats, sample_moments
from ..errors import RecordError
from ..workflow.plan import Outcome
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
        Each gets the group's samples in its own shards; the first delimits the
        statistics blocks a resumed build reuses.
    shards : ShardSpec
    journal : Journal
        Told of each finished shard (with its statistics block) once it is on disk.
    resumed : Resumed
        What an interrupted build of the same plan finished: numbering and statistics go
        on after it.
    """

    def __init__(
        self,
        folder: Path,
        group: ShardGroup,
        writing: Sequence[Format | Family],
        shards: ShardSpec,
        journal: Journal,
        resumed: Resumed,
    ):
        self.group = group
        self.stats = SplitStats(blocks=list(resumed.blocks.get(group.split, [])))
        self.writers = [
            _writer(folder, group.split, item, shards, journal, self.stats, i == 0, resumed)
            for i, item in enumerate(writing)
        ]
        self.keys = KeyStats()
        self.inputs: dict[str, str] = {}
        self.quarantine: list[dict] = []
        self.warnings: list[dict] = []
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
            self.written += 1

    def close(self) -> PartialManifest:
        """Finish the last shards, wait until every one is on disk; the partial manifest."""
        shards = tuple(info for writer in self.writers for info in writer.close())
        return PartialManifest(
            split=self.group.split, group=self.group.index, records=tuple(self.records),
            written=self.written, shards=shards, keys=self.keys.to_dict(),
            inputs=dict(self.inputs), quarantine=tuple(self.quarantine),
            warnings=tuple(self.warnings), moments=self.stats.total(),
        )  # fmt: skip

    def abort(self) -> None:
        """Drop the unfinished shards; finished ones stay for a resumed build."""
        for writer in self.writers:
            writer.abort()

    def _write_sample(self, outcome: Outcome) -> RecordError | None:
        """Encode and write one sample; an encoding failure quarantines it, as bad data does.

        A writer that has the sample in a shard finished by an interrupted build skips it,
        and so do the statistics if the first format does.
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
        # A finished first-format shard ends the statistics block before its successor's
        # first sample is counted, so writers go first.
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


def _writer(
    folder: Path,
    split: str,
    item: Format | Family,
    shards: ShardSpec,
    journal: Journal,
    stats: SplitStats,
    first: bool,
    resumed: Resumed,
) -> ShardWriter:
    """A split's writer in one format, after the shards an interrupted build finished.

    The shards of a split's first format delimit its statistics blocks: when one is
    finished, the moments of its samples are journaled with it.
    """

    def finished(info: ShardInfo) -> Callable[[], None]:
        # The block ends now, before the next sample is counted; the journal lists the
        # shard once it is on disk under its name (the writer calls this back then).
        block = stats.close_block() if first else None
        return lambda: journal.shard(info, block)

    fmt, family = unwrap(item), family_name(item)
    done = resumed.shards.get((split, fmt.name, family), [])
    return ShardWriter(folder, split, fmt, shards, finished=done, on_finish=finished,
                       family=family, products=family_products(item))  # fmt: skip


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
