"""Builds with a split strategy: shards per split, whole subjects, counts in the manifest."""

from __future__ import annotations

import json

import pytest
import webdataset as wds

import nishard as ns
from nishard.builder.splits import Random, Stratified
from nishard.spec import parse_spec
from tests.builder.test_write import TRANSFORMS, _records
from tests.helpers import TINY_RES


def read_split(out, manifest, split):
    urls = [str(out / s["name"]) for s in manifest["shards"] if s["split"] == split]
    return [json.loads(s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)]


def test_stratified_split_by_subject_writes_named_shards_and_counts(tiny, tmp_path):
    records = _records(tiny)
    split = Stratified("diagnosis", fractions={"train": 0.5, "test": 0.5}, seed=3)
    manifest = ns.write(records, ns.assemble(TRANSFORMS), tmp_path, split=split,
                        shards=ns.shards.by_count(2), progress=False)  # fmt: skip
    names = {s["name"].split("-")[0] for s in manifest["shards"]}
    assert names == {"train", "test"}
    subjects = {name: {m["subject"] for m in read_split(tmp_path, manifest, name)}
                for name in ("train", "test")}  # fmt: skip
    assert not subjects["train"] & subjects["test"]
    assert len(subjects["train"]) + len(subjects["test"]) == records.frame["subject"].nunique()
    # The samples each split holds are exactly those the strategy assigned.
    assigned = split.assign(records.frame)
    for name in ("train", "test"):
        expected = {s for s, a in zip(records.frame["subject"], assigned, strict=True) if a == name}
        assert subjects[name] == expected
    table = manifest["splits"]
    assert table["strategy"] == split.to_dict()
    diagnosis = table["variables"]["diagnosis"]["counts"]
    # tiny has 4 controls and 2 patients: half of each class per split, by subject.
    assert {split: dict(c) for split, c in diagnosis.items()} == {
        "train": {"control": 2, "patient": 1}, "test": {"control": 2, "patient": 1}
    }  # fmt: skip


def test_shuffle_changes_the_order_not_the_content(tiny, tmp_path):
    records = _records(tiny)
    plan = ns.assemble(TRANSFORMS)
    kept = ns.write(records, plan, tmp_path / "a", shuffle=None, progress=False)
    mixed = ns.write(records, plan, tmp_path / "b", shuffle=7, progress=False)
    again = ns.write(records, plan, tmp_path / "c", shuffle=7, progress=False)
    order = {
        key: [m["subject"] + m.get("session", "") for m in read_split(tmp_path / key, man, "all")]
        for key, man in (("a", kept), ("b", mixed), ("c", again))
    }
    assert order["a"] == sorted(order["a"]) and order["b"] != order["a"]
    assert sorted(order["b"]) == order["a"] and order["b"] == order["c"]


def test_split_strategy_from_yaml_round_trips(tiny, tmp_path):
    spec = {
        "input": {"path": str(tiny), "schema": {"name": "fmriprep", "res": TINY_RES},
                  "variables": ["diagnosis"]},
        "transforms": ["mask"],
        "output": {"path": "out", "split": {"name": "random", "seed": 1,
                                            "fractions": {"train": 0.5, "val": 0.5}},
                   "shuffle": None},
    }  # fmt: skip
    pipeline = parse_spec(spec, tmp_path)
    assert pipeline.split == Random(fractions={"train": 0.5, "val": 0.5}, seed=1)
    assert pipeline.shuffle is None
    assert parse_spec({**spec, "output": pipeline.spec["output"]}, tmp_path).split == pipeline.split
    bad = {**spec, "output": {"path": "out", "split": {"name": "stratifed"}}}
    with pytest.raises(ns.SpecError, match=r"output\.split 'stratifed' \(did you mean"):
        parse_spec(bad, tmp_path)
