"""Samples and batches as dicts: each key's values read into one array per batch.

A batch of ``B`` samples is ``{"__key__": [B keys], <key>: array (B, ...), ...}`` plus
the metadata asked for, and the class indices of the text variables asked for
(:mod:`.classes`: int64, one per sample, under each variable's name). Each key of a
fixed shape gets one array of ``(B, *shape)`` from the allocator, and every sample's
values are read into their row (see :meth:`ShardReader.fill`); a key whose shape varies
gives a list of arrays.
float16 and bfloat16 come back as float32 when asked, and normalised keys as float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from . import direct as direct_io
from .catalog import Catalog
from .classes import Labels
from .memory import Allocator, numpy_allocator
from .normalize import Normalizer
from .reader import ShardReader

#: Metadata to return: none, the whole JSON object (``__meta__``), or named fields.
Meta = bool | Sequence[str]


@dataclass(frozen=True)
class Fields:
    """What to read of each sample and how to return it.

    Parameters
    ----------
    float32 : bool
        float16 and bfloat16 arrays as float32.
    meta : bool or sequence of str
        False: no metadata; True: the JSON object under ``__meta__``; names: those fields
        of it, each under its own name (a missing field is None).
    labels : Labels, optional
        Text variables returned as class indices, each under its own name (in place of
        its text when ``meta`` names it too).
    """

    float32: bool = True
    meta: bool | tuple[str, ...] = True
    labels: Labels | None = None

    @property
    def reads_meta(self) -> bool:
        """Whether each sample's JSON must be parsed (metadata or labels asked for)."""
        return self.meta is not False or self.labels is not None

    def __post_init__(self) -> None:
        meta = self.meta
        if not isinstance(meta, bool):
            object.__setattr__(self, "meta", (meta,) if isinstance(meta, str) else tuple(meta))


