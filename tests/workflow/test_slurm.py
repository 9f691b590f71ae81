"""Pydra's slurm worker on a real one-node SLURM (scripts/slurm/start.sh), and a machine
without SLURM's commands stopped in one line before anything is submitted.

The tests marked ``slurm`` start that SLURM through the ``slurm_cluster`` fixture
(tests/conftest.py): they skip where it cannot be started (not root, no apt-get) and fail
under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import nishard as ns
from nishard.cli import main
from nishard.errors import NishardError
from nishard.workflow.pydra import Pydra, check_scheduler
from tests.helpers import bold_files, write_spec
from tests.workflow.test_executors import _assert_same_builds, _build

SLURM_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "slurm"


def _jobs_since(start: str) -> list[tuple[str, str]]:
    """(job name, state) of the jobs submitted at ``start`` (ISO, to the second) or later."""
    # sacct -S also lists jobs that merely ended after it: filtered on the submit time.
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", start, "-o", "Submit,JobName%200,State"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    rows = [line.split("|", 2) for line in out.splitlines() if line]
    return [(name, state) for submit, name, state in rows if submit >= start]


def _slurm_executor(tmp_path: Path) -> Pydra:
    # The cache_dir is where the tasks' scripts and the node outputs are: on a cluster a
    # folder every node sees; batches of 4, so that a build is several workflows.
    return Pydra(worker="slurm", jobs=4, batch=4, cache_dir=tmp_path / "pydra")


@pytest.mark.slow
@pytest.mark.slurm
def test_pydra_on_slurm_writes_the_same_bytes_as_serial(tiny, tmp_path):
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    builds = {
        "serial": _build(tiny, tmp_path / "serial", ns.executors.serial()),
        "slurm": _build(tiny, tmp_path / "slurm", _slurm_executor(tmp_path)),
    }
    _assert_same_builds(builds)
    manifest = builds["slurm"][1]
    records = len(bold_files(tiny))
    assert manifest["records"]["written"] == records
    assert manifest["records"]["quarantined"] == 0
    assert manifest["spec"]["execution"]["worker"] == "slurm"
    # The nodes ran as SLURM jobs (Pydra names them node<number>.<uid>: one per fused
    # node per record), each to COMPLETED.
    ours = [state for name, state in _jobs_since(start) if re.fullmatch(r"node\d+\.\w+", name)]
    assert len(ours) >= records, _jobs_since(start)
    assert set(ours) == {"COMPLETED"}, ours
    assert list((tmp_path / "pydra").iterdir()) == []  # Pydra's folders are gone


@pytest.mark.slow
@pytest.mark.slurm
def test_pydra_per_group_on_slurm_writes_the_same_bytes_as_serial(tiny, tmp_path):
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    executor = Pydra(worker="slurm", jobs=4, per="group", cache_dir=tmp_path / "pydra")
    builds = {
        "serial": _build(tiny, tmp_path / "serial", ns.executors.serial()),
        "slurm": _build(tiny, tmp_path / "slurm", executor),
    }
    _assert_same_builds(builds)
    assert builds["slurm"][1]["spec"]["execution"]["per"] == "group"
    # One job per shard group (4 of 3 records), each COMPLETED: Pydra names a python
    # task's job after its function.
    ours = [state for name, state in _jobs_since(start) if name.startswith("run_command.")]
    assert ours == ["COMPLETED"] * 4, _jobs_since(start)


@pytest.mark.slow
@pytest.mark.slurm
def test_pydra_on_slurm_quarantines_a_broken_record_as_serial_does(tiny_copy, tmp_path):
    broken = bold_files(tiny_copy)[2]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    builds = {
        "serial": _build(tiny_copy, tmp_path / "serial", ns.executors.serial()),
        "slurm": _build(tiny_copy, tmp_path / "slurm", _slurm_executor(tmp_path)),
    }
    _assert_same_builds(builds)  # the quarantine included
    [entry] = builds["slurm"][1]["quarantine"]
    assert entry["file"] == str(broken.relative_to(tiny_copy))
    assert "EOFError" in entry["found"]


# ----------------------------------------------------------- a machine without SLURM's commands


@pytest.mark.parametrize(
    ("worker", "present", "missing"),
    [("slurm", (), "sbatch"), ("slurm", ("sbatch",), "squeue"), ("sge", (), "qsub")],
)
def test_a_cluster_worker_without_its_commands_stops_in_one_line(
    tiny, tmp_path, monkeypatch, capsys, worker, present, missing
):
    # PATH: a folder with only the commands named present (stand-ins that fail if run).
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name in present:
        (bin_ / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_))
    spec = write_spec(tmp_path, tiny, execution={"executor": "pydra", "worker": worker})
    assert main(["build", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("nishard:")]
    assert line.startswith(f"nishard: error: no {missing} on PATH: Pydra's {worker} worker runs")
    # Nothing was built, and no record was quarantined for the machine's fault (the
    # resume journal, if the build started one, holds its header only).
    out = tmp_path / "shards"
    assert not (out / "manifest.json").exists()
    written = [p for p in out.rglob("*") if p.is_file() and ".nishard-resume" not in p.parts]
    assert written == []
    for journal in out.rglob("journal.jsonl"):
        assert "quarantine" not in journal.read_text()


def test_check_scheduler_passes_local_workers_and_a_complete_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for worker in ("cf", "debug"):
        check_scheduler(worker)  # nothing to submit with
    with pytest.raises(NishardError, match=r"^no sbatch on PATH"):
        check_scheduler("slurm")
    for name in ("sbatch", "squeue", "sacct"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    check_scheduler("slurm")
    assert os.environ["PATH"] == str(tmp_path)


def test_options_that_sbatch_refuses_stop_the_build_with_its_reason(tmp_path, monkeypatch):
    # A stand-in sbatch that refuses as SLURM does (`sbatch --test-only` submits nothing).
    for name, body in [("sbatch", 'echo "$@" > "$0.args"\n'
                        'echo "allocation failure: Requested node configuration is not '
                        'available" >&2\nexit 1\n'), ("squeue", ""), ("sacct", "")]:  # fmt: skip
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NishardError) as raised:
        check_scheduler("slurm", "--mem=100T  --time=1:00:00")
    assert str(raised.value) == (
        "sbatch refuses sbatch_args '--mem=100T  --time=1:00:00': "
        "allocation failure: Requested node configuration is not available"
    )
    tried = (tmp_path / "sbatch.args").read_text()
    assert tried == "--test-only --mem=100T --time=1:00:00 --wrap true\n"


@pytest.mark.slurm
def test_real_slurm_refusing_the_options_stops_the_build_before_submitting(tiny, tmp_path, capsys):
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    execution = {"executor": "pydra", "worker": "slurm", "cache_dir": str(tmp_path / "pydra"),
                 "options": {"sbatch_args": "--mem=100T"}}  # fmt: skip
    spec = write_spec(tmp_path, tiny, execution=execution)
    assert main(["build", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("nishard:")]
    assert line == (
        "nishard: error: sbatch refuses sbatch_args '--mem=100T': "
        "allocation failure: Requested node configuration is not available"
    )
    assert _jobs_since(start) == []  # nothing was submitted
    assert not (tmp_path / "shards" / "manifest.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the script as another user: needs root")
def test_the_start_script_refuses_without_root_saying_why(tmp_path):
    # What a developer's machine without root sees; the slurm tests skip with this reason.
    # The script on stdin: nobody cannot read pytest's folders.
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-s"],
        input=(SLURM_SCRIPTS / "start.sh").read_text(), capture_output=True, text=True,
        timeout=60, env={**os.environ, "NISHARD_SLURM_STATE": str(tmp_path / "state")},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "slurm: cannot start SLURM here: not root (it installs packages and runs daemons as root)"
    )
