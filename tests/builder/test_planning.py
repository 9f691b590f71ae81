"""The shard planner: groups are shards in every format, cut by count or by bounded bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tarfile

import numpy as np
import pytest

import nishard as ns
from nishard.archives import HDF5, Family, TFRecord, WebDataset, Zarr
from nishard.archives import shards as shards_module
from nishard.archives.shards import ShardSpec, sample_bound
from nishard.archives.verify import verify
from nishard.builder.planning import (
    SampleBounds,
    ShardGroup,
    ShardPlan,
    cut_groups,
    plan_shards,
)
from nishard.builder.sizing import sample_bounds
from nishard.builder.splits import Random
from nishard.errors import RecordError
from nishard.transforms.storage import Cast
from nishard.workflow.executors import Serial
from tests.builder.test_write import TRANSFORMS, _records


def _tar(content: int) -> int:
    return -(-(content + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _plain(content: int) -> int:
    return content


def _bounds(sizes: dict[str, tuple[int | None, ...]]) -> SampleBounds:
    return SampleBounds(sizes, (_tar, _plain))


# ------------------------------------------------------------------------ the pure cut


def test_groups_of_max_samples_keep_the_order():
    ids = [f"r{i}" for i in range(10)]
    groups = cut_groups(ids, ShardSpec(max_samples=3, max_bytes=None))
    assert groups == [("r0", "r1", "r2"), ("r3", "r4", "r5"), ("r6", "r7", "r8"), ("r9",)]


def test_byte_groups_respect_every_format_and_are_greedy():
    rng = np.random.default_rng(0)
    ids = [f"r{i:03d}" for i in range(300)]
    sizes = {r: (int(rng.integers(1, 30_000)), int(rng.integers(1, 40_000))) for r in ids}
    limit = 100_000
    groups = cut_groups(ids, ShardSpec(max_samples=None, max_bytes=limit), _bounds(sizes))
    assert [r for g in groups for r in g] == ids  # every record once, in order
    for group, after in zip(groups, [*groups[1:], None], strict=True):
        tar = sum(sizes[r][0] for r in group)
        plain = sum(sizes[r][1] for r in group)
        assert _tar(tar) <= limit and plain <= limit
        if after is not None:  # the next record would not have fitted in some format
            tar, plain = tar + sizes[after[0]][0], plain + sizes[after[0]][1]
            assert _tar(tar) > limit or plain > limit
    # Both limits at once: the first reached ends the group.
    both = cut_groups(ids, ShardSpec(max_samples=3, max_bytes=limit), _bounds(sizes))
    assert max(len(g) for g in both) == 3
    assert all(_tar(sum(sizes[r][0] for r in g)) <= limit for g in both)


def test_a_sample_over_the_limit_or_of_unknown_size_is_a_group_of_its_own():
    sizes = {"a": (10, 10), "b": (10, 10), "big": (500, 10), "c": (10, 10),
             "unknown": (10, None), "d": (10, 10)}  # fmt: skip
    spec = ShardSpec(max_samples=None, max_bytes=200)
    groups = cut_groups(list(sizes), spec, SampleBounds(sizes, (_plain, _plain)))
    assert groups == [("a", "b"), ("big",), ("c",), ("unknown",), ("d",)]


def test_byte_limits_need_every_bound():
    spec = ShardSpec(max_samples=None, max_bytes=100)
    with pytest.raises(ValueError, match="sample bounds"):
        cut_groups(["a"], spec)
    with pytest.raises(ValueError, match="no sample bound for record 'b'"):
        cut_groups(["a", "b"], spec, _bounds({"a": (1, 1)}))
    with pytest.raises(ValueError, match="1 bounds for 2 formats"):
        cut_groups(["a"], spec, _bounds({"a": (1,)}))


# ------------------------------------------------------------------------ plan_shards


@pytest.fixture(scope="module")
def records(tiny):
    return _records(tiny)


@pytest.mark.parametrize("shards", [ShardSpec(3, None), ShardSpec(None, 40_000)])
def test_a_plan_cuts_each_split_in_order_and_round_trips(records, shards):
    split = Random(fractions={"train": 0.5, "test": 0.5}, seed=1)
    bounds = SampleBounds({r.id: (9_000, 9_500) for r in records}, (_tar, _plain))
    plan = plan_shards(records, split, 3, shards, bounds)
    assert plan == plan_shards(records, split, 3, shards, bounds)  # deterministic
    assert plan.splits == ("train", "test")
    assert sorted(plan.order) == sorted(r.id for r in records)
    for name in plan.splits:
        groups = [g for g in plan.groups if g.split == name]
        assert [g.index for g in groups] == list(range(len(groups)))
        members = [r for r in plan.order if plan.assignment[r] == name]
        assert [r for g in groups for r in g.records] == members
        assert len(groups) > 1
        assert all(len(g.records) <= 3 for g in groups)  # 4 x 9,500 > 40,000 - 10,240
    again = ShardPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert ShardGroup.from_dict(plan.groups[1].to_dict()) == plan.groups[1]


class AllTrain:
    """A split strategy that leaves its second split empty."""

    names = ("train", "test")

    def assign(self, frame):
        return dict.fromkeys(frame.index, "train")

    def to_dict(self):
        return {"name": "all_train"}


def test_a_split_without_records_is_one_empty_group(records):
    split = AllTrain()
    plan = plan_shards(records, split, None, ShardSpec(5, None))
    assert [(g.split, g.index, len(g.records)) for g in plan.groups] == [
        ("train", 0, 5), ("train", 1, 5), ("train", 2, 2), ("test", 0, 0)
    ]  # fmt: skip


# ------------------------------------------------------------------------ the bounds


FORMATS = [WebDataset(), TFRecord(), HDF5(), Zarr()]


def _plan(name: str, atlas: str) -> ns.Plan:
    if name == "regions":
        steps = [ns.t.Parcellate(atlas, mask=True), ns.t.Standardize(), ns.t.Connectivity()]
        return ns.assemble(steps, products=["bold", "connectivity"])
    if name == "bfloat16":
        return ns.assemble([*TRANSFORMS, Cast("bfloat16")])
    return ns.assemble(TRANSFORMS)


@pytest.mark.parametrize(
    ("name", "exact_below"),
    [("masked", 1 << 30), ("masked", 0), ("regions", 1 << 30), ("bfloat16", 0)],
)
def test_the_bounds_hold_each_written_sample(
    records, atlas, tmp_path, monkeypatch, name, exact_below
):
    """Each sample's bound is at least the bytes the writer counted for it, and (for
    products encoded whole) exactly them; products bounded from their size alone are
    within the margin."""
    monkeypatch.setattr(shards_module, "EXACT_BELOW", exact_below)
    plan = _plan(name, atlas)
    bounds = sample_bounds(list(records), plan, FORMATS)
    manifest = ns.write(records, plan, tmp_path, formats=FORMATS, progress=False,
                        shards=ns.shards.by_count(4))  # fmt: skip
    names = [f.name for f in FORMATS]
    checked = 0
    for shard in manifest["shards"]:
        column = names.index(shard["format"])
        for key, size in zip(shard["keys"], shard["sizes"], strict=True):
            bound = bounds.sizes[key][column]
            assert bound >= size
            # The margin, and the padding of the one-element stand-in's tar member.
            per_product = shards_module.MARGIN + 64 * 2 + 512
            margin = 0 if exact_below else len(plan.products) * per_product
            assert bound <= size + margin
            checked += 1
    assert checked == len(records) * len(FORMATS)


def test_a_bound_counts_the_metadata_and_the_key():
    fmt = WebDataset()
    small = sample_bound(fmt, "k", {"x": ((3, 4), "float32")}, {"age": 1})
    fields = fmt.encode("k", {"x": np.ones((3, 4), np.float32)}, {"age": 1})
    assert small == fmt.sample_size("k", fields)
    longer = sample_bound(fmt, "k" * 120, {"x": ((3, 4), "float32")}, {"age": 1})
    assert longer > small  # member names over 100 characters take PAX headers
    meta = sample_bound(TFRecord(), "k", {"x": ((2,), "bfloat16")}, {"site": "s" * 500})
    assert meta > sample_bound(TFRecord(), "k", {"x": ((2,), "bfloat16")}, {"site": "s"}) + 900


# ------------------------------------------------------------------------ builds


def _keys_by_group(manifest: dict) -> dict[tuple, dict[tuple, list[str]]]:
    """Per (format, family), per shard number: its keys."""
    found: dict = {}
    for shard in manifest["shards"]:
        number = shard["name"].split(".")[0].rsplit("-", 1)[1]
        found.setdefault((shard["format"], shard.get("family")), {})[number] = shard["keys"]
    return found


def test_every_format_holds_the_same_samples_in_shard_k_within_the_limit(records, tmp_path):
    plan = ns.assemble(TRANSFORMS)
    one = ns.write(records, plan, tmp_path / "one", formats=FORMATS, progress=False,
                   shards=ns.shards.by_count(1))  # fmt: skip
    limit = int(3.5 * max(s["bytes"] for s in one["shards"]))
    manifest = ns.write(records, plan, tmp_path / "out", formats=FORMATS, progress=False,
                        shards=ns.shards.by_size(limit))  # fmt: skip
    found = _keys_by_group(manifest)
    assert len(found) == len(FORMATS)
    reference = found[("webdataset", None)]
    assert all(groups == reference for groups in found.values())
    assert len(reference) > 1 and max(len(k) for k in reference.values()) >= 3
    assert all(s["bytes"] <= limit for s in manifest["shards"])
    # Numbered by group, in the plan's order.
    assert list(reference) == [f"{k:06d}" for k in range(len(reference))]
    written = [s["keys"][0] for s in one["shards"] if s["format"] == "webdataset"]
    assert [k for keys in reference.values() for k in keys] == written


class Refusing(Serial):
    """Serial, with the outcomes of some records turned into quarantines."""

    def __init__(self, refused):
        object.__setattr__(self, "refused", set(refused))

    def map(self, plan, records, cache=None, **kwargs):
        for outcome in super().map(plan, records, cache, **kwargs):
            if outcome.record.id in self.refused:
                error = RecordError(outcome.record.id, None, "a good record", "a refused one")
                outcome = dataclasses.replace(outcome, products=None, error=error)
            yield outcome


@pytest.mark.parametrize("families", [False, True])
def test_a_quarantined_record_leaves_its_group_one_sample_shorter(tiny, atlas, tmp_path, families):
    records = _records(tiny)
    steps = [ns.t.Parcellate(atlas, mask=True), ns.t.Standardize(), ns.t.Connectivity()]
    plan = ns.assemble(steps, products=["bold", "connectivity"])
    formats = (
        [Family(WebDataset(), ("bold",), "timeseries"), Family(TFRecord(), "connectivity")]
        if families else [WebDataset(), TFRecord()]
    )  # fmt: skip
    clean = ns.write(records, plan, tmp_path / "clean", formats=formats, progress=False,
                     shards=ns.shards.by_count(3), shuffle=None)  # fmt: skip
    groups = next(iter(_keys_by_group(clean).values()))
    # One record of group 1, and every record of group 2 (its files are then missing).
    refused = [groups["000001"][1], *groups["000002"]]
    manifest = ns.write(records, plan, tmp_path / "out", formats=formats, progress=False,
                        shards=ns.shards.by_count(3), shuffle=None,
                        executor=Refusing(refused))  # fmt: skip
    assert {q["record"] for q in manifest["quarantine"]} == set(refused)
    found = _keys_by_group(manifest)
    assert len(found) == 2
    for written in found.values():
        assert written == {
            number: [k for k in keys if k not in refused]
            for number, keys in groups.items() if number != "000002"
        }  # fmt: skip
    # A skipped number is no problem to the readers: verify, the stream.
    assert verify(tmp_path / "out", progress=False).ok
    if not families:
        fmt = "tfrecord"
        keys = [s["__key__"] for s in ns.stream.open(tmp_path / "out", "all", format=fmt).arrays()]
        assert sorted(keys) == sorted(set(records.frame.index) - set(refused))
    # The other groups' files are the clean build's, byte for byte.
    same = [s["name"] for s in clean["shards"] if "000001" not in s["name"]]
    same = [n for n in same if "000002" not in n]
    assert same and all(
        (tmp_path / "out" / n).read_bytes() == (tmp_path / "clean" / n).read_bytes() for n in same
    )


def test_a_killed_family_build_resumes_by_group(tiny, atlas, tmp_path, monkeypatch):
    """A family's shards of a finished group are kept (the journal once wanted
    ``<split>-000000`` names, so a family build started over)."""
    from nishard.archives.webdataset import TarShard
    from tests.builder.test_resume import Counting, _files

    records = _records(tiny)
    steps = [ns.t.Parcellate(atlas, mask=True), ns.t.Standardize(), ns.t.Connectivity()]
    plan = ns.assemble(steps, products=["bold", "connectivity"])
    formats = [Family(WebDataset(), ("bold",), "timeseries"), Family(TFRecord(), "connectivity")]

    def build(folder, executor=None):
        folder.mkdir(exist_ok=True)
        with contextlib.chdir(folder):  # the same output path in both manifests
            return ns.write(records, plan, "out", formats=formats, executor=executor,
                            shards=ns.shards.by_count(3), progress=False)  # fmt: skip

    expected = build(tmp_path / "ref")
    add, calls = TarShard.add, []

    def dying(self, key, fields):
        calls.append(key)
        if len(calls) == 5:  # the second sample of group 1
            raise KeyboardInterrupt
        return add(self, key, fields)

    monkeypatch.setattr(TarShard, "add", dying)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "run")
    monkeypatch.setattr(TarShard, "add", add)
    out = tmp_path / "run" / "out"
    assert sorted(p.name for p in out.glob("all-*")) == [
        "all-connectivity-000000.tfrecord", "all-timeseries-000000.tar"
    ]  # fmt: skip
    executor = Counting()
    again = build(tmp_path / "run", executor)
    assert len(executor.computed) == len(records) - 3
    assert again == expected
    assert _files(out) == _files(tmp_path / "ref" / "out")
