"""resample_to_grid equals nilearn's resample_to_img / resample_img; given files are checked."""

import pickle

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import resample_img, resample_to_img

from nishard.errors import RecordError, SampleError
from nishard.imageio.resampling import (
    image_on_grid,
    load_image,
    resample_to_grid,
    rotation_between,
)

TARGET = np.array([[-3.0, 0, 0, 40], [0, 3.0, 0, -30], [0, 0, 2.5, -20], [0, 0, 0, 1]])
TARGET_SHAPE = (21, 19, 17)


def _source(ndim=3, seed=0, dtype=np.float32):
    """A smooth image on a 2 mm grid overlapping TARGET partly, so that edges are filled."""
    rng = np.random.default_rng(seed)
    shape = (24, 26, 20) + ((3,) if ndim == 4 else ())
    data = rng.random(shape).astype(dtype)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10.0, -35.0, -22.0]
    return data, affine


def _nilearn(data, affine, interpolation, **options):
    img = nib.Nifti1Image(data, affine)
    target = nib.Nifti1Image(np.zeros(TARGET_SHAPE, np.int8), TARGET)
    out = resample_to_img(img, target, interpolation=interpolation, **options)
    return np.asarray(out.dataobj)


def test_nearest_equals_resample_to_img_exactly():
    rng = np.random.default_rng(1)
    _, affine = _source()
    labels = rng.integers(0, 40, (24, 26, 20)).astype(np.int32)
    ours = resample_to_grid(labels, affine, TARGET_SHAPE, TARGET, "nearest")
    expected = _nilearn(labels, affine, "nearest")
    assert ours.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(ours, expected)
    assert (ours == 0).sum() > (labels == 0).mean() * ours.size  # part lies outside: zeros


@pytest.mark.parametrize("interpolation", ["linear", "continuous"])
@pytest.mark.parametrize("ndim", [3, 4])
def test_interpolation_equals_resample_to_img(interpolation, ndim):
    data, affine = _source(ndim)
    ours = resample_to_grid(data, affine, TARGET_SHAPE, TARGET, interpolation)
    expected = _nilearn(data, affine, interpolation)
    assert ours.shape == expected.shape
    # The same scipy call on the same transform: equal to float32 rounding.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


def test_clip_equals_resample_img_default():
    data, affine = _source(4)
    ours = resample_to_grid(data, affine, TARGET_SHAPE, TARGET, "continuous", clip=True)
    img = resample_img(nib.Nifti1Image(data, affine), TARGET, TARGET_SHAPE)
    np.testing.assert_allclose(ours, img.get_fdata(), rtol=0, atol=1e-6)
    unclipped = resample_to_grid(data, affine, TARGET_SHAPE, TARGET, "continuous")
    assert unclipped.max() > data.max()  # cubic splines overshoot: clipping is not a no-op
    assert ours.max() <= data.max()


def test_same_grid_is_a_copy():
    data, affine = _source()
    out = resample_to_grid(data, affine, data.shape, affine + 1e-9, "continuous")
    np.testing.assert_array_equal(out, data)
    assert not np.shares_memory(out, data)


def test_rotation_ignores_flips_and_permutations():
    flipped = TARGET[:, [1, 0, 2, 3]] * [1, -1, 1, 1]
    assert rotation_between(flipped, TARGET) == pytest.approx(0.0, abs=1e-6)
    turn = np.radians(12.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]
    assert rotation_between(rotation @ TARGET, TARGET) == pytest.approx(12.0, abs=1e-6)


def _save(path, data, affine=TARGET):
    nib.save(nib.Nifti1Image(data, affine), path)
    return str(path)


def test_load_image_refuses_what_the_role_cannot_use(tmp_path):
    absent = tmp_path / "absent.nii.gz"
    with pytest.raises(SampleError, match=r"absent\.nii\.gz: expected a 3D mask, found no") as err:
        load_image(absent, "mask")
    assert err.value.path == str(absent) and err.value.kind is None
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    with pytest.raises(SampleError, match=r"broken\.nii\.gz: expected .*, found an unreadable"):
        load_image(broken, "labels")
    nan = np.ones((3, 3, 3, 2), np.float32)
    nan[0, 0, 0, 1] = np.nan
    with pytest.raises(SampleError, match=r"nan\.nii\.gz: .*, found 1 NaN or infinite values"):
        load_image(_save(tmp_path / "nan.nii.gz", nan), "maps")
    with pytest.raises(SampleError, match=r"three\.nii\.gz: expected a 4D probabilistic.*a 3D"):
        load_image(_save(tmp_path / "three.nii.gz", np.ones((3, 3, 3), np.float32)), "maps")


def test_load_image_types_by_role(tmp_path):
    single = _save(tmp_path / "single.nii.gz", np.full((3, 3, 3, 1), 2.0, np.float32))
    labels, affine = load_image(single, "labels")  # one volume stored as 4D is 3D
    assert labels.shape == (3, 3, 3) and labels.dtype == np.int32 and (labels == 2).all()
    np.testing.assert_array_equal(affine, TARGET)
    assert not labels.flags.writeable  # shared by every record: copy before changing it
    mask, _ = load_image(_save(tmp_path / "m.nii.gz", np.eye(3, dtype=np.float32)[None]), "mask")
    assert mask.dtype == bool and mask.sum() == 3


def test_mask_on_another_grid_equals_nearest_resampling(tmp_path):
    data, affine = _source()
    path = _save(tmp_path / "mask.nii.gz", (data > 0.5).astype(np.uint8), affine)
    ours = image_on_grid(path, "mask", (*TARGET_SHAPE, 7), TARGET)
    expected = _nilearn((data > 0.5).astype(np.uint8), affine, "nearest") > 0
    assert ours.dtype == bool
    np.testing.assert_array_equal(ours, expected)


def _record_error(cause: SampleError, path: str | None) -> RecordError:
    """The RecordError a plan raises from a transform's SampleError, as caught."""
    with pytest.raises(RecordError) as caught:
        raise RecordError("sub-01", path, cause.expected, cause.found) from cause
    return caught.value


def test_a_record_error_takes_the_file_of_the_sample_error_it_comes_from(tmp_path):
    absent = tmp_path / "absent.nii.gz"
    with pytest.raises(SampleError) as caught:
        load_image(absent, "labels")
    cause = caught.value
    error = _record_error(cause, None)
    assert error.path == str(absent)
    assert str(error).startswith(f"record sub-01 in {absent}: expected a 3D labels atlas")
    # Worker processes send errors back pickled, without their cause.
    back = pickle.loads(pickle.dumps(error))
    assert (back.record, back.path, str(back)) == ("sub-01", str(absent), str(error))
    sample = pickle.loads(pickle.dumps(cause))
    assert (sample.kind, sample.path, str(sample)) == (None, str(absent), str(cause))
    # A file the plan names (one of the record's) is not replaced by the cause's.
    assert _record_error(cause, "bold.nii.gz").path == "bold.nii.gz"
