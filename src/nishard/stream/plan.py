"""What a stream's stages compile into: everything an epoch's iteration needs.

A :class:`Plan` is the split's :class:`~nishard.stream.Catalog` (its shards and the keys
read), the :class:`~nishard.stream.Order` (which samples this rank reads, in what order),
the :class:`~nishard.stream.Fields` (how values come back), the
:class:`~nishard.stream.Normalizer` and the batching. It is picklable: DataLoader
workers and grain's processes get a copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .batch import Fields
from .catalog import Catalog
from .normalize import Normalizer
from .order import Order, batches, n_batches
from .reader import SMALL


@dataclass(frozen=True)
class Plan:
    """One split's reading plan; see the module docstring.

    Attributes
    ----------
    catalog : Catalog
    order : Order
    fields : Fields
    normalizer : Normalizer or None
    batch_size : int or None
        None: one sample at a time, without a batch axis.
    drop_last : bool
    """

    catalog: Catalog
    order: Order
    fields: Fields
    normalizer: Normalizer | None = None
    batch_size: int | None = None
    drop_last: bool = False

    def __post_init__(self) -> None:
        n = len(self.catalog)
        if n == 0:
            raise ValueError(f"{self.catalog.folder}: split {self.catalog.split!r} has no samples")
        if self.order.per_pass(n) == 0:
            raise ValueError(
                f"{n} samples cannot give each of {self.order.world} ranks one with "
                "remainder='drop'"
            )

    def __len__(self) -> int:
        """Batches (samples without a batch size) per epoch on this rank."""
        per_epoch = self.order.per_epoch(len(self.catalog))
        return n_batches(per_epoch, self.batch_size, self.drop_last)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's sample numbers (split-wide) in epoch ``epoch``, in reading order."""
        return self.order.epoch_indices(self.catalog.counts, epoch)

    def batches(self, epoch: int) -> list[np.ndarray] | np.ndarray:
        """The sample numbers of each batch of epoch ``epoch`` (without a batch size, one
        number each)."""
        return batches(self.indices(epoch), self.batch_size, self.drop_last)

    def reader_threads(self, threads: int | None, in_worker: bool) -> int:
        """Reader threads: ``threads`` when given, else none in a DataLoader worker
        (workers are the parallelism); in the main process two for large samples (their
        reads run without the GIL and overlap), one for small ones (parsing holds the
        GIL: one thread overlaps it with the training step, a second would only contend)."""
        if threads is not None:
            return threads
        if in_worker:
            return 0
        return min(2, os.cpu_count() or 1) if self.catalog.sample_bytes >= SMALL else 1


class EpochIterable:
    """Base of the framework streams over a :class:`Plan` (torch's, JAX's): an iterable
    of one epoch's batches at a time, the epoch set between iterations, resumable
    mid-epoch.

    A subclass sets ``plan`` and ``epoch`` and defines ``__iter__``, which calls
    :meth:`_begin` at once (not lazily: a DataLoader starts its workers right after) and
    passes what it yields through :meth:`_counted`.

    Resuming is index arithmetic: an epoch's batches are a pure function of the plan and
    the epoch (whatever the DataLoader's workers), so ``{"epoch": e, "batch": k}`` is the
    whole state. :meth:`state_dict` and :meth:`load_state_dict` follow PyTorch's
    ``Stateful`` convention (``torch.distributed.checkpoint``): save the state with the
    model's, load it into a stream compiled the same way, iterate, and the epoch goes on
    from batch ``k``, the same batches in the same order as if never stopped.
    """

    plan: Plan
    epoch: int
    #: Batches of the epoch the iteration in progress started after (0: from the start).
    _start: int = 0
    #: Batches of the epoch handed to the caller so far (counting the skipped ones).
    _taken: int = 0
    #: Where the next iteration starts, once (set by load_state_dict).
    _resume: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Order the next iteration as epoch ``epoch``, from its first batch."""
        self.epoch = int(epoch)
        self._resume = self._taken = 0

    def __len__(self) -> int:
        return len(self.plan)

    def state_dict(self) -> dict[str, int]:
        """Where the stream stands: the epoch and the batches of it handed out.

        Counted where the batches reach the caller: iterating this object in the
        training process, or through :meth:`TorchStream.loader
        <nishard.stream.torch_stream.TorchStream.loader>` with DataLoader workers."""
        return {"epoch": self.epoch, "batch": self._taken}

    def load_state_dict(self, state: dict) -> None:
        """Make the next iteration go on where ``state`` (from :meth:`state_dict`) stood.

        Raises
        ------
        ValueError
            When ``state`` is not an epoch and a batch count within it.
        """
        epoch, batch = state.get("epoch"), state.get("batch")
        valid = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                    for v in (epoch, batch))  # fmt: skip
        if not valid or set(state) != {"epoch", "batch"}:
            raise ValueError(f"a stream state is {{'epoch': int, 'batch': int}}, got {state!r}")
        if batch > len(self.plan):
            raise ValueError(f"batch {batch} of an epoch of {len(self.plan)} batches")
        self.epoch, self._resume, self._taken = epoch, batch, batch

    def _begin(self) -> list:
        """The batches this iteration hands out: the epoch's, after a resumed state's."""
        start, self._resume = self._resume, 0
        self._start = self._taken = start
        return self.plan.batches(self.epoch)[start:]

    def _counted(self, items: Iterator) -> Iterator:
        for item in items:
            self._taken += 1
            yield item


def check_threads(threads: int | None) -> int | None:
    """``threads``, refused when negative."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 0):  # fmt: skip
        raise ValueError(f"threads must be a non-negative integer or None, got {threads!r}")
    return threads
