"""HDF5 shards: h5py reads what nishard wrote, bit for bit, and two builds are identical."""

import json
import tarfile

import ml_dtypes
import numpy as np
import pytest

import nishard as ns
from nishard.archives import HDF5, WebDataset
from nishard.archives.encode import decode_npy, encode_npy, restore_dtype
from nishard.archives.hdf5 import npy_view
from nishard.transforms.storage import Cast
from tests.helpers import TINY_RES

h5py = pytest.importorskip("h5py")

DTYPES = ["float32", "float16", "bfloat16"]


def _build(root, out, dtype, **kwargs):
    """Shards of one plan in WebDataset (the reference) and HDF5, by one write."""
    records = ns.locate(
        root,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(), Cast(dtype)])
    kwargs.setdefault("formats", [WebDataset(), HDF5()])
    kwargs.setdefault("shards", ns.shards.by_count(5))
    return records, ns.write(records, plan, out, progress=False, **kwargs)


def _shards(out, manifest, fmt):
    return [out / s["name"] for s in manifest["shards"] if s["format"] == fmt]


def _reference(out, manifest):
    """What nishard wrote, from the tar shards: key -> (bold, metadata)."""
    found = {}
    for path in _shards(out, manifest, "webdataset"):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, field = member.name.split(".", 1)
                data = tar.extractfile(member).read()
                value = decode_npy(data) if field == "bold.npy" else json.loads(data)
                found.setdefault(key, {})[field] = value
    return {key: (fields["bold.npy"], fields["json"]) for key, fields in found.items()}


def _bits(array):
    return np.ascontiguousarray(array).view(f"u{array.dtype.itemsize}")


@pytest.fixture(scope="module")
def builds(tiny, tmp_path_factory):
    """dtype -> (folder, records, manifest) of a build in WebDataset and HDF5."""
    found = {}
    for dtype in DTYPES:
        out = tmp_path_factory.mktemp(f"hdf5-{dtype}")
        found[dtype] = (out, *_build(tiny, out, dtype))
    return found


@pytest.mark.parametrize("dtype", DTYPES)
def test_h5py_reads_every_sample_bit_for_bit(builds, dtype):
    out, records, manifest = builds[dtype]
    reference = _reference(out, manifest)
    seen = {}
    for path in _shards(out, manifest, "hdf5"):
        with h5py.File(path, "r") as file:
            for key, group in file.items():
                seen[key] = (group["bold"][()], json.loads(group.attrs["json"]))
    assert sorted(seen) == sorted(reference) == sorted(r.id for r in records)
    for key, (bold, meta) in seen.items():
        want, want_meta = reference[key]
        assert meta == want_meta
        if dtype == "bfloat16":
            # HDF5 has no bfloat16: a compound of one uint16 named for it, as in .npy.
            assert bold.dtype == np.dtype([("bfloat16", "<u2")])
            bold = restore_dtype(bold)
        assert (
            bold.dtype
            == want.dtype
            == np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
        )
        assert bold.shape == want.shape
        np.testing.assert_array_equal(_bits(bold), _bits(want))


def test_datasets_keep_dtype_shape_and_values_of_any_array(tmp_path):
    arrays = {
        "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "half": np.float16(1.5).reshape(()),
        "empty": np.zeros((2, 0, 3), dtype=np.int16),
        "signed_zero": np.array([-0.0, 0.0, np.nan, -np.inf], dtype=np.float64),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "flags": np.array([True, False]),
    }
    fmt = HDF5()
    shard = fmt.open(str(tmp_path / "x.h5"))
    shard.add("k.1", fmt.encode("k.1", arrays, {"age": 3}))
    shard.close()
    with h5py.File(tmp_path / "x.h5", "r") as file:
        group = file["k.1"]
        assert json.loads(group.attrs["json"]) == {"age": 3}
        for name, array in arrays.items():
            back = group[name][()]
            assert back.dtype == array.dtype and back.shape == array.shape, name
            assert back.tobytes() == np.ascontiguousarray(array).tobytes(), name


def test_npy_view_reads_without_copying():
    data = encode_npy(np.arange(6, dtype=np.float32).reshape(2, 3))
    view = npy_view(data)
    assert view.shape == (2, 3) and not view.flags.owndata and not view.flags.writeable
    np.testing.assert_array_equal(view, np.arange(6).reshape(2, 3))
    assert npy_view(encode_npy(np.zeros((0, 4), np.int8))).shape == (0, 4)


def test_two_builds_are_byte_identical(tiny, builds, tmp_path):
    out, _, manifest = builds["bfloat16"]
    _build(tiny, tmp_path, "bfloat16")
    for path in _shards(out, manifest, "hdf5"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_size_estimates_bound_the_file(tmp_path):
    fmt, rng = HDF5(), np.random.default_rng(0)
    for n_samples, size, n_products in [(1, 0, 1), (1, 10**5, 2), (40, 1000, 2), (400, 3, 3)]:
        shard, content = fmt.open(str(tmp_path / "x.h5")), 0
        for i in range(n_samples):
            key = f"sub-{i:04d}_task-rest_run-1"
            products = {f"p{j}": rng.normal(size=size) for j in range(n_products)}
            fields = fmt.encode(key, products, {"age": 30.5, "sex": "F", "site": "siteA"})
            content += fmt.sample_size(key, fields)
            shard.add(key, fields)
        shard.close()
        real = (tmp_path / "x.h5").stat().st_size
        assert real <= fmt.file_size(content) <= real + 8192 + n_samples * (1024 + 512)


def test_byte_sized_shards_stay_under_the_limit(tiny, builds, tmp_path):
    _, _, manifest = builds["float16"]
    first = next(s for s in manifest["shards"] if s["format"] == "hdf5")
    limit = 3 * first["bytes"] // first["samples"] + 4096
    _, again = _build(tiny, tmp_path, "float16", formats=[HDF5()], shards=ns.shards.by_size(limit))
    assert all(s["bytes"] <= limit for s in again["shards"])
    assert max(s["samples"] for s in again["shards"]) >= 2


@pytest.mark.parametrize("key", ["a/b", "..", "__private", "", "sub 01"])
def test_keys_that_hdf5_would_read_as_paths_are_refused(key):
    with pytest.raises(ValueError, match="sample key"):
        HDF5().encode(key, {"bold": np.zeros(2)}, {})
    with pytest.raises(ValueError, match="product name"):
        HDF5().encode("ok", {key: np.zeros(2)}, {})
