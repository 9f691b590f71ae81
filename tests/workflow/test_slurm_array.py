"""The slurm-array executor on a real one-node SLURM (scripts/slurm/start.sh): one array
element per shard group, a merge job after them; byte-identical to serial, resumed after
scancel, failures named with SLURM's state, bad options refused before any submission.

Marked ``slurm``: the ``slurm_cluster`` fixture (tests/conftest.py) starts SLURM, skips
where it cannot, and fails under ``CI=true``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nishard as ns
from nishard.archives.manifest import read_manifest
from nishard.builder.work import home
from nishard.errors import NishardError
from nishard.spec import load_spec
from tests.helpers import write_spec
from tests.workflow.test_executors import TRANSFORMS, _assert_same_builds, _build

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def _spec(folder: Path, data: Path, **options) -> Path:
    folder.mkdir(exist_ok=True)
    execution = {"executor": "slurm-array", "poll": 0.5, **options}
    return write_spec(folder, data, transforms=TRANSFORMS, execution=execution)


def _states(job: str) -> dict[str, str]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(line.split("|", 1) for line in out.splitlines() if line)


@pytest.fixture
def serial(tiny, tmp_path):
    """The serial build, its manifest as read back (as the merge job's is: JSON lists
    where the build's own dict may hold tuples)."""
    out, _ = _build(tiny, tmp_path / "serial", ns.executors.serial())
    return out, read_manifest(out)


def test_an_array_writes_the_same_bytes_as_serial(tiny, tmp_path, serial, capfd):
    # Arrays of at most 3 elements: the 4 tasks go to two arrays, the second from offset 3.
    spec = _spec(tmp_path / "array", tiny, jobs=2, max_array_size=3)
    manifest = ns.build(load_spec(spec))
    out = spec.parent / "shards"
    _assert_same_builds({"serial": serial, "array": (out, manifest)})
    said = capfd.readouterr().err
    submitted = re.search(r"submitted 4 tasks as 2 array job\(s\) (\d+), (\d+) .*merge job (\d+)",
                          said)  # fmt: skip
    assert submitted, said
    first, second, merge = submitted.groups()
    assert _states(first) == {f"{first}_{i}": "COMPLETED" for i in range(3)}
    assert _states(second) == {f"{second}_0": "COMPLETED"}
    assert _states(merge) == {merge: "COMPLETED"}
    assert "slurm-array: 4/4 tasks done, 0 running, 0 failed" in said
    assert manifest["spec"]["execution"]["executor"] == "slurm-array"
    assert not home(out).exists()


def test_scancel_of_the_array_is_named_and_a_rerun_runs_only_what_was_left(tiny, tmp_path, serial):
    spec = _spec(tmp_path / "array", tiny, jobs=1)  # one element at a time
    out = spec.parent / "shards"
    coordinator = subprocess.Popen([sys.executable, "-m", "nishard", "build", str(spec)],
                                   cwd=spec.parent, stderr=subprocess.PIPE, text=True)  # fmt: skip
    parts = home(out) / "parts"
    deadline = time.monotonic() + 180
    while not (parts.is_dir() and any(parts.glob("*.json"))):
        assert time.monotonic() < deadline and coordinator.poll() is None
        time.sleep(0.1)
    subprocess.run(["scancel", _array_job()], check=True)
    _, said = coordinator.communicate(timeout=180)
    assert coordinator.returncode == 1, said
    assert re.search(r"shard tasks failed \(task \d: all-\d{6}: CANCELLED", said), said
    assert not (out / "manifest.json").exists()
    done = {p.stem for p in parts.glob("*.json")}
    assert 1 <= len(done) < 4
    kept = {name: (out / f"{name}.tar").stat().st_mtime_ns for name in done}
    rerun = ns.build(load_spec(spec), progress=False)
    _assert_same_builds({"serial": serial, "array": (out, rerun)})
    assert {name: (out / f"{name}.tar").stat().st_mtime_ns for name in done} == kept


def test_a_killed_coordinators_build_is_completed_by_its_merge_job(tiny, tmp_path, serial):
    spec = _spec(tmp_path / "array", tiny, jobs=1, mem="1500MiB")
    out = spec.parent / "shards"
    coordinator = subprocess.Popen([sys.executable, "-m", "nishard", "build", str(spec)],
                                   cwd=spec.parent, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (home(out) / "slurm" / "task.sh").exists() or not _queued():
        assert time.monotonic() < deadline and coordinator.poll() is None
        time.sleep(0.1)
    array = _array_job()
    coordinator.kill()
    coordinator.wait()
    # A rerun while the jobs live on would run their tasks twice: refused.
    with pytest.raises(NishardError, match="of this build are still queued or running"):
        ns.build(load_spec(spec), progress=False)
    while not (out / "manifest.json").exists():  # the merge job completes the build
        assert time.monotonic() < deadline + 120
        time.sleep(0.2)
    _assert_same_builds({"serial": serial, "array": (out, read_manifest(out))})
    memory = subprocess.run(["sacct", "-n", "-P", "-X", "-j", array, "-o", "ReqMem"],
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert set(memory) == {"1500M"}, memory  # mem: the spec's, per element
    while _queued():  # the merge job wrote the manifest; let it end before the next test
        assert time.monotonic() < deadline + 180
        time.sleep(0.2)


def _queued() -> bool:
    out = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    return any(name.startswith("nishard-") for name in out.split())


def _array_job() -> str:
    """The id of the build's array job, as squeue lists it."""
    out = subprocess.run(["squeue", "-h", "-o", "%F|%j"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    [job] = {j for j, name in (line.split("|") for line in out.splitlines())
             if name.startswith("nishard-") and not name.endswith("-merge")}  # fmt: skip
    return job


def test_a_failed_element_is_named_with_slurms_state(tiny, tmp_path):
    spec = _spec(tmp_path / "array", tiny, jobs=2)
    out = spec.parent / "shards"
    (out / "all-000002.tar").mkdir(parents=True)  # task 2 cannot publish its shard
    # SLURM's state, and the last line the element's task wrote: its error.
    failed = r"1 of 4 shard tasks failed \(task 2: all-000002: FAILED \(.*Is a directory"
    with pytest.raises(NishardError, match=failed):
        ns.build(load_spec(spec), progress=False)


def test_an_output_folder_local_to_each_node_is_refused_on_a_cluster_of_nodes(
    tiny, tmp_path, monkeypatch
):
    import nishard.workflow.task_runners as runners

    monkeypatch.setattr(runners, "_nodes", lambda: 2)  # (this test cluster has one node)
    spec = _spec(tmp_path / "array", tiny)  # pytest's tmp_path is under /tmp
    with pytest.raises(NishardError, match=r"is under /tmp, which each node .* has of its own"):
        ns.build(load_spec(spec), progress=False)
    assert not home(spec.parent / "shards").exists()


def test_options_sbatch_refuses_stop_the_build_before_anything_is_submitted(tiny, tmp_path):
    spec = _spec(tmp_path / "array", tiny, sbatch=["--partition=nowhere"])
    with pytest.raises(NishardError, match=r"sbatch refuses the options .*--partition=nowhere"):
        ns.build(load_spec(spec), progress=False)
    assert not home(spec.parent / "shards").exists()
