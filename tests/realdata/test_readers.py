"""Shards of real runs read by the ``webdataset`` library and TensorFlow as ns.stream reads them.

One build of ``Mask() + Clean(simple with basic motion, high_pass=0.01)`` over the real
derivative, in WebDataset tar and TFRecord shards of at most 2 samples (so 2 shards of each);
each run keeps its own shape (27 x 1392, 29 x 159, 20 x 852 voxels). Arrays must be equal bit
for bit, metadata equal.

TensorFlow runs in a subprocess (as in tests/archives/test_tfrecord.py): importing it costs
seconds and most of a GiB, and its threads would make later forks in this process unsafe.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import webdataset as wds

import nishard as ns
from nishard.archives import TFRecord, WebDataset
from tests.helpers import run_tensorflow
from tests.realdata.conftest import SIMPLE_BASIC, build

ARRAYS = ("bold", "volumes")
META = {"age": 0.0, "sex": "", "subject": "", "t_r": 0.0, "task": ""}


@pytest.fixture(scope="module")
def shards(records, tmp_path_factory):
    """(folder, manifest, samples as ns.stream reads the tar shards)."""
    out = tmp_path_factory.mktemp("realdata-shards")
    steps = [ns.t.Mask(), ns.t.Clean(confounds=SIMPLE_BASIC, high_pass=0.01)]
    manifest, samples = build(records, steps, out, formats=[WebDataset(), TFRecord()])
    assert sorted(samples) == sorted(r.id for r in records)  # nothing quarantined
    return out, manifest, samples


def _names(manifest, fmt):
    return [s["name"] for s in manifest["shards"] if s["format"] == fmt]


def _bits(array):
    return np.ascontiguousarray(array).view(f"u{array.dtype.itemsize}")


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)  # arrays only: never a pickle


def test_the_stream_reads_tfrecord_as_it_reads_tar(shards):
    out, _, samples = shards
    stream = ns.stream.open(out, "*", format="tfrecord").fields(float32=False)
    got = {sample["__key__"]: sample for sample in stream.arrays()}
    assert sorted(got) == sorted(samples)
    for key, sample in got.items():
        assert sample["__meta__"] == samples[key]["__meta__"]
        for name in ARRAYS:
            assert sample[name].dtype == samples[key][name].dtype
            np.testing.assert_array_equal(_bits(sample[name]), _bits(samples[key][name]))


def test_webdataset_reads_what_the_stream_reads(shards):
    out, manifest, samples = shards
    names = _names(manifest, "webdataset")
    assert names == ["all-000000.tar", "all-000001.tar"]
    url = str(out / "all-{000000..000001}.tar")  # brace notation, as the README reads them
    dataset = (
        wds.WebDataset(url, shardshuffle=False)
        .to_tuple("__key__", "bold.npy", "volumes.npy", "json")
        .map_tuple(str, _npy, _npy, json.loads)
    )
    seen = []
    for key, bold, volumes, meta in dataset:
        seen.append(key)
        reference = samples[key]
        for name, array in (("bold", bold), ("volumes", volumes)):
            assert array.dtype == reference[name].dtype and array.shape == reference[name].shape
            np.testing.assert_array_equal(_bits(array), _bits(reference[name]))
        assert meta == reference["__meta__"]
    assert seen == [k for s in manifest["shards"] if s["format"] == "webdataset" for k in s["keys"]]


READ_WITH_TENSORFLOW = """
    spec = {"__key__": tf.io.FixedLenFeature([], tf.string),
            "json": tf.io.FixedLenFeature([], tf.string)}
    for name in arrays:
        spec[name] = tf.io.FixedLenFeature([], tf.string)
        spec[name + "/shape"] = tf.io.VarLenFeature(tf.int64)
        spec[name + "/dtype"] = tf.io.FixedLenFeature([], tf.string)
    for name, example in meta.items():
        kind = tf.float32 if isinstance(example, float) else tf.string
        spec["meta/" + name] = tf.io.FixedLenFeature([], kind)
    found, rest = {}, {}
    for record in tf.data.TFRecordDataset(files):
        ex = tf.io.parse_single_example(record, spec)
        key = ex.pop("__key__").numpy().decode()
        for name in arrays:
            dtype = ex.pop(name + "/dtype").numpy().decode()
            shape = tf.sparse.to_dense(ex.pop(name + "/shape"))
            array = tf.reshape(tf.io.decode_raw(ex.pop(name), tf.as_dtype(dtype)), shape)
            found[key + "." + name] = array.numpy()
        values = {k: np.asarray(v.numpy()).item() for k, v in ex.items()}
        rest[key] = {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}
    np.savez(out, **found)
    print(json.dumps(rest))
"""


def test_tensorflow_reads_what_the_stream_reads(shards, tmp_path):
    out, manifest, samples = shards
    files = [str(out / name) for name in _names(manifest, "tfrecord")]
    assert len(files) == 2
    stored = tmp_path / "tensorflow.npz"
    printed = run_tensorflow(READ_WITH_TENSORFLOW, files=files, arrays=list(ARRAYS), meta=META,
                          out=str(stored))  # fmt: skip
    rest = json.loads(printed.splitlines()[-1])
    assert sorted(rest) == sorted(samples)
    with np.load(stored) as found:
        for key, reference in samples.items():
            for name in ARRAYS:
                array = found[f"{key}.{name}"]
                assert array.dtype == reference[name].dtype
                np.testing.assert_array_equal(_bits(array), _bits(reference[name]))
            meta = reference["__meta__"]
            assert json.loads(rest[key]["json"]) == meta
            for name in ("sex", "subject", "task"):
                assert rest[key][f"meta/{name}"] == meta[name]
            # float32 features in TFRecord
            assert rest[key]["meta/age"] == pytest.approx(meta["age"])
            assert rest[key]["meta/t_r"] == pytest.approx(meta["t_r"], rel=1e-7)
