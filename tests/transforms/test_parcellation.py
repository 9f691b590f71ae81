"""Parcellate and Maps equal nilearn's NiftiLabelsMasker and NiftiMapsMasker on the same files.

The atlases are the synthetic dataset's truth: its network maps (a probabilistic atlas) and
their argmax (a labels atlas), on the BOLD grid or resampled to another one.
"""

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

from nishard.errors import SampleError
from nishard.imageio.resampling import _load_image
from nishard.transforms.base import ArraySpec
from nishard.transforms.parcellation import Maps, Parcellate, label_signals, map_signals
from tests.helpers import bold_files

#: Label means are sums in float64 in the same order as scipy.ndimage.mean: equal to float32
#: rounding (observed: bit-equal).
LABELS_RTOL = 1e-6
#: nilearn fits maps in float32 (scipy lstsq), nishard in float64: float32 rounding times the
#: maps' conditioning (observed 3.6e-6 on the truth networks; 4e-5 after z-scoring).
MAPS_RTOL = 2e-5


def _run(tiny):
    bold = bold_files(tiny)[0]
    mask = str(bold).replace("_desc-preproc_bold", "_desc-brain_mask")
    img = nib.load(bold)
    sample = {
        "bold": np.asarray(img.dataobj, dtype=np.float32),
        "affine": img.affine,
        "mask": nib.load(mask).get_fdata() > 0,
        "meta": {},
    }
    return str(bold), mask, sample


def _labels_atlas(tiny, path, affine=None, extra_outside=True):
    """Argmax of the truth networks where one exceeds 0.2, plus a region outside the brain."""
    maps = nib.load(tiny / "truth" / "networks.nii.gz")
    data = maps.get_fdata()
    labels = np.where(data.max(axis=3) > 0.2, data.argmax(axis=3) + 1, 0).astype(np.int16)
    labels[labels == 3] = 30  # labels need not be contiguous
    if extra_outside:
        labels[:2, :2, :2] = 99  # a corner outside every brain mask
    nib.save(nib.Nifti1Image(labels, maps.affine if affine is None else affine), path)
    return str(path), labels


