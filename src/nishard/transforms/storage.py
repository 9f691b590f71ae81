"""What a sample looks like on disk: cropped runs, fixed-length windows, compact dtypes.

Time is the first axis of a (time, features) array, as after ``mask``, and the last axis
of a 4D (x, y, z, time) image, as NIfTI stores it; :func:`crop` takes either, :func:`windows`
a (time, features) array only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import ml_dtypes
import numpy as np

from ..registry import not_one_of
from .base import ArraySpec, Demands, Sample, SingleKey, Transform

CastDtype = Literal["float32", "float16", "bfloat16"]
CAST_DTYPES: tuple[str, ...] = get_args(CastDtype)


def time_axis(array: np.ndarray) -> int:
    """The time axis of a sample array: 0 for (time, ...), 3 for a 4D (x, y, z, time) image."""
    if array.ndim == 4:
        return 3
    if array.ndim in (1, 2):
        return 0
    raise ValueError(
        f"a (time, features) array or a 4D (x, y, z, time) image, got shape {array.shape}"
    )


def crop(array: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Volumes ``start`` up to (not including) ``stop``, counted as in a Python slice.

    Parameters
    ----------
    array : ndarray, shape (time, ...) or (x, y, z, time)
    start, stop : int
        Negative values count from the end; ``stop=None`` is the end of the run.

    Returns
    -------
    ndarray
        A contiguous copy, so the cropped-away volumes are freed with the input.

    Raises
    ------
    ValueError
        When the run is too short for the range (Python's slice would quietly return fewer
        volumes, and shards of unequal length would follow), or the range is empty.
    """
    axis = time_axis(array)
    n = array.shape[axis]
    first = start + n if start < 0 else start
    end = n if stop is None else stop + n if stop < 0 else stop
    if first < 0 or end > n:
        raise ValueError(
            f"crop [{start}:{'' if stop is None else stop}] needs more volumes than the run's {n}"
        )
    if first >= end:
        raise ValueError(
            f"crop [{start}:{'' if stop is None else stop}] of a run of {n} volumes is empty"
        )
    index = [slice(None)] * array.ndim
    index[axis] = slice(first, end)
    return np.array(array[tuple(index)], order="C")


def windows(array: np.ndarray, length: int, step: int | None = None) -> np.ndarray:
    """Windows of ``length`` volumes every ``step`` volumes; the incomplete tail is dropped.

    Parameters
    ----------
    array : ndarray, shape (time, features)
    length : int
        Volumes per window, >= 1.
    step : int or None
        Volumes between window starts, >= 1; None: ``length`` (windows side by side).

    Returns
    -------
    ndarray, shape (n_windows, length, features)
        ``n_windows = (time - length) // step + 1``; window ``i`` is
        ``array[i * step : i * step + length]``. A contiguous copy.
    """
    step = length if step is None else step
    _check_window(length, step)
    if array.ndim != 2:
        raise ValueError(f"windows of a (time, features) array, got shape {array.shape}")
    n = array.shape[0]
    if n < length:
        raise ValueError(f"a window of {length} volumes is longer than the run's {n}")
    view = np.lib.stride_tricks.sliding_window_view(array, length, axis=0)[::step]
    # sliding_window_view puts the window axis last: (n_windows, features, length).
    return np.array(view.transpose(0, 2, 1), order="C")


def cast(array: np.ndarray, dtype: CastDtype) -> np.ndarray:
    """``array`` in ``dtype`` (rounded to nearest), refusing values the dtype cannot hold.

    Parameters
    ----------
    array : ndarray
    dtype : {"float32", "float16", "bfloat16"}
        bfloat16 is ``ml_dtypes.bfloat16`` (8 bits of mantissa, float32's range); float16
        holds magnitudes up to 65504 and rounds those under about 6e-8 to zero.

    Returns
    -------
    ndarray of ``dtype``

    Raises
    ------
    ValueError
        When finite values would become infinite (float16 above 65504, or float64 values
        beyond float32's range); NaN and infinities already there are kept.
    """
    target = _dtype(dtype)
    array = np.asarray(array)
    with np.errstate(over="ignore"):  # reported below, with the values that overflow
        out = array.astype(target)
    overflow = np.isinf(out) & np.isfinite(array)
    if overflow.any():
        biggest = float(np.abs(array[overflow]).max())
        limit = float(ml_dtypes.finfo(target).max)
        raise ValueError(
            f"{int(overflow.sum())} values overflow {dtype} (largest magnitude {biggest:g}, "
            f"{dtype} holds up to {limit:g}); scale the data first (a standardize step)"
        )
    return out


