"""Signal transforms along the time axis: standardization and nilearn-style cleaning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np

from ..registry import not_one_of
from .base import Demands, Sample, SingleKey
from .filters import (
    butterworth_matrix,
    cosine_drift,
    fft_matrix,
    interpolation_matrix,
    poly_basis,
    sample_indices,
    warn,
)
from .regression import Backend, LinearOp, apply_linear, as_confounds, as_signals, confound_basis

StandardizeMethod = Literal["zscore_sample", "zscore", "psc"]
METHODS: tuple[str, ...] = get_args(StandardizeMethod)


def standardize(signals: np.ndarray, method: StandardizeMethod = "zscore_sample") -> np.ndarray:
    """Standardize each column of a (time, feature) array over time, as nilearn does.

    Parameters
    ----------
    signals : ndarray, shape (t, n_features)
    method : {"zscore_sample", "zscore", "psc"}
        ``zscore_sample``: centre and divide by the standard deviation with ddof=1 (nilearn's
        default); ``zscore``: the same with ddof=0 (``scipy.stats.zscore``; nilearn 0.14
        dropped it); ``psc``: percent signal change, ``100 * (x - mean) / |mean|``.

    Returns
    -------
    ndarray, same shape and dtype as ``signals``
        Features with zero variance (or, for ``psc``, a zero mean) come out as zeros, as in
        nilearn, rather than as NaN.
    """
    if signals.ndim != 2:
        raise ValueError(f"a (time, feature) array, got shape {signals.shape}")
    if signals.shape[0] < 2:
        raise ValueError(f"at least 2 time points to standardize, got {signals.shape[0]}")
    # Statistics in float64: float32 sums over long runs lose the digits that parity needs.
    mean = signals.mean(axis=0, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    if method == "psc":
        valid = np.abs(mean) >= eps
        scale = np.abs(mean) / 100.0
    elif method in METHODS:
        ddof = 1 if method == "zscore_sample" else 0
        scale = signals.std(axis=0, dtype=np.float64, ddof=ddof)
        valid = scale >= eps
    else:
        raise ValueError(not_one_of("method", method, METHODS))
    scale = np.where(valid, scale, 1.0)
    out = (signals - mean.astype(signals.dtype)) / scale.astype(signals.dtype)
    out[:, ~valid] = 0.0
    return out


FilterMethod = Literal["butterworth", "cosine", "fft"]
FILTERS: tuple[str, ...] = get_args(FilterMethod)


def clean(
    signals,
    *,
    t_r: float | None = None,
    detrend: bool | int = True,
    standardize: StandardizeMethod | None = "zscore_sample",
    confounds=None,
    standardize_confounds: bool = True,
    filter: FilterMethod | None = "butterworth",
    low_pass: float | None = None,
    high_pass: float | None = None,
    sample_mask=None,
    extrapolate: bool = False,
    ensure_finite: bool = False,
    backend: Backend = "numpy",
) -> np.ndarray:
    """Detrend, filter, censor, regress out confounds and standardize, as ``nilearn.signal.clean``.

    The order of operations is nilearn's: detrend -> filter (signals and confounds alike)
    -> confound regression -> standardize. With a ``sample_mask`` and a Butterworth (or FFT)
    filter: censored volumes are first filled by a cubic spline through the kept ones
    (those before the first or after the last kept volume are dropped unless
    ``extrapolate``), then detrend -> filter -> censor -> regress -> standardize. Without a
    filter, or with ``filter="cosine"``, volumes are censored first. ``filter="cosine"``
    adds DCT drift regressors up to ``high_pass`` (computed on the whole run) to the
    confounds instead of filtering.

    Every step before standardization is linear, so they are fused: the steps are applied
    to the identity to give one small (kept, time) matrix, and the data go through one
    matrix product (low-rank when there is no filter: detrending, cosine drifts and
    confounds then are one least-squares projection). The result equals the steps one by
    one up to rounding. With a filter the product costs 2 n operations per sample of a run
    of n volumes: cheaper than SciPy's recursive filter up to about 1,800 volumes on one
    CPU core, dearer beyond (see :data:`~.filters.DENSE_MAX_N`).

    Parameters
    ----------
    signals : array (time, features)
        Not modified. float32 stays float32 (float64 arithmetic), float64 stays float64.
    t_r : float
        Repetition time in seconds; needed by every filter (no default, unlike nilearn's 2.5).
    detrend : bool or int
        True: remove mean and linear trend (nilearn); an int: the polynomial order; False.
    standardize : {"zscore_sample", "zscore", "psc", None}
        As :func:`standardize`; for ``psc`` after detrending or high-pass filtering, the
        mean before cleaning is added back first (nilearn's rule, decided over all
        features together). Features constant over time come out as zeros.
    confounds : array (time,) or (time, n), DataFrame, list of those, or None
        Without NaN (fill fMRIPrep's leading ``n/a`` first).
    standardize_confounds : bool
        True: z-score confounds (the regression then keeps the signal mean unless
        detrending removes it); False: scale them by their maximum absolute value.
    filter : {"butterworth", "cosine", "fft", None}
        ``butterworth``: order-5 zero-phase filter (:func:`~.filters.butterworth`);
        ``fft``: brick-wall FFT band-pass (:func:`~.filters.fft_filter`, not in nilearn);
        ``cosine``: DCT drift regressors (``high_pass`` only). Butterworth and FFT with
        neither cutoff do nothing (nilearn).
    low_pass, high_pass : float or None
        Cutoffs in Hz; positive, ``high_pass < low_pass``.
    sample_mask : bool array (time,) (True: kept) or increasing indices of kept volumes
        The output has exactly the kept volumes, in order.
    extrapolate : bool
        With a filter and a sample mask: extrapolate the spline to censored volumes at the
        ends of the run instead of leaving them out of the filtering.
    ensure_finite : bool
        False: NaN or infinite values raise ValueError (nilearn would return NaN
        features). True: they are replaced by zeros first (nilearn's ``ensure_finite``).
    backend : {"numpy", "jax"}
        Where the data-sized work runs; JAX is imported only when asked for.

    Returns
    -------
    ndarray (kept time points, features)
    """
    x = as_signals(signals)
    n = x.shape[0]
    method = _standardize_method(standardize)
    order = _detrend_order(detrend)
    c = as_confounds(confounds, n)
    kind = _filter_kind(filter, t_r, low_pass, high_pass)
    kept = None if sample_mask is None else sample_indices(sample_mask, n)
    if c is not None and order is None and not standardize_confounds:
        warn(
            "confounds without detrend or standardize_confounds: confounds that are not "
            "demeaned leave the signal mean in the regression (as in nilearn)"
        )
    op = clean_operator(
        n,
        t_r=t_r,
        detrend=order,
        confounds=c,
        standardize_confounds=standardize_confounds,
        filter=kind,
        low_pass=low_pass,
        high_pass=high_pass,
        kept=kept,
        extrapolate=extrapolate,
    )
    return apply_linear(x, op, method, backend=backend, ensure_finite=ensure_finite)


def _standardize_method(standardize) -> str | None:
    if standardize is None or standardize is False:
        return None
    if standardize is True:
        return "zscore_sample"
    if standardize not in METHODS:
        raise ValueError(not_one_of("standardize", standardize, METHODS, " or None"))
    return standardize


def _detrend_order(detrend) -> int | None:
    if detrend is None or detrend is False:
        return None
    if detrend is True:
        return 1
    if isinstance(detrend, int | np.integer) and detrend >= 0:
        return int(detrend)
    raise ValueError(f"detrend: True, False or a polynomial order >= 0; got {detrend!r}")


def _filter_kind(filter, t_r, low_pass, high_pass) -> str | None:
    if filter is None or filter is False:
        if low_pass is not None or high_pass is not None:
            warn("cutoff frequencies given without a filter: not filtering")
        return None
    if filter not in FILTERS:
        raise ValueError(not_one_of("filter", filter, FILTERS, " or None"))
    if filter == "cosine":
        if high_pass is None:
            raise ValueError("filter='cosine' needs high_pass (Hz)")
        if low_pass is not None:
            warn("low_pass is not implemented for filter='cosine': ignored")
    elif low_pass is None and high_pass is None:
        return None
    if t_r is None or not t_r > 0:
        raise ValueError(f"filter={filter!r} needs the repetition time t_r in seconds, got {t_r}")
    return filter


def clean_operator(
    n: int,
    *,
    t_r: float | None = None,
    detrend: int | None = 1,
    confounds: np.ndarray | None = None,
    standardize_confounds: bool = True,
    filter: str | None = None,
    low_pass: float | None = None,
    high_pass: float | None = None,
    kept: np.ndarray | None = None,
    extrapolate: bool = False,
) -> LinearOp:
    """The linear part of :func:`clean` (all but standardization) for a run of ``n`` volumes.

    Arguments as :func:`clean`, already checked: ``detrend`` a polynomial order or None,
    ``confounds`` float64 (n, p) or None, ``kept`` increasing indices or None, ``filter``
    one of ``butterworth``, ``fft``, ``cosine`` or None (nothing to filter).
    """
    if filter in ("butterworth", "fft"):
        return _filtered_operator(n, t_r, detrend, confounds, standardize_confounds, filter,
                                  (low_pass, high_pass), kept, extrapolate)  # fmt: skip
    k = n if kept is None else len(kept)
    conf = confounds
    if filter == "cosine":
        conf = _with_cosines(conf, cosine_drift(n, t_r, high_pass))  # on the whole run
    if conf is not None and kept is not None:
        conf = conf[kept]
    parts = []
    if detrend is not None:
        p = poly_basis(k, detrend)
        parts.append(p)
        if conf is not None:
            conf = conf - p @ (p.T @ conf)
    if conf is not None:
        parts.append(confound_basis(conf, standardize_confounds))
    q = np.hstack(parts) if parts and sum(a.shape[1] for a in parts) else None
    ones = np.ones(k)
    offset = None if detrend is not None else ones if q is None else ones - q @ (q.T @ ones)
    weights = None
    if kept is not None:
        weights = np.zeros(n)
        weights[kept] = 1.0 / k
    return LinearOp(n, rows=kept, basis=q, offset=offset, mean_weights=weights)


def _filtered_operator(
    n, t_r, detrend, confounds, standardize_confounds, filter, band, kept, extrapolate
) -> LinearOp:
    """Dense: interpolate censored volumes -> detrend -> filter -> censor -> regress."""
    interp = rows = None
    start, stop = 0, n
    if kept is not None:
        if not extrapolate:
            start, stop = int(kept[0]), int(kept[-1]) + 1
        interp = interpolation_matrix(n, kept, t_r, extrapolate)[start:stop]
        rows = kept - start
    m = stop - start
    lin = np.eye(n) if interp is None else interp
    if detrend is not None:
        p = poly_basis(m, detrend)
        lin = lin - p @ (p.T @ lin)
    if filter == "butterworth":
        f = butterworth_matrix(m, t_r, *band)
    else:
        f = fft_matrix(m, t_r, *band)
    if f is not None:
        lin = f @ lin
    if rows is not None:
        lin = lin[rows]
    if confounds is not None:
        # The confounds go through the same interpolation, detrending, filter and censoring.
        q = confound_basis(lin @ confounds, standardize_confounds)
        lin = lin - q @ (q.T @ lin)
    return LinearOp(
        n,
        dense=lin,
        offset=None if detrend is not None else lin.sum(axis=1),
        mean_weights=None if interp is None else interp.mean(axis=0),
    )


def _with_cosines(confounds: np.ndarray | None, cosines: np.ndarray) -> np.ndarray | None:
    """Cosine drifts appended to the confounds; as nilearn, none when the run is too short
    for one, and none when a confound already correlates above 0.9 with one of them."""
    if cosines.shape[1] == 0:
        warn("no cosine drift below high_pass fits this run: not filtering")
        return confounds
    if confounds is None:
        return cosines
    a = cosines - cosines.mean(axis=0)
    b = confounds - confounds.mean(axis=0)
    norms = np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a.T @ b) / norms
    if (np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0) > 0.9).any():
        warn("the confounds already hold cosine drift terms: using them instead")
        return confounds
    return np.hstack([confounds, cosines])


@dataclass(frozen=True)
class Standardize(SingleKey):
    """Standardize every feature over time; see :func:`standardize`.

    Parameters
    ----------
    method : {"zscore_sample", "zscore", "psc"}
    key : str
        The sample key of the (time, feature) array.
    """

    method: StandardizeMethod = "zscore_sample"
    key: str = "bold"

    name: ClassVar[str] = "standardize"
    demands: ClassVar[Demands] = Demands(memory_factor=2.0, whole_time_axis=True, voxel_blocks=True)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(not_one_of("method", self.method, METHODS))

    def __call__(self, sample: Sample) -> Sample:
        return {**sample, self.key: standardize(sample[self.key], self.method)}
