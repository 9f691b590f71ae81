"""GIfTI surfaces and CIFTI grayordinates go through the same Clean step as volumes.

Anchor: nilearn.signal.clean on the arrays nibabel reads from the same files, with the
confounds nilearn's load_confounds gives. Tolerance: 1e-4 on z-scored float32 output.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nilearn.interfaces.fmriprep import load_confounds
from nilearn.signal import clean as nilearn_clean

from nishard.datasets import generate
from nishard.records import Fmriprep, locate
from nishard.transforms import Clean
from nishard.workflow import assemble
from tests.helpers import TINY_RES


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    root = tmp_path_factory.mktemp("surf") / "fmriprep"
    generate(root, "tiny", seed=0, subjects=1, sessions=1, surfaces=True)
    table = locate(root, Fmriprep(res=TINY_RES), stage=["bold", "confounds", "surface", "cifti"])
    return next(iter(table))


def gifti_series(path) -> np.ndarray:
    return np.stack([d.data for d in nib.load(path).darrays]).astype(np.float32)


@pytest.mark.parametrize("kind", ["surface_L", "surface_R", "cifti"])
def test_surface_and_cifti_clean_equal_nilearn(record, kind):
    path = record.files[kind]
    data = np.asarray(nib.load(path).dataobj, np.float32) if kind == "cifti" else gifti_series(path)
    confounds, _ = load_confounds(record.files["bold"], strategy=["motion"], motion="full")
    expected = nilearn_clean(
        data, detrend=True, standardize="zscore_sample", confounds=confounds.to_numpy(),
        low_pass=0.1, high_pass=0.01, t_r=record.metadata["t_r"],
    )  # fmt: skip
    plan = assemble([Clean(key=kind, confounds="24P", low_pass=0.1, high_pass=0.01)])
    assert plan.inputs == (kind, "confounds")
    outcome = plan.run(record)
    assert outcome.error is None
    assert outcome.products[kind].shape == data.shape
    assert np.abs(outcome.products[kind] - expected).max() <= 1e-4


def test_a_broken_surface_file_is_quarantined_by_name(record, tmp_path):
    broken = tmp_path / "broken.func.gii"
    broken.write_bytes(open(record.files["surface_L"], "rb").read()[:500])
    files = {**record.files, "surface_L": str(broken)}
    outcome = assemble([Clean(key="surface_L", filter=None)]).run(
        type(record)(record.id, files, record.metadata)
    )
    assert outcome.products is None
    assert outcome.error.path == str(broken) and "GIfTI" in outcome.error.expected
