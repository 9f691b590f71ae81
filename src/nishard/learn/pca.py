"""Streaming PCA: per-subject reduction and an incremental (MIGP) group reduction.

Both follow nilearn's multi-subject PCA (``nilearn.decomposition._multi_pca``):

- **Subject reduction.** A subject's ``(time, voxels)`` array ``X`` is reduced to its
  ``k`` leading spatial principal components, the rows ``s_i u_i`` where ``u_i`` are
  the unit right singular vectors of ``X`` and ``s_i`` its singular values (nilearn's
  ``U.T * S`` of the SVD of ``X.T``). nilearn uses a randomized SVD; here the exact SVD
  through the ``(time x time)`` Gram matrix is used when it is cheaper (short runs, the
  usual case) and the same randomized SVD otherwise. Both give the same subspace: the
  Gram route is what the randomized one approximates.
- **Group reduction.** nilearn stacks every subject's rows (optionally normalised to unit
  length, its "CCA" step) and takes the leading right singular vectors of the stack. The
  stack grows with the number of subjects; :class:`GroupReducer` keeps at most
  ``capacity`` rows instead. When the buffer is full it is replaced by its ``keep``
  leading components scaled by their singular values (MIGP, Smith et al. 2014,
  NeuroImage 101: the buffer's Gram structure ``B.T @ B`` is kept on its leading
  subspace), and filling goes on. While every row fits, the result is the exact SVD of
  the whole stack, equal to nilearn's; past that it is MIGP's approximation, whose
  leading subspace converges to the exact one as ``keep`` grows.

All products are computed in blocks of voxels in float32 and summed in float64, so that
memory stays at the buffer plus a few megabytes whatever the number of voxels.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import linalg
from sklearn.utils.extmath import randomized_svd

from ..threads import threadpools

#: Bytes of the temporary of one block of a blockwise product.
BLOCK_BYTES = 4 << 20


def block_size(rows: int, itemsize: int = 8) -> int:
    """Columns per block so that a ``(rows, block)`` temporary takes about 4 MB."""
    return max(256, BLOCK_BYTES // max(1, rows * itemsize))


def gram(rows: np.ndarray, block: int | None = None) -> np.ndarray:
    """``rows @ rows.T`` in float64, from float32 products over blocks of columns.

    Single precision products run twice as fast as double ones and halve the memory the
    caller needs; summing the blocks in float64 keeps the error of a long sum (hundreds of
    thousands of voxels) at that of one block.

    Parameters
    ----------
    rows : ndarray, shape (r, v)
    block : int, optional
        Columns per block (default: :func:`block_size`).

    Returns
    -------
    ndarray, shape (r, r), float64
    """
    # The blocks are views: BLAS reads them in place through their leading dimension, so
    # a block takes no memory; blocks of 16,384 columns run 7 % faster than 4,096 on a
    # 600-volume run (fewer passes over the output), each still a short float32 sum.
    block = block or max(block_size(rows.shape[0], 4), 16384)
    starts = range(0, rows.shape[1], block)

    def product(start: int) -> np.ndarray:
        part = rows[:, start : start + block]
        return part @ part.T

    out = np.zeros((rows.shape[0], rows.shape[0]))
    threads = min(threads_allowed(), len(starts))
    if threads <= 1:
        for start in starts:
            out += product(start)
        return out
    # The blocks on threads of one BLAS thread each, added in order: faster than
    # OpenBLAS's own threads on each block (their split of one block's output is less
    # even than a split of the blocks), and the same bits as the blocks one after the
    # other on one thread (benchmarks/scale.py measures the reduction alone).
    with blas_threads(1), ThreadPoolExecutor(threads, thread_name_prefix="nishard-gram") as pool:
        for part in pool.map(product, starts):
            out += part
    return out


def threads_allowed() -> int:
    """Threads for work split by hand (a Gram's blocks, the lasso codes' blocks): the
    BLAS threads allowed now (a limit set with threadpoolctl or ``OPENBLAS_NUM_THREADS``
    holds), one off the main thread (see :func:`blas_threads`)."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    counts = [lib.num_threads for lib in threadpools().select(user_api="blas").lib_controllers]
    return min(counts, default=1)


#: Matrices up to this size are eigendecomposed on one BLAS thread. Right after a Gram
#: on every core (a subject's reduction), OpenBLAS's threads made a 600 x 600 ``eigh``
#: several times slower, and by turns; one thread takes the same time every time. From
#: about 2,000 rows, two threads are faster again. One thread also makes the reduction's
#: bits the same whatever the machine's cores.
ONE_THREAD_EIGH = 1024


