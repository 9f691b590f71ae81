"""TFRecord shards: TensorFlow and the tfrecord package read what nishard wrote, bit for bit.

TensorFlow runs in a subprocess: importing it costs seconds and most of a GiB, and its
threads would make later forks in this process (the DataLoader tests) unsafe.
"""

import json
import tarfile

import google_crc32c
import ml_dtypes
import numpy as np
import pytest
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_loader

import nishard as ns
from nishard.archives import TFRecord, WebDataset
from nishard.archives.encode import decode_npy
from nishard.archives.protobuf import varint
from nishard.archives.tfrecord import FRAMING, masked_crc32c, raw_bytes
from nishard.transforms.storage import Cast
from tests.helpers import TINY_RES, run_tensorflow

DTYPES = ["float32", "float16", "bfloat16"]


def _build(root, out, dtype):
    """Shards of one plan in WebDataset (the reference) and TFRecord, by one write."""
    records = ns.locate(
        root,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(), Cast(dtype)])
    formats = [WebDataset(), TFRecord()]
    manifest = ns.write(
        records, plan, out, formats=formats, shards=ns.shards.by_count(5), progress=False
    )
    return records, manifest


def _shards(out, manifest, fmt):
    return [str(out / s["name"]) for s in manifest["shards"] if s["format"] == fmt]


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
    """dtype -> (folder, records, manifest) of a build in WebDataset and TFRecord."""
    found = {}
    for dtype in DTYPES:
        out = tmp_path_factory.mktemp(f"tfrecord-{dtype}")
        found[dtype] = (out, *_build(tiny, out, dtype))
    return found


# For each dtype: the arrays' bits to an .npz, the other features as a JSON line.
READ_WITH_TENSORFLOW = """
    spec = {
        "__key__": tf.io.FixedLenFeature([], tf.string),
        "bold": tf.io.FixedLenFeature([], tf.string),
        "bold/shape": tf.io.VarLenFeature(tf.int64),
        "bold/dtype": tf.io.FixedLenFeature([], tf.string),
        "json": tf.io.FixedLenFeature([], tf.string),
        "meta/age": tf.io.FixedLenFeature([], tf.float32),
        "meta/sex": tf.io.FixedLenFeature([], tf.string),
        "meta/t_r": tf.io.FixedLenFeature([], tf.float32),
        "meta/run": tf.io.FixedLenFeature([], tf.string),
    }
    for dtype, out in outs.items():
        def parse(record):
            ex = tf.io.parse_single_example(record, spec)
            bold = tf.io.decode_raw(ex["bold"], tf.as_dtype(dtype))
            ex["bold"] = tf.reshape(bold, tf.sparse.to_dense(ex.pop("bold/shape")))
            return ex
        arrays, rest = {}, {}
        for ex in tf.data.TFRecordDataset(files[dtype]).map(parse):
            key = ex.pop("__key__").numpy().decode()
            bold = ex.pop("bold").numpy()
            arrays[key] = bold.view(f"u{bold.dtype.itemsize}")
            values = {k: np.asarray(v.numpy()).item() for k, v in ex.items()}
            rest[key] = {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}
            rest[key]["numpy_dtype"] = str(bold.dtype)
        np.savez(out, **arrays)
        print(json.dumps(rest))
"""


def test_tensorflow_reads_every_sample_bit_for_bit(builds, tmp_path):
    files = {
        dtype: _shards(out, manifest, "tfrecord") for dtype, (out, _, manifest) in builds.items()
    }
    outs = {dtype: str(tmp_path / f"{dtype}.npz") for dtype in builds}
    printed = run_tensorflow(READ_WITH_TENSORFLOW, files=files, outs=outs).splitlines()
    assert len(printed) == len(DTYPES)
    for dtype, line in zip(builds, printed, strict=True):
        _check_tensorflow_read(*builds[dtype], dtype, json.loads(line), outs[dtype])


