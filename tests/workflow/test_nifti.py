"""ISA-L NIfTI reading: nibabel's arrays, affines and headers; every broken file a RecordError."""

import gzip
import itertools

import nibabel as nib
import numpy as np
import pytest

from nishard.errors import RecordError
from nishard.records.table import Record
from nishard.workflow.inputs import load_inputs
from nishard.workflow.nifti import CHUNK, load_nifti

BOLD = "a 4D NIfTI image (x, y, z, time)"
MASK = "a 3D NIfTI brain mask"
AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])


def _bold(dtype=np.float32, shape=(5, 6, 4, 7), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 20, shape).astype(dtype)


def _save(path, data, *, slope=None, inter=None, klass=nib.Nifti1Image, extension=False):
    img = klass(data, AFFINE)
    if slope is not None:
        # Keep int16 on disk with the given scaling (nibabel would rescale on its own).
        img.header.set_data_dtype(np.int16)
        img.header.set_slope_inter(slope, inter)
        img = klass(np.asarray(data, np.int16), AFFINE, img.header)
        img.header.set_slope_inter(slope, inter)
    if extension:
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"made by a test"))
    nib.save(img, path)
    return path


def _same_as_nibabel(path):
    ours, theirs = load_nifti(path), nib.load(path)
    assert isinstance(ours, type(theirs))
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    assert ours.header.binaryblock == theirs.header.binaryblock
    assert ours.dataobj.slope == theirs.dataobj.slope
    assert ours.dataobj.inter == theirs.dataobj.inter
    for dtype in (np.float32, np.float64, None):
        a, b = np.asarray(ours.dataobj, dtype=dtype), np.asarray(theirs.dataobj, dtype=dtype)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, strict=True)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata(), strict=True)
    np.testing.assert_array_equal(ours.dataobj[1:3, ..., -1], theirs.dataobj[1:3, ..., -1])
    return ours


def test_float32_data_equal_nibabel_and_come_back_without_a_copy(tmp_path):
    img = _same_as_nibabel(_save(tmp_path / "bold.nii.gz", _bold()))
    data = np.asarray(img.dataobj, dtype=np.float32)
    assert data.flags.writeable and data.flags.f_contiguous
    assert data.base is not None and data.base.nbytes == data.nbytes  # a view of the inflated


def test_a_scaled_int16_image_equals_nibabel(tmp_path):
    path = _save(tmp_path / "bold.nii.gz", _bold(np.float64) * 10, slope=0.37, inter=-12.5)
    img = _same_as_nibabel(path)
    assert (img.dataobj.slope, img.dataobj.inter) == (np.float32(0.37), np.float32(-12.5))
    assert img.get_data_dtype() == np.int16


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int16, np.int32, np.float64, np.dtype(">f4"), np.dtype(">i2")]
)
def test_other_dtypes_and_byte_orders_equal_nibabel(tmp_path, dtype):
    data = (np.abs(_bold(np.float64, (4, 5, 3)))).astype(dtype)
    _same_as_nibabel(_save(tmp_path / "mask.nii.gz", data))


def test_nifti2_and_extensions_equal_nibabel(tmp_path):
    _same_as_nibabel(_save(tmp_path / "n2.nii.gz", _bold(), klass=nib.Nifti2Image))
    img = _same_as_nibabel(_save(tmp_path / "ext.nii.gz", _bold(), extension=True))
    assert img.header.extensions[0].get_content() == b"made by a test"


