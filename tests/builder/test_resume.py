"""Crash safety and resume: a killed build, run again, ends byte-identical to an unbroken one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nishard as ns
from nishard.archives import FORMATS, TFRecord, WebDataset
from nishard.builder.resume import FOLDER, JOURNAL
from nishard.builder.splits import Random
from nishard.workflow.executors import Serial
from tests.builder.test_write import TRANSFORMS, _records

ROOT = Path(__file__).resolve().parents[2]

#: The child: the build of ``_build`` below, slowed down between records so that the
#: parent can kill it at a chosen shard. The slowing executor reports itself as Serial:
#: the manifest is that of a plain serial build. Arguments: dataset, samples per shard,
#: comma-separated format names.
CHILD = """
import sys, time
import nishard as ns
from nishard.archives import FORMATS
from nishard.workflow.executors import Serial
from tests.helpers import TINY_RES

class Slow(Serial):
    def map(self, plan, records, cache=None):
        for outcome in super().map(plan, records, cache):
            time.sleep(0.05)
            yield outcome

records = ns.locate(sys.argv[1], schema=ns.schemas.fmriprep(res=TINY_RES),
                    variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]))
ns.write(records, ns.assemble([ns.t.Mask(), ns.t.Standardize()]), "out", progress=False,
         shards=ns.shards.by_count(int(sys.argv[2])), executor=Slow(),
         formats=[FORMATS[name]() for name in sys.argv[3].split(",")])
