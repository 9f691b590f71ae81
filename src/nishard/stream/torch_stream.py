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
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

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
        # The DataLoader takes batches from its workers in turn, starting with worker 0:
        # dealing the (resumed) epoch's batches in turn keeps their order.
        mine = self._begin()[worker::workers]
        threads = plan.reader_threads(self.threads, info is not None)
        # Batches in flight (threads + 1), the one the loop holds, and the DataLoader's:
        # a few buffers per key, reused.
        capacity = (threads + 4) * max(1, len(plan.catalog.keys))
        allocate = shared_allocator() if info is not None else pooled_allocator(capacity)
        assembler = Assembler(plan.catalog, plan.fields, plan.normalizer, allocate)
        batched = plan.batch_size is not None
        items = assembled(assembler, plan.catalog, mine, batched, threads, info is not None)
        return self._counted(_tensors(item) for item in items)

    def loader(self, **options) -> StreamLoader:
        """A ``torch.utils.data.DataLoader`` of this stream that knows where it stands.

        ``options`` go to the DataLoader (``num_workers``, ``pin_memory``...;
        ``batch_size`` is None: the stream batches). Its :meth:`~StreamLoader.state_dict`
        counts the batches the training loop received, whatever the workers have read
        ahead; :meth:`~StreamLoader.load_state_dict` resumes there.
        """
        return StreamLoader(self, **options)

    def __repr__(self) -> str:
        c = self.plan.catalog
        return f"TorchStream({str(c.folder)!r}, split={c.split!r}, keys={list(c.keys)})"


class StreamLoader(DataLoader):
    """A DataLoader over a :class:`TorchStream` that can resume mid-epoch (see
    :meth:`TorchStream.loader`). It follows PyTorch's ``Stateful`` convention:
    ``state_dict()`` / ``load_state_dict(state)``, the state being the stream's."""

    def __init__(self, dataset: TorchStream, **options):
        if options.setdefault("batch_size", None) is not None:
            raise ValueError("batch_size must be None: the stream batches (.batch(n))")
        super().__init__(dataset, **options)

    def __iter__(self) -> Iterator[dict]:
        stream: TorchStream = self.dataset  # type: ignore[assignment]
        if self.num_workers == 0:
            return super().__iter__()  # the stream, in this process, counts itself
        batches = super().__iter__()  # the workers start with the stream's state...
        stream._begin()  # ...which this process's copy now moves past, as they do
        return stream._counted(batches)

    def state_dict(self) -> dict[str, int]:
        return self.dataset.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]


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
