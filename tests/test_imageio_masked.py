"""Reading a mask's voxels volume by volume equals masking the whole run, value for value,
for every layout nibabel reads, in a fraction of the memory; a broken file names itself."""

import gzip
import itertools
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path as NIBABEL_DATA

from nishard.imageio import ImageError, load, read, read_masked
from nishard.imageio.masked import mask_columns
from nishard.imageio.nifti import CHUNK
from tests.test_imageio import _bold, _save


def _mask(shape, seed=1) -> np.ndarray:
    mask = np.random.default_rng(seed).random(shape) > 0.4
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # the first and the last voxel of a volume
    return mask


def _same_as_masking_the_whole_run(path, mask=None, dtypes=(np.float32, np.float64, None)):
    img = load(path)
    mask = _mask(img.shape[:3]) if mask is None else mask
    for dtype in dtypes:
        whole = read(img, path, dtype)[mask].T
        ours = read_masked(img, path, mask, dtype)
        assert ours.flags.c_contiguous
        np.testing.assert_array_equal(ours, whole, strict=True)  # dtype too


def test_the_columns_are_the_masks_voxels_in_c_order_located_in_fortran_order():
    mask = _mask((4, 5, 3))
    volume = np.arange(mask.size).reshape(mask.shape, order="F")
    np.testing.assert_array_equal(volume.ravel(order="F")[mask_columns(mask)], volume[mask])


@pytest.mark.parametrize("name", ["bold.nii.gz", "bold.nii"])
def test_float32_runs_gzipped_or_not_equal_the_masked_run(tmp_path, name):
    _same_as_masking_the_whole_run(_save(tmp_path / name, _bold(shape=(6, 7, 5, 9))))


def test_a_scaled_int16_run_equals_nibabels_scaling_of_the_masked_run(tmp_path):
    path = _save(tmp_path / "bold.nii.gz", _bold(np.float64, (6, 7, 5, 9)) * 10,
                 slope=0.37, inter=-12.5)  # fmt: skip
    _same_as_masking_the_whole_run(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64, np.dtype(">f4"),
                                   np.dtype(">i2")])  # fmt: skip
@pytest.mark.parametrize("name", ["bold.nii.gz", "bold.nii"])
def test_other_dtypes_and_byte_orders_equal_the_masked_run(tmp_path, dtype, name):
    data = np.abs(_bold(np.float64, (5, 4, 6, 8))).astype(dtype)
    _same_as_masking_the_whole_run(_save(tmp_path / name, data))


def test_nifti2_and_a_multi_member_gzip_equal_the_masked_run(tmp_path):
    _same_as_masking_the_whole_run(
        _save(tmp_path / "n2.nii.gz", _bold(shape=(6, 7, 5, 9)), klass=nib.Nifti2Image)
    )
    path = _save(tmp_path / "bold.nii.gz", _bold(shape=(30, 30, 20, 6)))
    raw = gzip.decompress(path.read_bytes())
    cuts = [0, 100, len(raw) // 3, len(raw) // 2 + 7, len(raw)]
    path.write_bytes(b"".join(gzip.compress(raw[a:b]) for a, b in itertools.pairwise(cuts)))
    _same_as_masking_the_whole_run(path)


def test_nibabels_own_4d_image_equals_the_masked_run():
    """A file written by another tool (scaled int16, from nibabel's tests)."""
    _same_as_masking_the_whole_run(Path(NIBABEL_DATA) / "example4d.nii.gz")


def test_the_peak_is_the_output_and_a_volume_not_the_run(tmp_path):
    shape = (48, 48, 40, 60)  # 22 MB of float32
    path = _save(tmp_path / "bold.nii.gz", _bold(shape=shape))
    mask = np.zeros(shape[:3], bool)
    mask[10:38, 10:38, 8:32] = True  # 20 % of the grid
    img = load(path)
    output = int(mask.sum()) * shape[3] * 4
    volume = int(np.prod(shape[:3])) * 4
    tracemalloc.start()
    try:
        masked = read_masked(img, path, mask, np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert masked.nbytes == output
    # Beside the output: one volume, the mask's indices and ISA-L's chunks in and out.
    fixed = volume + 4 * mask.sum() * 8 + 2 * CHUNK
    assert peak < output + fixed + (256 << 10), (peak, output, fixed)
    assert peak < 0.35 * volume * shape[3]


def test_a_mask_off_the_grid_is_refused(tmp_path):
    path = _save(tmp_path / "bold.nii.gz", _bold(shape=(6, 7, 5, 9)))
    with pytest.raises(ValueError, match=r"a mask of its grid, got \(6, 7, 5, 9\) and \(6, 7, 4\)"):
        read_masked(load(path), path, np.ones((6, 7, 4), bool))


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii"])
def test_a_run_cut_short_names_the_file_and_the_volume(tmp_path, name):
    path = _save(tmp_path / name, _bold(shape=(6, 7, 5, 9)))
    img = load(path)
    if name.endswith(".gz"):
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) - 3 * 6 * 7 * 5 * 4]))
    else:
        path.write_bytes(path.read_bytes()[: -3 * 6 * 7 * 5 * 4])
    with pytest.raises(ImageError, match=r"cut\.nii(\.gz)?: unreadable data \(EOFError: "
                                         r"expected 840 bytes of volume 6 of 9"):  # fmt: skip
        read_masked(img, path, _mask((6, 7, 5)))
