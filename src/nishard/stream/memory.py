"""Where batches are written: reused buffers in-process, shared memory in DataLoader workers.

Fresh memory costs as much as the copy that fills it: the kernel faults in and zeroes
every page (a 100 MB batch in fresh pages fills at half the speed of one in reused
pages on the project's machine). :class:`BufferPool` hands out arrays again once nothing
else references them: a batch the training loop has let go of (its tensor, any view of
it, a JAX array aliasing it) is reused, one still held never is.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import numpy as np

#: ``(shape, dtype) -> (array to fill, object to hand out)``.
Allocator = Callable[[tuple[int, ...], np.dtype], tuple[np.ndarray, object]]


def _refcounts(arrays: list[np.ndarray]) -> list[int]:
    return [sys.getrefcount(a) for a in arrays]


# What _refcounts reports for an array that only its list holds (interpreter-dependent).
_ONLY_LISTED = _refcounts([np.empty(0)])[0]


class BufferPool:
    """Arrays reused once unreferenced; at most ``capacity`` of them kept.

    Thread-safe. An array handed out is referenced by its taker, so it is not handed out
    again until every reference to it (views and tensors sharing its memory included) is
    gone.

    Parameters
    ----------
    capacity : int
    keep_unfit : bool
        Keep free arrays of other shapes when a fresh one is needed (until the pool is
        full). False: let them go first, so that the pool never holds more than its taker
        does plus what it is about to hand out (a learner's memory plan, where one long
        run must not stay held while the next is read).
    """

    def __init__(self, capacity: int = 8, keep_unfit: bool = True):
        self.capacity, self.keep_unfit = capacity, keep_unfit
        self._arrays: list[np.ndarray] = []
        self._handed: list[int] = []  # when each array was last handed out
        self._clock = 0
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array, reused when one is free.

        Of the free arrays, the one handed out last: the most likely still in the CPU's
        caches.
        """
        dtype = np.dtype(dtype)
        with self._lock:
            self._clock += 1
            counts = _refcounts(self._arrays)
            free = [i for i, count in enumerate(counts) if count == _ONLY_LISTED]
            fits = [i for i in free if self._arrays[i].shape == shape
                    and self._arrays[i].dtype == dtype]  # fmt: skip
            if fits:
                chosen = max(fits, key=self._handed.__getitem__)
                self._handed[chosen] = self._clock
                return self._arrays[chosen]
            if free and not self.keep_unfit:
                for i in reversed(free):
                    del self._arrays[i], self._handed[i]
                free = []
            array = np.empty(shape, dtype)
            if len(self._arrays) < self.capacity:
                self._arrays.append(array)
                self._handed.append(self._clock)
            elif free:  # full: a free array of another shape makes room
                self._arrays[free[0]], self._handed[free[0]] = array, self._clock
            return array

    def __len__(self) -> int:
        return len(self._arrays)


def numpy_allocator(pool: BufferPool | None = None) -> Allocator:
    """Arrays from ``pool`` (fresh ones without), handed out as they are."""

    def allocate(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, object]:
        array = pool.empty(shape, dtype) if pool is not None else np.empty(shape, dtype)
        return array, array

    return allocate
