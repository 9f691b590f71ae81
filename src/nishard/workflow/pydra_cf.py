"""Pydra's ``cf`` worker with processes started by a fork server.

Pydra's own ``cf`` worker forks its processes from the submitting one, which by then runs
threads (the writer's, the thread that submits, and JAX's pools when a script has used
JAX): a child forked while another thread holds a lock can wait on that lock forever. A
fork server forks from a clean single-threaded process instead, as Python 3.14 does by
default; its workers import what they need once and then serve every task of the build.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Any

import attrs
from pydra.workers.cf import ConcurrentFuturesWorker


def _fork_server_pool(n_procs: int) -> concurrent.futures.ProcessPoolExecutor:
    context = multiprocessing.get_context("forkserver")
    return concurrent.futures.ProcessPoolExecutor(n_procs, mp_context=context)


@attrs.define
class ForkServerWorker(ConcurrentFuturesWorker):
    """The ``cf`` worker, its processes started by a fork server."""

    _plugin_name = "cf"

    pool: concurrent.futures.ProcessPoolExecutor = attrs.field(
        eq=False, init=False, hash=False, repr=False
    )

    @pool.default
    def _pool_default(self) -> concurrent.futures.ProcessPoolExecutor:
        return _fork_server_pool(self.n_procs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # a fork pool, which has started no process yet
        self.pool.shutdown(wait=False)
        self.pool = _fork_server_pool(self.n_procs)
