"""Functional connectivity of region time series, equal to nilearn's ``ConnectivityMeasure``.

The numbers are those of ``nilearn.connectome.ConnectivityMeasure(kind=...,
cov_estimator=..., vectorize=..., discard_diagonal=..., standardize=...).fit_transform``
in nilearn 0.14.1, computed in float64 whatever the input dtype. Two behaviours of that
version are kept on purpose, because parity is the point:

- ``standardize`` z-scores the series (``zscore_sample``, no detrending) only for
  ``kind="correlation"``; nilearn ignores it for the other kinds, and so does this module.
  Put a ``standardize`` step before ``connectivity`` to estimate a covariance of z-scores.
- ``vectorize`` gives nilearn's ``sym_matrix_to_vec``: the *lower* triangle read row by
  row, ``(0,0), (1,0), (1,1), (2,0), ...``, with the diagonal *divided* by sqrt(2) (so
  that the Euclidean norm of the vector is the Frobenius norm of the matrix over 2) and
  the off-diagonal terms unscaled; with ``discard_diagonal`` the diagonal is left out and
  nothing is scaled.

Where nilearn would return NaN or a meaningless inverse (a region constant over time with
the empirical estimator, fewer time points than regions for an empirical partial
correlation), these functions raise ValueError instead; with the Ledoit-Wolf estimator
a constant region is well defined (shrinkage gives it a positive variance) and matches
nilearn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from math import sqrt
from typing import ClassVar, Literal, get_args

import numpy as np
import scipy.linalg

from ..registry import not_one_of
from .base import ArraySpec, Demands, Sample, SingleKey

Kind = Literal["correlation", "partial correlation", "covariance"]
KINDS: tuple[str, ...] = get_args(Kind)
#: Spellings accepted for a kind besides its own (a YAML key without spaces).
KIND_ALIASES = {"partial_correlation": "partial correlation"}

Estimator = Literal["ledoit_wolf", "empirical"]
ESTIMATORS: tuple[str, ...] = get_args(Estimator)


def empirical_covariance(x: np.ndarray) -> np.ndarray:
    """Maximum-likelihood covariance (divided by n, not n - 1) of centred columns.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_features)

    Returns
    -------
    ndarray, shape (n_features, n_features), float64
        Equal to ``sklearn.covariance.empirical_covariance(x)``.
    """
    xc = _centred(x)
    return xc.T @ xc / xc.shape[0]


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred columns.

    The shrunk estimate is ``(1 - a) S + a mu I`` with ``S`` the empirical covariance and
    ``mu = trace(S) / p``; the shrinkage ``a = min(b, d) / d`` with
    ``d = ||S - mu I||_F^2 / p`` and ``b = (sum_k ||x_k||^4 / n - ||S||_F^2) / (p n)``,
    ``x_k`` the centred rows (Ledoit & Wolf 2004, as scikit-learn writes it).

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_features)

    Returns
    -------
    covariance : ndarray, shape (n_features, n_features), float64
    shrinkage : float
        Both equal to ``sklearn.covariance.ledoit_wolf(x)`` (``assume_centered=False``).
    """
    xc = _centred(x)
    n, p = xc.shape
    s = xc.T @ xc / n
    if p == 1:
        return s, 0.0
    mu = np.trace(s) / p
    target_gap = s.copy()
    target_gap.flat[:: p + 1] -= mu
    delta = float((target_gap**2).sum()) / p
    # sum_k ||x_k||^4 is the sum of all entries of (X**2).T @ (X**2), in O(n p) not O(n p^2).
    row_norms = (xc**2).sum(axis=1)
    beta = (float(row_norms @ row_norms) / n - float((s**2).sum())) / (p * n)
    beta = min(beta, delta)
    # beta <= delta, so delta > 0 whenever beta > 0; a zero (or rounding-negative) beta
    # means nothing to shrink.
    shrinkage = 0.0 if beta <= 0 else beta / delta
    shrunk = (1.0 - shrinkage) * s
    shrunk.flat[:: p + 1] += shrinkage * mu
    return shrunk, shrinkage


