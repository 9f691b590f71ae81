"""Shared fixtures: the tiny synthetic dataset and an atlas of it, made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
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


@pytest.fixture(scope="session")
def atlas(tiny, tmp_path_factory) -> str:
    """Labels atlas: the argmax of the dataset's true networks where one exceeds 0.2."""
    maps = nib.load(tiny / "truth" / "networks.nii.gz")
    data = maps.get_fdata()
    labels = np.where(data.max(axis=3) > 0.2, data.argmax(axis=3) + 1, 0).astype(np.int16)
    path = tmp_path_factory.mktemp("atlas") / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, maps.affine), path)
    return str(path)
