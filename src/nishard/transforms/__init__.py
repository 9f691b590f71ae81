"""Transforms: pure functions on arrays with declared demands, composed by ``assemble``.

One module per family: spatial (mask), parcellation (labels and maps atlases), smoothing,
resampling; signal (standardize, clean), filters, regression, confounds (strategies),
denoise (the Clean step); connectivity; storage (crop, windows, cast).
"""

from ..imageio.resampling import resample_to_grid
from ..registry import Registry
from .base import ArraySpec, Demands, Sample, Transform
from .confounds import PRESETS, ConfoundStrategy, get_strategy, read_confounds, select_confounds
from .connectivity import Connectivity, connectivity, ledoit_wolf, sym_to_vec, vec_to_sym
from .denoise import Clean, as_strategy
from .filters import butterworth, cosine_drift, detrend, fft_filter, interpolate_censored
from .parcellation import Maps, Parcellate, label_signals, map_signals
from .regression import regress_out
from .signal import Standardize, clean, standardize
from .smoothing import Smooth, smooth
from .spatial import Mask, apply_mask
from .storage import Cast, Crop, Windows, cast, crop, windows

#: Transforms by the name a YAML spec gives them.
_CLASSES = (Mask, Smooth, Parcellate, Maps, Clean, Standardize, Connectivity, Crop, Windows, Cast)
TRANSFORMS: Registry = Registry("transform", _CLASSES, key=None)

__all__ = [
    "PRESETS", "TRANSFORMS", "ArraySpec", "Cast", "Clean", "ConfoundStrategy", "Connectivity",
    "Crop", "Demands", "Maps", "Mask", "Parcellate", "Sample", "Smooth", "Standardize",
    "Transform", "Windows", "apply_mask", "as_strategy", "butterworth", "cast", "clean",
    "connectivity", "cosine_drift", "crop", "detrend", "fft_filter", "get_strategy",
    "interpolate_censored", "label_signals", "ledoit_wolf", "map_signals", "read_confounds",
    "regress_out", "resample_to_grid", "select_confounds", "smooth", "standardize",
    "sym_to_vec", "vec_to_sym", "windows",
]  # fmt: skip
