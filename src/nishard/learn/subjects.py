"""Subject reductions streamed from a source: in parallel threads, cached on disk.

Each sample is reduced to its leading spatial components (:func:`subject_reduction`)
as the stream yields it, and handed to the caller (who folds it into a group buffer):
at most ``jobs`` samples are held at once, and one more when the next is read ahead
(:func:`read_ahead`, where the memory plan allows it).

- **Parallel.** ``joblib.Parallel`` over the samples with the threading backend: the
  work is BLAS and NumPy, which release the GIL, and threads share the process, so no
  sample is pickled to a worker and the measured memory is the whole truth. BLAS is
  limited to ``cores // jobs`` threads meanwhile, so that workers do not oversubscribe.
- **Cached.** With ``memory`` (a folder or a ``joblib.Memory``), each reduction is
  stored under the sample's content identity (its shard's sha256 and its key) and the
  reduction options, not under a hash of the array: a second fit (other ICA options,
  another number of initialisations...) finds every reduction without decoding a single
  shard. Arrays without an identity (an :class:`ArraySource`) are cached by content.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import numpy as np
from joblib import Memory, Parallel, delayed
from threadpoolctl import threadpool_limits

from ..progress import bar as progress_bar
from .errors import LearnError
from .pca import NotFinite, subject_reduction
from .source import check_values

T = TypeVar("T")


@dataclass(frozen=True)
class ReductionOptions:
    """What a subject reduction depends on (and its cache key besides the sample).

    Attributes
    ----------
    n_rows : int
        Components kept per subject (nilearn: ``n_components``).
    method : {"auto", "gram", "randomized"}
        See :func:`nishard.learn.pca.subject_reduction`.
    random_state : int or None
        Seed of the randomized SVD.
    """

    n_rows: int
    method: str = "auto"
    random_state: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.n_rows, int) or self.n_rows < 1:
            raise ValueError(f"n_rows must be a positive integer, got {self.n_rows!r}")
        if self.method not in ("auto", "gram", "randomized"):
            raise ValueError(f"method: 'auto', 'gram' or 'randomized', got {self.method!r}")


@dataclass(frozen=True)
class Reduced:
    """One subject's reduction.

    Attributes
    ----------
    rows : ndarray, shape (k, features), float32
        Unit spatial components.
    singular_values : ndarray, shape (k,)
    sum_squares : float
        ``sum(data**2)``: the share of it that ``singular_values**2`` holds is the
        variance the reduction kept.
    n_timepoints : int
    """

    rows: np.ndarray
    singular_values: np.ndarray
    sum_squares: float
    n_timepoints: int

    @property
    def scaled(self) -> np.ndarray:
        """nilearn's reduced data: the rows times their singular values."""
        return self.rows * self.singular_values[:, None].astype(np.float32)


def reduce_array(data: np.ndarray, options: dict) -> Reduced:
    """Reduce one ``(time, features)`` array (the function the cache stores)."""
    data = np.asarray(data)
    rows, singular, squares = subject_reduction(
        data, options["n_rows"], options["method"], options["random_state"], return_squares=True
    )
    return Reduced(rows, singular, squares, int(data.shape[0]))


#: Bumped when the reduction's arithmetic changes, so that caches made before miss (joblib
#: hashes only the source of the cached function, not of what it calls).
REDUCTION_VERSION = 3


def _by_identity(identity: str, options: dict, data: np.ndarray | None) -> Reduced:
    """Cached by ``identity`` and ``options``; ``data`` is ignored by the cache."""
    return reduce_array(data, options)


@dataclass
class ReductionLog:
    """What a pass of reductions did."""

    samples: int = 0
    timepoints: int = 0
    bytes: int = 0
    cached: int = 0
    sum_squares: float = 0.0
    kept_squares: float = 0.0
    decoded: bool = True
    rows: int = 0
    per_sample: list = field(default_factory=list)

    @property
    def variance_kept(self) -> float | None:
        """Share of the data's sum of squares the subject reductions kept."""
        return None if self.sum_squares == 0 else self.kept_squares / self.sum_squares


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """``items``, each next one taken from the iterable in a thread while the caller works
    on the last: reading a sample (``preadv``, decompression) and reducing one (BLAS)
    both release the GIL, so they overlap. At most one item is taken ahead, and only once
    the caller has let go of the one before, so memory holds two items at most.
    """
    iterator = iter(items)
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="nishard-read-ahead") as pool:
        pending = pool.submit(next, iterator, done)
        try:
            while (item := pending.result()) is not done:
                pending = pool.submit(next, iterator, done)
                yield item
                del item
        finally:
            pending.cancel()
            wait([pending])
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def as_memory(memory: object) -> Memory:
    """A ``joblib.Memory`` for a folder (str or path), a ``joblib.Memory`` or None (a
    Memory that caches nothing), as scikit-learn's ``check_memory`` and paths too."""
    if memory is None:
        return Memory(location=None, verbose=0)
    if isinstance(memory, (str, os.PathLike)):
        return Memory(os.fspath(memory), verbose=0)
    if hasattr(memory, "cache") and hasattr(memory, "location"):
        return memory
    raise TypeError(
        f"memory: a folder (str or path), a joblib.Memory or None, got a {type(memory).__name__}"
    )