def test_a_multi_member_gzip_reads_whole(tmp_path):
    """bgzip (and concatenated gzip files) hold several members; all of them are read."""
    path = _save(tmp_path / "bold.nii.gz", _bold(shape=(40, 40, 30, 12)))
    raw = gzip.decompress(path.read_bytes())
    assert len(raw) > 2 * CHUNK  # members end inside and across chunks
    cuts = [0, 200, 1000, CHUNK + 3, len(raw) // 2, len(raw)]
    path.write_bytes(b"".join(gzip.compress(raw[a:b]) for a, b in itertools.pairwise(cuts)))
    _same_as_nibabel(path)


def test_a_plain_nii_is_left_to_nibabel(tmp_path):
    path = _save(tmp_path / "bold.nii", _bold())
    img = _same_as_nibabel(path)
    assert type(img) is nib.Nifti1Image


# Broken files: each gives a RecordError naming the file, the record and what was expected.


def _record(tmp_path, bold=None, mask=None) -> Record:
    files = {"bold": str(bold or _save(tmp_path / "bold.nii.gz", _bold()))}
    if mask is not None:
        files["mask"] = str(mask)
    return Record("sub-01_task-rest", files, {"t_r": 2.0})


def _gzipped_nifti(tmp_path) -> bytes:
    return _save(tmp_path / "good.nii.gz", _bold(shape=(20, 20, 20, 10))).read_bytes()


def _truncated_in_data(tmp_path):
    raw = _gzipped_nifti(tmp_path)
    return raw[: len(raw) // 2]


def _truncated_in_header(tmp_path):
    return _gzipped_nifti(tmp_path)[:30]


def _corrupt(tmp_path):
    raw = bytearray(_gzipped_nifti(tmp_path))
    middle = len(raw) // 2
    raw[middle : middle + 64] = np.random.default_rng(1).bytes(64)
    return bytes(raw)


def _short_data(tmp_path):
    """A valid gzip stream that ends before the data the header announces."""
    raw = gzip.decompress(_gzipped_nifti(tmp_path))
    return gzip.compress(raw[: len(raw) - 100])


CASES = [
    ("empty", lambda tmp: b"", "an empty file (0 bytes)"),
    ("not gzip", lambda tmp: np.random.default_rng(0).bytes(4096), "an unreadable file"),
    ("gzip of text", lambda tmp: gzip.compress(b"not a nifti" * 100), "an unreadable file"),
    ("gzip of nothing", lambda tmp: gzip.compress(b""), "an unreadable file (ImageFileError"),
    ("truncated header", _truncated_in_header, "an unreadable file (EOFError"),
    ("truncated data", _truncated_in_data, "unreadable data (EOFError"),
    ("corrupt data", _corrupt, "unreadable data ("),
    ("short data", _short_data, "unreadable data (EOFError: expected"),
]


@pytest.mark.parametrize(("name", "content", "found"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_bold_is_a_record_error(tmp_path, name, content, found):
    bad = tmp_path / "sub-01_bold.nii.gz"
    bad.write_bytes(content(tmp_path))
    record = _record(tmp_path, bold=bad)
    with pytest.raises(RecordError) as caught:
        load_inputs(record, ("bold",))
    err = caught.value
    assert (err.record, err.path, err.expected) == (record.id, str(bad), BOLD)
    assert err.found.startswith(found), err.found


@pytest.mark.parametrize(("name", "content", "found"), CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_a_broken_mask_is_a_record_error(tmp_path, name, content, found):
    bad = tmp_path / "sub-01_mask.nii.gz"
    bad.write_bytes(content(tmp_path))
    record = _record(tmp_path, mask=bad)
    with pytest.raises(RecordError) as caught:
        load_inputs(record, ("bold", "mask"))
    err = caught.value
    assert (err.record, err.path, err.expected) == (record.id, str(bad), MASK)
    assert err.found.startswith(found), err.found


def test_a_pair_header_in_a_nii_gz_is_not_read(tmp_path):
    """nibabel.load refuses a .nii.gz whose magic says "separate .img file"; so do we."""
    header = nib.Nifti1Header()
    header.set_data_shape((2, 2, 2))
    block = bytearray(header.binaryblock)
    block[344:348] = b"ni1\x00"
    path = tmp_path / "pair.nii.gz"
    path.write_bytes(gzip.compress(bytes(block) + bytes(4 + 8 * 4)))
    with pytest.raises(nib.filebasedimages.ImageFileError, match="not a single-file"):
        load_nifti(path)


def test_a_good_record_loads_as_nibabel_reads_it(tmp_path):
    bold = _save(tmp_path / "bold.nii.gz", _bold(np.float64) * 10, slope=0.5, inter=3.0)
    mask = _save(tmp_path / "mask.nii.gz", (_bold(shape=(5, 6, 4)) > 100).astype(np.uint8))
    sample = load_inputs(_record(tmp_path, bold=bold, mask=mask), ("bold", "mask"))
    np.testing.assert_array_equal(
        sample["bold"], np.asarray(nib.load(bold).dataobj, np.float32), strict=True
    )
    np.testing.assert_array_equal(sample["mask"], nib.load(mask).get_fdata() > 0)
    np.testing.assert_array_equal(sample["affine"], nib.load(bold).affine)
