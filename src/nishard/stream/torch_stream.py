"""PyTorch: an IterableDataset over the shards of a split (this module imports torch).

Inside a DataLoader worker each batch is read into a slot of the worker's reused shared
memory and reaches the main process by name (see :mod:`.shared`): the only copy is the one
from the page cache. In the main process (``num_workers=0``) batches come from a pool of
reused buffers and reader threads fill them ahead of the training loop; see
:mod:`.memory` and :mod:`.prefetch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import ml_dtypes
import numpy as np
import torch as _torch
from torch.utils.data import IterableDataset, get_worker_info

from .batch import Assembler
from .memory import Allocator, BufferPool
from .options import Stream, make_stream
from .order import Remainder, batches
from .prefetch import Readers, ordered
from .shared import ring_for

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def torch(
    path: str | Path,
    keys: Sequence[str] | str | None = None,
    split: str | None = None,
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    buffer: int = 1000,
    epoch: int = 0,
    length: int | None = None,
    drop_last: bool = False,
    remainder: Remainder = "wrap",
    rank: int | None = None,
    world_size: int | None = None,
    normalize: bool | Sequence[str] = False,
    stats_split: str | None = None,
    float32: bool = True,
    meta: bool | Sequence[str] = True,
    format: str | None = None,
    threads: int | None = None,
) -> TorchStream:
    """A PyTorch IterableDataset over a split's tar or TFRecord shards.

    Batch in the dataset and give the DataLoader ``batch_size=None``::

        ds = ns.stream.torch("shards", keys=["bold"], split="train", batch_size=32,
                             shuffle=True, seed=0)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)
        for epoch in range(10):
            ds.set_epoch(epoch)
            for batch in loader:  # batch["bold"]: tensor (32, time, voxels)
                ...

    Parameters
    ----------
    path : str or Path
        The shard folder or its ``manifest.json``.
    keys : sequence of str, optional
        Products to read (default: all; ``[]``: none, keys and metadata only).
    split : str, optional
        Default: ``train`` if the manifest has it, else its only split.
    batch_size : int, optional
        Samples per batch, stacked into one tensor per key (a key whose shape varies
        between samples gives a list of tensors). None: one sample at a time, without a
        batch axis.
    shuffle : bool
        Permute the shards each epoch and mix samples through a shuffle buffer.
    seed : int
        With the epoch, fixes the order (the same whatever ``num_workers``).
    buffer : int
        Size of the shuffle buffer, in samples. It holds sample numbers, not data, so it
        costs no memory; reads jump within a window of about this many samples.
    epoch : int
        The first epoch; :meth:`TorchStream.set_epoch` changes it.
    length : int, optional
        Samples per rank per epoch (default: one pass over the split). Epochs then take
        consecutive stretches of an endless sequence of passes, reshuffled each pass.
    drop_last : bool
        Drop each epoch's last, partial batch.
    remainder : {"wrap", "drop"}
        When the number of ranks does not divide the split: ``wrap`` gives the last ranks
        samples from the start of the pass (a few samples twice per epoch, as
        ``DistributedSampler``), ``drop`` leaves the pass's last samples out. Either way
        every rank gets as many samples, hence as many batches.
    rank, world_size : int, optional
        Default: ``torch.distributed``'s when it is initialised, else 0 and 1.
    normalize : bool or sequence of str
        ``(x - mean) / std`` per feature (last axis) with the statistics stored by the
        build: True for every floating key read, or a list of keys. Normalised keys come
        back as float32.
    stats_split : str, optional
        Whose statistics: default ``train`` when it has them, else the split read.
    float32 : bool
        float16 and bfloat16 arrays come back as float32 (else as torch.float16 /
        torch.bfloat16).
    meta : bool or sequence of str
        True: each sample's JSON metadata under ``__meta__`` (a list per batch); a list
        of names: those fields, each under its own name (a tensor when they are all
        numbers, else a list); False: none (and the JSON is not read).
    format : str, optional
        ``webdataset`` (default when present) or ``tfrecord``.
    threads : int, optional
        Reader threads, reading batches ahead of the training loop. Default: none inside
        DataLoader workers; in the main process two for samples of 256 KiB or more (their
        reads run without the GIL), else one.

    Returns
    -------
    TorchStream
        Its ``len()`` is the number of batches (or samples) per epoch on this rank.
    """
    if rank is None or world_size is None:
        found_rank, found_world = _distributed()
        rank = found_rank if rank is None else rank
        world_size = found_world if world_size is None else world_size
    stream = make_stream(
        path, keys, split, batch_size=batch_size, shuffle=shuffle, seed=seed, buffer=buffer,
        length=length, drop_last=drop_last, remainder=remainder, rank=rank,
        world_size=world_size, normalize=normalize, stats_split=stats_split,
        float32=float32, meta=meta, format=format, threads=threads,
    )  # fmt: skip
    return TorchStream(stream, epoch)


class TorchStream(IterableDataset):
    """The IterableDataset :func:`torch` returns.

    Each DataLoader worker reads every ``num_workers``-th batch of the rank's epoch, the
    order in which the DataLoader hands them out, so batches arrive in the same order
    whatever ``num_workers``.

    With ``persistent_workers=True`` the workers keep the epoch they started with:
    :meth:`set_epoch` reaches them only when the DataLoader starts new workers (the
    default).
    """

    def __init__(self, stream: Stream, epoch: int = 0):
        super().__init__()
        self.stream = stream
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Order the next iteration as epoch ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[dict]:
        stream = self.stream
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        indices = stream.order.epoch_indices(stream.catalog.counts, self.epoch)
        mine = batches(indices, stream.batch_size, stream.drop_last)[worker::workers]
        threads = stream.reader_threads(info is not None)
        # Batches in flight (threads + 1), the one the loop holds, and the DataLoader's:
        # a few buffers per key, reused.
        capacity = (threads + 4) * max(1, len(stream.catalog.keys))
        allocate = shared_allocator() if info is not None else pooled_allocator(capacity)
        assembler = Assembler(stream.catalog, stream.fields, stream.normalizer, allocate)
        if stream.batch_size is None:

            def work(reader, numbers):
                return _tensors(assembler.sample(reader, int(numbers[0])))
        else:

            def work(reader, numbers):
                return _tensors(assembler.batch(reader, numbers))

        readers = Readers(stream.catalog)
        try:
            yield from ordered(work, mine, readers, threads)
        finally:
            readers.close()

    def __repr__(self) -> str:
        c = self.stream.catalog
        return f"TorchStream({str(c.folder)!r}, split={c.split!r}, keys={list(c.keys)})"


def pooled_allocator(capacity: int = 8) -> Allocator:
    """Reused buffers, handed out as tensors sharing their memory."""
    pool = BufferPool(capacity)

    def allocate(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, object]:
        array = pool.empty(shape, dtype)
        return array, _as_tensor(array)

    return allocate


def shared_allocator() -> Allocator:
    """Arrays in a worker's reused shared memory, sent to the main process by name (see
    :mod:`.shared`); when every slot is still in use, tensors in fresh shared memory, as
    ``default_collate`` makes them in a worker (sent by file descriptor)."""

    def allocate(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, object]:
        ring = ring_for(shape, dtype)
        taken = ring.take() if ring is not None else None
        if taken is not None:
            return taken
        bfloat16 = dtype == _BFLOAT16
        kind = _torch.bfloat16 if bfloat16 else _torch.from_numpy(np.empty(0, dtype)).dtype
        storage = _torch.UntypedStorage._new_shared(int(np.prod(shape)) * dtype.itemsize)
        tensor = _torch.empty(0, dtype=kind).set_(storage, 0, shape)
        array = tensor.view(_torch.int16).numpy().view(dtype) if bfloat16 else tensor.numpy()
        return array, tensor

    return allocate


def _as_tensor(array: np.ndarray) -> _torch.Tensor:
    if array.dtype == _BFLOAT16:
        return _torch.from_numpy(array.view(np.int16)).view(_torch.bfloat16)
    return _torch.from_numpy(array)


def _tensors(out: dict) -> dict:
    """Metadata arrays as tensors; the key arrays are tensors already."""
    return {
        k: _torch.from_numpy(v) if isinstance(v, np.ndarray) and not k.startswith("__") else v
        for k, v in out.items()
    }


def _distributed() -> tuple[int, int]:
    dist = _torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
