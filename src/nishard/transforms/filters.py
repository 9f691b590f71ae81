"""Temporal filters, detrending and interpolation of (time, feature) arrays: pure functions.

Every step here is linear in the signals, so each also has an operator form (``*_matrix``,
``poly_basis``): the step applied to the identity. :func:`nishard.transforms.signal.clean`
multiplies these small (time, time) matrices into one and applies it to the data in a
single pass; the functions below apply one step each, through the same runner.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings

import numpy as np
import scipy.fft
import scipy.signal
from scipy.interpolate import CubicSpline

from .regression import LinearOp, apply_linear, as_signals, column_blocks, float_dtype

_EPS32 = float(np.finfo(np.float32).eps)

#: Runs up to this many volumes are filtered as one dense (n, n) matrix product; longer ones
#: by SciPy's recursive ``sosfiltfilt``. The product costs 2 n operations per sample and
#: the recursion a constant, but the product runs at BLAS speed: on one core (AVX-512) it
#: wins up to about 1,800 volumes (200: 0.32 s vs 2.5 s, 1,200: 7.9 s vs 11.3 s for
#: 235,375 features).
DENSE_MAX_N = 1536


def warn(message: str) -> None:
    """A UserWarning attributed to the first caller outside ``nishard.transforms``."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


# --------------------------------------------------------------------------- detrending


@functools.lru_cache(maxsize=32)
def _poly_basis(n: int, order: int) -> np.ndarray:
    t = np.linspace(-1.0, 1.0, n)
    q, r = np.linalg.qr(np.vander(t, order + 1, increasing=True))
    q *= np.sign(np.diag(r))  # column 0 is +1/sqrt(n)
    q.flags.writeable = False
    return q


def poly_basis(n: int, order: int = 1) -> np.ndarray:
    """Orthonormal (n, order + 1) basis of the polynomials of the volume index up to
    ``order``; column 0 is the constant. Order 1 spans what nilearn's linear detrend removes.
    """
    if order < 0 or order >= n:
        raise ValueError(f"a polynomial order in [0, {n - 1}] for {n} time points, got {order}")
    return _poly_basis(int(n), int(order))


def detrend(signals, order: int = 1) -> np.ndarray:
    """Remove the least-squares polynomial of the volume index of degree ``order``.

    ``order=1`` is nilearn's ``detrend=True`` (mean and linear trend); 0 removes the mean.
    The fit treats time points as evenly spaced (as nilearn does, also after censoring).

    Returns
    -------
    ndarray, same shape; float32 for float32 input (float64 arithmetic). Constant
    features come out as exact zeros.
    """
    x = as_signals(signals)
    op = LinearOp(x.shape[0], basis=poly_basis(x.shape[0], order))
    return apply_linear(x, op)


# --------------------------------------------------------------------------- filters


def _check_band(low_pass: float | None, high_pass: float | None) -> None:
    for name, f in (("low_pass", low_pass), ("high_pass", high_pass)):
        if f is not None and not f > 0:
            raise ValueError(f"{name} must be a positive frequency in Hz, got {f}")
    if low_pass is not None and high_pass is not None and high_pass >= low_pass:
        raise ValueError(f"high_pass ({high_pass} Hz) must be below low_pass ({low_pass} Hz)")


def _check_t_r(t_r: float | None, what: str) -> float:
    if t_r is None or not t_r > 0:
        raise ValueError(f"{what} needs the repetition time t_r in seconds (> 0), got {t_r}")
    return float(t_r)


def butterworth_sos(
    t_r: float, low_pass: float | None = None, high_pass: float | None = None, order: int = 5
) -> np.ndarray | None:
    """Second-order sections of nilearn's Butterworth filter; None when it filters nothing.

    As ``nilearn.signal.butterworth``: a cutoff at or above Nyquist is lowered to
    ``nyq - nyq * 10 * float32 eps`` with a warning; when both cutoffs of a band end up
    equal, the signals pass unfiltered with a warning.
    """
    t_r = _check_t_r(t_r, "butterworth")
    _check_band(low_pass, high_pass)
    fs = 1.0 / t_r
    nyq = fs * 0.5

    def below_nyquist(f: float, kind: str) -> float:
        if f < nyq:
            return f
        lowered = nyq - nyq * 10 * _EPS32
        warn(
            f"the {kind} cutoff {f} Hz is at or above the Nyquist frequency ({nyq} Hz of "
            f"t_r={t_r} s); lowered to {lowered} Hz as nilearn does"
        )
        return lowered

    cutoffs = [
        below_nyquist(f, k)
        for f, k in ((high_pass, "high-pass"), (low_pass, "low-pass"))
        if f is not None
    ]
    if not cutoffs:
        return None
    if len(cutoffs) == 2:
        if cutoffs[0] == cutoffs[1]:
            warn("band-pass cutoffs are equal after clipping: not filtering")
            return None
        btype, wn = "bandpass", cutoffs
    else:
        btype, wn = ("highpass" if high_pass is not None else "lowpass"), cutoffs[0]
    return scipy.signal.butter(order, wn, btype=btype, output="sos", fs=fs)


