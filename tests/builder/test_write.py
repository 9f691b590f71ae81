"""Shards as the real readers see them, equal to the transforms applied directly."""

import hashlib
import itertools
import json
import re
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import webdataset as wds

import nishard as ns
from nishard.archives import HDF5, TFRecord, WebDataset, Zarr
from nishard.transforms import apply_mask, standardize
from tests.helpers import TINY_RES

TRANSFORMS = [ns.t.Mask(), ns.t.Standardize()]


def _records(root):
    return ns.locate(
        root,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )


def _build(root, out, **kwargs):
    kwargs.setdefault("shards", ns.shards.by_count(2))
    return ns.write(_records(root), ns.assemble(TRANSFORMS), out, progress=False, **kwargs)


def _urls(out, manifest):
    return [str(out / shard["name"]) for shard in manifest["shards"]]


def _direct(record):
    """The transforms applied by hand, with nibabel and the pure functions."""
    data = np.asarray(nib.load(record.files["bold"]).dataobj, dtype=np.float32)
    mask = nib.load(record.files["mask"]).get_fdata() > 0
    return standardize(apply_mask(data, mask), "zscore_sample")


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    return out, _build(tiny, out), _records(tiny)


def test_webdataset_reads_every_sample_equal_to_the_direct_transform(built):
    out, manifest, records = built
    seen = {}
    for sample in wds.WebDataset(_urls(out, manifest), shardshuffle=False).decode():
        seen[sample["__key__"]] = sample
    assert sorted(seen) == sorted(r.id for r in records)
    for record in records:
        sample = seen[record.id]
        np.testing.assert_array_equal(sample["bold.npy"], _direct(record))
        assert sample["json"]["diagnosis"] == record.metadata["diagnosis"]
        assert sample["json"]["t_r"] == record.metadata["t_r"]


def test_torch_dataloader_batches_the_shards(built):
    out, manifest, records = built
    dataset = (
        wds.WebDataset(_urls(out, manifest), shardshuffle=False)
        .decode()
        .to_tuple("bold.npy", "__key__")
        .map_tuple(torch.from_numpy, str)
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(len(b[0]) for b in batches) == len(records)
    first = records[batches[0][1][0]]  # shuffled within the split: the first written
    shape = manifest["keys"]["bold"]["shape"]
    assert batches[0][0].dtype == torch.float32
    assert list(batches[0][0].shape[1:]) == shape
    assert torch.equal(batches[0][0][0], torch.from_numpy(_direct(first)))


def test_manifest_counts_bytes_and_checksums_match_the_files(built):
    out, manifest, records = built
    assert manifest["records"]["written"] == len(records)
    assert sum(s["samples"] for s in manifest["shards"]) == len(records)
    assert manifest["shards"][0]["name"] == "all-000000.tar"
    for shard in manifest["shards"]:
        data = (out / shard["name"]).read_bytes()
        assert len(data) == shard["bytes"]
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert shard["samples"] <= 2
    assert manifest["spec"]["transforms"] == [t.to_dict() for t in TRANSFORMS]
    assert manifest["keys"]["bold"]["dtype"] == "float32"
    assert len(manifest["inputs"]) == 2 * len(records)  # each run's bold and mask
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_manifest_versions_name_the_libraries_that_wrote_it(tiny, tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("zarr")
    formats = [WebDataset(), TFRecord(), HDF5(), Zarr()]
    versions = _build(tiny, tmp_path, formats=formats)["versions"]
    # crc32c frames the TFRecords; google-crc32c only checks them in the tests.
    writers = ("nishard", "numpy", "crc32c", "h5py", "zarr")
    assert all(name in sys.modules for name in writers)  # each did take part
    assert {name: versions.get(name) for name in writers} == {
        name: metadata.version(name) for name in writers
    }
    assert "google-crc32c" not in versions
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))


def test_tar_members_are_webdataset_conventional_and_timeless(built):
    out, manifest, _ = built
    with tarfile.open(out / manifest["shards"][0]["name"]) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    keys = [name.split(".", 1)[0] for name in names]
    runs = [key for key, _ in itertools.groupby(keys)]
    assert len(runs) == len(set(runs))  # members of one sample are adjacent
    assert all(name.split(".", 1)[1] in ("bold.npy", "json") for name in names)
    assert {m.mtime for m in members} == {0}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


