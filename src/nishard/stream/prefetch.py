"""Read batches ahead in threads, handed out in order.

Reading a large array is a ``preadv`` that runs without the GIL, so a few threads read
several batches at once while the training loop computes; small samples are mostly
Python work and gain less. Each thread keeps its own :class:`ShardReader` (open files,
scratch memory).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from .catalog import Catalog
from .mirror import ShardMirror
from .reader import ShardReader

T = TypeVar("T")


class Readers:
    """One :class:`ShardReader` per thread, created on first use (``memory`` and
    ``direct``: see :class:`ShardReader`)."""

    def __init__(self, catalog: Catalog, memory: bool = False, direct: bool = False):
        self.catalog, self.memory, self.direct = catalog, memory, direct
        self._local = threading.local()
        self._all: list[ShardReader] = []
        self._lock = threading.Lock()

    def get(self) -> ShardReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = ShardReader(
                self.catalog, memory=self.memory, direct=self.direct
            )
            with self._lock:
                self._all.append(reader)
        return reader

    def close(self) -> None:
        with self._lock:
            for reader in self._all:
                reader.close()
            self._all.clear()
        self._local = threading.local()


def assembled(
    assembler, catalog: Catalog, batches: Sequence, batched: bool, threads: int,
    shared: bool = False, direct: bool = False,
) -> Iterator[object]:  # fmt: skip
    """Each item of ``batches`` (arrays of sample numbers) assembled in order: a sample
    (the first number) when not ``batched``, else a batch; the readers of ``catalog`` are
    closed when the loop ends. What every terminal's epoch loop does.

    A remote folder's shards are fetched ahead into memory, unless a cache folder was
    asked for or other processes read the same shards (``shared``: DataLoader workers,
    each reading every few batches, which fetch each shard once into the cache they
    share). ``direct``: large arrays of a local folder are read past the page cache.
    """

    def work(reader: ShardReader, numbers) -> object:
        return (
            assembler.batch(reader, numbers)
            if batched
            else assembler.sample(reader, int(numbers[0]))
        )

    mirror = catalog.storage if isinstance(catalog.storage, ShardMirror) else None
    memory = mirror is not None and mirror.memory and not shared
    readers = Readers(catalog, memory, direct)
    if mirror is not None:
        batches = _fetching_ahead(catalog, batches, mirror, memory)
    try:
        yield from ordered(work, batches, readers, threads)
    finally:
        readers.close()
        if mirror is not None:
            mirror.close()


def _fetching_ahead(
    catalog: Catalog, batches: Sequence, mirror: ShardMirror, memory: bool
) -> Iterator:
    """``batches``, having started the fetch of the shards they read before they are read:
    the shards of the next items, ``mirror.requests`` shards ahead of the first not yet
    read, in the order the epoch reads them."""
    order: list[int] = []  # shards in the order of first use
    seen: set[int] = set()
    first_use: list[int] = []  # per item, how many shards of `order` it has reached
    for numbers in batches:
        for shard in catalog.locate(np.atleast_1d(numbers))[0].tolist():
            if shard not in seen:
                seen.add(shard)
                order.append(shard)
        first_use.append(len(order))
    names = [catalog.shards[i].name for i in order]
    for item, reached in zip(batches, first_use, strict=True):
        mirror.prefetch(names[max(0, reached - 1) : reached + mirror.requests], memory)
        yield item


def ordered(
    work: Callable[[ShardReader, T], object], items: Sequence[T], readers: Readers, threads: int
) -> Iterator[object]:
    """``work(reader, item)`` for each item, in order; ``threads`` > 0 run it ahead.

    At most ``threads + 1`` items are in flight: memory stays a few batches. Leaving the
    loop early cancels what has not started.
    """
    if threads <= 0:
        for item in items:
            yield work(readers.get(), item)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="nishard-read")
    pending: deque[Future] = deque()
    feed = iter(items)
    try:
        for item in feed:
            pending.append(pool.submit(lambda i=item: work(readers.get(), i)))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
