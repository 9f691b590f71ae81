"""The command line, as a user runs it."""

import json
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import webdataset as wds

from nishard.archives import read_manifest
from nishard.archives.verify import verify
from nishard.archives.webdataset import TarShard
from nishard.cli import main
from nishard.units import format_bytes
from tests.helpers import write_spec


def test_synth_then_build_with_relative_paths(tmp_path, capsys, monkeypatch):
    assert main(["synth", str(tmp_path / "ds"), "--size", "tiny", "--seed", "3"]) == 0
    assert (tmp_path / "ds" / "participants.tsv").is_file()
    (tmp_path / "specs").mkdir()
    spec = write_spec(tmp_path / "specs", "../ds")  # relative to the spec file
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["build", "../specs/spec.yaml", "--output", "out"]) == 0  # relative to cwd
    manifest = read_manifest(tmp_path / "work" / "out")
    # Recorded relative to the spec file, so that the manifest's spec rebuilds the same.
    assert manifest["spec"]["output"]["path"] == "../work/out"
    assert manifest["spec"]["input"]["path"] == "../ds"
    assert f"wrote {manifest['records']['written']} samples" in capsys.readouterr().out
    assert spec.is_file()


def test_errors_exit_2_with_the_message(tiny, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny, output={"path": "s", "formats": ["parquet"]})
    assert main(["build", str(spec)]) == 2
    assert "unknown output.formats[0] 'parquet'" in capsys.readouterr().err


def test_build_with_a_pydra_worker_records_it(tiny, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny)
    assert main(["build", str(spec), "--executor", "local", "--worker", "cf"]) == 2
    assert "--worker is an option of --executor pydra" in capsys.readouterr().err
    assert main(["build", str(spec), "--worker", "debug", "--output", str(tmp_path / "p")]) == 0
    execution = read_manifest(tmp_path / "p")["spec"]["execution"]
    assert (execution["executor"], execution["worker"]) == ("pydra", "debug")


def test_build_resumes_an_interrupted_build_unless_told_to_restart(tiny, tmp_path, capsys,
                                                                    monkeypatch):  # fmt: skip
    spec = write_spec(tmp_path, tiny, output={"path": "s", "shards": {"max_samples": 1}})
    # Killed as the fourth sample is written (the plan encodes samples too, to bound
    # their sizes, so the kill is in the tar writer).
    add, calls = TarShard.add, []

    def dying(self, key, fields):
        calls.append(key)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return add(self, key, fields)

    for restart in ([], ["--restart"]):
        calls.clear()
        monkeypatch.setattr(TarShard, "add", dying)
        with pytest.raises(KeyboardInterrupt):
            main(["build", str(spec)])
        monkeypatch.setattr(TarShard, "add", add)
        capsys.readouterr()
        assert main(["build", str(spec), *restart]) == 0
        # A group's shard is finished once its last record is taken: three were.
        resumed = "resuming: 3 records done by an interrupted build" in capsys.readouterr().err
        assert resumed == (not restart)
    assert verify(tmp_path / "s", progress=False).ok


def test_plan_explains_nodes_and_demands(tiny, tmp_path, capsys):
    drawing = tmp_path / "plan.svg"
    assert main(["plan", str(write_spec(tmp_path, tiny)), "--draw", str(drawing)]) == 0
    assert "standardize" in drawing.read_text()
    out = capsys.readouterr().out
    # Sized on the largest record's headers: the tiny runs are 25 x 30 x 24 x 120 float32.
    assert re.search(r"node 0 \[numpy, peak ~[0-9.]+ MiB\]: mask -> standardize", out)
    assert "bold (25, 30, 24, 120)" in out
    assert "whole time axis" in out