"""


class Counting(Serial):
    """Serial, counting the records it computes."""

    def __init__(self):
        object.__setattr__(self, "computed", [])

    def map(self, plan, records, cache=None):
        records = list(records)
        self.computed.extend(r.id for r in records)
        return super().map(plan, records, cache)


def _build(tiny, folder, executor=None, **kwargs):
    """A build into ``folder/out``, named ``out`` in the spec whatever the folder."""
    folder.mkdir(exist_ok=True)
    with contextlib.chdir(folder):
        return ns.write(_records(tiny), ns.assemble(TRANSFORMS), "out", progress=False,
                        executor=executor, **kwargs)  # fmt: skip


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _journal(out: Path) -> list[dict]:
    text = (out / FOLDER / JOURNAL).read_text()
    return [json.loads(line) for line in text.splitlines()]


def _formats(names: str) -> list:
    return [FORMATS[name]() for name in names.split(",")]


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """The files of unbroken builds, by format names and shard size, built when first used."""
    folder = tmp_path_factory.mktemp("reference")
    built: dict[tuple[str, int], dict[str, bytes]] = {}

    def files(per_shard: int, formats: str = "webdataset") -> dict[str, bytes]:
        if (formats, per_shard) not in built:
            where = folder / f"{formats}-{per_shard}"
            _build(tiny, where, formats=_formats(formats), shards=ns.shards.by_count(per_shard))
            built[formats, per_shard] = _files(where / "out")
        return built[formats, per_shard]

    return files


def _crash(
    tiny, folder: Path, per_shard: int, after: int, reference: dict, formats: str = "webdataset"
) -> None:
    """Run the build in a child and SIGKILL it once ``after`` shards (of any format) are
    renamed; every file seen under a final shard name must be the complete shard."""
    out = folder / "out"
    extensions = [f.extension for f in _formats(formats)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tiny), str(per_shard), formats],
                             cwd=folder, env=env)  # fmt: skip
    try:
        while child.poll() is None:
            finals = [p for e in extensions for p in out.glob(f"all-*{e}")] if out.is_dir() else []
            for path in finals:
                assert path.read_bytes() == reference[path.name], f"{path.name} is partial"
            if len(finals) >= after:
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the build ended before the kill"


@pytest.mark.parametrize(
    ("formats", "per_shard", "after"),
    [
        ("webdataset", 1, 1),
        ("webdataset", 1, 3),
        ("webdataset", 5, 1),
        ("tfrecord", 1, 3),
        ("tfrecord", 5, 1),
        # Each format's shards are renamed in turn: a kill after an odd count falls
        # between the two formats' shards of the same samples.
        ("webdataset,tfrecord", 1, 3),
        ("webdataset,tfrecord", 5, 2),
    ],
)
def test_a_killed_build_resumes_to_the_same_bytes(
    tiny, tmp_path, reference, formats, per_shard, after
):
    expected = reference(per_shard, formats)
    _crash(tiny, tmp_path, per_shard, after, expected, formats)
    out = tmp_path / "out"
    assert not (out / "manifest.json").exists()
    listed = [line["shard"] for line in _journal(out) if "shard" in line]
    # The kill may fall between a rename and its line, in each format's publishing thread.
    assert len(listed) >= after - len(_formats(formats))
    for shard in listed:  # each journaled shard is whole and as listed
        assert (out / shard["name"]).read_bytes() == expected[shard["name"]]
    executor = Counting()
    _build(tiny, tmp_path, executor, formats=_formats(formats),
           shards=ns.shards.by_count(per_shard))  # fmt: skip
    # The records in finished shards of every format are not computed again.
    names = {f.name for f in _formats(formats)}
    done = set.intersection(*(
        {key for shard in listed if shard["format"] == name for key in shard["keys"]}
        for name in names
    ))  # fmt: skip
    assert len(executor.computed) == len(_records(tiny)) - len(done)
    assert not done & set(executor.computed)
    assert _files(out) == expected
    assert not (out / FOLDER).exists()


def test_a_changed_spec_after_a_kill_starts_over_cleanly(tiny, tmp_path, reference):
    _crash(tiny, tmp_path, 1, 3, reference(1))
    executor = Counting()
    _build(tiny, tmp_path, executor, shards=ns.shards.by_count(5))
    assert len(executor.computed) == len(_records(tiny))
    assert _files(tmp_path / "out") == reference(5)  # the killed build's shards are gone
    assert not (tmp_path / "out" / FOLDER).exists()


@pytest.mark.parametrize(
    ("split", "damage"),
    [("all", None), ("all", "all-000001.tar"), ("all", "all-000001.tfrecord"), ("random", None)],
)
def test_an_interrupted_multi_format_build_resumes_per_format(
    tiny, tmp_path, monkeypatch, split, damage
):
    one = _build(tiny, tmp_path / "one", formats=[WebDataset(), TFRecord()],
                 shards=ns.shards.by_count(1))["shards"]  # fmt: skip
    sizes = {s["format"]: s["bytes"] for s in one}
    # Four TFRecord samples would fit where only three tar ones do: the plan cuts groups
    # by the tightest format, and every format's shard k holds group k's samples.
    settings = {"formats": [WebDataset(), TFRecord()],
                "shards": ns.shards.by_size(4 * sizes["tfrecord"]),
                "split": Random(fractions={"train": 0.5, "test": 0.5}, seed=1)
                if split == "random" else split}  # fmt: skip
    expected = _build(tiny, tmp_path / "ref", **settings)
    keys = {}
    for shard in expected["shards"]:
        keys.setdefault(shard["format"], []).append((shard["name"].split(".")[0], shard["keys"]))
    assert keys["tfrecord"] == keys["webdataset"]
    assert len(keys["webdataset"]) > 2
    calls = {"n": 0}
    encode = TFRecord.encode

    def dying(self, key, products, meta):
        calls["n"] += 1
        # The plan encodes each record once (zeros of its shapes) to bound its size.
        if calls["n"] == len(_records(tiny)) + 8:
            raise KeyboardInterrupt
        return encode(self, key, products, meta)

    monkeypatch.setattr(TFRecord, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        _build(tiny, tmp_path, **settings)
    monkeypatch.setattr(TFRecord, "encode", encode)
    out = tmp_path / "out"
    if damage:  # a finished shard changed on disk: its group is redone in that format
        shard = out / damage
        shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    executor = Counting()
    again = _build(tiny, tmp_path, executor, **settings)
    if split == "all":
        # 7 records taken: the groups they complete are skipped, but a damaged one.
        groups = [len(k) for _, k in keys["webdataset"]]
        done = [n for i, n in enumerate(groups) if sum(groups[: i + 1]) <= 7]
        assert len(done) == 2
        skipped = sum(done) - (done[1] if damage else 0)
        assert len(executor.computed) == len(_records(tiny)) - skipped
    assert again == expected
    assert _files(out) == _files(tmp_path / "ref" / "out")


def test_resume_false_starts_over(tiny, tmp_path, monkeypatch):
    calls = {"n": 0}
    encode = WebDataset.encode

    def dying(self, key, products, meta):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return encode(self, key, products, meta)

    monkeypatch.setattr(WebDataset, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        _build(tiny, tmp_path, shards=ns.shards.by_count(2))
    monkeypatch.setattr(WebDataset, "encode", encode)
    executor = Counting()
    _build(tiny, tmp_path, executor, shards=ns.shards.by_count(2), resume=False)
    assert len(executor.computed) == len(_records(tiny))
