"""One BLAS thread for a record's math, whichever executor runs it."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """A context in which BLAS (OpenBLAS, MKL) runs on one thread.

    A BLAS product's last bits may depend on how many threads share it (how the work is
    split among them). On an AMD EPYC with OpenBLAS, a record computed in the writer's own
    process (``serial``, every core's thread) and in a worker (one thread: joblib and the
    task runners give each worker its share of the cores) differed, and so did the shards.
    Every executor computes a record on one BLAS thread, so the bytes are the same
    wherever it runs; the parallel executors run one record per core, as they did.
    """
    return threadpool_limits(limits=1, user_api="blas")
