"""Random access: the wids shard index as the real wids library reads it, and offsets."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile

import numpy as np
import pytest
import webdataset as wds

import nishard as ns
from nishard.archives import TFRecord, WebDataset
from nishard.builder.splits import Random
from tests.builder.test_write import TRANSFORMS, _records

wids = pytest.importorskip("wids")


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("indexed")
    split = Random(fractions={"train": 0.5, "test": 0.5}, seed=2)
    manifest = ns.write(_records(tiny), ns.assemble(TRANSFORMS), out, split=split,
                        formats=[WebDataset(), TFRecord()], shards=ns.shards.by_count(2),
                        progress=False)  # fmt: skip
    return out, manifest


@pytest.mark.parametrize("name", ["train", "test"])
def test_wids_reads_sample_i_of_the_split(built, name):
    out, manifest = built
    entry = manifest["indexes"][name]
    index = out / entry["file"]
    assert hashlib.sha256(index.read_bytes()).hexdigest() == entry["sha256"]
    assert json.loads(index.read_text())["wids_version"] == 1
    urls = [str(out / s["name"]) for s in manifest["shards"]
            if s["split"] == name and s["format"] == "webdataset"]  # fmt: skip
    expected = list(wds.WebDataset(urls, shardshuffle=False).decode())
    # cache_dir: the folder itself, so wids reads the shards in place rather than copying.
    dataset = wids.ShardListDataset(str(index), cache_dir=str(out), transformations=[])
    assert len(dataset) == len(expected)
    for i in reversed(range(len(expected))):  # out of order: random access
        sample = dataset[i]
        assert sample["__key__"] == expected[i]["__key__"]
        bold = np.load(io.BytesIO(sample[".bold.npy"].read()))
        np.testing.assert_array_equal(bold, expected[i]["bold.npy"])
        assert json.loads(sample[".json"].read()) == expected[i]["json"]


def test_the_index_lists_only_tar_shards_relative_to_itself(built):
    out, manifest = built
    shardlist = json.loads((out / "train.wids.json").read_text())["shardlist"]
    tars = [s for s in manifest["shards"] if s["split"] == "train" and s["format"] == "webdataset"]
    assert [s["url"] for s in shardlist] == [s["name"] for s in tars]
    assert [s["nsamples"] for s in shardlist] == [s["samples"] for s in tars]


def test_offsets_point_at_each_sample_in_tar_and_tfrecord_shards(built):
    out, manifest = built
    for shard in manifest["shards"]:
        path = out / shard["name"]
        assert len(shard["offsets"]) == len(shard["keys"]) == shard["samples"]
        if shard["format"] == "webdataset":
            with tarfile.open(path) as tar:
                first = {}
                for member in tar.getmembers():
                    first.setdefault(member.name.split(".", 1)[0], member.offset)
            assert [first[key] for key in shard["keys"]] == shard["offsets"]
        else:  # a TFRecord: each offset is a record's length field, records back to back
            data = path.read_bytes()
            lengths = [struct.unpack_from("<Q", data, o)[0] for o in shard["offsets"]]
            ends = [o + 8 + 4 + n + 4 for o, n in zip(shard["offsets"], lengths, strict=True)]
            assert ends == [*shard["offsets"][1:], len(data)]
