"""Transforms: pure functions on arrays with declared demands, composed by ``assemble``."""

from .base import Demands, Sample, Transform
from .signal import Standardize, standardize
from .spatial import Mask, apply_mask

#: Transforms by the name a YAML spec gives them.
TRANSFORMS: dict[str, type[Transform]] = {cls.name: cls for cls in (Mask, Standardize)}

__all__ = [
    "TRANSFORMS", "Demands", "Mask", "Sample", "Standardize", "Transform", "apply_mask",
    "standardize",
]  # fmt: skip
