"""Executors: one spec built serially, on 2 local processes and on 2 Pydra workers (cf).

The data: the ``large`` synthetic preset, ``nishard synth CACHE/data --size large``: 8 runs
of 1200 volumes on the 2 mm MNI grid (TR 0.72 s, HCP-like; about 1 GB of ``.nii.gz`` and
5.3 GB decompressed per run); made once in ``--cache`` and reused. ``--subjects`` and
``--timepoints`` shrink it for a quick look. The spec: mask, then nilearn-style cleaning
(detrend, 0.01-0.1 Hz band, simple confounds, z-score), WebDataset shards. Every build
reads the same files from the page cache (one warm-up read first); BLAS and OpenMP pools
are pinned to one thread, so that 2 workers are 2 cores. Each build runs in a fresh Python
process, as ``nishard build`` would (no worker, heap or import left over from the build
before). The three builds must write the same bytes: the script hashes every shard after
each build (outside the timing) and compares. The builds run in ``--repeats`` rounds
(serial, local, Pydra, then again), and the fastest of each counts: on a shared machine
another process can take a core for a while, and the load average before and after is
printed.

Where the time goes is printed too: the CPU seconds of the writer's process (all its
threads: writing, hashing, syncing, and for ``serial`` the computing) and of the workers
(what each worker measured on its records, see ``nishard.workflow.usage``, and the
processes' totals, their start-up included), the utilisation of the machine's cores over
the build, the CPU seconds other processes of the machine took meanwhile (from
``/proc/stat``: interference), and the peak resident memory of the largest worker.

    python benchmarks/execute.py [--cache /tmp/nishard-bench-execute] [--subjects 8]
                                 [--timepoints 1200] [--repeats 2]

Prints a table, then one line of JSON: times, ``speedup_local`` and ``speedup_pydra``
(serial time / executor time), ``pydra_overhead`` (Pydra's time / the local executor's - 1),
``pydra_overhead_per_task_s`` (the difference spread over the Pydra tasks, one per node
and record) and, per executor, ``cpu`` (seconds and utilisation of the fastest round).
"""

from __future__ import annotations

import os

# One core per worker: thread pools size themselves when numpy/scipy load, so set this first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402
import yaml  # noqa: E402

import nishard as ns  # noqa: E402
from nishard.checksums import sha256_file  # noqa: E402
from nishard.datasets import SIZES, generate  # noqa: E402
from nishard.spec import load_spec  # noqa: E402
from nishard.workflow.pydra import Pydra  # noqa: E402
from nishard.workflow.usage import Tally  # noqa: E402

TRANSFORMS = [
    {"mask": {}},
    {"clean": {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
               "high_pass": 0.01, "confounds": "simple"}},
]  # fmt: skip

LARGE = SIZES["large"]


@dataclass
class Metered:
    """An executor that counts the usage its workers report with each outcome; it writes
    what the executor it wraps writes (and records the same spec)."""

    inner: Any
    tally: Tally = field(default_factory=Tally)

    @property
    def name(self) -> str:
        return self.inner.name

    def to_dict(self) -> dict:
        return self.inner.to_dict()

    def map(self, plan, records, cache=None, summarize=None):
        for outcome in self.inner.map(plan, records, cache, summarize=summarize):
            self.tally.add(outcome.usage)
            yield outcome


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of one build: the writer's process, the workers' records, the worker
    processes in all (start-up included), and the other processes of the machine."""

    wall_s: float
    writer_s: float
    records_s: float
    records_wall_s: float
    workers_s: float
    others_s: float
    peak: int

    def utilisation(self, cores: int) -> float:
        return (self.writer_s + self.workers_s) / (self.wall_s * cores)

    def to_dict(self, cores: int) -> dict:
        return {"wall_s": round(self.wall_s, 3), "writer_s": round(self.writer_s, 2),
                "worker_records_s": round(self.records_s, 2),
                "worker_records_wall_s": round(self.records_wall_s, 2),
                "workers_s": round(self.workers_s, 2),
                "utilisation": round(self.utilisation(cores), 3),
                "other_processes_s": round(self.others_s, 2),
                "peak_worker_bytes": self.peak}  # fmt: skip


def dataset(cache: Path, subjects: int, timepoints: int) -> Path:
    """The benchmark's runs, generated into ``cache/data-SxT`` unless they are there."""
    root = cache / f"data-{subjects}x{timepoints}"
    if len(list(root.glob("sub-*/func/*_desc-preproc_bold.nii.gz"))) != subjects:
        generate(root, size="large", seed=0, subjects=subjects, sessions=0, runs=1,
                 timepoints=timepoints)  # fmt: skip
    return root


def _children_cpu() -> dict[int, float]:
    """CPU seconds of each live descendant process and of the children it has reaped
    (loky workers outlive a build; workers reaped by another process than this one, a fork
    server's for instance, never reach this process's ``RUSAGE_CHILDREN``)."""
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            out[child.pid] = times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return out


