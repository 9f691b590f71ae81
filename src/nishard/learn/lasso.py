"""Lasso codes of many samples on one small dictionary: coordinate descent over all at once.

DictLearning's last step codes every voxel on the learned dictionary (``n_components``
atoms): one lasso per voxel, hundreds of thousands of them. scikit-learn's
``sparse_encode(algorithm="lasso_cd")``, which nilearn calls, fits them one after the
other in a Python loop (``Lasso.fit`` with one target per voxel), and the loop's own cost
is most of the time. Here the same coordinate descent runs on the dictionary's Gram
matrix for a block of samples at once: each coordinate's update is a few vector
operations across the block, and a sample leaves the block once its codes stop changing.

The problem is scikit-learn's: for each sample ``x``, the codes ``c`` minimise
``0.5 * ||x - c @ dictionary||**2 + alpha * ||c||_1``. Everything runs in float64, to a
tighter tolerance than scikit-learn's float32 lasso, so the codes meet the lasso's
optimality conditions to about 1e-9 of ``alpha``.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.exceptions import ConvergenceWarning

#: Samples solved together: their ``(atoms, block)`` codes (2.6 MB for 20 atoms) stay
#: in the CPU's cache through a sweep, and the sweep's few hundred NumPy calls are shared
#: by many samples.
BLOCK = 16384


def lasso_codes(
    dictionary: np.ndarray,
    samples: np.ndarray,
    alpha: float,
    *,
    tol: float = 1e-10,
    max_sweeps: int = 1000,
    block: int = BLOCK,
    threads: int = 1,
) -> np.ndarray:
    """The lasso codes of each sample on the dictionary's atoms.

    Parameters
    ----------
    dictionary : ndarray, shape (n_atoms, n_features)
    samples : ndarray, shape (n_samples, n_features)
        float32 or float64; solved in float64.
    alpha : float
        The penalty on the codes' L1 norm, as scikit-learn's ``transform_alpha``.
    tol : float
        A sample is solved when no code moved by more than ``tol`` times its largest code
        in a sweep over the atoms.
    max_sweeps : int
        Sweeps at most (scikit-learn's ``transform_max_iter``); samples still moving then
        are counted in a ``ConvergenceWarning``.
    block : int
        Samples solved together. Each sample's updates are its own: the block changes
        only the rounding of the products ``dictionary @ x`` that BLAS computes.
    threads : int
        Blocks solved side by side. The result does not depend on it. Each block's
        products are small: run this under a limit of one BLAS thread, so that the
        threads do not share the cores with BLAS's own.

    Returns
    -------
    ndarray, shape (n_samples, n_atoms), float64
    """
    atoms = np.asarray(dictionary, dtype=np.float64)
    if samples.ndim != 2 or atoms.ndim != 2 or samples.shape[1] != atoms.shape[1]:
        raise ValueError(
            f"samples of {atoms.shape[-1]} features each for a dictionary of shape "
            f"{atoms.shape}, got samples of shape {samples.shape}"
        )
    if not alpha >= 0:
        raise ValueError(f"alpha must be non-negative, got {alpha!r}")
    gram = atoms @ atoms.T
    codes = np.zeros((samples.shape[0], atoms.shape[0]))

    def solve(start: int) -> int:
        part = np.asarray(samples[start : start + block], dtype=np.float64)
        solved, unsolved = _descend(gram, atoms @ part.T, float(alpha), tol, max_sweeps)
        codes[start : start + block] = solved.T
        return unsolved

    starts = range(0, samples.shape[0], block)
    # NumPy's element-wise loops let go of the GIL, so a second thread overlaps most of
    # one block's sweep with another's.
    with ThreadPoolExecutor(max(1, min(threads, len(starts)))) as pool:
        unsolved = sum(pool.map(solve, starts))
    if unsolved:
        warnings.warn(
            f"lasso codes: {unsolved} of {samples.shape[0]} samples still moved after "
            f"{max_sweeps} sweeps",
            ConvergenceWarning,
            stacklevel=2,
        )
    return codes


def _descend(
    gram: np.ndarray, products: np.ndarray, alpha: float, tol: float, max_sweeps: int
) -> tuple[np.ndarray, int]:
    """Coordinate descent from zero codes for a block of samples.

    ``products`` holds ``dictionary @ x`` for each sample (a column). A coordinate's new
    code needs the atom's correlation with the residual, ``products[j] - gram[j] @
    codes``: computed when it is needed, one matrix-vector product for the block, which
    reads the codes once where keeping every atom's correlation up to date would read
    and write them all after each update. Returns the codes (atoms, samples) and the
    number of samples still moving after ``max_sweeps``.
    """
    n_atoms, width = products.shape
    diag = np.diag(gram)
    out = np.zeros((n_atoms, width))
    live = np.arange(width)  # the samples still moving, and their columns below
    codes = np.zeros((n_atoms, width))
    for _ in range(max_sweeps):
        moved = np.zeros(live.size)
        target, clipped, step = np.empty(live.size), np.empty(live.size), np.empty(live.size)
        for j in np.flatnonzero(diag > 0):  # a zero atom keeps a zero code
            old = codes[j]
            # The new code soft-thresholds the atom's correlation with the residual left
            # without it; in place, as the sweep's cost is its passes over the block.
            np.matmul(gram[j], codes, out=target)
            np.subtract(products[j], target, out=target)
            target += diag[j] * old
            np.clip(target, -alpha, alpha, out=clipped)
            target -= clipped
            target /= diag[j]
            np.subtract(target, old, out=step)
            codes[j] = target
            np.abs(step, out=step)
            np.maximum(moved, step, out=moved)
        done = moved <= tol * np.abs(codes).max(axis=0)
        if done.any():
            # Solved samples leave, so that later sweeps work on the few still moving.
            out[:, live[done]] = codes[:, done]
            keep = ~done
            live, codes, products = live[keep], codes[:, keep], products[:, keep]
            if not live.size:
                return out, 0
    out[:, live] = codes
    return out, live.size
