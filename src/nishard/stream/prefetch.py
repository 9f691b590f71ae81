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

from .catalog import Catalog
from .reader import ShardReader

T = TypeVar("T")


class Readers:
    """One :class:`ShardReader` per thread, created on first use."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._local = threading.local()
        self._all: list[ShardReader] = []
        self._lock = threading.Lock()

    def get(self) -> ShardReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = ShardReader(self.catalog)
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
    assembler, catalog: Catalog, batches: Sequence, batched: bool, threads: int
) -> Iterator[object]:
    """Each item of ``batches`` (arrays of sample numbers) assembled in order: a sample
    (the first number) when not ``batched``, else a batch; the readers of ``catalog`` are
    closed when the loop ends. What every terminal's epoch loop does."""

    def work(reader: ShardReader, numbers) -> object:
        return (
            assembler.batch(reader, numbers)
            if batched
            else assembler.sample(reader, int(numbers[0]))
        )

    readers = Readers(catalog)
    try:
        yield from ordered(work, batches, readers, threads)
    finally:
        readers.close()


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
