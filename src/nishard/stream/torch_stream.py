"""PyTorch: an IterableDataset over the shards of a split (this module imports torch).

:meth:`Stream.torch <nishard.stream.Stream.torch>` makes it.

Inside a DataLoader worker each batch is read into a slot of the worker's reused shared
memory and reaches the main process by name (see :mod:`.shared`): the only copy is the one
from the page cache. In the main process (``num_workers=0``) batches come from a pool of
reused buffers and reader threads fill them ahead of the training loop; see
:mod:`.memory` and :mod:`.prefetch`.
"""

from __future__ import annotations

from collections.abc import Iterator

import ml_dtypes
import numpy as np
import torch as _torch
from torch.utils.data import IterableDataset, get_worker_info

from .batch import Assembler
from .memory import Allocator, BufferPool
from .plan import EpochIterable, Plan
from .prefetch import assembled
from .shared import ring_for

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


class TorchStream(EpochIterable, IterableDataset):
    """The IterableDataset :meth:`Stream.torch <nishard.stream.Stream.torch>` returns.

    Each DataLoader worker reads every ``num_workers``-th batch of the rank's epoch, the
    order in which the DataLoader hands them out, so batches arrive in the same order
    whatever ``num_workers``.

    With ``persistent_workers=True`` the workers keep the epoch they started with:
    :meth:`set_epoch` reaches them only when the DataLoader starts new workers (the
    default).
    """

    def __init__(self, plan: Plan, epoch: int = 0, threads: int | None = None):
        super().__init__()
        self.plan, self.epoch, self.threads = plan, epoch, threads

    def __iter__(self) -> Iterator[dict]:
        plan = self.plan
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = plan.batches(self.epoch)[worker::workers]
        threads = plan.reader_threads(self.threads, info is not None)
        # Batches in flight (threads + 1), the one the loop holds, and the DataLoader's:
        # a few buffers per key, reused.
        capacity = (threads + 4) * max(1, len(plan.catalog.keys))
        allocate = shared_allocator() if info is not None else pooled_allocator(capacity)
        assembler = Assembler(plan.catalog, plan.fields, plan.normalizer, allocate)
        batched = plan.batch_size is not None
        for item in assembled(assembler, plan.catalog, mine, batched, threads):
            yield _tensors(item)

    def __repr__(self) -> str:
        c = self.plan.catalog
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
