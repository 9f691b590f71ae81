"""Image I/O: the ISA-L reader gives nibabel's images; headers alone read no data; CIFTI and
GIfTI series round-trip; every broken file is an ImageError naming the file."""

import gzip
import itertools
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path as NIBABEL_DATA

from nishard import imageio
from nishard.imageio import ImageError, load, load_dtseries, load_func_gifti, load_header, read
from nishard.imageio.nifti import CHUNK, IsalArrayProxy, load_nifti

AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
GIFTI_DATA = Path(nib.__file__).parent / "gifti" / "tests" / "data"


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


# -- the ISA-L reader against nibabel ---------------------------------------------------------


def test_float32_data_equal_nibabel_and_come_back_without_a_copy(tmp_path):
    img = _same_as_nibabel(_save(tmp_path / "bold.nii.gz", _bold()))
    assert isinstance(img.dataobj, IsalArrayProxy)
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


@pytest.mark.parametrize(
    "name",
    ["example4d.nii.gz", "example_nifti2.nii.gz", "standard.nii.gz", "anatomical.nii",
     "functional.nii"],
)  # fmt: skip
def test_nibabels_own_test_images_read_as_nibabel_reads_them(name):
    """Files written by other tools (scaled int16, NIfTI-2, big-endian), from nibabel's tests."""
    img = _same_as_nibabel(Path(NIBABEL_DATA) / name)
    np.testing.assert_array_equal(
        read(load(Path(NIBABEL_DATA) / name), name, np.float32),
        nib.load(Path(NIBABEL_DATA) / name).get_fdata(dtype=np.float32),
    )
    assert load_header(Path(NIBABEL_DATA) / name).shape == img.shape


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
    with pytest.raises(ImageError, match=r"pair\.nii\.gz: an unreadable file \(ImageFileError"):
        load(path)


# -- headers alone ------------------------------------------------------------------------


def _without_data(tmp_path, name="bold.nii.gz", klass=nib.Nifti1Image) -> Path:
    """A .nii.gz whose gzip stream stops a few bytes into the data: a whole header, no data."""
    path = _save(tmp_path / name, _bold(shape=(20, 20, 20, 10)), klass=klass)
    raw = gzip.decompress(path.read_bytes())
    offset = nib.load(path).dataobj.offset  # the header, its extensions and padding
    path.write_bytes(gzip.compress(raw[: offset + 16]))
    return path


@pytest.mark.parametrize("klass", [nib.Nifti1Image, nib.Nifti2Image])
def test_a_header_loads_without_reading_the_data(tmp_path, klass):
    path = _without_data(tmp_path, klass=klass)
    header = load_header(path)
    assert header.kind == {nib.Nifti1Image: "nifti1", nib.Nifti2Image: "nifti2"}[klass]
    assert header.shape == (20, 20, 20, 10) and header.path == str(path)
    assert header.header.get_zooms() == (2.0, 2.0, 2.0, 1.0)
    image = load(path)  # also lazy: the data are read on access, and are not there
    assert image.shape == (20, 20, 20, 10)
    with pytest.raises(ImageError, match=r"bold\.nii\.gz: unreadable data \(EOFError"):
        read(image, path)


def test_a_header_is_read_from_the_start_of_a_large_file_only(tmp_path, monkeypatch):
    """load_header inflates no more of a .nii.gz than its header, whatever the data size."""
    path = _save(tmp_path / "bold.nii.gz", _bold(shape=(40, 40, 30, 12)))
    inflated = []
    original = imageio.nifti.GzipStream.readinto

    def counting(self, buffer):
        got = original(self, buffer)
        inflated.append(got)
        return got

    monkeypatch.setattr(imageio.nifti.GzipStream, "readinto", counting)
    assert load_header(path).shape == (40, 40, 30, 12)
    assert 0 < sum(inflated) < 2 * CHUNK < 40 * 40 * 30 * 12 * 4


# -- CIFTI and GIfTI ------------------------------------------------------------------------


def _cifti(path, data, step=0.72, unit="SECOND"):
    """A dense time series over a 2-vertex cortex and 3 voxels, as HCP writes them."""
    brain = nib.cifti2.BrainModelAxis.from_mask(np.array([1, 0, 1]), "CORTEX_LEFT")
    voxels = np.zeros((2, 2, 2), bool)
    voxels[0, 0, 0] = voxels[1, 0, 1] = voxels[1, 1, 1] = True
    brain = brain + nib.cifti2.BrainModelAxis.from_mask(voxels, "THALAMUS_LEFT", AFFINE)
    series = nib.cifti2.SeriesAxis(0.0, step, data.shape[0], unit=unit)
    header = nib.cifti2.Cifti2Header.from_axes((series, brain))
    nib.save(nib.Cifti2Image(data, header), path)
    return path


def test_a_cifti_series_round_trips(tmp_path):
    data = _bold(shape=(9, 5))
    path = _cifti(tmp_path / "run.dtseries.nii", data)
    np.testing.assert_array_equal(load_dtseries(path), data, strict=True)
    header = load_header(path)
    assert (header.kind, header.shape) == ("cifti2", (9, 5))
    assert header.header.get_index_map(0).series_step == pytest.approx(0.72)
    assert len(header.header.get_axis(1)) == 5


def test_a_cifti_that_is_no_series_is_refused_naming_what_it_is(tmp_path):
    scalars = nib.cifti2.ScalarAxis(["a", "b"])
    brain = nib.cifti2.BrainModelAxis.from_mask(np.array([1, 1, 1]), "CORTEX_LEFT")
    path = tmp_path / "maps.dscalar.nii"
    nib.save(nib.Cifti2Image(np.ones((2, 3), np.float32), (scalars, brain)), path)
    with pytest.raises(ImageError, match=r"maps\.dscalar\.nii: a first axis ScalarAxis"):
        load_dtseries(path)
    plain = _save(tmp_path / "plain.nii", _bold())
    with pytest.raises(ImageError, match=r"plain\.nii: Nifti1Image of shape \(5, 6, 4, 7\)"):
        load_dtseries(plain)


