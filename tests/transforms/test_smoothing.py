"""Smooth equals nilearn.image.smooth_img and a masker's smoothing_fwhm."""

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import smooth_img
from nilearn.maskers import NiftiMasker

from nishard.errors import SampleError
from nishard.transforms.smoothing import Smooth, smooth, voxel_sigmas
from nishard.transforms.spatial import Mask
from tests.helpers import bold_files

#: The same scipy filters on the same float32 values: equal up to float32 rounding.
RTOL = 1e-6


def _anisotropic(seed=0):
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((12, 10, 8, 5)) + 100).astype(np.float32)
    affine = np.array([[-2.0, 0, 0, 30], [0, 3.0, 0, -20], [0, 0, 4.0, -10], [0, 0, 0, 1]])
    return data, affine


@pytest.mark.parametrize("fwhm", [6.0, (4.0, 0.0, 8.0), "fast"])
def test_equals_smooth_img(fwhm):
    data, affine = _anisotropic()
    expected = smooth_img(nib.Nifti1Image(data, affine), fwhm).get_fdata(dtype=np.float32)
    ours = smooth(data, affine, fwhm)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=0)
    assert np.abs(ours - data).max() > 1  # it smoothed


def test_sigmas_come_from_the_voxel_sizes():
    _, affine = _anisotropic()
    np.testing.assert_allclose(voxel_sigmas(affine, 6.0) * [2, 3, 4], 6 / np.sqrt(8 * np.log(2)))


def test_nan_voxels_become_zeros_first_as_nilearn():
    data, affine = _anisotropic()
    data[3, 4, 5, :] = np.nan
    data[0, 0, 0, 2] = np.inf
    expected = smooth_img(nib.Nifti1Image(data, affine), 5.0).get_fdata(dtype=np.float32)
    ours = smooth(data, affine, 5.0)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=0)
    assert np.isnan(data[3, 4, 5]).all()  # the input is not modified
    spread = smooth(data, affine, 5.0, ensure_finite=False)
    assert np.isnan(spread[3, 5, 5, 0]) and np.isfinite(spread[11, 0, 0, 0])


def test_smooth_then_mask_equals_nifti_masker_smoothing(tiny):
    bold = bold_files(tiny)[0]
    mask = str(bold).replace("_desc-preproc_bold", "_desc-brain_mask")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = NiftiMasker(mask_img=mask, smoothing_fwhm=10.0).fit_transform(str(bold))
    img = nib.load(bold)
    sample = {
        "bold": np.asarray(img.dataobj, dtype=np.float32),
        "affine": img.affine,
        "mask": nib.load(mask).get_fdata() > 0,
    }
    ours = Mask()(Smooth(fwhm=10.0)(sample))["bold"]
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=0)


def test_surface_data_is_refused():
    sample = {"bold": np.zeros((20, 10242), np.float32), "affine": np.eye(4)}
    with pytest.raises(SampleError, match="surface data"):
        Smooth(fwhm=4.0)(sample)


def test_needs_the_affine():
    with pytest.raises(SampleError, match="affine"):
        Smooth(fwhm=4.0)({"bold": np.zeros((3, 3, 3, 2), np.float32)})


@pytest.mark.parametrize("fwhm", [-1.0, "slow", (1.0, 2.0), 0.0, (0, 0, 0), True])
def test_bad_fwhm_is_refused(fwhm):
    with pytest.raises(ValueError, match="fwhm"):
        Smooth(fwhm=fwhm)


def test_declares_its_keys():
    step = Smooth(fwhm=(6.0, 6.0, 6.0), key="x")
    assert step.reads == ("x",) and step.writes == ("x",)
    assert step.to_dict() == {
        "smooth": {"fwhm": (6.0, 6.0, 6.0), "ensure_finite": True, "key": "x"}
    }
