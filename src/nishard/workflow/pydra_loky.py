"""Pydra's ``cf`` worker with its processes started as loky starts them.

Pydra's own ``cf`` worker forks its processes from the submitting one, which by then runs
threads (the writer's, the thread that submits, and JAX's pools when a script has used
JAX): a child forked while another thread holds a lock can wait on that lock forever.
Python's fork server and spawn avoid that, but run the user's script again in the new
processes unless it guards its body with ``if __name__ == "__main__"``. loky, which the
``local`` executor uses, starts fresh interpreters that do neither: the worker processes
import what they need once and then serve every task of the build.
"""

from __future__ import annotations

from typing import Any

import attrs
from joblib.externals.loky.process_executor import ProcessPoolExecutor
from pydra.workers.cf import ConcurrentFuturesWorker


@attrs.define
class LokyWorker(ConcurrentFuturesWorker):
    """The ``cf`` worker on a loky process pool."""

    _plugin_name = "cf"

    pool: ProcessPoolExecutor = attrs.field(eq=False, init=False, hash=False, repr=False)

    @pool.default
    def _pool_default(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.n_procs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # a fork pool, which has started no process yet
        self.pool.shutdown(wait=False)
        self.pool = ProcessPoolExecutor(max_workers=self.n_procs)
