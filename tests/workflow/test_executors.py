"""Every executor writes the same shards, and quarantines the same broken records."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import nishard as ns
from nishard.archives.stats import sample_moments
from nishard.errors import RecordError
from nishard.spec import load_spec
from nishard.workflow import EXECUTORS, NodeCache, Serial
from nishard.workflow.pydra import Pydra
from nishard.workflow.pydra_loky import LokyWorker
from tests.helpers import bold_files, write_spec

# Mask + nilearn-style cleaning with confounds: two inputs besides the BOLD, a TR from
# the record, censoring; enough for a node to fail in more than one way.
TRANSFORMS = [
    {"mask": {}},
    {"clean": {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
               "high_pass": 0.01, "confounds": "simple"}},
]  # fmt: skip

EXECUTORS_UNDER_TEST = {
    "serial": ns.executors.serial(),
    "local": ns.executors.local(2),
    "pydra": Pydra(worker="cf", jobs=2, batch=4),  # batches of 4: several per build
    # Each group (3 records: max_samples 3) a process writing its own shards.
    "tasks": ns.executors.tasks(jobs=2),
    "pydra-groups": Pydra(worker="cf", jobs=2, per="group"),  # a Pydra task per group
}


def _build(data: Path, folder: Path, executor) -> tuple[Path, dict]:
    """Build the spec with ``executor`` into ``folder/shards`` (same relative path each)."""
    folder.mkdir()
    pipeline = load_spec(write_spec(folder, data, transforms=TRANSFORMS))
    manifest = ns.build(pipeline.with_overrides(executor=executor), progress=False)
    return folder / "shards", manifest


def _without_execution(manifest: dict) -> dict:
    # The executor is part of the spec, so the content checksum differs with it too.
    spec = {k: v for k, v in manifest["spec"].items() if k != "execution"}
    return {**{k: v for k, v in manifest.items() if k != "checksum"}, "spec": spec}


def _assert_same_builds(builds: dict[str, tuple[Path, dict]]) -> None:
    (out, manifest), *others = builds.values()
    names = sorted(p.name for p in out.iterdir())
    assert any(name.endswith(".tar") for name in names)
    for other_out, other_manifest in others:
        assert sorted(p.name for p in other_out.iterdir()) == names
        for name in names:
            if name.endswith(".tar"):
                assert (other_out / name).read_bytes() == (out / name).read_bytes(), name
        assert _without_execution(other_manifest) == _without_execution(manifest)


@pytest.mark.slow
def test_every_executor_writes_the_same_bytes(tiny, tmp_path):
    builds = {name: _build(tiny, tmp_path / name, ex) for name, ex in EXECUTORS_UNDER_TEST.items()}
    _assert_same_builds(builds)
    manifest = builds["pydra"][1]
    assert manifest["records"]["quarantined"] == 0
    assert manifest["spec"]["execution"]["executor"] == "pydra"


@pytest.mark.slow
def test_every_executor_quarantines_a_broken_record_and_writes_the_rest(tiny_copy, tmp_path):
    broken = bold_files(tiny_copy)[2]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    builds = {name: _build(tiny_copy, tmp_path / name, ex)
              for name, ex in EXECUTORS_UNDER_TEST.items()}  # fmt: skip
    _assert_same_builds(builds)
    for _, manifest in builds.values():
        [entry] = manifest["quarantine"]
        assert entry["file"] == str(broken.relative_to(tiny_copy))
        assert "4D NIfTI" in entry["expected"] and "EOFError" in entry["found"]
        assert manifest["records"]["written"] == len(bold_files(tiny_copy)) - 1


@pytest.mark.slow
def test_pydra_fills_a_given_node_cache_and_leaves_no_scratch(tiny, tmp_path):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res="8"))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(method="zscore_sample")])
    cache = NodeCache(tmp_path / "nodes")
    scratch = tmp_path / "scratch"
    executor = Pydra(jobs=2, cache_dir=scratch)
    outcomes = list(executor.map(plan, records, cache))
    assert [o.record.id for o in outcomes] == [r.id for r in records]
    assert all(o.error is None for o in outcomes)
    assert len(list(cache.folder.rglob("*.joblib"))) == len(records) * len(plan.nodes)
    assert list(scratch.iterdir()) == []  # Pydra's folders and the markers are gone
    # A rerun finds every node in the cache and gives the same products.
    again = list(executor.map(plan, records, cache))
    for first, second in zip(outcomes, again, strict=True):
        assert (first.products["bold"] == second.products["bold"]).all()


def test_pydra_spec_round_trip_and_worker_options():
    executor = Pydra("slurm", jobs=20, cache_dir="/scratch", sbatch_args="--mem=8G")
    assert EXECUTORS["pydra"] is Pydra
    assert executor.to_dict() == {
        "executor": "pydra", "worker": "slurm", "jobs": 20, "batch": 64,
        "cache_dir": "/scratch", "options": {"sbatch_args": "--mem=8G"},
    }  # fmt: skip
    spec = {k: v for k, v in executor.to_dict().items() if k != "executor"}
    assert Pydra(**spec) == executor
    assert executor.submitter_options() == {
        "worker": "slurm",
        "sbatch_args": "--mem=8G",
        "max_concurrent": 20,
    }
    assert Pydra(jobs=2).submitter_options() == {"worker": LokyWorker, "n_procs": 2}
    assert Pydra(jobs=-1).submitter_options() == {"worker": LokyWorker}
    with pytest.raises(ValueError, match="batch"):
        Pydra(batch=0)


def test_pydras_local_worker_runs_an_unguarded_script_once_and_forks_no_threads(tiny, tmp_path):
    # A script without `if __name__ == "__main__"` that has started JAX's threads: forking
    # it could deadlock a worker (Python warns), and spawn or a fork server would run its
    # body again in every new process.
    script = tmp_path / "script.py"
    script.write_text(
        "import jax.numpy as jnp\n"
        "import nishard as ns\n"
        "from nishard.workflow.pydra import Pydra\n"
        "print('body', flush=True)\n"
        "jnp.ones(3).sum().block_until_ready()\n"
        f"records = ns.locate({str(tiny)!r}, schema=ns.schemas.fmriprep(res='8'))\n"
        "outcomes = list(Pydra(jobs=2).map(ns.assemble([ns.t.Mask()]), records))\n"
        "print('errors', sum(o.error is not None for o in outcomes), flush=True)\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["body", "errors 0"], run.stdout
    assert "os.fork() was called" not in run.stderr  # JAX's warning
    worker = pickle.loads(pickle.dumps(LokyWorker(n_procs=1)))
    assert worker.pool._context.get_start_method() == "loky"
    worker.close()


def test_pydra_refuses_an_unknown_worker(tiny):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res="8"))
    plan = ns.assemble([ns.t.Mask()])
    with pytest.raises(ValueError, match="No worker matches 'nope'"):
        next(Pydra("nope").map(plan, records))


def test_record_errors_cross_process_boundaries():
    error = pickle.loads(pickle.dumps(RecordError("sub-01", "/a/b.nii.gz", "this", "that")))
    assert (error.record, error.path, error.expected, error.found) == (
        "sub-01",
        "/a/b.nii.gz",
        "this",
        "that",
    )


def _where(products: dict) -> dict:
    """A summarize function telling which process summarised each product."""
    return {name: (os.getpid(), float(value.sum())) for name, value in products.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["serial", "local", "pydra"])
def test_products_are_summarised_where_they_are_made(name, tiny):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res="8"))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(method="zscore_sample")])
    executor = EXECUTORS_UNDER_TEST[name]
    outcomes = list(executor.map(plan, records, summarize=_where))
    assert [o.record.id for o in outcomes] == [r.id for r in records]
    for outcome in outcomes:
        (pid, total), usage = outcome.summaries["bold"], outcome.usage
        assert total == pytest.approx(float(outcome.products["bold"].sum()))
        if name == "serial":  # the writer's own process: no usage to report
            assert pid == os.getpid() and usage is None
        else:
            assert pid != os.getpid() and usage.pid == pid and usage.peak > 0


def test_the_writer_takes_the_statistics_an_executor_summarised(tiny, tmp_path):
    """Given moments are used as they are (so a worker's pass is not repeated)."""

    @dataclass(frozen=True)
    class Marking(Serial):
        def map(self, plan, records, cache=None, summarize=None):
            for outcome in super().map(plan, records, cache, summarize):
                moments = sample_moments({"bold": np.full((2, 3), 7.0)})
                yield dataclasses.replace(outcome, summaries=moments)

    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res="8"))
    manifest = ns.write(records, ns.assemble([ns.t.Mask()]), tmp_path / "out",
                        executor=Marking(), progress=False)  # fmt: skip
    bold = manifest["stats"]["all"]["keys"]["bold"]
    assert (bold["mean"], bold["std"], bold["count"]) == (7.0, 0.0, 2 * len(records))