def _reaped_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_cpu() -> float:
    """CPU seconds every process of the machine has used (busy time, all cores)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def build(data: Path, folder: Path, executor) -> tuple[Cpu, dict, dict[str, str]]:
    """One timed build in this process; its CPU, manifest and the sha256 of each shard."""
    folder.mkdir()
    spec = {
        "input": {"path": str(data),
                  "schema": {"name": "fmriprep", "res": f"{LARGE.resolution_mm:g}"}},
        "transforms": TRANSFORMS,
        "output": {"path": "shards"},
    }  # fmt: skip
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    metered = Metered(executor)
    pipeline = load_spec(folder / "spec.yaml").with_overrides(executor=metered)
    for bold in data.rglob("*.nii.gz"):  # warm the page cache alike for every build
        bold.read_bytes()
    live, reaped, own, machine = _children_cpu(), _reaped_cpu(), _own_cpu(), _machine_cpu()
    started = time.perf_counter()
    manifest = ns.build(pipeline, progress=False)
    wall = time.perf_counter() - started
    writer = _own_cpu() - own
    after = _children_cpu()
    workers = _reaped_cpu() - reaped + sum(t - live.get(pid, 0.0) for pid, t in after.items())
    others = max(0.0, _machine_cpu() - machine - writer - workers)
    tally = metered.tally
    cpu = Cpu(wall, writer, sum(tally.cpu_s.values()), sum(tally.wall_s.values()), workers,
              others, max(tally.peaks.values(), default=0))  # fmt: skip
    shards = folder / "shards"
    hashes = {p.name: sha256_file(p) for p in sorted(shards.glob("*.tar"))}
    shutil.rmtree(shards)  # 9 GB a build: only the hashes are kept
    return cpu, manifest, hashes


EXECUTORS = {
    "serial": lambda: ns.executors.serial(),
    "local(2)": lambda: ns.executors.local(2),
    "pydra(cf, 2)": lambda: Pydra(worker="cf", jobs=2),
}


def build_apart(data: Path, folder: Path, label: str) -> tuple[Cpu, dict, dict[str, str]]:
    """:func:`build` in a fresh Python process (``--one``), as ``nishard build`` runs."""
    command = [sys.executable, __file__, "--one", label, "--data", str(data),
               "--folder", str(folder)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return Cpu(**result["cpu"]), result["manifest"], result["hashes"]


def one(label: str, data: Path, folder: Path) -> None:
    """The child's side of :func:`build_apart`: one build, its facts as a JSON line."""
    cpu, manifest, hashes = build(data, folder, EXECUTORS[label]())
    print(json.dumps({"cpu": cpu.__dict__, "manifest": manifest, "hashes": hashes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nishard-bench-execute"))
    parser.add_argument("--subjects", type=int, default=LARGE.n_subjects)
    parser.add_argument("--timepoints", type=int, default=LARGE.n_timepoints)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", choices=list(EXECUTORS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.data, args.folder)
        return

    data = dataset(args.cache, args.subjects, args.timepoints)
    executors = list(EXECUTORS)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    runs: dict[str, list[Cpu]] = {label: [] for label in executors}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
            hashes = {}
            for i, label in enumerate(executors):
                cpu, manifest, hashes[label] = build_apart(data, Path(tmp) / str(i), label)
                runs[label].append(cpu)
                assert manifest["records"]["quarantined"] == 0, manifest["quarantine"]
            for label in executors:
                assert hashes[label] == hashes["serial"], f"{label} wrote other bytes"
    load_after = os.getloadavg()

    n = manifest["records"]["written"]
    shape = manifest["keys"]["bold"]["shape"]
    nodes = len(ns.assemble([ns.t.Mask(), ns.t.Clean()]).nodes)
    best = {label: min(all_runs, key=lambda c: c.wall_s) for label, all_runs in runs.items()}
    t_serial, t_local, t_pydra = (best[label].wall_s for label in executors)
    overhead = t_pydra / t_local - 1
    per_task = (t_pydra - t_local) / (n * nodes)
    print(f"{n} runs of {args.timepoints} volumes, {shape[1]} voxels after the mask "
          f"({shape[0] * shape[1] * 4 / 1e9:.2f} GB a sample); {nodes} node(s) per run; "
          f"same bytes from every executor; {cores} cores")  # fmt: skip
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for label, all_runs in runs.items():
        c = best[label]
        rounds = ", ".join(f"{r.wall_s:.1f}" for r in all_runs)
        print(f"  {label:<14} {c.wall_s:7.2f} s  {n / c.wall_s:5.3f} runs/s  "
              f"x{t_serial / c.wall_s:4.2f} serial   (rounds: {rounds} s)")  # fmt: skip
        print(f"  {'':<14} cpu: writer {c.writer_s:6.1f} s, workers {c.workers_s:6.1f} s "
              f"({c.records_s:.1f} s on records, which took {c.records_wall_s:.1f} s), "
              f"{c.utilisation(cores):.0%} of {cores} cores; other processes "
              f"{c.others_s:.1f} s; peak worker {c.peak / 2**30:.2f} GiB")  # fmt: skip
    print(f"  Pydra against local: {overhead:+.1%}, {per_task:+.3f} s per task")
    print(json.dumps({
        "runs": n, "timepoints": args.timepoints, "voxels": shape[1], "nodes": nodes,
        "serial_s": round(t_serial, 3), "local2_s": round(t_local, 3),
        "pydra2_s": round(t_pydra, 3),
        "speedup_local": round(t_serial / t_local, 3),
        "speedup_pydra": round(t_serial / t_pydra, 3),
        "pydra_overhead": round(overhead, 4),
        "pydra_overhead_per_task_s": round(per_task, 4),
        "rounds_s": {k: [round(c.wall_s, 3) for c in v] for k, v in runs.items()},
        "cpu": {k: c.to_dict(cores) for k, c in best.items()},
        "load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
