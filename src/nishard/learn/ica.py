"""CanICA's unmixing: FastICA from several starts, the sparsest kept, thresholded, signed.

The algorithm is nilearn's ``CanICA._unmix_components`` (0.14): sklearn's ``fastica``
on the group components (voxels are the samples) with ``whiten="arbitrary-variance"``,
``fun="cube"`` and the parallel algorithm, run from ``n_init`` seeds drawn from the
random state; the run whose maps have the smallest largest l1 norm is kept; values
below the ``(100 - 100 * ratio / n)`` percentile of ``|maps|`` are set to 0 (``ratio``
1 for ``"auto"``: about as many non-zero values in all as voxels); each map is negated
when its most negative value outweighs its largest.

What differs is how the runs are computed, not what they compute. sklearn whitens the
same data once per run and iterates each run over every voxel separately; here the data
are whitened once, and every iteration advances all runs still moving in one pass over
the voxels, block by block: one matrix product of the stacked unmixing matrices with a
block serves every run, and the block stays in cache for the cube and the second
product. Each run performs exactly sklearn's updates (same seeds, same starting matrix,
same convergence test), so a run here and sklearn's run from the same seed agree to
rounding (the tests check it).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import linalg

from .pca import block_size


def whiten(components: np.ndarray) -> np.ndarray:
    """sklearn's "arbitrary-variance" whitening of ``components.T`` (voxels as samples).

    Parameters
    ----------
    components : ndarray, shape (n, voxels)
        The group components, one per row.

    Returns
    -------
    white : ndarray, shape (n, voxels), float64
        ``K @ (components - mean) * sqrt(voxels)``: rows of unit mean square.
    """
    centred = np.array(components, dtype=np.float64)
    centred -= centred.mean(axis=1, keepdims=True)
    u, d = linalg.svd(centred, full_matrices=False, check_finite=False)[:2]
    u *= np.sign(u[0])  # sklearn's sign convention, for the same whitening
    white = (u / d).T @ centred
    white *= np.sqrt(centred.shape[1])
    return white


def _sym_decorrelation(w: np.ndarray) -> np.ndarray:
    """``(W W.T)^(-1/2) W``: the orthogonal matrix nearest to ``W``."""
    s, u = linalg.eigh(w @ w.T)
    s = np.clip(s, np.finfo(w.dtype).tiny, None)
    return (u * (1.0 / np.sqrt(s))) @ u.T @ w


def starting_matrices(random_state: int | None, n_init: int, n: int) -> list[np.ndarray]:
    """The ``n_init`` starting unmixing matrices nilearn's CanICA gives sklearn.

    nilearn draws one int32 seed per run from ``random_state``; sklearn draws the run's
    ``(n, n)`` standard normal starting matrix from that seed.
    """
    from sklearn.utils import check_random_state

    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=n_init)
    return [np.random.RandomState(seed).normal(size=(n, n)) for seed in seeds]


def fastica_runs(
    white: np.ndarray,
    starts: list[np.ndarray],
    max_iter: int = 200,
    tol: float = 1e-4,
    precision: str = "float32",
    threads: int | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """Parallel FastICA (cube nonlinearity) from several starts at once.

    Parameters
    ----------
    white : ndarray, shape (n, voxels)
        Whitened data (:func:`whiten`).
    starts : list of ndarray, shape (n, n)
        One starting matrix per run.
    max_iter, tol : int, float
        sklearn's: a run stops when ``max |abs(diag(W_new W.T)) - 1| < tol``.
    precision : {"float32", "float64"}
        Arithmetic of the products over voxels. ``"float64"`` is sklearn's, to rounding;
        ``"float32"`` (twice as fast) multiplies in single precision and sums each block's
        products in double, a relative error near 1e-7 in every update, far below ``tol``;
        the small matrices (decorrelation, convergence) stay in double either way.
    threads : int, optional
        Threads sharing the voxels (default: the CPUs); BLAS runs one thread each.

    Returns
    -------
    unmixing : list of ndarray, shape (n, n)
        Each run's unmixing matrix ``W``; the sources are ``W @ white / sqrt(voxels)``.
    iterations : list of int
        Iterations each run took (``max_iter`` for one that did not converge).
    """
    from threadpoolctl import threadpool_limits

    if precision not in ("float32", "float64"):
        raise ValueError(f"precision: 'float32' or 'float64', got {precision!r}")
    dtype = np.dtype(precision)
    n, n_voxels = white.shape
    data = white.astype(dtype, copy=False)
    threads = max(1, min(threads or os.cpu_count() or 1, n_voxels // 4096 or 1))
    parts = np.array_split(np.arange(n_voxels), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]
    runs = [_sym_decorrelation(np.asarray(w, dtype=np.float64)) for w in starts]
    iterations = [max_iter] * len(runs)
    active = list(range(len(runs)))
    with threadpool_limits(limits=1 if threads > 1 else None), ThreadPoolExecutor(threads) as pool:
        for iteration in range(max_iter):
            if not active:
                break
            stacked = np.concatenate([runs[r] for r in active]).astype(dtype)  # (a * n, n)
            jobs = [pool.submit(_cube_products, stacked, data[:, lo:hi]) for lo, hi in bounds]
            results = [job.result() for job in jobs]
            products = sum(r[0] for r in results)
            squares = sum(r[1] for r in results)
            still = []
            for slot, r in enumerate(active):
                rows = slice(slot * n, (slot + 1) * n)
                w = runs[r]
                # sklearn: g(x) = x**3, mean g'(x) = mean(3 * x**2) over the voxels.
                update = products[rows] / n_voxels - (3.0 * squares[rows] / n_voxels)[:, None] * w
                new = _sym_decorrelation(update)
                change = np.max(np.abs(np.abs(np.einsum("ij,ij->i", new, w)) - 1))
                runs[r] = new
                if change < tol:
                    iterations[r] = iteration + 1
                else:
                    still.append(r)
            active = still
    if active:
        warnings.warn(
            f"FastICA did not converge in {max_iter} iterations for {len(active)} of "
            f"{len(runs)} starts; consider a larger max_iter or tol",
            _convergence_warning(),
            stacklevel=2,
        )
    return runs, iterations


def _cube_products(stacked: np.ndarray, white: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(W X)**3 @ X.T`` and the row sums of ``(W X)**2``, one block of voxels at a time.

    Each block's products are summed in the data's precision and the blocks in float64.
    """
    step = block_size(3 * stacked.shape[0], stacked.dtype.itemsize)
    products = np.zeros((stacked.shape[0], white.shape[0]))
    squares = np.zeros(stacked.shape[0])
    for start in range(0, white.shape[1], step):
        block = white[:, start : start + step]
        y = stacked @ block
        y2 = y * y
        squares += y2.sum(axis=1, dtype=np.float64)
        y2 *= y
        products += y2 @ block.T
    return products, squares


