"""JAX: batches put on the device by a background thread, ahead of the training step.

The host batches are those of :meth:`Stream.torch <nishard.stream.Stream.torch>` for the
same stream (same plan, same reader), so a model sees the same data in either framework.
A background thread reads them (with reader threads of its own for large samples) and
calls ``jax.device_put``, keeping ``prefetch`` batches ready; with several devices each
batch is sharded along its first axis. JAX is imported when a stream is made
(:meth:`Stream.jax <nishard.stream.Stream.jax>`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from .batch import Assembler
from .memory import BufferPool, numpy_allocator
from .plan import EpochIterable, Plan
from .prefetch import assembled


def make_jax_stream(
    plan: Plan,
    epoch: int = 0,
    threads: int | None = None,
    prefetch: int = 2,
    devices: Sequence | None = None,
    sharding=None,
) -> JaxStream:
    """The :class:`JaxStream` of a plan, its devices checked against the batches (see
    :meth:`Stream.jax <nishard.stream.Stream.jax>`); imports JAX."""
    import jax as _jax

    if devices is not None and sharding is not None:
        raise ValueError("give devices or sharding, not both")
    if devices is not None and len(devices) > 1:
        batch_size = plan.batch_size
        if batch_size is None or batch_size % len(devices):
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of the {len(devices)} devices"
            )
        if not plan.drop_last and plan.order.per_epoch(len(plan.catalog)) % batch_size:
            raise ValueError(
                "the last batch of an epoch would be partial and could not be split over "
                "the devices: set drop_last=True"
            )
        mesh = _jax.sharding.Mesh(np.array(devices), ("batch",))
        sharding = _jax.sharding.NamedSharding(mesh, _jax.sharding.PartitionSpec("batch"))
    elif devices is not None and len(devices) == 1:
        sharding = _jax.sharding.SingleDeviceSharding(devices[0])
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
        raise ValueError(f"prefetch must be at least 1, got {prefetch!r}")
    return JaxStream(plan, epoch, prefetch, sharding, threads)


class JaxStream(EpochIterable):
    """What :meth:`Stream.jax <nishard.stream.Stream.jax>` returns: iterate once per
    epoch, :meth:`set_epoch` between."""

    def __init__(
        self, plan: Plan, epoch: int = 0, prefetch: int = 2, sharding=None,
        threads: int | None = None,
    ):  # fmt: skip
        self.plan, self.epoch, self.prefetch, self.sharding = plan, epoch, prefetch, sharding
        self.threads = threads

    def host_batches(self, batches=None) -> Iterator[dict]:
        """The epoch's batches as NumPy arrays (what goes to the device), in order;
        ``batches``: their sample numbers (default: the whole epoch's)."""
        plan = self.plan
        threads = plan.reader_threads(self.threads, in_worker=False)
        # Reused buffers: a batch is refilled only once the device copy (or anything
        # else) no longer references it.
        pool = BufferPool(capacity=(self.prefetch + threads + 3) * max(1, len(plan.catalog.keys)))
        assembler = Assembler(plan.catalog, plan.fields, plan.normalizer, numpy_allocator(pool))
        batches = plan.batches(self.epoch) if batches is None else batches
        yield from assembled(assembler, plan.catalog, batches, plan.batch_size is not None, threads)

    def __iter__(self) -> Iterator[dict]:
        import jax as _jax

        keys = set(self.plan.catalog.keys)
        put = _putter(_jax, self.sharding)

        def to_device(batch: dict) -> dict:
            return {k: put(v) if k in keys and not isinstance(v, list) else v
                    for k, v in batch.items()}  # fmt: skip

        # Counted as the caller takes them, not as the thread puts them on the device.
        batches = self.host_batches(self._begin())
        return self._counted(_background(batches, to_device, self.prefetch))


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
