"""Batches from DataLoader workers in reused shared memory, handed over by name.

PyTorch moves a worker's tensor to the main process by putting it in a fresh shared
memory segment and passing its file descriptor over a socket. For data read at memory
speed both steps cost more than the read: every page of a fresh segment is faulted in and
zeroed, and each descriptor takes a round trip (on the project's 2-core machine a worker
filled fresh segments at about a quarter of the speed of reused memory).

Here a worker keeps, per array shape and dtype, a :class:`Ring` of slots in one shared
memory segment created once. A batch array filled in slot ``i`` travels as a small
:class:`SharedArray` (segment name, slot, shape, dtype); unpickled in the main process it
becomes a tensor on the same memory (the segment is mapped once and kept), with a
finalizer that marks the slot free when the last tensor (or view) of it is gone. The
worker refills only free slots; when none is free (the training loop keeps its batches)
it falls back to PyTorch's own fresh segments, so nothing is ever overwritten in use.

A worker unlinks its segments when it exits; the main process's mappings outlive the
names. POSIX only (``_posixshmem``); elsewhere the fallback is always used.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
import weakref
from multiprocessing import shared_memory, util

import numpy as np

try:  # the module multiprocessing.shared_memory uses on POSIX
    import _posixshmem
except ImportError:  # Windows
    _posixshmem = None

#: Slots per ring: the batches a worker has in the DataLoader's queue (prefetch_factor,
#: 2 by default), the one the training loop holds, and one being filled.
SLOTS = 5

_PAGE = mmap.PAGESIZE

#: A worker's rings, by (shape, dtype); kept across epochs by persistent workers.
_RINGS: dict[tuple, Ring] = {}


class Ring:
    """Slots for arrays of one shape and dtype in one shared memory segment (a worker's).

    The segment begins with a byte set when the worker is done with it, then one flag per
    slot (1: handed out and not yet released by the main process); each slot starts on a
    page boundary.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, slots: int = SLOTS):
        self.shape, self.dtype, self.slots = shape, np.dtype(dtype), slots
        nbytes = max(1, math.prod(shape) * self.dtype.itemsize)
        self.stride = -(-nbytes // _PAGE) * _PAGE
        self.header = -(-(slots + 1) // _PAGE) * _PAGE
        size = self.header + slots * self.stride
        self.memory = shared_memory.SharedMemory(create=True, size=size)
        self.memory.buf[: slots + 1] = bytes(slots + 1)
        self.flags = np.ndarray((slots,), np.uint8, buffer=self.memory.buf, offset=1)
        # Unlinked when the worker exits (multiprocessing runs these finalizers; atexit
        # handlers do not run in its children).
        util.Finalize(self, _unlink, args=(self.memory,), exitpriority=10)

    @property
    def name(self) -> str:
        return self.memory.name

    def take(self) -> tuple[np.ndarray, SharedArray] | None:
        """A free slot's array and the handle that carries it, or None when all are out."""
        free = np.flatnonzero(self.flags == 0)
        if free.size == 0:
            return None
        slot = int(free[0])
        self.flags[slot] = 1
        offset = self.header + slot * self.stride
        array = np.ndarray(self.shape, self.dtype, buffer=self.memory.buf, offset=offset)
        return array, SharedArray(self.name, self.memory.size, slot, offset, self.shape,
                                  self.dtype.str if self.dtype.names is None else "")  # fmt: skip


def ring_for(shape: tuple[int, ...], dtype: np.dtype) -> Ring | None:
    """This worker's ring for arrays of ``shape`` and ``dtype`` (None where unsupported)."""
    if _posixshmem is None or np.dtype(dtype).kind not in "biuf":
        return None
    key = (tuple(shape), np.dtype(dtype).str)
    ring = _RINGS.get(key)
    if ring is None:
        ring = _RINGS[key] = Ring(tuple(shape), dtype)
    return ring


class SharedArray:
    """A worker's batch array in a ring slot; unpickles as a tensor on the same memory."""

    def __init__(self, name, size, slot, offset, shape, dtype):
        self.args = (name, size, slot, offset, tuple(shape), dtype)

    def __reduce__(self):
        return _rebuild, self.args


# -- the main process ---------------------------------------------------------------------

_SEGMENTS: dict[str, mmap.mmap] = {}
_LOCK = threading.Lock()


def _rebuild(name: str, size: int, slot: int, offset: int, shape: tuple, dtype: str):
    """The tensor a :class:`SharedArray` stands for, in the process that unpickles it."""
    import torch

    segment = _segment(name, size)
    flags = np.frombuffer(segment, np.uint8, count=1, offset=1 + slot)
    array = np.frombuffer(segment, np.dtype(dtype), math.prod(shape), offset).reshape(shape)
    # torch.from_numpy keeps this very array: it dies with the last tensor sharing it.
    weakref.finalize(array, _release, flags, slot)
    return torch.from_numpy(array)


def _release(flag: np.ndarray, slot: int) -> None:
    flag[0] = 0  # the worker may refill the slot


def _segment(name: str, size: int) -> mmap.mmap:
    with _LOCK:
        segment = _SEGMENTS.get(name)
        if segment is None:
            _forget_unused()
            fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
            try:
                segment = _SEGMENTS[name] = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        return segment


def _forget_unused() -> None:
    """Unmap the segments of finished workers that no tensor uses any more (a segment in
    use refuses to close)."""
    for name, segment in list(_SEGMENTS.items()):
        if not segment[0]:
            continue  # its worker may send more
        try:
            segment.close()
        except BufferError:
            continue
        del _SEGMENTS[name]


def _unlink(memory: shared_memory.SharedMemory) -> None:
    memory.buf[0] = 1  # done: the main process may unmap it once unused
    try:
        memory.unlink()
    except FileNotFoundError:
        pass
    try:
        memory.close()
    except BufferError:  # arrays of it still referenced in the worker: unmapped at exit
        pass
