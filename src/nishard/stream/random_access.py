"""Random access: ``ds[i]`` is sample ``i`` of a split, found by the manifest's offsets.

Sample ``i`` is the ``i``-th in manifest order, as in the split's wids index. The
manifest lists each shard's sample count and the byte offset of every sample, so a
lookup is a binary search and one read: no shard is scanned. Two front ends:

- :class:`MapDataset` for PyTorch samplers (tensors; ``torch`` is imported on first use);
- :class:`GrainSource` for Google's grain (a ``RandomAccessDataSource``: NumPy arrays).

Both are thread-safe (a reader per thread) and picklable (files reopen in each process).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .batch import Assembler, Fields
from .catalog import open_catalog
from .normalize import load_normalizer
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
        :func:`nishard.stream.torch`).
    stats_split : str, optional
        Whose statistics: default ``train`` when it has them.
    meta : bool or sequence of str
        Default False: loaders stack every value of a sample, and JSON metadata (strings,
        missing values) does not stack; a list of names returns those fields.
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
        self.catalog = open_catalog(path, keys, split, format)
        self.fields = Fields(float32, meta)
        self.normalizer = load_normalizer(self.catalog, normalize, stats_split)
        self._state: tuple[int, Readers, Assembler] | None = None

    def __len__(self) -> int:
        return len(self.catalog)

    def __getitem__(self, index: int) -> dict:
        n = len(self.catalog)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"sample {index} of split {self.catalog.split!r} ({n} samples)")
        readers, assembler = self._open()
        return self._convert(assembler.sample(readers.get(), index))

    def _open(self) -> tuple[Readers, Assembler]:
        state = self._state
        if state is None or state[0] != os.getpid():
            assembler = Assembler(self.catalog, self.fields, self.normalizer)
            state = self._state = (os.getpid(), Readers(self.catalog), assembler)
        return state[1], state[2]

    def _convert(self, sample: dict) -> dict:
        return sample

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_state"] = None  # open files and thread-locals stay in their process
        return state

    def __repr__(self) -> str:
        # grain checkpoints name the source by its repr: the same shards give the same one.
        c = self.catalog
        return (
            f"{type(self).__name__}({str(c.folder)!r}, split={c.split!r}, "
            f"keys={list(c.keys)}, format={c.format!r}, samples={len(c)})"
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
    import numpy as np

    return isinstance(value, np.ndarray)