def _convergence_warning() -> type[Warning]:
    try:
        from sklearn.exceptions import ConvergenceWarning
    except ImportError:  # pragma: no cover - sklearn is a nilearn dependency
        return RuntimeWarning
    return ConvergenceWarning


def largest_l1(unmixing: list[np.ndarray], white: np.ndarray) -> np.ndarray:
    """Each run's largest l1 norm of a source map (nilearn's sparsity criterion)."""
    n, n_voxels = white.shape
    stacked = np.concatenate(unmixing)
    sums = np.zeros(stacked.shape[0])
    step = block_size(stacked.shape[0])
    for start in range(0, n_voxels, step):
        sums += np.abs(stacked @ white[:, start : start + step]).sum(axis=1)
    sums /= np.sqrt(n_voxels)
    return sums.reshape(len(unmixing), n).max(axis=1)


def threshold_maps(maps: np.ndarray, threshold: float | str | None) -> np.ndarray:
    """Zero the smaller values of the maps, in place, as nilearn's CanICA does.

    Parameters
    ----------
    maps : ndarray, shape (n, voxels)
    threshold : "auto", float or None
        ``None``: nothing. ``"auto"``: ratio 1. A float ``ratio`` in ``[0, n]``: keep the
        values of ``|maps|`` at or above its ``100 - 100 * ratio / n`` percentile, about
        ``ratio * voxels`` non-zero values in all.

    Returns
    -------
    ndarray
        ``maps``.
    """
    if threshold is None:
        return maps
    ratio = 1.0 if threshold == "auto" else float(threshold)
    percentile = 100.0 - (100.0 / len(maps)) * ratio
    if percentile <= 0:
        warnings.warn(
            f"threshold {threshold!r} keeps every value (percentile {percentile}): no "
            "threshold applied; lower it or ask for more components",
            UserWarning,
            stacklevel=2,
        )
        return maps
    magnitude = np.abs(maps)
    cut = np.percentile(magnitude, percentile)
    maps[magnitude < cut] = 0.0
    return maps


def flip_to_positive_peak(maps: np.ndarray) -> np.ndarray:
    """Negate, in place, each map whose most negative value outweighs its largest."""
    flip = maps.max(axis=1) < -maps.min(axis=1)
    maps[flip] *= -1
    return maps


def unmix(
    components: np.ndarray,
    n_init: int = 10,
    random_state: int | None = 0,
    threshold: float | str | None = "auto",
    max_iter: int = 200,
    tol: float = 1e-4,
    precision: str = "float32",
    threads: int | None = None,
) -> tuple[np.ndarray, dict]:
    """CanICA's maps from group components.

    Parameters
    ----------
    components : ndarray, shape (n, voxels)
        Group principal components (unit rows).
    n_init : int
        FastICA starts; the sparsest result is kept.
    random_state : int or None
        Seeds the starts as nilearn does.
    threshold : "auto", float or None
        See :func:`threshold_maps`.
    max_iter, tol : int, float
        FastICA's.
    precision, threads : str, int
        See :func:`fastica_runs`.

    Returns
    -------
    maps : ndarray, shape (n, voxels), float64
    info : dict
        ``iterations`` per start, ``sparsity`` (largest l1 norm) per start, ``chosen``
        (the start kept).
    """
    n = components.shape[0]
    white = whiten(components)
    starts = starting_matrices(random_state, n_init, n)
    unmixing, iterations = fastica_runs(
        white, starts, max_iter=max_iter, tol=tol, precision=precision, threads=threads
    )
    sparsity = largest_l1(unmixing, white)
    chosen = int(np.argmin(sparsity))
    maps = unmixing[chosen] @ white
    maps /= np.sqrt(white.shape[1])
    del white
    threshold_maps(maps, threshold)
    flip_to_positive_peak(maps)
    info = {
        "iterations": [int(i) for i in iterations],
        "sparsity": [float(s) for s in sparsity],
        "chosen": chosen,
    }
    return maps, info
