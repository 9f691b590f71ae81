"""Transforms: pure functions on arrays with declared demands, composed by ``assemble``."""

from .base import Demands, Sample, Transform
from .confounds import PRESETS, ConfoundStrategy, get_strategy, read_confounds, select_confounds
from .denoise import Clean, as_strategy
from .filters import butterworth, cosine_drift, detrend, fft_filter, interpolate_censored
from .regression import regress_out
from .signal import Standardize, clean, standardize
from .spatial import Mask, apply_mask

#: Transforms by the name a YAML spec gives them.
TRANSFORMS: dict[str, type[Transform]] = {cls.name: cls for cls in (Mask, Clean, Standardize)}

__all__ = [
    "PRESETS", "TRANSFORMS", "Clean", "ConfoundStrategy", "Demands", "Mask", "Sample",
    "Standardize", "Transform", "apply_mask", "as_strategy", "butterworth", "clean",
    "cosine_drift", "detrend", "fft_filter", "get_strategy", "interpolate_censored",
    "read_confounds", "regress_out", "select_confounds", "standardize",
]  # fmt: skip
