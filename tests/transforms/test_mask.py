"""Masking equals nilearn's NiftiMasker, voxel for voxel, on the synthetic dataset's real files."""

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker

from nishard.transforms import Mask, apply_mask
from tests.helpers import bold_files


def test_equals_nifti_masker(tiny):
    bold = bold_files(tiny)[0]
    mask = str(bold).replace("_desc-preproc_bold", "_desc-brain_mask")
    expected = NiftiMasker(mask_img=mask, standardize=None).fit_transform(str(bold))
    data = np.asarray(nib.load(bold).dataobj, dtype=np.float32)
    ours = Mask()({"bold": data, "mask": nib.load(mask).get_fdata() > 0})["bold"]
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected.astype(np.float32))


def test_voxel_order_is_c_order_of_the_mask():
    data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    mask = np.zeros((2, 3, 4), bool)
    mask[1, 0, 2] = mask[0, 2, 3] = True
    out = apply_mask(data, mask)
    assert out.shape == (5, 2)
    np.testing.assert_array_equal(out[:, 0], data[0, 2, 3])
    np.testing.assert_array_equal(out[:, 1], data[1, 0, 2])


def test_refuses_a_mask_of_another_shape():
    with pytest.raises(ValueError, match="3D mask of its spatial shape"):
        apply_mask(np.zeros((2, 3, 4, 5)), np.ones((2, 3, 3), bool))