def _gifti(path, series):
    arrays = [
        nib.gifti.GiftiDataArray(row, intent="NIFTI_INTENT_TIME_SERIES", datatype="float32")
        for row in series
    ]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)
    return path


def test_a_gifti_series_round_trips(tmp_path):
    series = _bold(shape=(6, 11))
    path = _gifti(tmp_path / "hemi-L.func.gii", series)
    np.testing.assert_array_equal(load_func_gifti(path), series, strict=True)
    header = load_header(path)
    assert (header.kind, header.shape, header.arrays) == ("gifti", (), ((11,),) * 6)
    one = tmp_path / "one.func.gii"  # another writer: one (vertex, time) array
    nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(series.T.copy())]), one)
    np.testing.assert_array_equal(load_func_gifti(one), series, strict=True)
    assert load_header(one).arrays == ((11, 6),)


@pytest.mark.parametrize(
    "name", ["ascii.gii", "base64bin.gii", "gzipbase64.gii", "label.gii", "task.func.gii",
             "rh.shape.curv.gii"],
)  # fmt: skip
def test_gifti_headers_give_nibabels_dimensions(name):
    assert load_header(GIFTI_DATA / name).arrays == tuple(
        tuple(d.dims) for d in nib.load(GIFTI_DATA / name).darrays
    )


def test_gifti_arrays_of_different_shapes_are_refused(tmp_path):
    path = tmp_path / "mixed.func.gii"
    arrays = [nib.gifti.GiftiDataArray(np.zeros(n, np.float32)) for n in (4, 5)]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)
    with pytest.raises(ImageError, match=r"mixed\.func\.gii: 2 data arrays of shapes"):
        load_func_gifti(path)


# -- broken files -----------------------------------------------------------------------------


def gzipped_nifti(tmp_path) -> bytes:
    return _save(tmp_path / "good.nii.gz", _bold(shape=(20, 20, 20, 10))).read_bytes()


def truncated_in_data(tmp_path):
    raw = gzipped_nifti(tmp_path)
    return raw[: len(raw) // 2]


def truncated_in_header(tmp_path):
    return gzipped_nifti(tmp_path)[:30]


def corrupt(tmp_path):
    raw = bytearray(gzipped_nifti(tmp_path))
    middle = len(raw) // 2
    raw[middle : middle + 64] = np.random.default_rng(1).bytes(64)
    return bytes(raw)


def short_data(tmp_path):
    """A valid gzip stream that ends before the data the header announces."""
    raw = gzip.decompress(gzipped_nifti(tmp_path))
    return gzip.compress(raw[: len(raw) - 100])


#: Broken .nii.gz contents and what the error says the file holds (the first five fail on
#: opening, the others on reading the data).
CASES = [
    ("empty", lambda tmp: b"", "an empty file (0 bytes)"),
    ("not gzip", lambda tmp: np.random.default_rng(0).bytes(4096), "an unreadable file"),
    ("gzip of text", lambda tmp: gzip.compress(b"not a nifti" * 100), "an unreadable file"),
    ("gzip of nothing", lambda tmp: gzip.compress(b""), "an unreadable file (ImageFileError"),
    ("truncated header", truncated_in_header, "an unreadable file (EOFError"),
    ("truncated data", truncated_in_data, "unreadable data (EOFError"),
    ("corrupt data", corrupt, "unreadable data ("),
    ("short data", short_data, "unreadable data (EOFError: expected"),
]


@pytest.mark.parametrize(("name", "content", "found"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_file_is_an_image_error_naming_it(tmp_path, name, content, found):
    bad = tmp_path / "sub-01_bold.nii.gz"
    bad.write_bytes(content(tmp_path))
    with pytest.raises(ImageError) as caught:
        read(load(bad), bad)
    err = caught.value
    assert err.path == str(bad) and err.found.startswith(found), err.found
    assert str(err) == f"{bad}: {err.found}"
    assert isinstance(err, OSError)
    assert (err.__cause__ is None) == (name == "empty")  # nibabel's or ISA-L's error, chained


def test_a_truncated_file_is_named_by_every_reader(tmp_path):
    raw = gzip.decompress(gzipped_nifti(tmp_path))
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(gzip.compress(raw[:200]))  # inside the 352-byte header
    for reader in (load, load_header):
        with pytest.raises(ImageError, match=r"cut\.nii\.gz: an unreadable (file|header)"):
            reader(bad)
    cut = tmp_path / "cut.func.gii"
    cut.write_bytes(_gifti(tmp_path / "whole.func.gii", _bold(shape=(3, 4))).read_bytes()[:300])
    for reader in (load_func_gifti, load_header):
        with pytest.raises(ImageError, match=r"cut\.func\.gii: an unreadable (file|header)"):
            reader(cut)


def test_a_missing_file_is_named(tmp_path):
    for reader in (load, load_header, load_dtseries, load_func_gifti):
        with pytest.raises(ImageError, match=r"absent\.nii: no such file$"):
            reader(tmp_path / "absent.nii")


def test_an_image_error_survives_pickling_from_a_worker():
    err = pickle.loads(pickle.dumps(ImageError("/data/x.nii.gz", "unreadable data (EOFError)")))
    assert (err.path, err.found, str(err)) == (
        "/data/x.nii.gz",
        "unreadable data (EOFError)",
        "/data/x.nii.gz: unreadable data (EOFError)",
    )
