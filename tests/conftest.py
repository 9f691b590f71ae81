"""Shared fixtures: the tiny synthetic dataset, made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nishard.datasets import generate


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """A read-only tiny dataset: do not modify it, copy it (``tiny_copy``) instead."""
    root = tmp_path_factory.mktemp("tiny") / "fmriprep"
    generate(root, size="tiny", seed=0)
    return root


@pytest.fixture
def tiny_copy(tiny, tmp_path) -> Path:
    """A private copy of the tiny dataset that a test may break."""
    return Path(shutil.copytree(tiny, tmp_path / "fmriprep"))
