"""Random access: ``ds[i]`` is sample ``i`` of a split, found by the manifest's offsets.

Sample ``i`` is the ``i``-th in manifest order, as in the split's wids index. The
manifest lists each shard's sample count and the byte offset of every sample, so a
lookup is a binary search and one read: no shard is scanned. Two front ends:

- :class:`MapDataset` for PyTorch samplers (tensors; ``torch`` is imported on first use);
- :class:`GrainSource` for Google's grain (a ``RandomAccessDataSource``: NumPy arrays).

Made by :meth:`Stream.map_dataset <nishard.stream.Stream.map_dataset>` and
:meth:`Stream.grain <nishard.stream.Stream.grain>` from a stream with order stages
(shuffle, shard, epoch length, batch), item ``i`` is the ``i``-th item of this rank's
epoch instead (a batch when the stream batches): a sequential sampler then reads the
stream's order. Both are thread-safe (a reader per thread) and picklable (files reopen
in each process).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .batch import Assembler
from .plan import Plan
from .prefetch import Readers


class RandomAccess:
    """Sample ``i`` of a split as a dict of NumPy arrays; the base of the front ends.

    Parameters
    ----------
    path : str or Path
        The shard folder or its ``manifest.json``.
    keys : sequence of str, optional
        Products to read (default: all).
    split : str, optional
        Default: ``train`` if the manifest has it, else its only split.
    format : str, optional
        ``webdataset`` (default when present) or ``tfrecord``.
    float32 : bool
        float16 and bfloat16 arrays as float32.
    normalize : bool or sequence of str
        Per-feature ``(x - mean) / std`` with the build's statistics (see
        :meth:`nishard.stream.Stream.normalize`).
    stats_split : str, optional
        Whose statistics: default ``train`` when it has them.
    meta : bool or sequence of str
        Default False: loaders stack every value of a sample, and JSON metadata (strings,
        missing values) does not stack; a list of names returns those fields.

    The same is ``ns.stream.open(path, split, format=format).keys(*keys)
    .normalize(...).fields(float32, meta)`` and its :meth:`~nishard.stream.Stream.grain`
    or :meth:`~nishard.stream.Stream.map_dataset`.
    """

    def __init__(
        self,
        path: str | Path,
        keys: Sequence[str] | str | None = None,
        split: str | None = None,
        *,
        format: str | None = None,
        float32: bool = True,
        normalize: bool | Sequence[str] = False,
        stats_split: str | None = None,
        meta: bool | Sequence[str] = False,
    ):
        from .legacy import composed

        stream = composed(path, keys, split, format=format, float32=float32,
                          normalize=normalize, stats_split=stats_split, meta=meta)  # fmt: skip
        self._setup(stream.plan(meta=False), 0)

    @classmethod
    def from_plan(cls, plan: Plan, epoch: int = 0):
        """Item ``i`` of ``plan``'s epoch ``epoch`` as ``ds[i]``."""
        made = cls.__new__(cls)
        made._setup(plan, epoch)
        return made

    def _setup(self, plan: Plan, epoch: int) -> None:
        self.plan, self.epoch = plan, int(epoch)
        order = plan.order
        # Without order stages item i is sample i: no table of numbers to hold.
        self.identity = (not order.shuffle and order.world == 1 and order.length is None
                         and plan.batch_size is None)  # fmt: skip
        self._items: tuple[int, list[np.ndarray] | np.ndarray] | None = None
        self._state: tuple[int, Readers, Assembler] | None = None

    @property
    def catalog(self):
        """The split's :class:`~nishard.stream.Catalog`."""
        return self.plan.catalog

    def set_epoch(self, epoch: int) -> None:
        """Number items as epoch ``epoch`` orders them (a no-op without order stages).
        DataLoader and grain workers get a copy when they start."""
        self.epoch = int(epoch)

    def _numbers(self) -> list[np.ndarray] | np.ndarray:
        items = self._items
        if items is None or items[0] != self.epoch:
            items = self._items = (self.epoch, self.plan.batches(self.epoch))
        return items[1]

    def __len__(self) -> int:
        return len(self.catalog) if self.identity else len(self._numbers())

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            what = "sample" if self.plan.batch_size is None else "batch"
            raise IndexError(f"{what} {index} of split {self.catalog.split!r} ({n} in all)")
        readers, assembler = self._open()
        if self.identity:
            return self._convert(assembler.sample(readers.get(), index))
        numbers = self._numbers()[index]
        if self.plan.batch_size is None:
            return self._convert(assembler.sample(readers.get(), int(numbers[0])))
        return self._convert(assembler.batch(readers.get(), numbers))

    def _open(self) -> tuple[Readers, Assembler]:
        state = self._state
        if state is None or state[0] != os.getpid():
            plan = self.plan
            assembler = Assembler(plan.catalog, plan.fields, plan.normalizer)
            state = self._state = (os.getpid(), Readers(plan.catalog), assembler)
        return state[1], state[2]

    def _convert(self, sample: dict) -> dict:
        return sample

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_state"] = None  # open files and thread-locals stay in their process
        state["_items"] = None  # recomputed from the plan
        return state

    def __repr__(self) -> str:
        # grain checkpoints name the source by its repr: the same shards give the same one.
        c, plan = self.catalog, self.plan
        order = "" if self.identity else (
            f", order={plan.order!r}, batch_size={plan.batch_size}, drop_last={plan.drop_last}"
        )  # fmt: skip
        return (
            f"{type(self).__name__}({str(c.folder)!r}, split={c.split!r}, "
            f"keys={list(c.keys)}, format={c.format!r}, samples={len(c)}{order})"
        )


class MapDataset(RandomAccess):
    """A map-style PyTorch dataset: ``ds[i]`` as a dict of tensors, for any sampler.

    ``DataLoader(MapDataset(...), batch_size=32, sampler=...)`` stacks the samples with
    ``default_collate``. Parameters as :class:`RandomAccess`.
    """

    def _convert(self, sample: dict) -> dict:
        from .torch_stream import _as_tensor

        return {k: v if k.startswith("__") or not _is_array(v) else _as_tensor(v)
                for k, v in sample.items()}  # fmt: skip


class GrainSource(RandomAccess):
    """A grain ``RandomAccessDataSource``: ``source[i]`` as a dict of NumPy arrays.

    ::

        import grain.python as grain
        source = ns.stream.GrainSource("shards", keys=["bold"], split="train")
        loader = grain.DataLoader(
            data_source=source,
            sampler=grain.IndexSampler(len(source), shuffle=True, seed=0, num_epochs=1,
                                       shard_options=grain.NoSharding()),
            operations=[grain.Batch(32, drop_remainder=True)], worker_count=2)

    ``__key__`` is a string; parameters as :class:`RandomAccess`. With grain 0.2.18,
    ``worker_count > 0`` outside ``absl.app`` needs ``absl.flags.FLAGS.mark_as_parsed()``
    first (google/grain#1355).
    """


def _is_array(value: object) -> bool:
    return isinstance(value, np.ndarray)
