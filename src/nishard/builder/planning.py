"""The shard plan: which records a build writes, to which split, in which order, in which group.

A build is planned once, then run as shard tasks (:mod:`.tasks`), one per group, whose
partial manifests are merged (:func:`nishard.archives.manifest.merge`)::

    records ─plan_shards─▶ ShardPlan ─a ShardTask per group─▶ PartialManifest ─merge─▶ manifest

The plan is a pure function of the records, the split, the shuffle seed and the shard
limits, so every machine that runs a task computes (or reads) the same one. Today a split
is one group, written by one writer that starts a new shard when a limit is reached as
samples arrive; cutting a split into several groups of fixed records, each written by
its own task, is how a cluster build distributes the writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..archives.shards import ShardSpec
from ..errors import SpecError
from ..records.table import RecordTable
from .splits import Split, check_split_name


@dataclass(frozen=True)
class ShardGroup:
    """The records one shard task writes: group ``index`` of ``split``, in writing order."""

    split: str
    index: int
    records: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"split": self.split, "index": self.index, "records": list(self.records)}

    @classmethod
    def from_dict(cls, entry: Mapping) -> ShardGroup:
        return cls(entry["split"], int(entry["index"]), tuple(entry["records"]))


@dataclass(frozen=True)
class ShardPlan:
    """Every record's split, the writing order and the shard groups of a build.

    Attributes
    ----------
    splits : tuple of str
        Split names, in the order the manifest lists them.
    order : tuple of str
        Record ids in writing order (the records' own, or permuted by the shuffle seed).
    assignment : mapping of str to str
        The split of each record id.
    groups : tuple of ShardGroup
        By split, then index; together they hold every record once.
    shards : ShardSpec
        The limits each group's writer starts new shards by.
    """

    splits: tuple[str, ...]
    order: tuple[str, ...]
    assignment: Mapping[str, str]
    groups: tuple[ShardGroup, ...]
    shards: ShardSpec

    def to_dict(self) -> dict:
        """JSON-able: what a task on another machine reads instead of planning again."""
        return {
            "splits": list(self.splits), "order": list(self.order),
            "assignment": dict(self.assignment),
            "groups": [group.to_dict() for group in self.groups],
            "shards": self.shards.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, entry: Mapping) -> ShardPlan:
        return cls(
            splits=tuple(entry["splits"]), order=tuple(entry["order"]),
            assignment=dict(entry["assignment"]),
            groups=tuple(ShardGroup.from_dict(g) for g in entry["groups"]),
            shards=ShardSpec(**entry["shards"]),
        )  # fmt: skip


def plan_shards(
    records: RecordTable, split: str | Split, shuffle: int | None, shards: ShardSpec
) -> ShardPlan:
    """Plan a build: split names, each record's split, the writing order, the groups.

    The order is the records' own, or, with a ``shuffle`` seed, a permutation drawn from
    it: shards then hold a mix of subjects and classes rather than runs in name order.
    Each split is one group, its records in that order.

    Raises
    ------
    SpecError
        When the split name is invalid or the strategy cannot assign the records.
    """
    ids = [str(i) for i in records.frame.index]
    if isinstance(split, str):
        try:
            check_split_name(split)
        except ValueError as err:
            raise SpecError(str(err)) from err
        names, assignment = (split,), dict.fromkeys(ids, split)
    else:
        try:
            assigned = split.assign(records.frame)
        except ValueError as err:
            raise SpecError(f"split {split.to_dict()}: {err}") from err
        names, assignment = tuple(split.names), {str(k): str(v) for k, v in assigned.items()}
    order = [record.id for record in records]
    if shuffle is not None:
        order = [order[i] for i in np.random.default_rng(shuffle).permutation(len(order))]
    groups = tuple(
        ShardGroup(name, 0, tuple(r for r in order if assignment[r] == name)) for name in names
    )
    return ShardPlan(names, tuple(order), assignment, groups, shards)