class Assembler:
    """Reads samples and batches of a catalog into arrays from an allocator.

    Parameters
    ----------
    catalog : Catalog
    fields : Fields
    normalizer : Normalizer, optional
    allocate : Allocator, optional
        Where arrays come from (default: fresh NumPy arrays).
    """

    def __init__(
        self,
        catalog: Catalog,
        fields: Fields,
        normalizer: Normalizer | None = None,
        allocate: Allocator | None = None,
    ):
        self.catalog, self.fields, self.normalizer = catalog, fields, normalizer
        self.allocate = allocate or numpy_allocator()
        self.want = frozenset(catalog.keys)
        self.dtypes = {k: self._out_dtype(k) for k in catalog.keys}

    def batch(self, reader: ShardReader, indices: np.ndarray) -> dict:
        """The samples ``indices`` (split-wide numbers) as one batch."""
        shards, positions = self.catalog.locate(indices)
        n = len(indices)
        out: dict = {"__key__": []}
        rows, handles = {}, {}
        for name in self.catalog.keys:
            spec, dtype = self.catalog.specs[name], self.dtypes[name]
            if spec.fixed and dtype is not None:
                rows[name], handles[name] = self.allocate((n, *spec.shape), dtype)
            else:
                handles[name] = []
        metas = []
        # Runs of consecutive samples of a shard (a batch read in order) are read at once.
        last = _run_ends(shards, positions).tolist()
        shards, positions = shards.tolist(), positions.tolist()
        for j, (shard, position) in enumerate(zip(shards, positions, strict=True)):
            if j == 0 or last[j - 1] < j:
                reader.read_ahead(shard, position, positions[last[j]])
            located = reader.locate(shard, position, self.want, self.fields.reads_meta)
            out["__key__"].append(located.key)
            metas.append(located.meta)
            for name in self.catalog.keys:
                if name in rows:
                    reader.fill(located, name, rows[name][j])
                else:
                    handles[name].append(self._variable(reader, located, name))
        for name, values in rows.items():
            if self.normalizer is not None and name in self.normalizer.keys:
                self.normalizer.apply(name, values)
        out.update(handles)
        out.update(self._meta(metas))
        if self.fields.labels is not None:
            out.update(self._labels(metas, shards, positions))
        return out

    def sample(self, reader: ShardReader, index: int) -> dict:
        """Sample ``index`` without a batch axis: keys, metadata and arrays."""
        (shard,), (position,) = self.catalog.locate([index])
        located = reader.locate(int(shard), int(position), self.want, self.fields.reads_meta)
        out: dict = {"__key__": located.key}
        for name in self.catalog.keys:
            out[name] = self._variable(reader, located, name)
        meta = self.fields.meta
        if meta is True:
            out["__meta__"] = located.meta
        elif meta:
            out.update({m: (located.meta or {}).get(m) for m in meta})
        if self.fields.labels is not None:
            labels = self._labels([located.meta], [int(shard)], [int(position)])
            out.update({name: values.reshape(()) for name, values in labels.items()})
        return out

    def _labels(self, metas: list, shards: Sequence[int], positions: Sequence[int]) -> dict:
        """Each label variable's int64 class indices, one per sample."""
        labels = self.fields.labels
        shard_list = self.catalog.shards

        def where() -> list[str]:  # only for an error message
            return [f"{shard_list[s].name}: sample {shard_list[s].keys[p]!r}"
                    if shard_list[s].keys else f"{shard_list[s].name}: sample {p}"
                    for s, p in zip(shards, positions, strict=True)]  # fmt: skip

        return {
            label.name: labels.encode(label, [(m or {}).get(label.name) for m in metas], where)
            for label in labels.classes
        }

    def _variable(self, reader: ShardReader, located, name: str) -> object:
        """One sample's array of a key: its own allocation, normalised if asked."""
        found = located.fields.get(name)
        if found is None:
            reader.fill(located, name, np.empty(0))  # raises the error naming the fields
        dtype = self.dtypes[name] or self._cast(found.dtype)
        if reader.reads_directly(found, dtype):  # at the file's phase within a block
            raw, _ = self.allocate((direct_io.padded(found.shape, dtype),), np.dtype(np.uint8))
            array = handle = direct_io.at_phase(raw, found.shape, dtype, found.offset)
        else:
            array, handle = self.allocate(found.shape, dtype)
        reader.fill(located, name, array)
        if self.normalizer is not None and name in self.normalizer.keys:
            self.normalizer.apply(name, array)
        return handle

    def _meta(self, metas: list) -> dict:
        meta = self.fields.meta
        if meta is False:
            return {}
        if meta is True:
            return {"__meta__": metas}
        return {name: collate([(m or {}).get(name) for m in metas]) for name in meta}

    def _out_dtype(self, name: str) -> np.dtype | None:
        """The dtype a key is returned in; None when it varies between samples."""
        stored = dtype_of(self.catalog.specs[name].dtype)
        if stored is None:
            return None
        if self.normalizer is not None and name in self.normalizer.keys:
            return np.dtype(np.float32)
        return self._cast(stored)

    def _cast(self, dtype: np.dtype) -> np.dtype:
        if self.fields.float32 and is_half(dtype):
            return np.dtype(np.float32)
        return dtype


def _run_ends(shards: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """For each sample, the index of the last sample of its run (same shard, positions
    increasing by one)."""
    n = len(shards)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    breaks = (np.diff(shards) != 0) | (np.diff(positions) != 1)
    ends = np.flatnonzero(np.append(breaks, True))
    return ends[np.searchsorted(ends, np.arange(n))]


def dtype_of(name: str) -> np.dtype | None:
    """The NumPy dtype of a manifest dtype name (``bfloat16`` from ml_dtypes); None for
    ``mixed``."""
    scalar = getattr(ml_dtypes, name, None)
    if isinstance(scalar, type):
        return np.dtype(scalar)
    try:
        return np.dtype(name)
    except TypeError:
        return None


def is_half(dtype: np.dtype) -> bool:
    """A 16-bit (or narrower) float: float16, bfloat16, float8s."""
    return (dtype.kind == "f" and dtype.itemsize <= 2) or (
        dtype.kind == "V" and dtype.names is None and dtype.type.__module__ == "ml_dtypes"
    )


def collate(values: list) -> object:
    """Metadata values of a batch: an array when all are numbers (or bools), else a list."""
    if values and all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return values