def _check_tensorflow_read(out, records, manifest, dtype, read, stored):
    reference = _reference(out, manifest)
    assert sorted(read) == sorted(reference) == sorted(r.id for r in records)
    with np.load(stored) as arrays:
        for key, (bold, meta) in reference.items():
            assert arrays[key].shape == bold.shape
            np.testing.assert_array_equal(arrays[key], _bits(bold))
            got = read[key]
            assert got["numpy_dtype"] == got["bold/dtype"] == dtype == str(bold.dtype)
            assert json.loads(got["json"]) == meta
            assert got["meta/age"] == pytest.approx(meta["age"])  # float32 in TFRecord
            assert got["meta/t_r"] == meta["t_r"]
            assert got["meta/sex"] == meta["sex"] and got["meta/run"] == meta["run"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tfrecord_package_reads_every_sample_bit_for_bit(builds, dtype):
    out, _, manifest = builds[dtype]
    reference = _reference(out, manifest)
    description = {"__key__": "byte", "bold": "byte", "bold/shape": "int", "bold/dtype": "byte"}
    seen = 0
    for path in _shards(out, manifest, "tfrecord"):
        for sample in tfrecord_loader(path, None, description):
            # The package gives a single bytes value as bytes, an int64 list as an array.
            bold, _ = reference[sample["__key__"].decode()]
            assert sample["bold/dtype"].decode() == dtype
            assert sample["bold/shape"].tolist() == list(bold.shape)
            raw = np.frombuffer(sample["bold"], dtype=_bits(bold).dtype)
            np.testing.assert_array_equal(raw.reshape(bold.shape), _bits(bold))
            seen += 1
    assert seen == len(reference)


def test_a_flipped_byte_is_a_data_loss_error_in_tensorflow(builds, tmp_path):
    out, _, manifest = builds["float32"]
    data = bytearray((out / manifest["shards"][-1]["name"]).read_bytes())
    broken = {}
    for where, offset in {"length": 3, "data": len(data) // 2, "crc": len(data) - 1}.items():
        copy = bytearray(data)
        copy[offset] ^= 0x01
        broken[where] = str(tmp_path / f"{where}.tfrecord")
        (tmp_path / f"{where}.tfrecord").write_bytes(copy)
    script = """
        for where, path in broken.items():
            try:
                for _ in tf.data.TFRecordDataset(path):
                    pass
                print(where, "read")
            except tf.errors.DataLossError:
                print(where, "DataLossError")
    """
    lines = run_tensorflow(script, broken=broken).split("\n")
    assert lines[:3] == ["length DataLossError", "data DataLossError", "crc DataLossError"]


def test_framing_and_crcs_are_tensorflows(builds):
    """Walk the file as TFRecord readers do, checking each masked CRC-32C."""
    out, _, manifest = builds["float32"]
    shard = next(s for s in manifest["shards"] if s["format"] == "tfrecord")
    data = (out / shard["name"]).read_bytes()
    offset, records = 0, 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 8], "little")
        header_crc = int.from_bytes(data[offset + 8 : offset + 12], "little")
        assert header_crc == masked_crc32c(data[offset : offset + 8])
        body = data[offset + 12 : offset + 12 + length]
        crc = int.from_bytes(data[offset + 12 + length : offset + 16 + length], "little")
        assert crc == masked_crc32c(body)
        offset += length + FRAMING
        records += 1
    assert offset == len(data) == shard["bytes"]
    assert records == shard["samples"]


def test_crc32c_and_varints_match_published_values():
    # CRC-32C check value (RFC 3720, iSCSI) and the masking of TensorFlow's crc32c.h.
    assert google_crc32c.value(b"123456789") == 0xE3069283
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32
    assert varint(0) == b"\x00" and varint(1) == b"\x01" and varint(300) == b"\xac\x02"
    assert varint(2**64 - 1) == b"\xff" * 9 + b"\x01"
    with pytest.raises(ValueError):
        varint(-1)


