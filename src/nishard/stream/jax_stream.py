"""JAX: batches put on the device by a background thread, ahead of the training step.

The host batches are those of :func:`nishard.stream.torch` for the same arguments (same
plan, same reader), so a model sees the same data in either framework. A background
thread reads them (with reader threads of its own for large samples) and calls
``jax.device_put``, keeping ``prefetch`` batches ready; with several devices each batch
is sharded along its first axis. JAX is imported when a stream is made.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .batch import Assembler
from .memory import BufferPool, numpy_allocator
from .options import Stream, make_stream
from .order import Remainder, batches
from .prefetch import Readers, ordered


def jax(
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
    prefetch: int = 2,
    devices: Sequence | None = None,
    sharding=None,
) -> JaxStream:
    """Batches of a split as JAX arrays, put on the device ahead of use.

    ::

        for epoch in range(10):
            stream.set_epoch(epoch)
            for batch in ns.stream.jax("shards", keys=["bold"], batch_size=32, ...):
                state = train_step(state, batch["bold"])

    Parameters
    ----------
    path, keys, split, batch_size, shuffle, seed, buffer, epoch, length, drop_last, \
remainder, normalize, stats_split, float32, meta, format, threads
        As :func:`nishard.stream.torch`; the same arguments give the same batches.
    rank, world_size : int, optional
        Default: ``jax.process_index()`` and ``jax.process_count()``.
    prefetch : int
        Batches put on the device ahead of the one in use.
    devices : sequence of jax devices, optional
        Shard each batch's first axis over these devices (a 1-D mesh named ``batch``);
        the batch size must be a multiple of their number and ``drop_last`` true unless
        the epoch divides into whole batches.
    sharding : jax.sharding.Sharding, optional
        Put every key's batch with this sharding instead. With several processes each
        process's batch is its part of a global array
        (``jax.make_array_from_process_local_data``).

    Returns
    -------
    JaxStream
        Iterate it once per epoch; ``len()`` is the number of batches per epoch.
        Arrays of the keys become ``jax.Array``; ``__key__`` and metadata stay on the
        host (NumPy arrays and lists).
    """
    import jax as _jax

    if rank is None:
        rank = _jax.process_index()
    if world_size is None:
        world_size = _jax.process_count()
    stream = make_stream(
        path, keys, split, batch_size=batch_size, shuffle=shuffle, seed=seed, buffer=buffer,
        length=length, drop_last=drop_last, remainder=remainder, rank=rank,
        world_size=world_size, normalize=normalize, stats_split=stats_split,
        float32=float32, meta=meta, format=format, threads=threads,
    )  # fmt: skip
    if devices is not None and sharding is not None:
        raise ValueError("give devices or sharding, not both")
    if devices is not None and len(devices) > 1:
        if batch_size is None or batch_size % len(devices):
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of the {len(devices)} devices"
            )
        if not drop_last and stream.order.per_epoch(len(stream.catalog)) % batch_size:
            raise ValueError(
                "the last batch of an epoch would be partial and could not be split over "
                "the devices: set drop_last=True"
            )
        mesh = _jax.sharding.Mesh(np.array(devices), ("batch",))
        sharding = _jax.sharding.NamedSharding(mesh, _jax.sharding.PartitionSpec("batch"))
    elif devices is not None and len(devices) == 1:
        sharding = _jax.sharding.SingleDeviceSharding(devices[0])
    if prefetch < 1:
        raise ValueError(f"prefetch must be at least 1, got {prefetch}")
    return JaxStream(stream, epoch, prefetch, sharding)


class JaxStream:
    """What :func:`jax` returns: iterate once per epoch, :meth:`set_epoch` between."""

    def __init__(self, stream: Stream, epoch: int, prefetch: int, sharding=None):
        self.stream, self.epoch, self.prefetch, self.sharding = stream, epoch, prefetch, sharding

    def set_epoch(self, epoch: int) -> None:
        """Order the next iteration as epoch ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.stream)

    def host_batches(self) -> Iterator[dict]:
        """The epoch's batches as NumPy arrays (what goes to the device), in order."""
        stream = self.stream
        indices = stream.order.epoch_indices(stream.catalog.counts, self.epoch)
        threads = stream.reader_threads(in_worker=False)
        # Reused buffers: a batch is refilled only once the device copy (or anything
        # else) no longer references it.
        pool = BufferPool(capacity=(self.prefetch + threads + 3) * max(1, len(stream.catalog.keys)))
        assembler = Assembler(stream.catalog, stream.fields, stream.normalizer,
                              numpy_allocator(pool))  # fmt: skip
        if stream.batch_size is None:

            def work(reader, numbers):
                return assembler.sample(reader, int(numbers[0]))
        else:

            def work(reader, numbers):
                return assembler.batch(reader, numbers)

        readers = Readers(stream.catalog)
        try:
            yield from ordered(work, batches(indices, stream.batch_size, stream.drop_last),
                               readers, threads)  # fmt: skip
        finally:
            readers.close()

    def __iter__(self) -> Iterator[dict]:
        import jax as _jax

        keys = set(self.stream.catalog.keys)
        put = _putter(_jax, self.sharding)

        def to_device(batch: dict) -> dict:
            return {k: put(v) if k in keys and not isinstance(v, list) else v
                    for k, v in batch.items()}  # fmt: skip

        return _background(self.host_batches(), to_device, self.prefetch)


def _putter(jax_module, sharding):
    if sharding is None:
        return jax_module.device_put
    if jax_module.process_count() > 1:
        return lambda x: jax_module.make_array_from_process_local_data(sharding, x)
    return lambda x: jax_module.device_put(x, sharding)


_DONE = object()


def _background(source: Iterator[dict], convert, depth: int) -> Iterator[dict]:
    """``convert(item)`` for each item of ``source``, computed by a thread ``depth`` ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in source:
                value = convert(item)
                del item
                while not stop.is_set():
                    try:
                        ready.put((value, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((_DONE, None))
        except BaseException as err:  # handed to the consumer, raised there
            ready.put((_DONE, err))
        finally:
            source.close()

    thread = threading.Thread(target=run, name="nishard-device-put", daemon=True)
    thread.start()
    try:
        while True:
            value, error = ready.get()
            if value is _DONE:
                if error is not None:
                    raise error
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)