def correlation(covariance: np.ndarray) -> np.ndarray:
    """Correlation matrix of a covariance matrix, with an exact 1 on the diagonal.

    Parameters
    ----------
    covariance : ndarray, shape (p, p)
        With a positive diagonal.

    Returns
    -------
    ndarray, shape (p, p)
        Equal to ``nilearn.connectome.cov_to_corr``.
    """
    d = np.diag(covariance)
    if not (d > 0).all():
        raise ValueError(
            f"correlation needs positive variances; regions {np.flatnonzero(~(d > 0)).tolist()} "
            "have none"
        )
    inv_sd = 1.0 / np.sqrt(d)
    out = covariance * inv_sd[:, None] * inv_sd[None, :]
    np.fill_diagonal(out, 1.0)
    return out


def partial_correlation(precision: np.ndarray) -> np.ndarray:
    """Partial correlation matrix of a precision (inverse covariance) matrix.

    Parameters
    ----------
    precision : ndarray, shape (p, p)

    Returns
    -------
    ndarray, shape (p, p)
        ``-P_ij / sqrt(P_ii P_jj)`` off the diagonal, 1 on it; equal to
        ``nilearn.connectome.prec_to_partial``.
    """
    out = -correlation(precision)
    np.fill_diagonal(out, 1.0)
    return out


