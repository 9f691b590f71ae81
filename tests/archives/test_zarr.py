"""Zarr shards: zarr reads what nishard wrote, bit for bit, and two builds are identical."""

import json
import tarfile
import warnings
import zipfile

import ml_dtypes
import numpy as np
import pytest

import nishard as ns
from nishard.archives import WebDataset, Zarr
from nishard.archives.encode import decode_npy, restore_dtype
from nishard.transforms.storage import Cast
from tests.helpers import TINY_RES

zarr = pytest.importorskip("zarr")

DTYPES = ["float32", "float16", "bfloat16"]


def _build(root, out, dtype, **kwargs):
    """Shards of one plan in WebDataset (the reference) and Zarr, by one write."""
    records = ns.locate(
        root,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(), Cast(dtype)])
    kwargs.setdefault("formats", [WebDataset(), Zarr()])
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
    """dtype -> (folder, records, manifest) of a build in WebDataset and Zarr."""
    found = {}
    for dtype in DTYPES:
        out = tmp_path_factory.mktemp(f"zarr-{dtype}")
        found[dtype] = (out, *_build(tiny, out, dtype))
    return found


def _open(path):
    return zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")


@pytest.mark.parametrize("dtype", DTYPES)
def test_zarr_reads_every_sample_bit_for_bit(builds, dtype):
    out, records, manifest = builds[dtype]
    reference = _reference(out, manifest)
    seen = {}
    for path in _shards(out, manifest, "zarr"):
        with warnings.catch_warnings():
            # bfloat16's structured dtype is zarr-python's extension to Zarr 3.
            warnings.simplefilter("ignore", zarr.errors.UnstableSpecificationWarning)
            for key, group in _open(path).groups():
                seen[key] = (group["bold"][...], group.attrs.asdict())
    assert sorted(seen) == sorted(reference) == sorted(r.id for r in records)
    for key, (bold, meta) in seen.items():
        want, want_meta = reference[key]
        assert meta == want_meta
        if dtype == "bfloat16":
            assert bold.dtype == np.dtype([("bfloat16", "<u2")])  # as in .npy
            bold = restore_dtype(bold)
        assert bold.dtype == want.dtype
        assert str(bold.dtype) == dtype
        assert bold.shape == want.shape
        np.testing.assert_array_equal(_bits(bold), _bits(want))


ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "half": np.float16(1.5).reshape(()),
    "empty": np.zeros((2, 0, 3), dtype=np.int16),
    # All zeros but one sign bit: zarr would skip a chunk equal to the fill value.
    "signed_zero": np.array([-0.0, 0.0, 0.0], dtype=np.float64),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    "flags": np.array([True, False]),
    "bf16": np.array([-0.0, 1.5, np.inf], dtype=ml_dtypes.bfloat16),
}


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_arrays_keep_dtype_shape_and_bits_in_either_zarr_format(tmp_path, zarr_format):
    fmt = Zarr(zarr_format=zarr_format)
    shard = fmt.open(str(tmp_path / "x.zarr.zip"))
    shard.add("k.1", fmt.encode("k.1", ARRAYS, {"age": 3, "tags": ["a"], "none": None}))
    shard.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zarr.errors.UnstableSpecificationWarning)
        root = _open(tmp_path / "x.zarr.zip")
        assert root.metadata.zarr_format == zarr_format
        group = root["k.1"]
        assert group.attrs.asdict() == {"age": 3, "none": None, "tags": ["a"]}
        for name, array in ARRAYS.items():
            back = restore_dtype(group[name][...])
            assert back.dtype == array.dtype and back.shape == array.shape, name
            assert back.tobytes() == np.ascontiguousarray(array).tobytes(), name


def test_zip_entries_are_timeless_uncompressed_and_sorted(builds):
    out, _, manifest = builds["float32"]
    with zipfile.ZipFile(_shards(out, manifest, "zarr")[0]) as archive:
        infos = archive.infolist()
    assert infos[0].filename == "zarr.json"  # the root group first
    names = [info.filename for info in infos]
    keys = [name.split("/")[0] for name in names[1:]]
    runs = [key for i, key in enumerate(keys) if i == 0 or keys[i - 1] != key]
    assert len(runs) == len(set(keys))  # a sample's entries are adjacent
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_STORED}


def test_two_builds_are_byte_identical(tiny, builds, tmp_path):
    out, _, manifest = builds["bfloat16"]
    _build(tiny, tmp_path, "bfloat16")
    for path in _shards(out, manifest, "zarr"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_sizes_are_exact_up_to_the_zip64_allowance(tmp_path, zarr_format):
    fmt, rng = Zarr(zarr_format=zarr_format), np.random.default_rng(0)
    for n_samples, size, n_products in [(1, 0, 1), (1, 10**5, 2), (40, 1000, 2)]:
        shard, content, entries = fmt.open(str(tmp_path / "x.zip")), 0, 0
        for i in range(n_samples):
            key = f"sub-{i:04d}_task-rest_run-1"
            products = {f"p{j}": rng.normal(size=size) for j in range(n_products)}
            fields = fmt.encode(key, products, {"age": 30.5, "sex": "F"})
            content += fmt.sample_size(key, fields)
            entries += len(fields)
            shard.add(key, fields)
        shard.close()
        real = (tmp_path / "x.zip").stat().st_size
        assert real <= fmt.file_size(content) <= real + 48 * entries + 512 + 98


def test_byte_sized_shards_stay_under_the_limit(tiny, builds, tmp_path):
    _, _, manifest = builds["float16"]
    first = next(s for s in manifest["shards"] if s["format"] == "zarr")
    limit = 3 * first["bytes"] // first["samples"] + 1024
    _, again = _build(tiny, tmp_path, "float16", formats=[Zarr()], shards=ns.shards.by_size(limit))
    assert all(s["bytes"] <= limit for s in again["shards"])
    assert max(s["samples"] for s in again["shards"]) == 3


def test_the_spec_records_the_zarr_format():
    assert Zarr().to_dict() == {"name": "zarr", "zarr_format": 3}
    with pytest.raises(ValueError, match="zarr_format"):
        Zarr(zarr_format=4)


@pytest.mark.parametrize("key", ["a/b", "..", "__private", "", "sub 01"])
def test_keys_that_zarr_would_read_as_paths_are_refused(key):
    with pytest.raises(ValueError, match="sample key"):
        Zarr().encode(key, {"bold": np.zeros(2)}, {})
    with pytest.raises(ValueError, match="product name"):
        Zarr().encode("ok", {key: np.zeros(2)}, {})