def _nilearn_labels(bold, atlas, **options):
    masker = NiftiLabelsMasker(atlas, strategy="mean", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropped labels, keep_masked_labels deprecation
        signals = masker.fit_transform(bold)
    return signals, masker


def test_label_means_equal_nifti_labels_masker(tiny, tmp_path):
    bold, _, sample = _run(tiny)
    atlas, _ = _labels_atlas(tiny, tmp_path / "atlas.nii.gz")
    expected, masker = _nilearn_labels(bold, atlas)
    out = Parcellate(atlas)(sample)
    assert out["bold"].dtype == np.float32 and expected.dtype == np.float32
    np.testing.assert_allclose(out["bold"], expected, rtol=LABELS_RTOL, atol=0)
    np.testing.assert_array_equal(out["regions"], [1, 2, 4, 5, 6, 7, 30, 99])
    np.testing.assert_array_equal(out["regions"], list(masker.region_ids_.values())[1:])
    assert (out["bold"][:, :-1] > 500).all()  # brain regions (the corner is 0 in the data)


def test_label_means_in_the_brain_mask_drop_regions_outside(tiny, tmp_path):
    bold, mask, sample = _run(tiny)
    atlas, _ = _labels_atlas(tiny, tmp_path / "atlas.nii.gz")
    expected, _ = _nilearn_labels(bold, atlas, mask_img=mask)
    out = Parcellate(atlas, mask=True)(sample)
    assert expected.shape[1] == 7  # nilearn drops label 99, outside the mask
    np.testing.assert_array_equal(out["regions"], [1, 2, 4, 5, 6, 7, 30])
    np.testing.assert_allclose(out["bold"], expected, rtol=LABELS_RTOL, atol=0)
    assert Parcellate(atlas, mask=True).reads == ("bold", "mask")
    assert Parcellate(atlas).reads == ("bold",)


def test_missing_zero_keeps_every_atlas_label_as_keep_masked_labels(tiny, tmp_path):
    bold, mask, sample = _run(tiny)
    atlas, _ = _labels_atlas(tiny, tmp_path / "atlas.nii.gz")
    expected, _ = _nilearn_labels(bold, atlas, mask_img=mask, keep_masked_labels=True)
    out = Parcellate(atlas, mask=True, missing="zero")(sample)
    assert expected.shape[1] == 8
    np.testing.assert_array_equal(out["regions"], [1, 2, 4, 5, 6, 7, 30, 99])
    np.testing.assert_allclose(out["bold"], expected, rtol=LABELS_RTOL, atol=0)
    np.testing.assert_array_equal(out["bold"][:, -1], 0)


def test_atlas_on_another_grid_is_resampled_as_nilearn(tiny, tmp_path):
    bold, _, sample = _run(tiny)
    # A 4 mm atlas shifted by half a voxel: nearest-neighbour resampling picks its voxels.
    maps = nib.load(tiny / "truth" / "networks.nii.gz")
    fine = np.diag([4.0, 4.0, 4.0, 1.0])
    fine[:3, 3] = maps.affine[:3, 3] + 2.0
    labels = np.zeros((50, 60, 48), np.int32)
    coarse, _ = _labels_atlas(tiny, tmp_path / "coarse.nii.gz", extra_outside=False)
    coarse_labels = nib.load(coarse).get_fdata().astype(np.int32)
    labels[:] = np.repeat(np.repeat(np.repeat(coarse_labels, 2, 0), 2, 1), 2, 2)
    atlas = str(tmp_path / "fine.nii.gz")
    nib.save(nib.Nifti1Image(labels, fine), atlas)
    expected, _ = _nilearn_labels(bold, atlas)
    out = Parcellate(atlas)(sample)
    assert out["bold"].shape == expected.shape
    np.testing.assert_allclose(out["bold"], expected, rtol=LABELS_RTOL, atol=0)


def test_a_flipped_copy_of_the_atlas_gives_the_same_signals(tiny, tmp_path):
    _, _, sample = _run(tiny)
    atlas, labels = _labels_atlas(tiny, tmp_path / "ras.nii.gz")
    affine = nib.load(atlas).affine
    flipped = affine.copy()  # LAS storage of the same world positions, as FSL's atlases
    flipped[0, 0] = -affine[0, 0]
    flipped[0, 3] = affine[0, 3] + affine[0, 0] * (labels.shape[0] - 1)
    las = str(tmp_path / "las.nii.gz")
    nib.save(nib.Nifti1Image(labels[::-1], flipped), las)
    np.testing.assert_array_equal(
        Parcellate(las)(sample)["bold"], Parcellate(atlas)(sample)["bold"]
    )


def test_label_signals_counts_each_voxel_once_per_region():
    data = np.arange(2 * 2 * 1 * 3, dtype=np.float64).reshape(2, 2, 1, 3)
    labels = np.array([[[5], [0]], [[5], [2]]])
    signals, regions = label_signals(data, labels)
    np.testing.assert_array_equal(regions, [2, 5])
    np.testing.assert_array_equal(signals[:, 0], data[1, 1, 0])
    np.testing.assert_array_equal(signals[:, 1], (data[0, 0, 0] + data[1, 0, 0]) / 2)


def test_map_fits_equal_nifti_maps_masker(tiny):
    bold, _, sample = _run(tiny)
    atlas = str(tiny / "truth" / "networks.nii.gz")
    expected = NiftiMapsMasker(atlas, standardize=None).fit_transform(bold)
    out = Maps(atlas)(sample)
    np.testing.assert_array_equal(out["regions"], np.arange(7))
    np.testing.assert_allclose(out["bold"], expected, rtol=MAPS_RTOL, atol=0)
    # On float64 data nilearn solves in float64 as well: then equal to 1e-9.
    data64 = nib.Nifti1Image(sample["bold"].astype(np.float64), sample["affine"])
    maps64 = nib.Nifti1Image(nib.load(atlas).get_fdata(), sample["affine"])
    expected64 = NiftiMapsMasker(maps64, standardize=None).fit_transform(data64)
    ours64, _ = map_signals(sample["bold"].astype(np.float64), maps64.get_fdata())
    np.testing.assert_allclose(ours64, expected64, rtol=1e-9, atol=0)


def test_map_fits_in_the_brain_mask_equal_nilearn(tiny, tmp_path):
    bold, mask, sample = _run(tiny)
    maps_img = nib.load(tiny / "truth" / "networks.nii.gz")
    maps = maps_img.get_fdata().astype(np.float32)
    maps[..., 2] = 0.0
    maps[:2, :2, :2, 2] = 0.5  # map 2 only outside the brain: dropped in the mask
    atlas = str(tmp_path / "maps.nii.gz")
    nib.save(nib.Nifti1Image(maps, maps_img.affine), atlas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = NiftiMapsMasker(atlas, standardize=None, mask_img=mask).fit_transform(bold)
        kept = NiftiMapsMasker(
            atlas, standardize=None, mask_img=mask, keep_masked_maps=True
        ).fit_transform(bold)
    out = Maps(atlas, mask=True)(sample)
    np.testing.assert_array_equal(out["regions"], [0, 1, 3, 4, 5, 6])
    np.testing.assert_allclose(out["bold"], expected, rtol=MAPS_RTOL, atol=0)
    zero = Maps(atlas, mask=True, missing="zero")(sample)
    np.testing.assert_array_equal(zero["regions"], np.arange(7))
    filled = [0, 1, 3, 4, 5, 6]
    np.testing.assert_allclose(zero["bold"][:, filled], kept[:, filled], rtol=MAPS_RTOL, atol=0)
    # The empty map: exact zeros; nilearn's float32 solver leaves rounding (~1e-4 of 1000).
    np.testing.assert_array_equal(zero["bold"][:, 2], 0)
    assert np.abs(kept[:, 2]).max() < 1e-3


def test_maps_on_another_grid_are_resampled_linearly_as_nilearn(tiny, tmp_path):
    bold, _, sample = _run(tiny)
    maps_img = nib.load(tiny / "truth" / "networks.nii.gz")
    shifted = maps_img.affine.copy()
    shifted[:3, 3] += [3.0, -2.0, 1.5]  # off the BOLD grid by a fraction of a voxel
    atlas = str(tmp_path / "shifted.nii.gz")
    nib.save(nib.Nifti1Image(maps_img.get_fdata().astype(np.float32), shifted), atlas)
    expected = NiftiMapsMasker(atlas, standardize=None).fit_transform(bold)
    np.testing.assert_allclose(Maps(atlas)(sample)["bold"], expected, rtol=MAPS_RTOL, atol=0)


def _save(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.diag([8.0, 8, 8, 1]) if affine is None else affine), path)
    return str(path)


def test_atlas_of_the_wrong_dimensions_is_refused_with_its_name(tiny, tmp_path):
    _, _, sample = _run(tiny)
    four_d = _save(tmp_path / "four.nii.gz", np.ones((4, 4, 4, 2), np.int16))
    with pytest.raises(SampleError, match=r"four\.nii\.gz: expected a 3D labels atlas.*4D image"):
        Parcellate(four_d)(sample)
    three_d = _save(tmp_path / "three.nii.gz", np.ones((4, 4, 4), np.float32))
    with pytest.raises(SampleError, match=r"three\.nii\.gz: expected a 4D probabilistic maps.*3D"):
        Maps(three_d)(sample)


def test_non_integer_labels_are_refused(tiny, tmp_path):
    _, _, sample = _run(tiny)
    atlas = _save(tmp_path / "float.nii.gz", np.full((4, 4, 4), 1.5, np.float32))
    with pytest.raises(SampleError, match=r"float\.nii\.gz.*non-integer value \(e\.g\. 1\.5\)"):
        Parcellate(atlas)(sample)


def test_atlas_outside_the_bold_field_of_view_is_refused(tiny, tmp_path):
    _, _, sample = _run(tiny)
    far = np.diag([8.0, 8, 8, 1])
    far[:3, 3] = 1000.0
    atlas = _save(tmp_path / "far.nii.gz", np.ones((4, 4, 4), np.int16), far)
    message = r"far\.nii\.gz: expected .* overlapping the BOLD.*no non-zero voxel"
    with pytest.raises(SampleError, match=message):
        Parcellate(atlas)(sample)


def test_atlas_without_a_label_in_the_brain_mask_is_refused(tiny, tmp_path):
    _, _, sample = _run(tiny)
    labels = np.zeros(sample["mask"].shape, np.int16)
    labels[:2, :2, :2] = 1
    atlas = _save(tmp_path / "corner.nii.gz", labels, sample["affine"])
    Parcellate(atlas)(sample)  # fine without the mask
    with pytest.raises(SampleError, match=r"corner\.nii\.gz.*no labelled voxel inside"):
        Parcellate(atlas, mask=True)(sample)


def test_atlas_rotated_against_the_bold_is_refused(tiny, tmp_path):
    _, _, sample = _run(tiny)
    angle = np.radians(30)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    oblique = rotation @ sample["affine"]
    atlas = _save(tmp_path / "oblique.nii.gz", np.ones((25, 30, 24), np.int16), oblique)
    with pytest.raises(SampleError, match=r"oblique\.nii\.gz.*rotated by 30\.0 degrees"):
        Parcellate(atlas)(sample)


def test_masked_data_is_refused_with_the_order_to_follow(tiny, tmp_path):
    _, _, sample = _run(tiny)
    atlas, _ = _labels_atlas(tiny, tmp_path / "atlas.nii.gz")
    masked = {**sample, "bold": sample["bold"][sample["mask"]].T}
    with pytest.raises(SampleError, match="parcellate goes before mask"):
        Parcellate(atlas)(masked)


def test_spec_errors_at_construction(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        Parcellate(str(tmp_path / "absent.nii.gz"))
    atlas = _save(tmp_path / "a.nii.gz", np.ones((2, 2, 2), np.int16))
    with pytest.raises(ValueError, match="missing one of drop, zero"):
        Maps(atlas, missing="keep")


def test_atlas_is_read_once_and_again_when_rewritten(tiny, tmp_path):
    _, _, sample = _run(tiny)
    atlas, labels = _labels_atlas(tiny, tmp_path / "atlas.nii.gz")
    before = _load_image.cache_info()
    first = Parcellate(atlas)(sample)
    Parcellate(atlas)(sample)
    after = _load_image.cache_info()
    assert after.misses - before.misses == 1
    relabelled = np.where(labels > 0, 1, 0).astype(np.int16)
    nib.save(nib.Nifti1Image(relabelled, sample["affine"]), atlas)
    import os

    os.utime(atlas, ns=(1, 1))  # a distinct mtime even on coarse file-system clocks
    second = Parcellate(atlas)(sample)
    assert first["bold"].shape[1] == 8 and second["bold"].shape[1] == 1


def test_collinear_maps_get_the_minimum_norm_fit_as_nilearn(tiny):
    # A map given twice makes the fit rank deficient: the SVD path, not the Gram one.
    _, _, sample = _run(tiny)
    maps = nib.load(tiny / "truth" / "networks.nii.gz").get_fdata()
    maps = np.concatenate([maps, maps[..., :1]], axis=3)
    data = sample["bold"].astype(np.float64)
    expected = NiftiMapsMasker(nib.Nifti1Image(maps, sample["affine"]), standardize=None)
    expected = expected.fit_transform(nib.Nifti1Image(data, sample["affine"]))
    ours, _ = map_signals(data, maps)
    np.testing.assert_allclose(ours, expected, rtol=1e-8, atol=0)
    np.testing.assert_allclose(ours[:, 0], ours[:, 7], rtol=1e-12)  # split evenly


def test_infer_gives_the_output_shapes_without_data(tiny, tmp_path):
    _, _, sample = _run(tiny)
    atlas, _ = _labels_atlas(tiny, tmp_path / "atlas.nii.gz")
    specs = {"bold": ArraySpec(sample["bold"].shape, "float32")}
    for step in (Parcellate(atlas), Maps(str(tiny / "truth" / "networks.nii.gz"))):
        inferred = step.infer(specs)
        out = step(sample)
        assert inferred["bold"].shape == out["bold"].shape
        assert inferred["regions"].shape == out["regions"].shape
        assert inferred["bold"].dtype == str(out["bold"].dtype)
    assert set(Parcellate(atlas, regions_key=None).infer(specs)) == {"bold"}
