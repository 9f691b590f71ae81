"""Signal transforms along the time axis: standardization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np

from .base import Demands, Sample, Transform

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
        raise ValueError(f"method one of {', '.join(METHODS)}; got {method!r}")
    scale = np.where(valid, scale, 1.0)
    out = (signals - mean.astype(signals.dtype)) / scale.astype(signals.dtype)
    out[:, ~valid] = 0.0
    return out


@dataclass(frozen=True)
class Standardize(Transform):
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
            raise ValueError(f"method one of {', '.join(METHODS)}; got {self.method!r}")

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key,)

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.key,)

    def __call__(self, sample: Sample) -> Sample:
        return {**sample, self.key: standardize(sample[self.key], self.method)}
