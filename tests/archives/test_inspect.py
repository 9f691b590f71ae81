"""inspect: counts per split and shard, keys, statistics, splits table, quarantine, dropped."""

import json

import pytest

import nishard as ns
from nishard.archives import TFRecord, WebDataset
from nishard.archives.inspect import inspect, summarize
from nishard.cli import main
from nishard.errors import NishardError
from tests.helpers import TINY_RES


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    """Train and test splits of whole subjects, sub-03 dropped, two formats."""
    records = ns.locate(
        tiny,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
        filters=[ns.filters.complete(), ns.filters.entities(exclude={"subject": ["03"]})],
    )
    out = tmp_path_factory.mktemp("inspect")
    ns.write(
        records, ns.assemble([ns.t.Mask(), ns.t.Standardize()]), out,
        formats=[WebDataset(), TFRecord()], shards=ns.shards.by_count(3),
        split=ns.splits.random(fractions={"train": 0.6, "test": 0.4}), progress=False,
    )  # fmt: skip
    return out


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_counts_per_split_and_shard_add_up_to_the_manifest(built):
    manifest = _manifest(built)
    summary = summarize(manifest)
    for fmt in ("webdataset", "tfrecord"):
        samples = sum(summary["splits"][split][fmt]["samples"] for split in summary["splits"])
        assert samples == manifest["records"]["written"] == 10
    assert summary["splits"]["train"]["tfrecord"]["bytes"] == sum(
        s["bytes"]
        for s in manifest["shards"]
        if s["split"] == "train" and s["format"] == "tfrecord"
    )
    assert [s["name"] for s in summary["shards"]] == [s["name"] for s in manifest["shards"]]
    assert summary["dropped"] == {next(iter(summary["dropped"])): 2}
    assert summary["keys"]["bold"]["dtype"] == "float32"


def test_the_text_shows_every_section(built):
    manifest = _manifest(built)
    text = inspect(built)
    assert text.startswith("records: 12 located, 2 dropped, 0 quarantined, 10 written")
    train = manifest["splits"]["splits"]["train"]["records"]
    assert any(line.split()[:4] == ["train", "webdataset", "2" if train > 3 else "1", str(train)]
               for line in text.splitlines())  # fmt: skip
    for shard in manifest["shards"]:
        assert any(line.split()[:3] == [shard["name"], shard["split"], shard["format"]]
                   for line in text.splitlines())  # fmt: skip
    shape = ", ".join(map(str, manifest["keys"]["bold"]["shape"]))
    assert f"bold  float32  ({shape})" in text
    assert "splits: random, whole subjects per split" in text
    assert any(line.split()[:2] == ["diagnosis", "control"] for line in text.splitlines())
    assert "quarantine: none" in text
    assert "dropped: 2 records\n  2 x " in text


def test_statistics_quarantine_and_indexes_are_shown_when_present(built, tmp_path):
    manifest = _manifest(built)
    manifest["stats"] = {
        "train": {"keys": {"bold": {"samples": 6, "count": 720, "features": 3666,
                                    "mean": 0.0123456, "std": 1.0, "min": -4.5, "max": 6.0}},
                  "file": "train.stats.npz"},
        "test": {"keys": {"bold": {"samples": 4, "skipped": "not numeric"}}},
    }  # fmt: skip
    manifest["keys"]["bold"]["unit"] = "z"
    manifest["quarantine"] = [
        {"record": "sub-09_task-rest_run-1", "file": "sub-09/func/bold.nii.gz",
         "expected": "a finite time series", "found": "NaN in 3 voxels"},
    ]  # fmt: skip
    manifest["indexes"] = {"train": {"file": "train.wids.json", "format": "wids"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    lines = [line.split() for line in inspect(tmp_path).splitlines()]
    assert ["train", "bold", "6", "720", "3666", "0.01235", "1", "-4.5", "6"] in lines
    assert ["test", "bold", "4", "-", "-", "-", "-", "-", "-", "skipped=not", "numeric"] in lines
    assert any(line[:2] == ["bold", "float32"] and line[-1] == "unit=z" for line in lines)
    text = inspect(tmp_path)
    assert (
        "quarantine: 1 records\n  sub-09_task-rest_run-1 (sub-09/func/bold.nii.gz): "
        "expected a finite time series, found NaN in 3 voxels"
    ) in text
    assert "wids indexes: train: train.wids.json" in text
    assert summarize(manifest)["stats"]["train"]["bold"]["mean"] == 0.0123456


def test_a_sparse_manifest_is_shown_as_far_as_it_goes(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"name": "a.tar"}, 3]}))
    text = inspect(tmp_path)
    assert ["a.tar", "?", "?", "?", "0", "B"] in [line.split() for line in text.splitlines()]
    assert "keys" not in text and "splits:" not in text
    with pytest.raises(NishardError, match=r"no readable manifest\.json"):
        inspect(tmp_path / "nowhere")


def test_inspect_command_prints_text_or_json(built, capsys):
    assert main(["inspect", str(built)]) == 0
    assert capsys.readouterr().out == inspect(built) + "\n"
    assert main(["inspect", str(built), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == summarize(_manifest(built))
    assert main(["inspect", str(built / "missing"), "--json"]) == 1
    assert "no readable manifest" in capsys.readouterr().err