def _dtype(name: str) -> np.dtype:
    if name not in CAST_DTYPES:
        raise ValueError(not_one_of("dtype", name, CAST_DTYPES))
    return np.dtype(ml_dtypes.bfloat16 if name == "bfloat16" else name)


def _check_window(length: int, step: int) -> None:
    for label, value in (("length", length), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"window {label} must be a positive number of volumes, got {value!r}")


@dataclass(frozen=True)
class Crop(SingleKey):
    """Keep volumes ``start`` to ``stop`` of a run; see :func:`crop`.

    Parameters
    ----------
    start, stop : int
        Volumes, counted as in a Python slice (negative from the end); ``stop`` None: the
        end of the run. A run shorter than the range is an error, not a shorter sample.
    key : str
        The sample key of the (time, features) array or 4D image.
    """

    start: int = 0
    stop: int | None = None
    key: str = "bold"

    name: ClassVar[str] = "crop"
    demands: ClassVar[Demands] = Demands(memory_factor=2.0, whole_time_axis=True, voxel_blocks=True)

    def __post_init__(self) -> None:
        for label, value in (("start", self.start), ("stop", self.stop)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{label} must be an integer number of volumes, got {value!r}")
        same_sign = self.stop is not None and (self.start < 0) == (self.stop < 0)
        if same_sign and self.start >= self.stop:
            raise ValueError(f"crop [{self.start}:{self.stop}] is empty")

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        image = specs[self.key]
        if len(image.shape) not in (1, 2, 4):
            return {self.key: image}  # refused when it runs
        axis = 3 if len(image.shape) == 4 else 0
        # A Python slice's length: a run too short is refused when it runs, bound it here.
        kept = len(range(*slice(self.start, self.stop).indices(image.shape[axis])))
        shape = list(image.shape)
        shape[axis] = kept
        return {self.key: ArraySpec(tuple(shape), image.dtype)}

    def __call__(self, sample: Sample) -> Sample:
        return {**sample, self.key: crop(sample[self.key], self.start, self.stop)}


@dataclass(frozen=True)
class Windows(SingleKey):
    """Cut a (time, features) run into (n_windows, length, features); see :func:`windows`.

    Parameters
    ----------
    length : int
        Volumes per window.
    step : int or None
        Volumes between window starts; None: ``length``.
    key : str
    """

    length: int
    step: int | None = None
    key: str = "bold"

    name: ClassVar[str] = "windows"

    def __post_init__(self) -> None:
        _check_window(self.length, self.length if self.step is None else self.step)

    @property
    def demands(self) -> Demands:  # type: ignore[override]
        # Overlapping windows repeat volumes: the output is up to length / step times the
        # input, and both are held while the copy is made.
        step = self.length if self.step is None else self.step
        return Demands(
            memory_factor=1.0 + max(1.0, self.length / step),
            whole_time_axis=True,
            voxel_blocks=True,
        )

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        series = specs[self.key]
        if len(series.shape) != 2:
            return {self.key: series}  # refused when it runs
        step = self.length if self.step is None else self.step
        n = max(0, (series.shape[0] - self.length) // step + 1)
        return {self.key: ArraySpec((n, self.length, series.shape[1]), series.dtype)}

    def __call__(self, sample: Sample) -> Sample:
        return {**sample, self.key: windows(sample[self.key], self.length, self.step)}


@dataclass(frozen=True)
class Cast(Transform):
    """Store arrays in a compact float dtype; see :func:`cast`.

    Parameters
    ----------
    dtype : {"float32", "float16", "bfloat16"}
    keys : tuple of str
        The sample keys to cast; a single string is read as one key.
    """

    dtype: CastDtype = "float32"
    keys: tuple[str, ...] = ("bold",)

    name: ClassVar[str] = "cast"
    demands: ClassVar[Demands] = Demands(
        memory_factor=1.5, whole_time_axis=False, voxel_blocks=True
    )

    def __post_init__(self) -> None:
        _dtype(self.dtype)
        keys = (self.keys,) if isinstance(self.keys, str) else tuple(self.keys)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"keys: one or more sample keys, got {self.keys!r}")
        object.__setattr__(self, "keys", keys)

    @property
    def reads(self) -> tuple[str, ...]:
        return self.keys

    @property
    def writes(self) -> tuple[str, ...]:
        return self.keys

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        return {key: ArraySpec(specs[key].shape, self.dtype) for key in self.keys}

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        for key in self.keys:
            try:
                out[key] = cast(sample[key], self.dtype)
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from err
        return out
