"""Synthetic datasets with known ground truth.

``generate(out, size="tiny", seed=0)`` writes fMRIPrep-style derivatives (BOLD, brain masks,
confounds with fMRIPrep's columns and metadata) plus a ``truth/`` folder;
``layout="hcp"`` writes the same runs in the HCP S1200 layout, ``surfaces=True`` adds
fsaverage5 GIfTI and CIFTI-2 files; see :mod:`nishard.datasets.synth`.
"""

from .config import SIZES, SynthConfig
from .synth import SynthDataset, generate

__all__ = ["SIZES", "SynthConfig", "SynthDataset", "generate"]
