"""The Clean transform: a record's confounds, TR and censoring applied by :func:`clean`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from ..errors import SampleError
from ..registry import not_one_of
from .base import ArraySpec, Demands, Sample, Transform
from .confounds import ConfoundStrategy, get_strategy, select_confounds
from .regression import BACKENDS, numpy_block_bytes
from .signal import FILTERS, METHODS, clean


def as_strategy(value: ConfoundStrategy | str | Mapping | None) -> ConfoundStrategy | None:
    """A confound strategy from a preset name, a mapping of its fields, or a strategy.

    A mapping may name its preset under ``strategy`` (or ``name``); its other keys change
    fields of that preset, as ``{"strategy": "simple", "global_signal": "basic"}``.
    """
    if value is None or isinstance(value, ConfoundStrategy):
        return value
    if isinstance(value, str):
        return get_strategy(value)
    if isinstance(value, Mapping):
        options = dict(value)
        name = options.pop("strategy", None) or options.pop("name", "custom")
        options.pop("name", None)
        listed = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        known = {f.name for f in fields(ConfoundStrategy)}
        unknown = sorted(set(listed) - known)
        if unknown:
            raise ValueError(
                f"unknown confound option(s) {', '.join(unknown)}; known: strategy, "
                f"{', '.join(sorted(known - {'name'}))}"
            )
        return get_strategy(name, **listed)
    raise ValueError(f"confounds: a strategy name or a mapping of options, got {value!r}")


def run_tr(meta: Mapping[str, Any]) -> float:
    """The record's repetition time in seconds, from its metadata (``t_r``).

    Raises
    ------
    SampleError
        When the BOLD sidecar and header gave none, or the run's volumes are irregularly
        timed (``VolumeTiming``), which a filter or cosine drift cannot take.
    """
    t_r = meta.get("t_r")
    if meta.get("t_r_source") == "volume_timing":
        raise SampleError(
            "bold",
            "a regular RepetitionTime (filtering and detrending by frequency need one)",
            "irregular VolumeTiming and no RepetitionTime in the sidecar",
        )
    if not isinstance(t_r, int | float) or isinstance(t_r, bool) or not math.isfinite(t_r):
        raise SampleError(
            "bold",
            "a RepetitionTime (s) in the BOLD sidecar or NIfTI header",
            "none in either" if t_r is None else f"{t_r!r}",
        )
    if t_r <= 0:
        raise SampleError("bold", "a positive RepetitionTime (s)", f"{t_r!r}")
    return float(t_r)


@dataclass(frozen=True)
class Clean(Transform):
    """Detrend, filter, censor, regress out confounds and standardize, as nilearn does.

    The step nilearn's maskers run after extraction (``NiftiMasker(detrend=..., low_pass=...,
    high_pass=..., t_r=..., standardize=...)`` with ``confounds`` and ``sample_mask``), on
    any (time, feature) array: voxels after :class:`~.spatial.Mask`, regions after a
    parcellation, surface vertices or CIFTI grayordinates. Every linear step is fused into
    one operator applied in a single pass over the data (see :func:`~.signal.clean`).

    Parameters
    ----------
    detrend : bool or int
        True: mean and linear trend; an int: polynomial order; False: none.
    standardize : {"zscore_sample", "zscore", "psc", None}
    filter : {"butterworth", "cosine", "fft", None}
    low_pass, high_pass : float or None
        Cutoffs in Hz.
    t_r : float or None
        Repetition time in seconds; None (default) takes each record's own (its BOLD
        sidecar's ``RepetitionTime``, else the NIfTI header), an error when it has none.
    confounds : str, mapping or None
        A strategy of the record's fMRIPrep confounds file (see :func:`as_strategy`):
        ``"simple"``, ``"scrubbing"``, ``"compcor"``, ``"24P"``, ``"36P"``, or options such as
        ``{strategy: simple, global_signal: basic}`` or ``{columns: [csf, white_matter]}``.
        Censoring (``scrub``, non-steady-state volumes) removes volumes from the output and
        writes the indices of the kept ones under ``volumes``.
    standardize_confounds, extrapolate, ensure_finite : bool
        As in :func:`~.signal.clean`.
    backend : {"numpy", "jax"}
    key : str
        The sample key of the (time, feature) array.
    confounds_file : str
        The staged kind the confounds come from: ``confounds`` (fMRIPrep's table) or
        ``movement`` (HCP's ``Movement_Regressors.txt``, motion strategies only).
    """

    detrend: bool | int = True
    standardize: str | None = "zscore_sample"
    filter: str | None = "butterworth"
    low_pass: float | None = None
    high_pass: float | None = None
    t_r: float | None = None
    confounds: ConfoundStrategy | str | Mapping | None = None
    standardize_confounds: bool = True
    extrapolate: bool = False
    ensure_finite: bool = False
    backend: str = "numpy"
    key: str = "bold"
    confounds_file: str = "confounds"

    name: ClassVar[str] = "clean"

    def __post_init__(self) -> None:
        object.__setattr__(self, "confounds", as_strategy(self.confounds))
        if self.standardize not in (None, *METHODS):
            raise ValueError(not_one_of("standardize", self.standardize, METHODS, " or null"))
        if self.filter not in (None, *FILTERS):
            raise ValueError(not_one_of("filter", self.filter, FILTERS, " or null"))
        if self.backend not in BACKENDS:
            raise ValueError(not_one_of("backend", self.backend, BACKENDS))
        for cutoff in ("low_pass", "high_pass", "t_r"):
            value = getattr(self, cutoff)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{cutoff} a positive number (Hz or s) or null, got {value!r}")
        if self.low_pass and self.high_pass and self.high_pass >= self.low_pass:
            raise ValueError(
                f"high_pass {self.high_pass} Hz must be below low_pass {self.low_pass} Hz"
            )

    @property
    def demands(self) -> Demands:  # type: ignore[override]
        # The factor is the JAX runner's (input, output and its blocks: 3x the input); the
        # NumPy runner's memory has a model of its own (working_memory). The operator is
        # (time x time): each feature needs the whole time axis, but features stream.
        return Demands(
            memory_factor=3.0, whole_time_axis=True, voxel_blocks=True, backend=self.backend
        )

    def working_memory(self, specs: Mapping[str, ArraySpec]) -> int | None:
        """The NumPy runner's peak: input, output and three float64 column blocks (8 MiB
        each, or the whole array in float64 when smaller; measured), which no multiple of
        the input describes: small beside a 2 mm run's series, six times a small float32 one."""
        if self.backend != "numpy" or self.key not in specs:
            return None
        signals = specs[self.key]
        blocks = 3 * numpy_block_bytes(signals.shape[0], math.prod(signals.shape[1:]))
        return 2 * signals.nbytes + blocks

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key, self.confounds_file) if self.confounds is not None else (self.key,)

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.key, "volumes") if self.confounds is not None else (self.key,)

    def infer(self, specs: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
        signals = specs[self.key]
        out = {self.key: ArraySpec(signals.shape, signals.dtype)}  # censoring only shortens
        if self.confounds is not None:
            out["volumes"] = ArraySpec(signals.shape[:1], "int32")
        return out

    def __call__(self, sample: Sample) -> Sample:
        signals = sample[self.key]
        if signals.ndim != 2:
            raise SampleError(
                self.key, "a (time, feature) array (mask or parcellate first)",
                f"shape {signals.shape}",
            )  # fmt: skip
        n = signals.shape[0]
        needs_tr = self.filter is not None and (self.low_pass or self.high_pass)
        t_r = self.t_r if self.t_r is not None else run_tr(sample["meta"]) if needs_tr else None
        regressors = kept = None
        if self.confounds is not None:
            table, metadata = sample[self.confounds_file]
            try:
                regressors, _, kept = select_confounds(table, metadata, self.confounds, n)
            except ValueError as err:
                expected = f"confounds for strategy {self.confounds.name!r}"
                raise SampleError(self.confounds_file, expected, str(err)) from err
            _check_degrees_of_freedom(regressors, n if kept is None else len(kept), self)
        try:
            out = clean(
                signals, t_r=t_r, detrend=self.detrend, standardize=self.standardize,
                confounds=regressors, standardize_confounds=self.standardize_confounds,
                filter=self.filter, low_pass=self.low_pass, high_pass=self.high_pass,
                sample_mask=kept, extrapolate=self.extrapolate,
                ensure_finite=self.ensure_finite, backend=self.backend,
            )  # fmt: skip
        except ValueError as err:  # NaN in the data, a run too short for the filter
            raise SampleError(self.key, "signals clean can process", str(err)) from err
        products = {self.key: out}
        if self.confounds is not None:
            volumes = np.arange(n) if kept is None else np.asarray(kept)
            products["volumes"] = volumes.astype(np.int32)
        return {**sample, **products}


def _check_degrees_of_freedom(regressors: np.ndarray, kept: int, step: Clean) -> None:
    """Refuse confounds that, with the mean and the trend removed beside them, use every
    kept volume when the result is standardized: the residual is then zero up to
    rounding, and standardizing scales that rounding up to look like data (nilearn does
    so without a word). Unstandardized, the zeros are written: they show for what they are.
    """
    trend = 2 if step.detrend else 1  # the mean is always removed (demeaning)
    used = regressors.shape[1] + trend
    if step.standardize is not None and used >= kept:
        what = "the mean and linear trend" if step.detrend else "the mean"
        raise SampleError(
            step.confounds_file,
            f"fewer regressors than kept volumes for strategy {step.confounds.name!r}",
            f"{regressors.shape[1]} confound regressors and {what} for {kept} kept volumes: "
            "no degree of freedom is left, standardizing would scale rounding noise up",
        )
