"""Executors: one spec built serially, on 2 local processes and on 2 Pydra workers (cf).

The data: ``nishard synth CACHE/data --size large --subjects 8 --sessions 0 --runs 1
--timepoints 300`` (8 runs of 300 volumes on the 2 mm MNI grid, 250 MB .nii.gz each); made
once in ``--cache`` and reused. The spec: mask, then nilearn-style cleaning (detrend,
0.01-0.1 Hz band, simple confounds, z-score), WebDataset shards. Every build reads the
same files from the page cache (one warm-up read first); BLAS and OpenMP pools are pinned
to one thread, so that 2 workers are 2 cores. The three builds must write the same bytes;
the script checks that they do. The builds run in ``--repeats`` rounds (serial, local,
Pydra, then again), and the fastest of each counts: on a shared machine another process
can take a core for a while, and the load average before and after is printed.

    python benchmarks/execute.py [--cache /tmp/nishard-bench-execute] [--subjects 8]
                                 [--timepoints 300] [--repeats 2]

Prints a table, then one line of JSON: times, ``speedup_local`` and ``speedup_pydra``
(serial time / executor time), ``pydra_overhead`` (Pydra's time / the local executor's - 1)
and ``pydra_overhead_per_task_s`` (the difference spread over the Pydra tasks, one per
node and record).
"""

from __future__ import annotations

import os

# One core per worker: thread pools size themselves when numpy/scipy load, so set this first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

import nishard as ns  # noqa: E402
from nishard.datasets import SIZES, generate  # noqa: E402
from nishard.spec import load_spec  # noqa: E402
from nishard.workflow.pydra import Pydra  # noqa: E402

TRANSFORMS = [
    {"mask": {}},
    {"clean": {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
               "high_pass": 0.01, "confounds": "simple"}},
]  # fmt: skip


def dataset(cache: Path, subjects: int, timepoints: int) -> Path:
    """The benchmark's runs, generated into ``cache/data`` unless they are there already."""
    root = cache / f"data-{subjects}x{timepoints}"
    if len(list(root.glob("sub-*/func/*_desc-preproc_bold.nii.gz"))) != subjects:
        generate(root, size="large", seed=0, subjects=subjects, sessions=0, runs=1,
                 timepoints=timepoints)  # fmt: skip
    return root


def build(data: Path, folder: Path, executor) -> tuple[float, dict]:
    folder.mkdir()
    spec = {
        "input": {"path": str(data),
                  "schema": {"name": "fmriprep", "res": f"{SIZES['large'].resolution_mm:g}"}},
        "transforms": TRANSFORMS,
        "output": {"path": "shards"},
    }  # fmt: skip
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    pipeline = load_spec(folder / "spec.yaml").with_overrides(executor=executor)
    for bold in data.rglob("*.nii.gz"):  # warm the page cache alike for every build
        bold.read_bytes()
    started = time.perf_counter()
    manifest = ns.build(pipeline, progress=False)
    return time.perf_counter() - started, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nishard-bench-execute"))
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--timepoints", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    data = dataset(args.cache, args.subjects, args.timepoints)
    executors = {
        "serial": ns.executors.serial(),
        "local(2)": ns.executors.local(2),
        "pydra(cf, 2)": Pydra(worker="cf", jobs=2),
    }
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {label: [] for label in executors}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
            shards = {}
            for i, (label, executor) in enumerate(executors.items()):
                seconds, manifest = build(data, Path(tmp) / str(i), executor)
                times[label].append(seconds)
                shards[label] = sorted((Path(tmp) / str(i) / "shards").glob("*.tar"))
                assert manifest["records"]["quarantined"] == 0, manifest["quarantine"]
            reference = [p.read_bytes() for p in shards["serial"]]
            for label in executors:
                assert [p.read_bytes() for p in shards[label]] == reference, f"{label} differs"
    load_after = os.getloadavg()

    n = manifest["records"]["written"]
    shape = manifest["keys"]["bold"]["shape"]
    nodes = len(ns.assemble([ns.t.Mask(), ns.t.Clean()]).nodes)
    t_serial, t_local, t_pydra = (min(t) for t in times.values())
    overhead = t_pydra / t_local - 1
    per_task = (t_pydra - t_local) / (n * nodes)
    print(f"{n} runs of {args.timepoints} volumes, {shape[1]} voxels after the mask; "
          f"{nodes} node(s) per run; same bytes from every executor")  # fmt: skip
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for label, all_times in times.items():
        seconds = min(all_times)
        rounds = ", ".join(f"{t:.1f}" for t in all_times)
        print(f"  {label:<14} {seconds:7.2f} s  {n / seconds:5.2f} runs/s  "
              f"x{t_serial / seconds:4.2f} serial   (rounds: {rounds} s)")  # fmt: skip
    print(f"  Pydra against local: {overhead:+.1%}, {per_task:+.3f} s per task")
    print(json.dumps({
        "runs": n, "timepoints": args.timepoints, "voxels": shape[1], "nodes": nodes,
        "serial_s": round(t_serial, 3), "local2_s": round(t_local, 3),
        "pydra2_s": round(t_pydra, 3),
        "speedup_local": round(t_serial / t_local, 3),
        "speedup_pydra": round(t_serial / t_pydra, 3),
        "pydra_overhead": round(overhead, 4),
        "pydra_overhead_per_task_s": round(per_task, 4),
        "rounds_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
