"""Manifest v2: per-sample sizes and CRC-32C, the content checksum, v1 read, partials, merge."""

from __future__ import annotations

import json

import crc32c
import numpy as np
import pytest

import nishard as ns
from nishard.archives import HDF5, TFRecord, WebDataset, Zarr
from nishard.archives.hashing import CHUNK, HashingFile
from nishard.archives.manifest import (
    FORMAT_VERSION,
    PartialManifest,
    check_checksum,
    merge,
    read_manifest,
    upgrade,
    write_manifest,
)
from nishard.archives.shards import ShardInfo
from nishard.archives.stats import Moments, sample_moments
from nishard.builder.planning import ShardPlan, plan_shards
from tests.builder.test_write import _build, _records


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("v2") / "shards"
    split = ns.splits.stratified("diagnosis", fractions={"train": 0.5, "val": 0.5}, seed=0)
    manifest = _build(tiny, out, formats=[WebDataset(), TFRecord(), HDF5(), Zarr()], split=split)
    return out, manifest


def test_each_sample_of_a_tar_or_tfrecord_shard_is_checked_by_its_crc32c(built):
    out, manifest = built
    checked = 0
    for shard in manifest["shards"]:
        if shard["format"] not in ("webdataset", "tfrecord"):
            continue
        data = (out / shard["name"]).read_bytes()
        assert len(shard["crc32c"]) == len(shard["sizes"]) == shard["samples"]
        samples = zip(shard["offsets"], shard["sizes"], shard["crc32c"], strict=True)
        for offset, size, crc in samples:
            assert crc32c.crc32c(data[offset : offset + size]) == crc
            checked += 1
        # The samples tile the shard's content: each starts where the last ended.
        ends = [o + s for o, s in zip(shard["offsets"], shard["sizes"], strict=True)]
        assert ends[:-1] == shard["offsets"][1:]
        flipped = bytearray(data[shard["offsets"][-1] : ends[-1]])
        flipped[len(flipped) // 2] ^= 1
        assert crc32c.crc32c(bytes(flipped)) != shard["crc32c"][-1]
    assert checked == 2 * manifest["records"]["written"]


def test_every_format_lists_each_sample_size(built):
    _, manifest = built
    for shard in manifest["shards"]:
        assert len(shard["sizes"]) == shard["samples"]
        assert all(size > 0 for size in shard["sizes"])
        # HDF5 and Zarr sizes are estimates of what a sample adds: at least its arrays.
    bold = manifest["keys"]["bold"]
    least = np.dtype(bold["dtype"]).itemsize * int(np.prod([n or 1 for n in bold["shape"]]))
    for shard in manifest["shards"]:
        if shard["format"] in ("hdf5", "zarr"):
            assert min(shard["sizes"]) >= least


def test_the_manifest_is_v2_and_its_checksum_catches_an_edit(built, tmp_path):
    out, manifest = built
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["format_version"] == FORMAT_VERSION == 2
    assert on_disk == manifest
    assert check_checksum(on_disk) is None
    edited = json.loads(json.dumps(on_disk))
    edited["records"]["written"] += 1
    assert "changed after it was written" in check_checksum(edited)
    # write_manifest seals what it writes: an edited manifest written again is consistent.
    write_manifest(tmp_path, edited)
    assert check_checksum(read_manifest(tmp_path)) is None


def test_classes_map_each_text_variable_to_its_sorted_values(built, tiny):
    _, manifest = built
    frame = _records(tiny).frame
    assert manifest["classes"]["diagnosis"] == sorted(frame["diagnosis"].unique())
    assert manifest["classes"]["sex"] == sorted(frame["sex"].unique())
    assert "age" not in manifest["classes"]  # numbers are not classes
    # Every written record has its QC figures, a run's length among them.
    assert len(manifest["qc"]) == manifest["records"]["written"]
    assert all(q["volumes"] > 0 for q in manifest["qc"].values())


def test_a_v1_manifest_is_read_as_v2_and_streamed(built, tmp_path):
    out, manifest = built
    v1 = {k: v for k, v in manifest.items() if k not in ("checksum", "classes", "qc")}
    v1["format_version"] = 1
    v1["shards"] = [
        {k: v for k, v in s.items() if k not in ("sizes", "crc32c")} for s in v1["shards"]
    ]
    for path in out.iterdir():
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "manifest.json").write_text(json.dumps(v1))
    read = read_manifest(tmp_path)
    assert read["format_version"] == 2 and read["upgraded_from"] == 1
    assert read["classes"] == {} and "checksum" not in read
    assert "version 1 manifest: no content checksum" in check_checksum(read)
    old = [s["__key__"] for s in ns.stream.open(tmp_path, "train").arrays()]
    new = [s["__key__"] for s in ns.stream.open(out, "train").arrays()]
    assert old == new and len(new) == manifest["splits"]["splits"]["train"]["records"]


