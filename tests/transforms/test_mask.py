"""Masking equals nilearn's NiftiMasker, voxel for voxel, on the synthetic dataset's real files."""

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import resample_to_img
from nilearn.maskers import NiftiMasker

from nishard.errors import SampleError
from nishard.transforms import Mask, apply_mask
from nishard.transforms.base import ArraySpec
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


def _record(tiny):
    bold = bold_files(tiny)[0]
    mask = str(bold).replace("_desc-preproc_bold", "_desc-brain_mask")
    img = nib.load(bold)
    sample = {
        "bold": np.asarray(img.dataobj, dtype=np.float32),
        "affine": img.affine,
        "mask": nib.load(mask).get_fdata() > 0,
    }
    return str(bold), mask, sample


def _coarse_mask(tiny, path):
    """A 16 mm box mask shifted half a BOLD voxel: on another grid, partly off the brain."""
    _, _, sample = _record(tiny)
    affine = np.diag([16.0, 16.0, 16.0, 1.0])
    affine[:3, 3] = sample["affine"][:3, 3] + 4.0
    data = np.zeros((12, 15, 12), np.uint8)
    data[3:9, 2:8, 4:9] = 1
    nib.save(nib.Nifti1Image(data, affine), path)
    return str(path)


def test_a_given_mask_on_the_bold_grid_equals_nifti_masker(tiny):
    bold, mask, sample = _record(tiny)
    expected = NiftiMasker(mask_img=mask, standardize=None).fit_transform(bold)
    step = Mask(source=mask)
    assert step.reads == ("bold",)
    given_only = {"bold": sample["bold"], "affine": sample["affine"]}  # no record mask
    np.testing.assert_array_equal(step(given_only)["bold"], expected)


def test_a_given_mask_on_another_grid_is_resampled_to_the_bold(tiny, tmp_path):
    bold, _, sample = _record(tiny)
    given = _coarse_mask(tiny, tmp_path / "coarse.nii.gz")
    on_grid = resample_to_img(given, bold, interpolation="nearest", copy_header=True)
    expected = NiftiMasker(mask_img=on_grid, standardize=None).fit_transform(bold)
    ours = Mask(source=given)(sample)["bold"]
    assert ours.shape == expected.shape and 0 < ours.shape[1] < sample["mask"].sum()
    np.testing.assert_array_equal(ours, expected)


def test_intersection_of_the_record_mask_and_a_given_one(tiny, tmp_path):
    bold, _, sample = _record(tiny)
    given = _coarse_mask(tiny, tmp_path / "coarse.nii.gz")
    on_grid = resample_to_img(given, bold, interpolation="nearest", copy_header=True)
    both = np.logical_and(on_grid.get_fdata() > 0, sample["mask"])
    assert 0 < both.sum() < min(sample["mask"].sum(), (on_grid.get_fdata() > 0).sum())
    inter = nib.Nifti1Image(both.astype(np.uint8), sample["affine"])
    expected = NiftiMasker(mask_img=inter, standardize=None).fit_transform(bold)
    step = Mask(source="intersection", path=given)
    assert step.reads == ("bold", "mask")
    np.testing.assert_array_equal(step(sample)["bold"], expected)


def test_a_mask_outside_the_bold_is_refused(tiny, tmp_path):
    _, _, sample = _record(tiny)
    far = sample["affine"].copy()
    far[:3, 3] += 5000.0
    path = tmp_path / "far.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), far), path)
    with pytest.raises(SampleError, match=r"far\.nii\.gz: expected a 3D mask overlapping the BOLD"):
        Mask(source=str(path))(sample)
    corner = np.zeros(sample["mask"].shape, np.uint8)
    corner[0, 0, 0] = 1  # on the grid, but outside the brain
    nib.save(nib.Nifti1Image(corner, sample["affine"]), path)
    with pytest.raises(SampleError, match="no voxel in both"):
        Mask(source="intersection", path=str(path))(sample)


def test_mask_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="needs the path"):
        Mask(source="intersection")
    with pytest.raises(ValueError, match="path goes with source 'intersection'"):
        Mask(path="x.nii.gz")
    with pytest.raises(ValueError, match="no such file"):
        Mask(source=str(tmp_path / "absent.nii.gz"))
    assert Mask().reads == ("bold", "mask")


def test_infer_gives_the_masked_shape(tiny):
    _, _, sample = _record(tiny)
    specs = {
        "bold": ArraySpec(sample["bold"].shape, "float32"),
        "mask": ArraySpec(sample["mask"].shape, "bool", int(sample["mask"].sum())),
    }
    assert Mask().infer(specs)["bold"].shape == Mask()(sample)["bold"].shape