def precision(covariance: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix, through its Cholesky factor.

    Raises
    ------
    ValueError
        When ``covariance`` is not positive definite (singular: its inverse would be
        rounding noise).
    """
    try:
        factor = scipy.linalg.cho_factor(covariance, lower=True)
    except np.linalg.LinAlgError as err:
        raise ValueError(f"the covariance matrix is not positive definite ({err})") from err
    inv = scipy.linalg.cho_solve(factor, np.eye(covariance.shape[0]))
    # cho_solve is symmetric only up to rounding; the connectivity matrix should be exact.
    return (inv + inv.T) / 2.0


def sym_to_vec(matrix: np.ndarray, discard_diagonal: bool = False) -> np.ndarray:
    """The lower triangle of symmetric matrices as vectors, as nilearn's ``sym_matrix_to_vec``.

    Parameters
    ----------
    matrix : ndarray, shape (..., p, p)
    discard_diagonal : bool
        False: the ``p (p + 1) / 2`` entries ``(0,0), (1,0), (1,1), (2,0), ...``, the diagonal
        divided by sqrt(2); True: the ``p (p - 1) / 2`` entries below the diagonal, unscaled.

    Returns
    -------
    ndarray, shape (..., p (p + 1) / 2) or (..., p (p - 1) / 2)
    """
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"square matrices in the last two axes, got shape {matrix.shape}")
    p = matrix.shape[-1]
    rows, cols = np.tril_indices(p, k=-1 if discard_diagonal else 0)
    vec = matrix[..., rows, cols]
    if not discard_diagonal:
        vec = vec / np.where(rows == cols, sqrt(2.0), 1.0).astype(vec.dtype)
    return vec


def vec_to_sym(vec: np.ndarray, diagonal: np.ndarray | None = None) -> np.ndarray:
    """Symmetric matrices from :func:`sym_to_vec` vectors (its inverse).

    Parameters
    ----------
    vec : ndarray, shape (..., m)
    diagonal : ndarray, shape (..., p), or None
        None: ``vec`` holds the diagonal (``m = p (p + 1) / 2``, diagonal scaled by
        1/sqrt(2)); given: ``vec`` was made with ``discard_diagonal`` (``m = p (p - 1) / 2``)
        and this is the diagonal, unscaled.

    Returns
    -------
    ndarray, shape (..., p, p)
    """
    m = vec.shape[-1]
    with_diagonal = diagonal is None
    # m = p (p + 1) / 2 with the diagonal, p (p - 1) / 2 without.
    p = round((sqrt(8 * m + 1) + (-1 if with_diagonal else 1)) / 2)
    if p * (p + (1 if with_diagonal else -1)) // 2 != m:
        raise ValueError(f"{m} entries are no triangle of a square matrix")
    out = np.zeros((*vec.shape[:-1], p, p), dtype=np.result_type(vec, np.float32))
    rows, cols = np.tril_indices(p, k=0 if with_diagonal else -1)
    values = vec * np.where(rows == cols, sqrt(2.0), 1.0) if with_diagonal else vec
    out[..., rows, cols] = values
    out[..., cols, rows] = values
    if not with_diagonal:
        diagonal = np.asarray(diagonal)
        if diagonal.shape[-1] != p:
            raise ValueError(
                f"a diagonal of {p} entries for {m} off-diagonal ones, got {diagonal.shape}"
            )
        idx = np.arange(p)
        out[..., idx, idx] = diagonal
    return out


def connectivity(
    series: np.ndarray,
    kind: Kind = "correlation",
    *,
    estimator: Estimator = "ledoit_wolf",
    standardize: bool = True,
    vectorize: bool = False,
    discard_diagonal: bool = False,
) -> np.ndarray:
    """Connectivity matrix of a (time, regions) series, or one per window of a windowed one.

    Parameters
    ----------
    series : ndarray, shape (time, regions) or (windows, time, regions)
        Finite values, at least 2 time points.
    kind : {"correlation", "partial correlation", "covariance"}
        ``"partial_correlation"`` is accepted too.
    estimator : {"ledoit_wolf", "empirical"}
        ``ledoit_wolf`` is nilearn's default (``LedoitWolf(store_precision=False)``);
        ``empirical`` is ``sklearn.covariance.EmpiricalCovariance``.
    standardize : bool
        For ``kind="correlation"`` only (as nilearn 0.14.1): z-score each region over time
        (ddof=1; a constant region stays zeros) before estimating the covariance. It
        changes the Ledoit-Wolf shrinkage, not the empirical correlation.
    vectorize, discard_diagonal : bool
        Return :func:`sym_to_vec` vectors instead of matrices.

    Returns
    -------
    ndarray, shape (regions, regions) or (regions (regions ± 1) / 2,), with a leading
    windows axis for windowed input
        float64 for float64 input, float32 otherwise.
    """
    kind = _kind(kind)
    if estimator not in ESTIMATORS:
        raise ValueError(not_one_of("estimator", estimator, ESTIMATORS))
    x = np.asarray(series)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"a (time, regions) or (windows, time, regions) array, got shape {x.shape}"
        )
    out_dtype = np.float64 if x.dtype == np.float64 else np.float32
    try:
        x = x.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"numeric time series, got dtype {x.dtype}") from err
    if x.shape[-2] < 2:
        raise ValueError(f"at least 2 time points for a connectivity matrix, got {x.shape[-2]}")
    if not np.isfinite(x).all():
        raise ValueError("the time series hold NaN or infinite values")
    one = lambda w: _matrix(w, kind, estimator, standardize)  # noqa: E731
    mats = one(x) if x.ndim == 2 else np.stack([one(w) for w in x])
    if vectorize:
        mats = sym_to_vec(mats, discard_diagonal)
    return mats.astype(out_dtype)


def _matrix(x: np.ndarray, kind: str, estimator: str, standardize: bool) -> np.ndarray:
    """One (regions, regions) matrix of one float64, finite (time, regions) array."""
    constant = np.flatnonzero(np.ptp(x, axis=0) == 0)
    if kind != "covariance" and estimator == "empirical" and constant.size:
        raise ValueError(
            f"{kind} with estimator='empirical' is undefined for regions constant over time "
            f"(regions {constant.tolist()}); drop them or use estimator='ledoit_wolf'"
        )
    if kind == "correlation" and standardize:
        x = _zscore(x)
    cov = ledoit_wolf(x)[0] if estimator == "ledoit_wolf" else empirical_covariance(x)
    if kind == "covariance":
        return cov
    if not (np.diag(cov) > 0).all():
        raise ValueError(
            f"{kind} is undefined: every region is constant over time (the run itself is "
            "constant, e.g. all zeros, at least inside the regions)"
        )
    if kind == "correlation":
        return correlation(cov)
    n, p = x.shape
    if estimator == "empirical" and n - 1 < p:
        raise ValueError(
            f"partial correlation with estimator='empirical' needs more time points than "
            f"regions (the covariance of {n} points in {p} regions is singular); use "
            "estimator='ledoit_wolf'"
        )
    return partial_correlation(precision(cov))


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"a (samples, features) array, got shape {x.shape}")
    return x - x.mean(axis=0)


def _zscore(x: np.ndarray) -> np.ndarray:
    """nilearn's ``zscore_sample``: ddof=1, a standard deviation under eps counts as 1."""
    xc = x - x.mean(axis=0)
    sd = xc.std(axis=0, ddof=1)
    return xc / np.where(sd < np.finfo(np.float64).eps, 1.0, sd)


def _kind(kind: str) -> str:
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(not_one_of("kind", kind, [*KINDS, *KIND_ALIASES]))
    return kind


@dataclass(frozen=True)
class Connectivity(SingleKey):
    """Connectivity of region time series; see :func:`connectivity`.

    Parameters
    ----------
    kind : {"correlation", "partial correlation", "covariance"}
        ``"partial_correlation"`` is read as ``"partial correlation"``.
    estimator : {"ledoit_wolf", "empirical"}
    standardize : bool
        For ``kind="correlation"`` only, as nilearn.
    vectorize, discard_diagonal : bool
    key : str
        The sample key of the (time, regions) or (windows, time, regions) series.
    output : str
        The sample key the connectivity is written to.
    keep_timeseries : bool
        False: the series under ``key`` is removed from the sample (and so from the shards).
    """

    kind: Kind = "correlation"
    estimator: Estimator = "ledoit_wolf"
    standardize: bool = True
    vectorize: bool = False
    discard_diagonal: bool = False
    key: str = "bold"
    output: str = "connectivity"
    keep_timeseries: bool = True

    name: ClassVar[str] = "connectivity"
    # What the estimate uses when a shape is unknown; working_memory() is the model.
    demands: ClassVar[Demands] = Demands(
        memory_factor=9.0, whole_time_axis=True, voxel_blocks=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _kind(self.kind))
        if self.estimator not in ESTIMATORS:
            raise ValueError(not_one_of("estimator", self.estimator, ESTIMATORS))
        if self.output == self.key and self.keep_timeseries:
            raise ValueError(
                f"output {self.output!r} would replace the time series under the same key; "
                "choose another output or set keep_timeseries: false"
            )

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.output,)

    @property
    def drops(self) -> tuple[str, ...]:
        """Keys removed from the sample: the series unless ``keep_timeseries``."""
        return () if self.keep_timeseries or self.output == self.key else (self.key,)

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        series = specs[self.key]
        p = series.shape[-1]
        matrix = (
            (p * (p + 1) // 2 - (p if self.discard_diagonal else 0),) if self.vectorize else (p, p)
        )
        windows = series.shape[:-2] if len(series.shape) == 3 else ()
        dtype = "float64" if series.dtype == "float64" else "float32"
        return {self.output: ArraySpec((*windows, *matrix), dtype)}

    def working_memory(self, specs: Mapping[str, ArraySpec]) -> int:
        """Peak bytes of the step for a series of this spec (used by fusion's estimates).

        The series, its float64 copy, four float64 arrays of one window's size at once
        (z-score, centring, squares) and three float64 (regions, regions) matrices at once
        inside the Ledoit-Wolf estimate, plus the stacked matrices of windowed series and
        the output. For region series the first terms dominate; for voxel series (tens of
        thousands of columns) the matrices do, which no multiple of the input describes.
        """
        series = specs[self.key]
        p, window = series.shape[-1], math.prod(series.shape[-2:])
        stacked = 8 * p * p * math.prod(series.shape[:-2]) if len(series.shape) == 3 else 0
        output = self.infer(specs)[self.output].nbytes
        return (
            series.nbytes
            + 8 * math.prod(series.shape)
            + 32 * window
            + 24 * p * p
            + stacked
            + output
        )

    def __call__(self, sample: Sample) -> Sample:
        mats = connectivity(
            sample[self.key],
            self.kind,
            estimator=self.estimator,
            standardize=self.standardize,
            vectorize=self.vectorize,
            discard_diagonal=self.discard_diagonal,
        )
        out = {k: v for k, v in sample.items() if k not in self.drops}
        out[self.output] = mats
        return out