@functools.lru_cache(maxsize=8)
def _sosfiltfilt_matrix(n: int, sos_bytes: bytes) -> np.ndarray:
    sos = np.frombuffer(sos_bytes).reshape(-1, 6).copy()
    # sosfiltfilt with odd padding of scipy's default length and steady-state initial
    # conditions scaled by the first sample is linear in x: its columns are its responses
    # to the unit impulses.
    m = scipy.signal.sosfiltfilt(sos, np.eye(n), axis=0, padtype="odd")
    m.flags.writeable = False
    return m


def _check_length(n: int, sos: np.ndarray, order: int) -> None:
    """Refuse a run too short for the forward-backward pass, saying so in a user's terms
    (SciPy's own message speaks of ``padlen``)."""
    # scipy.signal.sosfiltfilt's default padding: 3 * (2 * sections + 1 - trailing zeros).
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    padlen = 3 * (2 * len(sos) + 1 - zeros)
    if n <= padlen:
        raise ValueError(
            f"{n} volumes to filter (the run's, less any censored), too few for a "
            f"Butterworth filter of order {order}: it pads {padlen} volumes at each end, so "
            f"it needs more than {padlen}"
        )


def butterworth_matrix(
    n: int, t_r: float, low_pass=None, high_pass=None, order: int = 5
) -> np.ndarray | None:
    """The (n, n) matrix of :func:`butterworth` for runs of ``n`` volumes (None: identity)."""
    sos = butterworth_sos(t_r, low_pass, high_pass, order)
    if sos is None:
        return None
    _check_length(int(n), sos, order)
    return _sosfiltfilt_matrix(int(n), np.ascontiguousarray(sos).tobytes())


def butterworth(
    signals,
    t_r: float,
    low_pass: float | None = None,
    high_pass: float | None = None,
    order: int = 5,
) -> np.ndarray:
    """Zero-phase Butterworth low-, high- or band-pass filter, as nilearn's ``butterworth``.

    ``scipy.signal.butter`` of ``order`` (5) as second-order sections, run forward and
    backward (``sosfiltfilt``) with odd padding of SciPy's default length; cutoffs in Hz,
    the sampling rate ``1 / t_r``. Runs of up to :data:`DENSE_MAX_N` volumes go through the
    filter's (n, n) matrix, longer ones through ``sosfiltfilt`` itself; both in float64.

    Returns
    -------
    ndarray, same shape; float32 for float32 input.
    """
    x = as_signals(signals)
    sos = butterworth_sos(t_r, low_pass, high_pass, order)
    if sos is None:
        return x.astype(float_dtype(x.dtype))
    n = x.shape[0]
    _check_length(n, sos, order)
    if n <= DENSE_MAX_N:
        m = _sosfiltfilt_matrix(n, np.ascontiguousarray(sos).tobytes())
        return apply_linear(x, LinearOp(n, dense=m, offset=m.sum(axis=1)))
    out = np.empty(x.shape, float_dtype(x.dtype))
    for cols in column_blocks(*x.shape):
        out[:, cols] = scipy.signal.sosfiltfilt(sos, x[:, cols].astype(np.float64), axis=0)
    return out


def fft_filter(
    signals, t_r: float, low_pass: float | None = None, high_pass: float | None = None
) -> np.ndarray:
    """Brick-wall band-pass by FFT: keep the Fourier components with
    ``high_pass <= f <= low_pass`` Hz, zero the others (no taper, no padding).

    A reference filter with no transition band: ideal in the frequency domain, but it
    treats the run as periodic (detrend first, or the jump from the last volume to the
    first rings through the run) and its response to a step rings. Not in nilearn.
    ``high_pass`` (any, > 0) removes the mean; ``low_pass`` at or above Nyquist keeps
    every frequency up to Nyquist.

    Returns
    -------
    ndarray, same shape; float32 for float32 input (float64 transforms).
    """
    x = as_signals(signals)
    keep = _fft_keep(x.shape[0], t_r, low_pass, high_pass)
    out = np.empty(x.shape, float_dtype(x.dtype))
    for cols in column_blocks(*x.shape):
        spectrum = scipy.fft.rfft(x[:, cols].astype(np.float64), axis=0)
        spectrum[~keep] = 0.0
        out[:, cols] = scipy.fft.irfft(spectrum, n=x.shape[0], axis=0)
    return out


def _fft_keep(n: int, t_r: float, low_pass, high_pass) -> np.ndarray:
    t_r = _check_t_r(t_r, "fft_filter")
    _check_band(low_pass, high_pass)
    f = scipy.fft.rfftfreq(n, d=t_r)
    keep = np.ones(f.shape, bool)
    if high_pass is not None:
        keep &= f >= high_pass
    if low_pass is not None:
        keep &= f <= low_pass
    return keep