def test_a_newer_version_is_refused_by_name():
    with pytest.raises(ValueError, match="format version 3: this nishard reads versions 1, 2"):
        upgrade({"format_version": 3})


def test_crc32c_of_marked_ranges_spans_chunks_and_gathered_small_writes(tmp_path):
    rng = np.random.default_rng(0)
    pieces = [rng.bytes(n) for n in (10, 3 * CHUNK + 17, 5, 700, CHUNK)]
    file = HashingFile(tmp_path / "f")
    file.write(b"head")
    for piece in pieces:
        file.begin()
        file.write(piece[:3])  # a small write gathered...
        file.write(piece[3:])  # ...then a large one (or another small one)
        file.end()
        file.write(b"gap")
    file.close()
    assert file.crc32c == tuple(crc32c.crc32c(piece) for piece in pieces)


def _partial(split, group, records, arrays, quarantine=()):
    moments: dict[str, Moments] = {}
    for array in arrays:
        for name, m in sample_moments({"bold": array}).items():
            if name in moments:
                moments[name].merge(m)
            else:
                moments[name] = m
    info = ShardInfo(f"{split}-{group:06d}.tar", split, "webdataset", len(arrays), 10, "0" * 64,
                     tuple(records[: len(arrays)]))  # fmt: skip
    return PartialManifest(
        split=split, group=group, records=tuple(records), written=len(arrays), shards=(info,),
        keys={"bold": {"dtype": "float32", "shape": [None, 3]}},
        inputs={f"{r}.nii.gz": r for r in records}, quarantine=tuple(quarantine),
        moments=moments,
    )  # fmt: skip


def test_merged_partials_give_the_statistics_of_all_their_samples(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, 3)).astype("float32") * (n % 5 + 1) for n in (4, 9, 2, 7)]
    bad = {"record": "d", "file": "d.nii.gz", "expected": "x", "found": "y"}
    first = _partial("train", 0, ["a", "b"], arrays[:2])
    second = _partial("train", 1, ["c", "d", "e"], arrays[2:], quarantine=[bad])
    second = PartialManifest.load(second.save(tmp_path / "parts"))  # through the disk
    merged = merge([second, first], splits=("train",), order=["a", "b", "c", "d", "e"])
    assert [s.name for s in merged.shards] == ["train-000000.tar", "train-000001.tar"]
    assert merged.written == {"train": 4} and merged.quarantine == [bad]
    whole = np.concatenate(arrays)
    moments = merged.moments["train"]["bold"]
    np.testing.assert_allclose(moments.mean, whole.astype(float).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.std, whole.astype(float).std(axis=0), rtol=1e-10)
    assert moments.count == len(whole)


def test_merge_refuses_a_group_twice_and_an_unknown_split():
    part = _partial("train", 0, ["a"], [np.ones((2, 3), "float32")])
    with pytest.raises(ValueError, match="two partial manifests for group train-000000"):
        merge([part, part], splits=("train",), order=["a"])
    with pytest.raises(ValueError, match="split 'train' is not one of"):
        merge([part], splits=("test",), order=["a"])


def test_the_shard_plan_is_pure_and_round_trips(tiny):
    records = _records(tiny)
    split = ns.splits.stratified("diagnosis", fractions={"train": 0.5, "val": 0.5}, seed=0)
    plan = plan_shards(records, split, 3, ns.shards.by_count(2))
    assert plan == plan_shards(records, split, 3, ns.shards.by_count(2))
    assert ShardPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    grouped = [r for group in plan.groups for r in group.records]
    assert sorted(grouped) == sorted(plan.order) == sorted(r.id for r in records)
    for group in plan.groups:
        assert {plan.assignment[r] for r in group.records} == {group.split}
        assert list(group.records) == [r for r in plan.order if r in group.records]
    assert plan_shards(records, split, 4, ns.shards.by_count(2)).order != plan.order
    unshuffled = plan_shards(records, "all", None, ns.shards.by_count(2))
    assert list(unshuffled.order) == [r.id for r in records]