def _parse(fields):
    message = example_pb2.Example()
    message.ParseFromString(bytes(fields["example"]))
    return message.features.feature


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.float16(1.5).reshape(()),
        np.zeros((2, 0, 3), dtype=np.int16),
        np.array([[1, -2], [3, -4]], dtype=">i4"),  # big-endian in, little-endian out
        np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        np.array([-0.0, 1.0, np.inf], dtype=ml_dtypes.bfloat16),
        np.array([True, False]),
    ],
    ids=["float32", "float16-0d", "empty", "big-endian", "fortran", "bfloat16", "bool"],
)
def test_arrays_are_raw_little_endian_bytes_with_shape_and_dtype(array):
    feature = _parse(TFRecord().encode("k", {"x": array}, {}))
    assert feature["x/shape"].int64_list.value == list(array.shape)
    assert feature["x/dtype"].bytes_list.value == [array.dtype.name.encode()]
    assert feature["__key__"].bytes_list.value == [b"k"]
    [raw] = feature["x"].bytes_list.value
    little = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"))
    assert raw == little.tobytes()


def test_metadata_gets_typed_features_and_json_keeps_everything():
    meta = {
        "age": 23.5,
        "n_volumes": 120,
        "offset": -3,
        "patient": True,
        "sex": "F",
        "missing": None,
        "tags": ["a", "b"],
        "huge": 2**70,
    }
    feature = _parse(TFRecord().encode("k", {}, meta))
    assert feature["meta/age"].float_list.value == [23.5]
    assert feature["meta/n_volumes"].int64_list.value == [120]
    assert feature["meta/offset"].int64_list.value == [-3]
    assert feature["meta/patient"].int64_list.value == [1]
    assert feature["meta/sex"].bytes_list.value == [b"F"]
    for only_json in ("missing", "tags", "huge"):
        assert f"meta/{only_json}" not in feature
    assert json.loads(feature["json"].bytes_list.value[0]) == meta


def test_the_same_sample_gives_the_same_bytes_and_an_exact_size():
    fmt = TFRecord()
    products = {"b": np.ones(3, np.float32), "a": np.zeros((2, 2), np.int8)}
    fields = fmt.encode("k", products, {"z": 1, "a": "x"})
    again = fmt.encode("k", dict(reversed(products.items())), {"a": "x", "z": 1})
    assert bytes(fields["example"]) == bytes(again["example"])
    assert fmt.sample_size("k", fields) == len(bytes(fields["example"])) + 16


@pytest.mark.parametrize("name", ["json", "__key__", "meta/age", "x/shape"])
def test_a_product_named_like_another_feature_is_refused(name):
    products = {"x": np.zeros(2, np.float32), name: np.zeros(1, np.float32)}
    with pytest.raises(ValueError, match="two TFRecord features"):
        TFRecord().encode("k", products, {"age": 1})


def test_arrays_of_objects_are_refused():
    with pytest.raises(TypeError, match="numbers only"):
        raw_bytes(np.array(["a"], dtype=object))


def test_byte_sized_shards_stay_under_the_limit(builds, tmp_path):
    dtype = "bfloat16"
    _, records, manifest = builds[dtype]
    first = next(s for s in manifest["shards"] if s["format"] == "tfrecord")
    limit = 3 * first["bytes"] // first["samples"]  # all samples are the same size here
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(), Cast(dtype)])
    again = ns.write(
        records, plan, tmp_path, formats=[TFRecord()], shards=ns.shards.by_size(limit),
        progress=False,
    )  # fmt: skip
    assert {s["samples"] for s in again["shards"]} <= {1, 2, 3}
    assert all(s["bytes"] <= limit for s in again["shards"])
    assert again["shards"][0]["samples"] == 3


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_two_builds_are_byte_identical(tiny, builds, tmp_path, dtype):
    out, _, manifest = builds[dtype]
    _build(tiny, tmp_path, dtype)
    for shard in manifest["shards"]:
        assert (tmp_path / shard["name"]).read_bytes() == (out / shard["name"]).read_bytes()
