"""A spec whose paths are relative builds under Pydra as it does serially.

Pydra changes the process's working folder while it runs (to each task's folder, in the
writer's process and in its workers), so every relative path (the output folder, the node
cache, Pydra's own cache_dir, a step's atlas) must be made absolute before it runs; the
manifest still records the spec as written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nishard.cli import main
from tests.helpers import bold_files, write_spec

#: A step that reads a file of its own, named relative to the spec, and the brain mask.
TRANSFORMS = [{"parcellate": {"atlas": "atlas.nii.gz", "mask": True}}]

EXECUTION = {
    "pydra": {"executor": "pydra", "worker": "cf", "jobs": 2, "batch": 4,
              "cache_dir": "scratch", "cache": "nodes"},
    "serial": {"executor": "serial", "cache": "nodes"},
}  # fmt: skip


def _project(parent: Path, tiny: Path, atlas: str, executor: str) -> Path:
    """``parent/project``: a spec, its atlas and every path in it relative."""
    project = parent / "project"
    project.mkdir(parents=True)
    shutil.copy(atlas, project / "atlas.nii.gz")
    write_spec(
        project, Path(os.path.relpath(tiny, project)), transforms=TRANSFORMS,
        output={"path": "shards", "shards": {"max_samples": 3}},
        execution=EXECUTION[executor],
    )  # fmt: skip
    return project


def _without_execution(manifest: dict) -> dict:
    spec = {k: v for k, v in manifest["spec"].items() if k != "execution"}
    return {**{k: v for k, v in manifest.items() if k != "checksum"}, "spec": spec}


@pytest.mark.slow
@pytest.mark.parametrize("run_from", ["the spec's folder", "its parent"])
def test_relative_paths_build_under_pydra_as_serially(
    tiny, atlas, tmp_path, monkeypatch, capsys, run_from
):
    built, ran_in = {}, {}
    for executor in ("serial", "pydra"):
        project = _project(tmp_path / executor, tiny, atlas, executor)
        here, spec = (project, "spec.yaml") if run_from == "the spec's folder" else (
            project.parent, "project/spec.yaml")  # fmt: skip
        monkeypatch.chdir(here)
        assert main(["build", spec]) == 0, capsys.readouterr().err[-3000:]
        assert "Traceback" not in capsys.readouterr().err
        built[executor], ran_in[executor] = project, here

    pydra, serial = built["pydra"], built["serial"]
    manifest = json.loads((pydra / "shards" / "manifest.json").read_text())
    reference = json.loads((serial / "shards" / "manifest.json").read_text())
    assert manifest["records"]["written"] == len(bold_files(tiny))
    assert _without_execution(manifest) == _without_execution(reference)
    names = sorted(p.name for p in (serial / "shards").iterdir())
    assert sorted(p.name for p in (pydra / "shards").iterdir()) == names
    for name in names:
        if name != "manifest.json":
            assert (pydra / "shards" / name).read_bytes() == (serial / "shards" / name).read_bytes()
    # The spec's paths were taken relative to its folder (Pydra's cache_dir, an option
    # of the executor, as given: relative to the working folder)...
    assert len(list((pydra / "nodes").rglob("*.joblib"))) > 0
    assert list((ran_in["pydra"] / "scratch").iterdir()) == []  # Pydra's folders, removed after
    # ... and the spec is recorded as written, as a serial build records it.
    spec = manifest["spec"]
    assert spec["input"]["path"] == os.path.relpath(tiny, pydra)
    assert spec["output"]["path"] == "shards"
    assert {k: spec["execution"][k] for k in ("cache", "cache_dir")} == {
        "cache": "nodes", "cache_dir": "scratch"}  # fmt: skip
    recorded = "atlas.nii.gz" if run_from == "the spec's folder" else "project/atlas.nii.gz"
    assert spec["transforms"][0]["parcellate"]["atlas"] == recorded
