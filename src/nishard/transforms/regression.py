"""Least-squares regression of (time, feature) arrays, and the runner every linear step shares.

Detrending, filtering, censoring, interpolation and confound regression are all linear in
the signals once the confounds and the sample mask are known. :class:`LinearOp` holds such
a map as a small float64 matrix built from the run's length, confounds and mask (cheap:
its size is time x time), and :func:`apply_linear` applies it to the (time, feature) data
in one pass over column blocks, with the standardization fused into the same pass.

Numerics: the NumPy backend converts each block to float64 (float64 accumulation for
float32 input) and writes the dtype of the input out (float32 for float32 input), with one
exception: float32 data z-scored through a dense operator (a band-pass filter: the usual
denoising) are centred around float64 means and multiplied in float32 (benchmarks/clean.py:
the clean step 0.24-0.27 s against 0.38 s), each feature whose estimated rounding error
exceeds 1e-5 of its output's spread computed again in float64 (and the rest of the run
after a block where more than :data:`REDO_LIMIT` of them were); tests/transforms/
test_clean.py holds every combination within 1e-5 of nilearn run in float64. Float64
data, other standardizations and low-rank operators keep float64 throughout. The JAX
backend runs the same arithmetic in the input's precision (float32 unless ``jax_enable_x64``
is on) with ``Precision.HIGHEST`` matrix products, after shifting every feature by its mean
so that the products never carry a large baseline; the operator itself (pivoted QR, rank
decisions, filters) is always built in float64 by NumPy/SciPy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg

from ..registry import not_one_of

Backend = Literal["numpy", "jax"]
BACKENDS: tuple[str, ...] = ("numpy", "jax")

_EPS64 = float(np.finfo(np.float64).eps)
_EPS32 = float(np.finfo(np.float32).eps)
_TINY = float(np.finfo(np.float32).tiny)
#: Bytes of one float64 column block in the NumPy runner, and of one block in the JAX runner.
_BLOCK_BYTES = {"numpy": 8 << 20, "jax": 64 << 20}


@dataclass(frozen=True, eq=False)
class LinearOp:
    """A linear map from (n, features) to (k, features): ``y = A @ x``.

    Either ``dense`` (the (k, n) matrix ``A``) or ``rows`` and ``basis``: ``A = (I - Q Q^T) S``
    with ``S`` the selection of ``rows`` (None: every row) and ``Q = basis`` (k, r) with
    orthonormal columns (None: no projection). The low-rank form costs ``4 r k`` operations
    per feature instead of ``2 k n``.

    Attributes
    ----------
    n_in : int
    dense, rows, basis : ndarray or None
    offset : ndarray (k,) or None
        ``A @ 1``; None when ``A`` removes constants (every detrended pipeline), which the
        runner then exploits to return exact zeros for constant features.
    mean_weights : ndarray (n,) or None
        The row vector whose product with the input is the mean that percent signal change
        divides by (nilearn's ``original_mean_signals``); None: the plain mean over time.
    """

    n_in: int
    dense: np.ndarray | None = None
    rows: np.ndarray | None = None
    basis: np.ndarray | None = None
    offset: np.ndarray | None = None
    mean_weights: np.ndarray | None = None

    @functools.cached_property
    def dense32(self) -> np.ndarray:
        """``dense`` in float32, made once per operator."""
        return self.dense.astype(np.float32)

    @functools.cached_property
    def row_norm(self) -> float:
        """The largest Euclidean norm of a row of ``dense``."""
        return float(np.sqrt(np.einsum("ij,ij->i", self.dense, self.dense).max()))

    @property
    def n_out(self) -> int:
        if self.dense is not None:
            return self.dense.shape[0]
        return self.n_in if self.rows is None else len(self.rows)

    def matrix(self) -> np.ndarray:
        """``A`` as a dense (k, n) float64 matrix."""
        if self.dense is not None:
            return self.dense
        a = np.eye(self.n_in)
        if self.rows is not None:
            a = a[self.rows]
        if self.basis is not None:
            a = a - self.basis @ (self.basis.T @ a)
        return a

    def cheapest(self) -> LinearOp:
        """The same map in the form with fewer operations per feature."""
        if self.dense is None and self.basis is not None and 2 * self.basis.shape[1] > self.n_in:
            return LinearOp(
                self.n_in, dense=self.matrix(), offset=self.offset, mean_weights=self.mean_weights
            )
        return self


def float_dtype(dtype: np.dtype) -> np.dtype:
    """The float dtype an array is processed and returned in: float64 stays float64, a
    64-bit integer becomes float64, anything else float32 (nilearn's ``_ensure_float``)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiub":
        raise ValueError(f"real-valued signals, got dtype {dtype}")
    return np.dtype(np.float64 if dtype.itemsize >= 8 else np.float32)


def as_signals(signals) -> np.ndarray:
    """A (time, feature) array, not copied; a clear error for anything else."""
    x = np.asarray(signals)
    if x.ndim != 2:
        raise ValueError(f"a (time, feature) array, got shape {x.shape}")
    float_dtype(x.dtype)
    return x


def _block_width(n_rows: int, block_bytes: int, itemsize: int) -> int:
    return max(64, block_bytes // (itemsize * max(n_rows, 1)))


def column_blocks(n_rows: int, n_cols: int, block_bytes: int = 8 << 20, itemsize: int = 8):
    """Slices of columns whose (n_rows, width) block takes about ``block_bytes``."""
    width = _block_width(n_rows, block_bytes, itemsize)
    for start in range(0, n_cols, width):
        yield slice(start, min(start + width, n_cols))


def numpy_block_bytes(n_rows: int, n_cols: int) -> int:
    """Bytes of one float64 column block of the NumPy runner (the whole array, if smaller):
    it holds about three at once (the copy, the operator's output, a temporary)."""
    return 8 * n_rows * min(n_cols, _block_width(n_rows, _BLOCK_BYTES["numpy"], 8))


def _non_finite_error(n_bad: int) -> ValueError:
    return ValueError(
        f"signals hold NaN or infinite values in {n_bad} feature(s); clean or mask them "
        "first, or pass ensure_finite=True to replace them with zeros as nilearn does"
    )


def apply_linear(
    signals,
    op: LinearOp,
    standardize: str | None = None,
    *,
    backend: Backend = "numpy",
    ensure_finite: bool = False,
) -> np.ndarray:
    """``op`` applied to every feature, then optionally standardized over time.

    Parameters
    ----------
    signals : array (n, features)
    op : LinearOp
    standardize : {None, "zscore_sample", "zscore", "psc"}
        As :func:`nishard.transforms.signal.standardize`, with nilearn's ``clean`` rule for
        ``psc``: when the output's mean is below a tenth of the input's (detrended or
        high-passed data), the input mean (``op.mean_weights``) is added back before
        dividing. A feature constant over time in the input comes out as zeros.
    backend : {"numpy", "jax"}
    ensure_finite : bool
        False: NaN or infinite input raises ValueError. True: they become zeros (nilearn).

    Returns
    -------
    ndarray (k, features) of :func:`float_dtype` of the input.
    """
    x = as_signals(signals)
    if x.shape[0] != op.n_in:
        raise ValueError(f"{op.n_in} time points expected, got {x.shape[0]}")
    if backend not in BACKENDS:
        raise ValueError(not_one_of("backend", backend, BACKENDS))
    if standardize is not None and op.n_out < 2:
        raise ValueError(f"at least 2 time points to standardize, got {op.n_out}")
    op = op.cheapest()
    out = np.empty((op.n_out, x.shape[1]), dtype=float_dtype(x.dtype))
    if not x.shape[1]:
        return out
    run = _numpy_runner() if backend == "numpy" else _jax_runner(x.dtype)
    itemsize = 8 if backend == "numpy" else out.dtype.itemsize
    means = []  # psc only: (output mean, input mean) per block
    for cols in column_blocks(x.shape[0], x.shape[1], _BLOCK_BYTES[backend], itemsize):
        y, stats, n_bad = run(x[:, cols], op, standardize, ensure_finite)
        if n_bad:
            raise _non_finite_error(int((~np.isfinite(x)).any(axis=0).sum()))
        out[:, cols] = y
        means.append(stats)
    if standardize == "psc":
        _psc_scale(
            out, np.concatenate([m[0] for m in means]), np.concatenate([m[1] for m in means])
        )
    return out


def _psc_scale(centred: np.ndarray, out_mean: np.ndarray, in_mean: np.ndarray) -> None:
    """Percent signal change in place from centred outputs, as nilearn's ``clean`` does."""
    in_scale = np.abs(in_mean).mean()
    # nilearn compares the mean absolute output mean with the mean absolute input mean; a
    # zero input mean makes its ratio inf or nan, which is never below 0.1.
    add_back = in_scale > 0 and np.abs(out_mean).mean() / in_scale < 0.1
    base = np.abs(out_mean + in_mean if add_back else out_mean)
    valid = base >= _EPS64
    scale = np.where(valid, 100.0 / np.where(valid, base, 1.0), 0.0)
    for cols in column_blocks(*centred.shape):
        centred[:, cols] *= scale[cols].astype(centred.dtype)


def _offset_parts(op: LinearOp):
    """``A @ 1`` as its deviation from its mean and the mean: the runners add ``dev * c``
    to centred outputs and ``mean * c`` to output means apart, so that a baseline ``c``
    kept by ``A`` never enters a float32 subtraction."""
    if op.offset is None:
        return None, 0.0
    avg = float(op.offset.mean())
    return op.offset - avg, avg


#: The share of a block's columns computed again in float64 past which the float32 route
#: is given up for the rest of the run: a redone column costs its float32 product and a
#: float64 one, so above about a third the float64 route alone is cheaper. Long runs get
#: there: at 1,200 volumes (an HCP run) the band-pass operator's rows are long enough that
#: 83-98 % of the columns are redone, and the float32 route took 1.5x the float64 one
#: (benchmarks/clean_length.py).
REDO_LIMIT = 0.3


def _numpy_runner():
    """The NumPy block runner of one :func:`apply_linear` call: float32 products where
    :func:`_numpy_block32` applies, until a block has more than :data:`REDO_LIMIT` of its
    columns redone; float64 from then on (the same data always take the same route)."""
    float32 = True

    def run(block: np.ndarray, op: LinearOp, standardize, ensure_finite):
        nonlocal float32
        z_scored = standardize in ("zscore", "zscore_sample")
        dense32 = block.dtype == np.float32 and op.dense is not None and not ensure_finite
        if float32 and dense32 and z_scored:
            y, stats, n_bad, redone = _numpy_block32(block, op, standardize)
            float32 = redone <= REDO_LIMIT * block.shape[1]
            return y, stats, n_bad
        return _numpy_block64(block, op, standardize, ensure_finite)

    return run


def _numpy_block64(block: np.ndarray, op: LinearOp, standardize, ensure_finite):
    b = np.array(block, dtype=np.float64)  # a copy: float64 accumulation from here on
    if ensure_finite:
        b[~np.isfinite(b)] = 0.0
    c = b.mean(axis=0)
    if not np.isfinite(c).all() and not np.isfinite(b).all():
        return None, None, int((~np.isfinite(b).all(axis=0)).sum())
    b -= c
    const = (b == b[0]).all(axis=0)
    if op.dense is not None:
        y = op.dense @ b
    else:
        y = b if op.rows is None else b[op.rows]
        if op.basis is not None:
            y = y - op.basis @ (op.basis.T @ y)
    dev, avg = _offset_parts(op)
    if standardize is None:
        return (y if dev is None else y + (dev + avg)[:, None] * c), None, 0
    ybar = y.mean(axis=0)
    y -= ybar
    if dev is not None:
        y += dev[:, None] * c
    y[:, const] = 0.0
    if standardize == "psc":
        m = (b.mean(axis=0) if op.mean_weights is None else op.mean_weights @ b) + c
        return y, (ybar + avg * c, m), 0
    y /= _std(np.sqrt(np.einsum("ij,ij->j", y, y) / (y.shape[0] - _ddof(standardize))))
    return y, None, 0


#: The largest rounding error the float32 product may leave in a z-score, as estimated
#: from the float32 unit, the operator's largest row norm and the centred input's norm
#: over the output's spread; a column above it is computed again in float64. A tenth of
#: the parity tolerance against nilearn (1e-4).
FLOAT32_ERROR = 1e-5


def _numpy_block32(block: np.ndarray, op: LinearOp, standardize: str):
    """A block of float32 data through a dense operator, z-scored (see :func:`_numpy_runner`).

    The product, nearly all of the cost, runs in float32 (about 1.5 times as fast as in
    float64) on data centred around float64 column means, so that it never carries the baseline,
    as the JAX backend does. Its rounding is relative to the input, so it matters where
    the operator removes nearly all of a feature's variance (a run censored down to a
    few degrees of freedom, confounds that explain the signal): each column's error is
    estimated against its output's spread, and the columns past :data:`FLOAT32_ERROR`
    are computed again in float64. Outputs in the data's own units (no standardization,
    percent signal change) keep the float64 route throughout.

    Returns what :func:`_numpy_block64` does, and the number of columns redone.
    """
    c = block.mean(axis=0, dtype=np.float64)
    if not np.isfinite(c).all() and not np.isfinite(block).all():
        return None, None, int((~np.isfinite(block).all(axis=0)).sum()), 0
    b = block - c.astype(np.float32)  # a float32 copy, centred
    const = (b == b[0]).all(axis=0)
    y = op.dense32 @ b
    y -= y.mean(axis=0, dtype=np.float64).astype(np.float32)
    dev, _ = _offset_parts(op)
    if dev is not None:
        y += (dev[:, None] * c).astype(np.float32)
    y[:, const] = 0.0
    sd = np.sqrt(np.einsum("ij,ij->j", y, y) / np.float32(y.shape[0] - _ddof(standardize)))
    error = _EPS32 * op.row_norm * np.sqrt(np.einsum("ij,ij->j", b, b)) / np.maximum(sd, _TINY)
    redo = (error > FLOAT32_ERROR) & ~const
    y /= _std(sd).astype(np.float32)
    redone = int(redo.sum())
    if redone:
        y[:, redo] = _numpy_block64(block[:, redo], op, standardize, False)[0]
    return y, None, 0, redone


def _ddof(method: str) -> int:
    if method == "zscore_sample":
        return 1
    if method == "zscore":
        return 0
    raise ValueError(
        not_one_of("standardize", method, ("zscore_sample", "zscore", "psc"), " or None")
    )


def _std(sd):
    """nilearn's guard: a standard deviation below float64 eps divides by 1."""
    return np.where(sd < _EPS64, 1.0, sd)


def _jax_runner(dtype: np.dtype):
    """The JAX block runner (JAX is imported here, not at module import)."""
    jax, kernel = _jax_kernel()
    compute = (
        np.float64 if (jax.config.jax_enable_x64 and np.dtype(dtype).itemsize >= 8) else np.float32
    )

    def run(block, op: LinearOp, standardize, ensure_finite):
        if standardize is not None and standardize != "psc":
            _ddof(standardize)
        dev, avg = _offset_parts(op)
        cast = {
            k: None if v is None else np.asarray(v, compute)
            for k, v in (
                ("dense", op.dense),
                ("basis", op.basis),
                ("dev", dev),
                ("avg", avg),
                ("weights", op.mean_weights),
            )
        }
        y, ybar, m, n_bad = kernel(
            np.asarray(block, compute),
            rows=op.rows,
            method=standardize,
            ensure_finite=ensure_finite,
            **cast,
        )
        n_bad = int(n_bad)
        stats = (
            None
            if standardize != "psc"
            else (np.asarray(ybar, np.float64), np.asarray(m, np.float64))
        )
        return np.asarray(y), stats, n_bad

    return run


@functools.cache
def _jax_kernel():
    import jax
    import jax.numpy as jnp

    hi = jax.lax.Precision.HIGHEST

    def kernel(s, dense, rows, basis, dev, avg, weights, method, ensure_finite):
        if ensure_finite:
            s = jnp.where(jnp.isfinite(s), s, 0)
        c = s.mean(axis=0)
        n_bad = jnp.sum(~jnp.isfinite(c))
        b = s - c  # any shift is exact in y = A (s - c) + (A 1) c; the mean keeps it small
        const = jnp.all(b == b[0], axis=0)
        if dense is not None:
            y = jnp.matmul(dense, b, precision=hi)
        else:
            y = b if rows is None else b[rows]
            if basis is not None:
                y = y - jnp.matmul(basis, jnp.matmul(basis.T, y, precision=hi), precision=hi)
        if method is None:
            return (y if dev is None else y + (dev + avg)[:, None] * c), None, None, n_bad
        ybar = y.mean(axis=0)
        y = y - ybar
        if dev is not None:
            y = y + dev[:, None] * c
        y = jnp.where(const, 0, y)
        if method == "psc":
            m = b.mean(axis=0) if weights is None else jnp.matmul(weights, b, precision=hi)
            return y, ybar + avg * c, m + c, n_bad
        ddof = 1 if method == "zscore_sample" else 0
        sd = jnp.sqrt(jnp.sum(y * y, axis=0) / (y.shape[0] - ddof))
        return y / jnp.where(sd < _EPS64, 1, sd), None, None, n_bad

    return jax, jax.jit(kernel, static_argnames=("method", "ensure_finite"))


# --------------------------------------------------------------------------- confounds


def as_confounds(confounds, n_time: int) -> np.ndarray | None:
    """Confounds as a float64 (time, confound) array: an array (1D: one confound), a
    DataFrame, or a list of those side by side. None, or no columns: None.

    Raises ValueError for a time axis other than ``n_time`` and for NaN or infinite values
    (fMRIPrep leaves ``n/a`` in the first row of derivative columns: fill them first).
    """
    if confounds is None:
        return None
    parts = confounds if isinstance(confounds, list | tuple) else [confounds]
    arrays = []
    for part in parts:
        a = part.to_numpy() if isinstance(part, pd.DataFrame | pd.Series) else np.asarray(part)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"confounds must be 1D or 2D, got shape {a.shape}")
        if a.shape[0] != n_time:
            raise ValueError(
                f"confounds have {a.shape[0]} rows but the signals {n_time} time points"
            )
        arrays.append(a.astype(np.float64))
    c = np.hstack(arrays) if arrays else np.empty((n_time, 0))
    if not np.isfinite(c).all():
        bad = np.flatnonzero(~np.isfinite(c).all(axis=0)).tolist()
        raise ValueError(f"confounds hold NaN or infinite values in column(s) {bad}")
    return c if c.shape[1] else None


def confound_basis(confounds: np.ndarray, standardize_confounds: bool = True) -> np.ndarray:
    """Orthonormal (time, rank) basis of the confounds' span, as nilearn's ``clean`` builds it.

    ``standardize_confounds=True`` centres each confound and divides it by its standard
    deviation (ddof=1; below float64 eps: by 1), so the span excludes the constant and the
    regression keeps the signal mean. False divides each by its maximum absolute value
    (zero: by 1) without centring. Then a QR decomposition with column pivoting, keeping
    the columns whose ``|R_ii|`` exceeds 100 float64 eps: collinear confounds cost nothing.
    """
    c = np.array(confounds, dtype=np.float64)
    if standardize_confounds:
        c -= c.mean(axis=0)
        c /= _std(c.std(axis=0, ddof=1))
    else:
        peak = np.abs(c).max(axis=0)
        c /= np.where(peak == 0, 1.0, peak)
    q, r, _ = scipy.linalg.qr(c, mode="economic", pivoting=True)
    return q[:, np.abs(np.diag(r)) > 100 * _EPS64]


def regress_out(
    signals,
    confounds,
    *,
    standardize_confounds: bool = True,
    backend: Backend = "numpy",
    ensure_finite: bool = False,
) -> np.ndarray:
    """Residuals of least squares of every feature on the confounds (nilearn's projection).

    Parameters
    ----------
    signals : array (time, features)
    confounds : array (time,) or (time, n), DataFrame, or a list of those
    standardize_confounds : bool
        See :func:`confound_basis`: True (default) keeps the signal mean.
    backend : {"numpy", "jax"}

    Returns
    -------
    ndarray, the shape of ``signals``; float32 for float32 input.
    """
    x = as_signals(signals)
    c = as_confounds(confounds, x.shape[0])
    if c is None:
        return x.astype(float_dtype(x.dtype))
    q = confound_basis(c, standardize_confounds)
    ones = np.ones(x.shape[0])
    op = LinearOp(x.shape[0], basis=q, offset=ones - q @ (q.T @ ones))
    return apply_linear(x, op, None, backend=backend, ensure_finite=ensure_finite)
