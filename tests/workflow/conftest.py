"""Fixtures of the plan, fusion, cache and drawing tests: a tiny record and a labels atlas."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from nishard.records.table import Record
from tests.workflow.dags import records


@pytest.fixture(scope="session")
def record(tiny) -> Record:
    return records(tiny)[0]


@pytest.fixture(scope="session")
def atlas(tiny, tmp_path_factory) -> str:
    """Labels atlas: the argmax of the dataset's true networks where one exceeds 0.2."""
    maps = nib.load(tiny / "truth" / "networks.nii.gz")
    data = maps.get_fdata()
    labels = np.where(data.max(axis=3) > 0.2, data.argmax(axis=3) + 1, 0).astype(np.int16)
    path = tmp_path_factory.mktemp("atlas") / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, maps.affine), path)
    return str(path)
