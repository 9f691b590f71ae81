"""The shard plan: which records a build writes, to which split, in which order, in which group.

A build is planned once, then run as shard tasks (:mod:`.tasks`), one per group, whose
partial manifests are merged (:func:`nishard.archives.manifest.merge`)::

    records ─plan_shards─▶ ShardPlan ─a ShardTask per group─▶ PartialManifest ─merge─▶ manifest

The plan is a pure function of the records, the split, the shuffle seed, the shard
limits and, for a byte limit, an upper bound of each record's sample in each written
format (:class:`SampleBounds`), so every machine that runs a task computes (or reads)
the same one. A group is a shard: group ``k`` of a split is shard ``k`` of that split in
every format (and archive family), so the ``.tar`` and the ``.tfrecord`` of a group hold
the same samples. A record quarantined while the build runs leaves its group one sample
shorter; nothing is re-packed, so a group's files never depend on which of the other
groups' records failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..archives.shards import ShardSpec
from ..errors import SpecError
from ..records.table import RecordTable
from .splits import Split, check_split_name


@dataclass(frozen=True)
class ShardGroup:
    """The records one shard task writes: group ``index`` of ``split``, in writing order.

    Its samples are shard ``index`` of the split in every format (``<split>-%06d<ext>``).
    """

    split: str
    index: int
    records: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"split": self.split, "index": self.index, "records": list(self.records)}

    @classmethod
    def from_dict(cls, entry: Mapping) -> ShardGroup:
        return cls(entry["split"], int(entry["index"]), tuple(entry["records"]))


@dataclass(frozen=True)
class SampleBounds:
    """What a byte limit is planned from: an upper bound of each record's sample size.

    Attributes
    ----------
    sizes : mapping of str to tuple of (int or None)
        Per record id, per written format (or family), an upper bound of the bytes its
        sample adds to a shard of that format (headers, padding and framing included);
        None where no bound is known (the record then gets a group of its own).
    file_size : tuple of callable
        Per written format, the finished file's size from its samples' bytes (the
        format's ``file_size``: a tar's end blocks and padding, ...).
    """

    sizes: Mapping[str, tuple[int | None, ...]]
    file_size: tuple[Callable[[int], int], ...]


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
        By split, then index; together they hold every record once. Group ``k`` of a
        split is its shard ``k`` in every format.
    shards : ShardSpec
        The limits the groups were cut by.
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
    records: RecordTable,
    split: str | Split,
    shuffle: int | None,
    shards: ShardSpec,
    bounds: SampleBounds | None = None,
) -> ShardPlan:
    """Plan a build: split names, each record's split, the writing order, the groups.

    The order is the records' own, or, with a ``shuffle`` seed, a permutation drawn from
    it: shards then hold a mix of subjects and classes rather than runs in name order.
    Each split's records, in that order, are cut into groups by :func:`cut_groups`; a
    split without records is one empty group.

    Parameters
    ----------
    records : RecordTable
    split : str or Split
    shuffle : int or None
    shards : ShardSpec
    bounds : SampleBounds, optional
        Needed when ``shards.max_bytes`` is set.

    Raises
    ------
    SpecError
        When the split name is invalid or the strategy cannot assign the records.
    ValueError
        When a byte limit is given without bounds, or bounds lack a record.
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
    groups: list[ShardGroup] = []
    for name in names:
        members = [r for r in order if assignment[r] == name]
        cut = cut_groups(members, shards, bounds) or [()]
        groups += [ShardGroup(name, k, group) for k, group in enumerate(cut)]
    return ShardPlan(names, tuple(order), assignment, tuple(groups), shards)


def cut_groups(
    ids: Sequence[str], shards: ShardSpec, bounds: SampleBounds | None = None
) -> list[tuple[str, ...]]:
    """Cut records, in order, into consecutive groups that respect the shard limits.

    A group takes records while it has fewer than ``max_samples`` and, for every format,
    the file of its samples' bounds stays within ``max_bytes``: the rule of the rolling
    writer, applied to upper bounds instead of the encoded bytes, so every format's shard
    of a group ends at the same sample and none exceeds the limit. A record that alone
    exceeds it, or whose bound is unknown, is a group of its own.

    Raises
    ------
    ValueError
        When ``max_bytes`` is set and ``bounds`` is None or lacks one of ``ids``.
    """
    if shards.max_bytes is not None and bounds is None:
        raise ValueError("a byte limit is planned from sample bounds: none were given")
    groups: list[tuple[str, ...]] = []
    current: list[str] = []
    content: list[int] = []
    for record in ids:
        size = None if bounds is None else _bounds_of(bounds, record)
        if current and _full(shards, bounds, current, content, size):
            groups.append(tuple(current))
            current = []
        if not current:
            content = [0] * (0 if bounds is None else len(bounds.file_size))
        current.append(record)
        if size is not None:
            content = [c + s for c, s in zip(content, size, strict=True)]
        elif shards.max_bytes is not None:  # unknown: alone, whatever follows
            groups.append(tuple(current))
            current = []
    if current:
        groups.append(tuple(current))
    return groups


def _bounds_of(bounds: SampleBounds, record: str) -> tuple[int, ...] | None:
    try:
        size = bounds.sizes[record]
    except KeyError:
        raise ValueError(f"no sample bound for record {record!r}") from None
    if len(size) != len(bounds.file_size):
        raise ValueError(
            f"record {record!r}: {len(size)} bounds for {len(bounds.file_size)} formats"
        )
    return None if any(s is None for s in size) else tuple(size)


def _full(
    shards: ShardSpec,
    bounds: SampleBounds | None,
    current: list[str],
    content: list[int],
    incoming: tuple[int, ...] | None,
) -> bool:
    """Whether a group must end before a record of these bounds (ShardWriter's rule)."""
    if shards.max_samples is not None and len(current) >= shards.max_samples:
        return True
    if shards.max_bytes is None or bounds is None:
        return False
    if incoming is None:
        return True
    return any(
        size(c + s) > shards.max_bytes
        for size, c, s in zip(bounds.file_size, content, incoming, strict=True)
    )