def leading_eigen(matrix: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest eigenvalues (descending, clipped at 0) and their eigenvectors.

    Parameters
    ----------
    matrix : ndarray, shape (r, r)
        Symmetric positive semi-definite.
    n : int

    Returns
    -------
    values : ndarray, shape (n,)
    vectors : ndarray, shape (r, n)
    """
    size = matrix.shape[0]
    with blas_threads(1 if size <= ONE_THREAD_EIGH else None):
        values, vectors = linalg.eigh(matrix, subset_by_index=(size - n, size - 1))
    return np.clip(values[::-1], 0.0, None), vectors[:, ::-1]


def blas_threads(limit: int | None) -> contextlib.AbstractContextManager:
    """BLAS limited to ``limit`` threads meanwhile; no change for None or off the main
    thread: the limit is the process's, and a worker thread (``jobs > 1``, already under
    the reduction's own limit) would change it under the other workers' calls."""
    if limit is None or threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    return threadpools().limit(limits=limit, user_api="blas")


def _flip_rows(rows: np.ndarray) -> np.ndarray:
    """Signs making the entry of largest magnitude of each row positive (svd_flip's rule)."""
    peaks = np.argmax(np.abs(rows), axis=1)
    signs = np.sign(rows[np.arange(rows.shape[0]), peaks])
    signs[signs == 0] = 1
    return signs


def reduction_method(n_timepoints: int, n_rows: int) -> str:
    """``"gram"`` or ``"randomized"``: the cheaper exact or randomized SVD of a run.

    The Gram route costs about ``voxels * time**2`` multiply-adds; sklearn's randomized
    SVD, as nilearn calls it (``n_iter="auto"``: 7 power iterations when ``k`` is below a
    tenth of the time points, 4 otherwise; 10 oversamples), about
    ``2 * (2 * n_iter + 2) * voxels * time * (k + 10)``.
    """
    power = 7 if n_rows < 0.1 * n_timepoints else 4
    randomized = 2 * (2 * power + 2) * (n_rows + 10)
    return "gram" if n_timepoints <= randomized else "randomized"


class NotFinite(ValueError):
    """A run whose sum of squares is not finite: it holds NaN or infinite values (or
    values so large that their squares overflow float32)."""


def subject_reduction(
    data: np.ndarray,
    n_rows: int,
    method: str = "auto",
    random_state: int | None = 0,
    return_squares: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, float]:
    """A subject's ``n_rows`` leading spatial principal components.

    Parameters
    ----------
    data : ndarray, shape (time, voxels)
        One subject's (or run's) data, float32 or float64.
    n_rows : int
        Components to keep; fewer when the run is shorter (``min(n_rows, time)``, as
        nilearn does).
    method : {"auto", "gram", "randomized"}
        ``"gram"``: exact, from the eigendecomposition of ``data @ data.T``;
        ``"randomized"``: sklearn's ``randomized_svd`` as nilearn runs it;
        ``"auto"``: the cheaper (:func:`reduction_method`).
    random_state : int or None
        Seed of the randomized SVD (the same for every subject, as in nilearn).
    return_squares : bool
        Also return ``sum(data**2)``. The Gram route has it for free (the trace of the
        Gram matrix): no pass over the data of its own.

    Returns
    -------
    rows : ndarray, shape (k, voxels), float32
        Unit vectors: the right singular vectors of ``data``, sign-fixed so that the
        largest entry of each is positive.
    singular_values : ndarray, shape (k,), float64
        Descending. nilearn's reduced data are ``rows * singular_values[:, None]``.
    sum_squares : float
        Only with ``return_squares``.

    Raises
    ------
    NotFinite
        When ``data`` holds NaN or infinite values: found through its sum of squares, at
        no extra cost on the Gram route.
    """
    if data.ndim != 2:
        raise ValueError(f"a (time, voxels) array, got shape {data.shape}")
    n_time, n_voxels = data.shape
    k = min(n_rows, n_time, n_voxels)
    if k < 1:
        raise ValueError(f"cannot reduce an array of shape {data.shape}")
    if method == "auto":
        method = reduction_method(n_time, k)
    data = np.asarray(data, dtype=np.float32)
    if method == "gram":
        with np.errstate(over="ignore", invalid="ignore"):  # told just below
            products = gram(data)
        # Every value enters one diagonal entry: a NaN or inf anywhere makes the trace so.
        squares = float(np.trace(products))
        _check_finite(squares)
        values, vectors = leading_eigen(products, k)
        singular = np.sqrt(values)
        # u_i = X.T v_i / s_i: the right singular vectors from the left ones.
        rows = vectors.T.astype(np.float32) @ data
        scale = np.where(singular > 0, singular, 1.0)
        rows /= scale[:, None].astype(np.float32)
    elif method == "randomized":
        squares = float(np.einsum("ij,ij->", data, data, dtype=np.float64))
        _check_finite(squares)
        _, singular, rows = randomized_svd(data, k, n_iter="auto", random_state=random_state)
        rows = np.asarray(rows, dtype=np.float32)
        singular = np.asarray(singular, dtype=np.float64)
    else:
        raise ValueError(f"method: 'auto', 'gram' or 'randomized', got {method!r}")
    rows *= _flip_rows(rows)[:, None].astype(np.float32)
    return (rows, singular, squares) if return_squares else (rows, singular)


def _check_finite(squares: float) -> None:
    if not np.isfinite(squares):
        raise NotFinite("NaN or infinite values (or squares beyond float32's range)")


class GroupReducer:
    """Incremental group PCA of stacked rows in a buffer of bounded size (MIGP).

    Parameters
    ----------
    n_features : int
        Length of each row (voxels).
    capacity : int
        Rows the buffer holds; its memory is ``capacity * n_features * 4`` bytes.
    keep : int
        Rows kept when the buffer is full (MIGP's internal dimension); at least the
        number of components asked of :meth:`components` and less than ``capacity``.
    expected_rows : int, optional
        Rows that will be added in all, when known: the buffer is then allocated no
        larger than needed.

    Attributes
    ----------
    rows_seen : int
        Rows added so far.
    reductions : int
        Times the buffer was full and reduced; 0 means the result is exact.
    """

    def __init__(
        self, n_features: int, capacity: int, keep: int, expected_rows: int | None = None
    ) -> None:
        if not 0 < keep < capacity:
            raise ValueError(f"need 0 < keep < capacity, got keep={keep}, capacity={capacity}")
        self.n_features = n_features
        self.capacity = capacity if expected_rows is None else min(capacity, expected_rows)
        self.keep = min(keep, self.capacity)
        self._nominal = (capacity, keep)
        self._buffer: np.ndarray | None = None
        self._filled = 0
        self.rows_seen = 0
        self.reductions = 0

    @property
    def exact(self) -> bool:
        """Whether no row was ever discarded: the result is the SVD of the whole stack."""
        return self.reductions == 0

    @property
    def nbytes(self) -> int:
        return 0 if self._buffer is None else self._buffer.nbytes

    def add(self, rows: np.ndarray) -> None:
        """Append rows (shape ``(r, n_features)``), reducing the buffer when full."""
        rows = np.atleast_2d(rows)
        if rows.shape[1] != self.n_features:
            raise ValueError(f"rows of {self.n_features} features, got shape {rows.shape}")
        if self._buffer is None:
            self._buffer = np.empty((self.capacity, self.n_features), dtype=np.float32)
        start = 0
        while start < rows.shape[0]:
            if self._filled == self.capacity:
                if self.capacity < self._nominal[0]:  # more rows came than announced
                    self._grow()
                else:
                    self._reduce()
            take = min(rows.shape[0] - start, self.capacity - self._filled)
            self._buffer[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
        self.rows_seen += rows.shape[0]

    def _grow(self) -> None:
        bigger = np.empty((self._nominal[0], self.n_features), dtype=np.float32)
        bigger[: self._filled] = self._buffer[: self._filled]
        self._buffer = bigger
        self.capacity, self.keep = self._nominal

    def _reduce(self) -> None:
        """Replace the buffer by its ``keep`` leading rows ``s_i v_i`` (in place)."""
        _, vectors = leading_eigen(gram(self._buffer[: self._filled]), self.keep)
        self._rotate_in_place(vectors.T.astype(np.float32))
        self._filled = self.keep
        self.reductions += 1

    def _rotate_in_place(self, weights: np.ndarray) -> None:
        """``buffer[:m] = weights @ buffer[:filled]``, block by block (no full copy)."""
        m, step = weights.shape[0], block_size(weights.shape[0], 4)
        for start in range(0, self.n_features, step):
            block = self._buffer[: self._filled, start : start + step]
            self._buffer[:m, start : start + step] = weights @ block

    def stack(self) -> np.ndarray:
        """The rows held (a view): the whole stack while :attr:`exact`, else MIGP's
        ``s_i v_i``. Their Gram structure is that of the stack on its leading subspace."""
        if self._buffer is None:
            return np.empty((0, self.n_features), dtype=np.float32)
        return self._buffer[: self._filled]

    def components(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` leading right singular vectors of the stack and its singular values.

        Parameters
        ----------
        n : int

        Returns
        -------
        components : ndarray, shape (n, n_features), float64
            Unit rows, descending singular values, sign-fixed (largest entry positive).
        singular_values : ndarray, shape (n,)

        Raises
        ------
        ValueError
            When fewer than ``n`` rows were added.
        """
        held = self.stack()
        if held.shape[0] < n:
            raise ValueError(f"{n} components asked of {held.shape[0]} rows")
        values, vectors = leading_eigen(gram(held), n)
        singular = np.sqrt(values)
        weights = (vectors / np.where(singular > 0, singular, 1.0)).T
        out = np.empty((n, self.n_features))
        step = block_size(held.shape[0])
        for start in range(0, self.n_features, step):
            block = held[:, start : start + step].astype(np.float64)
            out[:, start : start + step] = weights @ block
        out *= _flip_rows(out)[:, None]
        return out, singular

    def release(self) -> None:
        """Free the buffer."""
        self._buffer = None
        self._filled = 0
