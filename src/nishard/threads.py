"""The process's BLAS thread pools: found once, and limited for a record's math or a step."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

from threadpoolctl import ThreadpoolController

#: The thread pools loaded, found once: finding them (``threadpool_limits`` does it at
#: every call, inspecting every loaded library) takes 2.5 ms, a limit with them 0.02 ms,
#: and a build asks twice a record. Keyed by the number of modules imported: a BLAS is
#: loaded only by importing an extension (numpy, scipy, torch), so a new one is found.
_found: tuple[int, ThreadpoolController] | None = None


def threadpools() -> ThreadpoolController:
    """The process's thread pools (BLAS, OpenMP), found again after a module's import."""
    global _found
    modules = len(sys.modules)
    if _found is None or _found[0] != modules:
        _found = (modules, ThreadpoolController())
    return _found[1]


def one_blas_thread() -> AbstractContextManager:
    """A context in which BLAS (OpenBLAS, MKL) runs on one thread.

    A BLAS product's last bits may depend on how many threads share it (how the work is
    split among them). On an AMD EPYC with OpenBLAS, a record computed in the writer's own
    process (``serial``, every core's thread) and in a worker (one thread: joblib and the
    task runners give each worker its share of the cores) differed, and so did the shards.
    Every executor computes a record on one BLAS thread, so the bytes are the same
    wherever it runs; the parallel executors run one record per core, as they did.
    """
    return threadpools().limit(limits=1, user_api="blas")