def reduce_subjects(
    source,
    options: ReductionOptions,
    consume: Callable[[Reduced], None],
    *,
    jobs: int = 1,
    ahead: bool = False,
    memory: object = None,
    identities: list[str] | None = None,
    progress: bool = False,
) -> ReductionLog:
    """Reduce every sample of ``source`` and hand each reduction to ``consume``, in order.

    Parameters
    ----------
    source : Shards or ArraySource
        Anything with ``arrays()`` yielding ``(identity, array)``.
    options : ReductionOptions
    consume : callable
        Called with each :class:`Reduced`, in the source's order.
    jobs : int
        Samples reduced at once (threads).
    ahead : bool
        With one job, read the next sample in a thread while the last is reduced (one
        sample more in memory); several jobs always read ahead.
    memory : str, PathLike, joblib.Memory or None
        Where reductions are stored and found again (None: nowhere).
    identities : list of str, optional
        Every sample's identity, when known before reading: if all are cached, nothing
        is decoded.
    progress : bool
        Show a progress bar (samples, rate, time left when the count is known).

    Returns
    -------
    ReductionLog
    """
    memory = as_memory(memory)
    if memory.location is None:  # joblib's no-op Memory: skip hashing every array
        memory = None
    plain = memory.cache(reduce_array) if memory is not None else reduce_array
    keyed = memory.cache(_by_identity, ignore=["data"]) if memory is not None else None
    # One shard's sha256 covers every product in it: the product read is part of the key.
    settings = {**asdict(options), "key": getattr(source, "key", None)}
    settings["version"] = REDUCTION_VERSION
    log = ReductionLog()

    def record(reduced: Reduced, nbytes: int, cached: bool = False) -> None:
        log.samples += 1
        log.cached += cached
        log.timepoints += reduced.n_timepoints
        log.bytes += nbytes
        log.rows += reduced.rows.shape[0]
        log.sum_squares += reduced.sum_squares
        log.kept_squares += float(np.sum(reduced.singular_values**2))
        consume(reduced)

    def work(identity: str | None, data: np.ndarray, where: str) -> tuple[Reduced, int, bool]:
        try:
            if keyed is not None and identity is not None:
                hit = keyed.check_call_in_cache(identity, settings, None)
                return keyed(identity, settings, data), data.nbytes, hit
            return plain(data, settings), data.nbytes, False
        except NotFinite as err:
            found = err
        check_values(data, where)  # names the sample: NaN or inf
        raise LearnError(f"{where}: values so large that their squares overflow float32") from found

    def outcomes() -> Iterator[tuple[Reduced, int, bool]]:
        if (
            keyed is not None
            and identities
            and all(keyed.check_call_in_cache(i, settings, None) for i in identities)
        ):
            log.decoded = False
            for identity in identities:
                yield keyed(identity, settings, None), 0, True
            return
        # The reduction finds NaN and inf itself (the Gram's diagonal), so the stream does
        # not make a pass of its own over each sample to look for them.
        samples = source.arrays(check=False)
        if jobs <= 1:
            for identity, data, where in read_ahead(samples) if ahead else samples:
                outcome = work(identity, data, where)
                del data  # before the stream decodes the next sample
                yield outcome
            return

        def tasks() -> Iterator:
            for identity, data, where in samples:
                yield delayed(work)(identity, data, where)
                del data

        run = Parallel(
            n_jobs=jobs,
            backend="threading",
            return_as="generator",
            pre_dispatch=str(jobs),
            batch_size=1,
        )
        with threadpool_limits(limits=max(1, (os.cpu_count() or 1) // jobs)):
            yield from run(tasks())

    total = len(identities) if identities else None
    with progress_bar(total=total, unit="sample", desc="reduce", disable=not progress) as bar:
        for outcome in outcomes():
            record(*outcome)
            bar.update(1)
    return log