def fft_matrix(n: int, t_r: float, low_pass=None, high_pass=None) -> np.ndarray | None:
    """The (n, n) matrix of :func:`fft_filter` (None when both cutoffs are None)."""
    if low_pass is None and high_pass is None:
        return None
    keep = _fft_keep(n, t_r, low_pass, high_pass)
    spectrum = scipy.fft.rfft(np.eye(n), axis=0)
    spectrum[~keep] = 0.0
    return scipy.fft.irfft(spectrum, n=n, axis=0)


def cosine_drift(n: int, t_r: float, high_pass: float) -> np.ndarray:
    """Discrete cosine (DCT-II) drift regressors up to ``high_pass`` Hz, without the constant.

    Column ``k - 1`` is ``sqrt(2 / n) cos(pi k (i + 0.5) / n)`` over volumes ``i``, for
    ``k = 1 .. K`` with ``K = min(n - 1, floor(2 n high_pass dt))``, as nilearn's
    ``create_cosine_drift`` (whose constant column ``clean`` drops). Regressing these out
    is the high-pass of ``filter="cosine"``.

    Returns
    -------
    ndarray (n, K) float64; K may be 0.
    """
    t_r = _check_t_r(t_r, "cosine_drift")
    if n < 2:
        raise ValueError(f"at least 2 time points for cosine drifts, got {n}")
    _check_band(None, high_pass)
    # dt as nilearn derives it from frame times (first to last over n - 1), so that the
    # floor below agrees with it to the last bit.
    dt = ((n - 1) * t_r) / (n - 1)
    if high_pass * dt >= 0.5:
        warn(f"high_pass={high_pass} Hz reaches Nyquist: the cosines span every frequency")
    k_max = min(n - 1, int(np.floor(2 * n * high_pass * dt)))
    i = np.arange(n)[:, None] + 0.5
    k = np.arange(1, k_max + 1)[None, :]
    return np.sqrt(2.0 / n) * np.cos(np.pi / n * i * k)


# --------------------------------------------------------------------------- censoring


def sample_indices(sample_mask, n: int) -> np.ndarray:
    """Indices of the kept volumes: from a boolean mask of ``n`` (True: kept) or from
    strictly increasing integer indices in ``[0, n)``."""
    m = np.asarray(sample_mask)
    if m.ndim != 1:
        raise ValueError(f"sample_mask must be 1D, got shape {m.shape}")
    if m.dtype == bool:
        if m.size != n:
            raise ValueError(f"a boolean sample_mask of {n} volumes, got {m.size}")
        idx = np.flatnonzero(m)
    elif m.dtype.kind in "iu" or m.size == 0:
        idx = m.astype(np.intp)
        if idx.size and (idx[0] < 0 or idx[-1] >= n or (np.diff(idx) <= 0).any()):
            raise ValueError(f"sample_mask indices must increase strictly within [0, {n})")
    else:
        raise ValueError(f"a boolean or integer sample_mask, got dtype {m.dtype}")
    if idx.size == 0:
        raise ValueError("sample_mask removes every volume")
    return idx


def interpolation_matrix(
    n: int, kept: np.ndarray, t_r: float = 1.0, extrapolate: bool = False
) -> np.ndarray:
    """(n, n) matrix that keeps the ``kept`` volumes and fills the others with the
    not-a-knot cubic spline through them (the rows of censored volumes before the first or
    after the last kept one are NaN unless ``extrapolate``)."""
    if len(kept) < 2:
        raise ValueError("at least 2 kept volumes to interpolate censored ones")
    t = np.arange(n) * _check_t_r(t_r, "interpolation")
    censored = np.setdiff1d(np.arange(n), kept)
    m = np.eye(n)
    if censored.size:
        spline = CubicSpline(t[kept], np.eye(len(kept)), extrapolate=extrapolate)
        m[censored] = 0.0
        m[np.ix_(censored, kept)] = spline(t[censored])
    return m


def interpolate_censored(
    signals, sample_mask, t_r: float = 1.0, extrapolate: bool = False
) -> np.ndarray:
    """Censored volumes replaced by the cubic spline through the kept ones, as nilearn's
    ``clean`` does before a Butterworth filter.

    Parameters
    ----------
    signals : array (time, features)
    sample_mask : bool array (time,), True for kept volumes, or increasing kept indices
    t_r : float
        Spacing of volumes; a cubic spline on an even grid does not depend on it.
    extrapolate : bool
        False (nilearn's default): censored volumes before the first or after the last
        kept one cannot be interpolated and come out as NaN (``clean`` drops them).

    Returns
    -------
    ndarray, same shape; float32 for float32 input.
    """
    x = as_signals(signals)
    kept = sample_indices(sample_mask, x.shape[0])
    m = interpolation_matrix(x.shape[0], kept, t_r, extrapolate)
    outside = np.isnan(m).any(axis=1)  # censored volumes beyond the kept ones
    m[outside] = 0.0
    out = apply_linear(x, LinearOp(x.shape[0], dense=m, offset=m.sum(axis=1)))
    out[outside] = np.nan
    return out