def test_demo_writes_a_spec_that_repeats_the_build(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "nishard", "demo", "--out", str(out), "--size", "tiny"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    manifest = read_manifest(out / "shards")
    assert f"read back {manifest['records']['written']} samples" in result.stdout
    assert str(out / "spec.yaml") in result.stdout
    urls = [
        str(out / "shards" / s["name"]) for s in manifest["shards"] if s["name"].endswith(".tar")
    ]
    assert (
        sum(1 for _ in wds.WebDataset(urls, shardshuffle=False)) == manifest["records"]["written"]
    )
    assert {s["format"] for s in manifest["shards"]} == {"webdataset", "tfrecord"}
    assert {s["split"] for s in manifest["shards"]} == {"train", "val", "test"}
    assert re.search(r"test accuracy \d\.\d\d on \d+ runs, chance \d\.\d\d", result.stdout)
    # The last step: CanICA on the voxel shards, its maps and report.
    report = out / "canica" / "report.html"
    assert f"report    {report}" in result.stdout and report.is_file()
    maps = nib.load(out / "canica" / "components.nii.gz")
    assert maps.shape[3] == 10 and np.isfinite(maps.get_fdata()).all()
    assert re.search(r"truth     \d of 7 true networks matched", result.stdout)
    learned = json.loads((out / "canica" / "results.json").read_text())
    assert learned["samples"] == manifest["records"]["written"]
    assert learned["memory"]["added"] <= learned["memory"]["budget"]

    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    assert main(["build", str(out / "spec.yaml")]) == 0
    after = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    assert after == before  # every shard and the manifest, byte for byte
    side = [e["file"] for section in ("stats", "indexes", "documents")
            for e in manifest[section].values()]  # fmt: skip
    assert "manifest.json" in after and len(after) == len(manifest["shards"]) + 1 + len(side)


def test_index_writes_a_record_table(tmp_path, capsys):
    from nishard.records import RecordTable
    from tests.records import layouts

    layouts.fmriprep_current(tmp_path / "ds")
    out = tmp_path / "records.parquet"
    argv = ["index", str(tmp_path / "ds"), "--res", "2", "--stage", "bold,mask,surface",
            "--level", "session", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    records = RecordTable.from_parquet(out)
    assert list(records.frame.index) == ["sub-01_ses-01", "sub-01_ses-02"]
    assert records.files == ("bold", "mask", "surface_L", "surface_R")
    assert "2 session records from 1 subjects" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "ds"), "--schema", "hcp", "--space", "x"]) == 2
    assert "--space not for --schema hcp" in capsys.readouterr().err


def test_synth_hcp_layout_is_located_by_the_hcp_schema(tmp_path):
    import nishard as ns

    argv = ["synth", str(tmp_path / "hcp"), "--layout", "hcp", "--subjects", "2",
            "--sessions", "1", "--runs", "2", "--timepoints", "30"]  # fmt: skip
    assert main(argv) == 0
    records = ns.locate(
        tmp_path / "hcp",
        schema=ns.schemas.hcp(res="8"),
        stage=["bold", "mask", "movement"],
        variables=ns.tables.table("unrestricted_behavioral.csv", subject="Subject"),
    )
    assert len(records) == 4 and not records.dropped.size and not records.unmatched
    assert set(records.frame["direction"]) == {"LR", "RL"}
    # HCP's protocol TR until a worker reads the (synthetic, 2 s) header.
    assert records.frame["t_r"].eq(0.72).all() and records.frame["t_r_source"].eq("protocol").all()


def test_cache_info_and_clear(tiny, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny, execution={"executor": "serial", "cache": "nodes"})
    assert main(["build", str(spec)]) == 0
    nodes = tmp_path / "nodes"
    written = read_manifest(tmp_path / "shards")["records"]["written"]
    entries = sorted(nodes.glob("??/*.joblib"))
    assert len(entries) == written > 0  # mask and standardize: one fused node per record
    size = format_bytes(sum(p.stat().st_size for p in entries))
    capsys.readouterr()
    assert main(["cache", "info", str(nodes)]) == 0
    out = capsys.readouterr().out
    assert out == f"{nodes}: {written} node outputs, {size}\n"
    assert main(["cache", "info", str(spec)]) == 0  # the folder the spec's execution.cache names
    assert capsys.readouterr().out == out

    (nodes / "README").write_text("a file of the user's")
    assert main(["cache", "clear", str(spec)]) == 0
    assert f"removed {written} node outputs, {size}" in capsys.readouterr().out
    assert [p.name for p in nodes.rglob("*")] == ["README"]
    assert main(["cache", "info", str(nodes)]) == 0
    assert ": 0 node outputs, 0 B" in capsys.readouterr().out
    assert main(["cache", "clear", str(tmp_path / "nowhere")]) == 1
    assert "no node cache at" in capsys.readouterr().err
    assert main(["cache", "info", str(write_spec(tmp_path, tiny))]) == 2  # names no cache
    assert "sets no execution.cache" in capsys.readouterr().err