def test_two_builds_are_byte_identical(tiny, built, tmp_path):
    out, manifest, _ = built
    again = _build(tiny, tmp_path)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]
    for shard in manifest["shards"]:
        assert (tmp_path / shard["name"]).read_bytes() == (out / shard["name"]).read_bytes()


def test_local_processes_write_the_same_bytes_as_serial(tiny, built, tmp_path):
    _, manifest, _ = built
    parallel = _build(tiny, tmp_path, executor=ns.executors.local(2))
    assert [s["sha256"] for s in parallel["shards"]] == [s["sha256"] for s in manifest["shards"]]


def test_shards_roll_over_by_bytes_and_never_pass_the_limit(tiny, built, tmp_path):
    _, manifest, _ = built
    one_sample = manifest["shards"][0]["bytes"] // manifest["shards"][0]["samples"]
    limit = int(2.5 * one_sample)
    by_bytes = _build(tiny, tmp_path, shards=ns.shards.by_size(limit))
    assert all(s["bytes"] <= limit for s in by_bytes["shards"])
    assert max(s["samples"] for s in by_bytes["shards"]) == 2


def test_a_rebuild_with_fewer_shards_removes_the_stale_ones(tiny, tmp_path):
    first = _build(tiny, tmp_path, shards=ns.shards.by_count(1))
    second = _build(tiny, tmp_path, shards=ns.shards.by_count(100))
    assert len(first["shards"]) > 1 and len(second["shards"]) == 1
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["all-000000.tar"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_build_that_dies_leaves_no_partial_shard_and_no_stale_manifest(
    tiny, tmp_path, monkeypatch
):
    _build(tiny, tmp_path)
    calls = {"n": 0}
    encode = WebDataset.encode

    def dying(self, key, products, meta):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user presses Ctrl-C mid-shard
        return encode(self, key, products, meta)

    monkeypatch.setattr(WebDataset, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        _build(tiny, tmp_path, shards=ns.shards.by_count(2))
    assert not list(tmp_path.glob("*.tmp"))
    # The finished shards of the dead build replaced the old ones: no manifest may claim
    # the old checksums for them.
    assert not (tmp_path / "manifest.json").exists()
    assert (tmp_path / "all-000000.tar").is_file()


def test_a_rebuild_touches_only_its_own_split_and_shards(tiny, tmp_path):
    _build(tiny, tmp_path, split="train", shards=ns.shards.by_count(1))
    (tmp_path / "notes.txt").write_text("mine")
    second = _build(tiny, tmp_path, split="val", shards=ns.shards.by_count(100))
    assert [s["name"] for s in second["shards"]] == ["val-000000.tar"]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert len(list(tmp_path.glob("train-*.tar"))) == len(_records(tiny))
    with pytest.raises(ns.SpecError, match=re.escape("split name '../evil'")):
        _build(tiny, tmp_path, split="../evil")


def test_relative_root_survives_a_change_of_folder(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny.parent)
    records = _records(tiny.name)
    monkeypatch.chdir(tmp_path)
    manifest = ns.write(records, ns.assemble(TRANSFORMS), "out", progress=False)
    assert manifest["records"]["written"] == len(records)
    assert manifest["spec"]["input"]["path"] == tiny.name
    assert all(not Path(p).is_absolute() for p in manifest["inputs"])


def test_non_finite_variables_are_written_as_null(tiny_copy, tmp_path):
    table = (tiny_copy / "participants.tsv").read_text().splitlines()
    header, first = table[0].split("\t"), table[1].split("\t")
    first[header.index("age")] = "inf"
    table[1] = "\t".join(first)
    (tiny_copy / "participants.tsv").write_text("\n".join(table) + "\n")
    manifest = _build(tiny_copy, tmp_path)
    assert manifest["quarantine"] == []
    ages = {
        sample["__key__"]: sample["json"]["age"]
        for sample in wds.WebDataset(_urls(tmp_path, manifest), shardshuffle=False).decode()
    }
    assert sum(age is None for age in ages.values()) == sum("sub-01" in k for k in ages)


def test_a_plan_reading_an_unstaged_file_is_refused_before_any_work(tiny, tmp_path):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES), stage=["bold"])
    with pytest.raises(ns.SpecError, match=r"the plan reads \['mask'\]"):
        ns.write(records, ns.assemble(TRANSFORMS), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())
