"""The command line, as a user runs it."""

import subprocess
import sys

import webdataset as wds

from nishard.archives import read_manifest
from nishard.cli import main
from tests.helpers import write_spec


def test_synth_then_build(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "ds"), "--size", "tiny", "--seed", "3"]) == 0
    assert (tmp_path / "ds" / "participants.tsv").is_file()
    spec = write_spec(tmp_path, tmp_path / "ds")
    assert main(["build", str(spec), "--output", str(tmp_path / "elsewhere")]) == 0
    manifest = read_manifest(tmp_path / "elsewhere")
    assert manifest["spec"]["output"]["path"] == str(tmp_path / "elsewhere")
    assert f"wrote {manifest['records']['written']} samples" in capsys.readouterr().out


def test_errors_exit_2_with_the_message(tiny, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny, output={"path": "s", "formats": ["zarr"]})
    assert main(["build", str(spec)]) == 2
    assert "unknown output.formats[0] 'zarr'" in capsys.readouterr().err


def test_plan_explains_nodes_and_demands(tiny, tmp_path, capsys):
    assert main(["plan", str(write_spec(tmp_path, tiny))]) == 0
    out = capsys.readouterr().out
    assert "node 1 [numpy]: mask -> standardize" in out
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
    urls = [str(out / "shards" / s["name"]) for s in manifest["shards"]]
    assert (
        sum(1 for _ in wds.WebDataset(urls, shardshuffle=False)) == manifest["records"]["written"]
    )

    first = {s["name"]: s["sha256"] for s in manifest["shards"]}
    assert main(["build", str(out / "spec.yaml"), "--executor", "serial"]) == 0
    again = read_manifest(out / "shards")
    assert {s["name"]: s["sha256"] for s in again["shards"]} == first
