"""Fixtures shared by the tests of the synthetic datasets."""

from __future__ import annotations

import pytest

from nishard.datasets import SynthDataset, generate


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthDataset:
    """The ``tiny`` fMRIPrep dataset, seed 0 (read-only)."""
    return generate(tmp_path_factory.mktemp("tiny"), "tiny", seed=0)
