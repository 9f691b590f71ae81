"""The demo: a leaf above the library, which nothing in the library imports.

:func:`run_demo` (``nishard demo``) generates the synthetic fMRIPrep dataset, builds its
shards from a spec, reads them back, trains a tiny classifier of diagnosis on the
connectivity shards (:mod:`.classifier`) and learns the networks from the voxel shards
(CanICA).
"""

from __future__ import annotations

from .run import CLEAN, LEARN_BUDGET, N_COMPONENTS, demo_spec, read_back, run_demo

__all__ = ["CLEAN", "LEARN_BUDGET", "N_COMPONENTS", "demo_spec", "read_back", "run_demo"]
