"""Shard tasks run apart (builder/work.py): each group a process writing its own files, a
partial manifest each, merged without reading a sample; resumed by group after a failed
or killed task, or a killed coordinator."""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nishard as ns
from nishard.builder.work import FOLDER, home, merge_tasks, run_task
from nishard.cli import main
from nishard.errors import NishardError
from nishard.spec import load_spec
from nishard.workflow.task_runners import array_spec, chunks
from tests.helpers import write_spec
from tests.workflow.test_executors import TRANSFORMS, _assert_same_builds, _build


def test_array_specs_are_sbatch_ranges_with_the_throttle():
    assert array_spec([0, 1, 2, 3]) == "0-3"
    assert array_spec([7, 0, 1, 9, 10, 3], 2) == "0-1,3,7,9-10%2"
    assert array_spec([5]) == "5"


def test_tasks_beyond_the_largest_array_index_go_to_further_arrays_from_an_offset():
    # MaxArraySize 4: indices 0 to 3 in each array.
    assert chunks([0, 1, 2, 3, 4, 5, 9], 4) == [(0, [0, 1, 2, 3]), (4, [4, 5]), (9, [9])]
    assert chunks([2, 6, 3], 4) == [(2, [2, 3]), (6, [6])]
    for offset, chunk in chunks(list(range(0, 2500, 7)), 1001):
        assert max(chunk) - offset < 1001


def _spec(folder: Path, data: Path, jobs: int = 2) -> Path:
    """A spec building ``data`` into ``folder/shards`` with shard tasks (3 records each:
    4 tasks for the tiny dataset)."""
    folder.mkdir(exist_ok=True)
    execution = {"executor": "tasks", "jobs": jobs}
    return write_spec(folder, data, transforms=TRANSFORMS, execution=execution)


def _build_tasks(spec: Path) -> tuple[Path, dict]:
    return spec.parent / "shards", ns.build(load_spec(spec), progress=False)


def _times(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("all-*.tar")) if p.is_file()}


@pytest.fixture
def serial(tiny, tmp_path):
    return _build(tiny, tmp_path / "serial", ns.executors.serial())


@pytest.mark.slow
def test_a_failed_task_is_named_the_rest_kept_and_a_rerun_runs_only_it(
    tiny, tmp_path, serial, capsys
):
    spec = _spec(tmp_path / "tasks", tiny)
    out = spec.parent / "shards"
    blocker = out / "all-000001.tar"
    blocker.mkdir(parents=True)  # task 1 cannot publish its shard under that name
    with pytest.raises(NishardError) as caught:
        _build_tasks(spec)
    message = str(caught.value)
    assert "1 of 4 shard tasks failed (task 1: all-000001: " in message
    assert "run the build again to run only the failed ones" in message
    assert not (out / "manifest.json").exists()
    kept = _times(out)
    assert sorted(kept) == ["all-000000.tar", "all-000002.tar", "all-000003.tar"]
    assert main(["merge", str(out)]) == 1
    said = capsys.readouterr().err
    assert "1 of 4 shard tasks have not finished (task 1: all-000001)" in said
    blocker.rmdir()
    rerun = _build_tasks(spec)
    _assert_same_builds({"serial": serial, "tasks": rerun})
    assert {name: _times(out)[name] for name in kept} == kept  # not written again
    assert not home(out).exists()


@pytest.mark.slow
def test_tasks_killed_mid_write_or_cut_short_run_again(tiny, tmp_path, serial):
    spec = _spec(tmp_path / "tasks", tiny)
    out = spec.parent / "shards"
    (out / "all-000001.tar").mkdir(parents=True)
    with pytest.raises(NishardError):
        _build_tasks(spec)
    (out / "all-000001.tar").rmdir()
    parts = home(out) / "parts"
    # Task 3 killed while writing: no partial manifest, a temporary half written. Task 2's
    # shard cut short after its partial manifest was saved: not the size it records.
    (parts / "all-000003.json").unlink()
    (out / "all-000003.tar.tmp").write_bytes(b"half a shard")
    with open(out / "all-000002.tar", "r+b") as shard:
        shard.truncate(1000)
    before = _times(out)
    rerun = _build_tasks(spec)
    _assert_same_builds({"serial": serial, "tasks": rerun})
    after = _times(out)
    assert after["all-000000.tar"] == before["all-000000.tar"]
    assert after["all-000002.tar"] != before["all-000002.tar"]
    assert not (out / "all-000003.tar.tmp").exists()


@pytest.mark.slow
def test_a_killed_coordinator_is_resumed_by_its_rerun(tiny, tmp_path, serial):
    spec = _spec(tmp_path / "tasks", tiny, jobs=1)
    out = spec.parent / "shards"
    command = [sys.executable, "-m", "nishard", "build", str(spec)]
    coordinator = subprocess.Popen(command, cwd=spec.parent, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    parts = home(out) / "parts"
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and any(parts.glob("*.json"))):
        assert time.monotonic() < deadline and coordinator.poll() is None
        time.sleep(0.05)
    coordinator.send_signal(signal.SIGKILL)  # its running task lives on
    coordinator.wait()
    for lock in (home(out) / "locks").glob("*.lock"):  # until the orphan task ends
        with open(lock) as held:
            fcntl.flock(held, fcntl.LOCK_EX)
    done = {p.stem for p in parts.glob("*.json")}
    assert 1 <= len(done) < 4
    before = _times(out)
    rerun = _build_tasks(spec)
    _assert_same_builds({"serial": serial, "tasks": rerun})
    for name in done:
        assert _times(out)[f"{name}.tar"] == before[f"{name}.tar"]


@pytest.mark.slow
def test_a_task_running_elsewhere_is_not_run_twice_and_bad_task_numbers_are_named(
    tiny, tmp_path, capsys
):
    spec = _spec(tmp_path / "tasks", tiny)
    out = spec.parent / "shards"
    (out / "all-000000.tar").mkdir(parents=True)  # stops the build with its work order saved
    with pytest.raises(NishardError):
        _build_tasks(spec)
    (out / "all-000000.tar").rmdir()
    with open(home(out) / "locks" / "task-0.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(NishardError, match="shard task 0 is running in another process"):
            run_task(out, 0, progress=False)
    assert main(["build", "--output", str(out), "--shard-task", "4"]) == 1
    assert "shard task 4 is not one of the build's 4 tasks (0 to 3)" in capsys.readouterr().err
    assert main(["build", str(spec), "--shard-task", "0"]) == 0  # the spec names the folder
    manifest = merge_tasks(out)
    assert manifest["records"]["written"] == 12
    assert main(["build", "--output", str(out), "--shard-task", "0"]) == 1
    assert f"{FOLDER}: no work order of shard tasks" in capsys.readouterr().err
