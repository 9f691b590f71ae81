"""Beyond RAM: nishard's cost per GB of shards stays the same from 1 GB to twice the memory.

The data: HCP-like runs of the ``large`` synthetic preset (``nishard synth --size large``:
the 2 mm MNI grid, 235,375 brain voxels, TR 0.72 s) of ``--timepoints`` volumes (default
1200, as HCP: 1.13 GB a run of masked float32, about 1 GB of ``.nii.gz`` in). The CIFTI
option is not cheaper here: the generator writes its grayordinates (33,858, not 91,282)
beside the volume run, never instead of it. The sizes (``--sizes-gb``, shard bytes) set
the runs of each point (the bytes a run's shard takes, rounded, at least one). Disk is
the constraint, sized from ``shutil.disk_usage`` before anything is written: the points
whose inputs and shards fit together are one build each over the first N runs of one data
set, generated once (an ``entities`` filter, as ``scaleout.py`` does); a point that does
not fit (the largest, on a machine of about 80 GB free) is several builds into several
shard folders: the folder of the last single-build point, then batches generated with
seeds of their own, each batch's inputs removed after its build. Such a point's build
figures are the sum of its builds' seconds and the largest of their peaks. The run is
refused up front when the largest point cannot fit even in batches of one run.

At each size, each stage in a fresh process, the page cache dropped before it (``sync``,
then 3 into ``/proc/sys/vm/drop_caches``; where that is not permitted the output says so
and every figure is marked warm-cache):

- **build**: ``nishard build`` of mask and the light clean of ``scaleout.py`` (detrend,
  0.01-0.1 Hz, simple confounds, z-score; ``--mask-only``: mask alone) into WebDataset
  shards of one run each, ``--build-jobs`` local workers of one BLAS thread each;
- **stream**: one epoch of ``ns.stream.open(folder, "*").keys("bold").arrays()`` over every
  folder, every sample decoded (numpy terminal);
- **canica**, **dictlearning**: ``CanICA(n_components=--components, n_init=--n-init)`` and
  ``DictLearning(n_components=--components, n_epochs=1)``, ``random_state=0``,
  ``memory_budget=--memory-budget``, ``score=False`` (one pass over the shards), fitted on
  the list of folders; their pass (``timings_["reduce"]``: the streamed subject reductions)
  and the whole fit are timed;
- **disk**: the limit, a plain sequential read (``readinto`` of 16 MiB) of the same shard
  files.

Peak RSS: the largest sum of the resident memory of the stage's process tree, sampled
every 0.2 s, or the process's own high-water mark (``VmHWM``) if larger; the learners also
report what their fit added, the figure the budget bounds. Generation is timed too (not a
stage: the generator's own rate).

Goals: per stage, the marginal seconds per GB (the slope between consecutive sizes, so
that fixed costs do not dominate the small points) within +-20 % of their mean across
sizes; the learners' memory under the budget at every size; at the largest size streaming
and the learners' passes at >= 70 % of the disk's read rate (``ratio``).

    python benchmarks/scale.py [--sizes-gb 1,4,16,48] [--dir /tmp/nishard-bench-scale]
        [--timepoints 1200] [--memory-budget 2GiB] [--components 20] [--n-init 1]
        [--build-jobs 2] [--mask-only] [--single-gb GB] [--keep] [--plot PNG] [--quick]

Prints a table per stage and size (seconds, GB, GB/s, peak RSS), the slopes, the budget
and the fractions of the disk limit, then one line of JSON (``{"benchmark": "scale", ...}``);
``--plot`` draws the seconds and peak RSS of each stage against the GB of shards from it.
Run time at the default sizes, on 2 cores, from the smoke run's rates per GB of shards
(generation about 70 s, build 28 s, DictLearning 15 s, CanICA 2.5 s, stream and read 0.5
s): 42 runs generated (about 50 min), 53 GB built (25 min), 69 GB streamed, fitted and
read over the four points (20 min): about 1.5 to 2 hours. ``--quick`` (0.25 and 0.5 GB of
120-volume runs, the larger point in two builds) takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import yaml

from canica import PEAK_FUNCTION  # benchmarks/, this script's folder

GB = 1e9
MARKER = "nishard-bench-scale.json"
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLEAN = {"clean": {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
                   "high_pass": 0.01, "confounds": "simple"}}  # fmt: skip
STAGES = ("build", "stream", "canica", "dictlearning", "disk")
PASSES = ("stream", "canica", "dictlearning")  # held against the disk limit

#: Every stage's child: does its work, then prints one line "NISHARD-BENCH {json}".
CHILD = """
import hashlib, json, os, sys, time
args = json.loads(sys.argv[1])
stage, folders, out = args["stage"], args["folders"], {}

def shard_files(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    return [os.path.join(folder, s["name"]) for s in manifest["shards"]]

if stage == "generate":
    from threadpoolctl import threadpool_limits
    from nishard.datasets import generate
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        generate(args["root"], size="large", seed=args["seed"], subjects=args["runs"],
                 sessions=0, runs=1, timepoints=args["timepoints"])
    out["seconds"] = time.perf_counter() - started
elif stage == "build":
    from nishard.cli import main
    started = time.perf_counter()
    code = main(["build", args["spec"], "--output", args["output"], "-q",
                 "--executor", "local", "--jobs", str(args["jobs"])])
    out["seconds"] = time.perf_counter() - started
    if code:
        sys.exit(code)
elif stage == "stream":
    from nishard import stream as streams
    started, nbytes, samples = time.perf_counter(), 0, 0
    for folder in folders:
        for sample in streams.open(folder, "*").keys("bold").arrays():
            data = sample["bold"]
            nbytes += data.nbytes
            samples += 1
            float(data[-1].sum())
            del data, sample
    out.update(seconds=time.perf_counter() - started, bytes=nbytes, samples=samples)
elif stage in ("canica", "dictlearning"):
    import warnings
    from nishard.learn import CanICA, DictLearning
    warnings.simplefilter("ignore")
    common = dict(n_components=args["components"], random_state=0,
                  memory_budget=args["budget"], score=False)
    if stage == "canica":
        model = CanICA(n_init=args["n_init"], **common)
    else:
        model = DictLearning(n_epochs=1, **common)
    from nishard.learn import Shards
    source = Shards(tuple(folders), direct=args.get("direct"))  # None: past memory, direct
    out["direct"] = source.reads_direct  # as the fit's pass decides it, just before
    started = time.perf_counter()
    model.fit(source)
    out["seconds"] = time.perf_counter() - started
    out["maps_sha256"] = hashlib.sha256(model.components_.tobytes()).hexdigest()
    out.update(timings=model.timings_,
               bytes=model.bytes_streamed_, added=model.memory_usage_["added"],
               plan=model.memory_plan_.to_dict() if model.memory_plan_ else None)
    if stage == "canica":  # the pass's compute alone: one run's reduction, in memory
        from nishard import stream as streams
        from nishard.learn.pca import subject_reduction
        data = next(iter(streams.open(folders[0], "*").keys("bold").arrays()))["bold"]
        times = []
        for _ in range(3):
            tick = time.perf_counter()
            subject_reduction(data, args["components"])
            times.append(time.perf_counter() - tick)
        out["compute_s_per_gb"] = min(times) / (data.nbytes / 1e9)
        del data
elif stage == "disk":
    buffer = bytearray(16 << 20)
    view = memoryview(buffer)
    started, nbytes = time.perf_counter(), 0
    for folder in folders:
        for path in shard_files(folder):
            with open(path, "rb", buffering=0) as f:
                while True:
                    n = f.readinto(view)
                    if not n:
                        break
                    nbytes += n
    out.update(seconds=time.perf_counter() - started, bytes=nbytes)

out["hwm"] = _peak()
print("NISHARD-BENCH " + json.dumps(out), flush=True)
"""


def drop_caches() -> bool:
    """Write dirty pages and drop the page cache; False where that is not permitted."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and its descendants."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_child(args: dict, log: Path, env: dict | None = None) -> dict:
    """One stage in a fresh process: its figures, and its tree's peak resident memory."""
    with open(log, "a") as out:
        out.write(f"\n== {args['stage']} {json.dumps(args)}\n")
        out.flush()
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PEAK_FUNCTION) + CHILD, json.dumps(args)],
            stdout=subprocess.PIPE, stderr=out, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        peak, done = [0], threading.Event()

        def sample() -> None:
            try:
                process = psutil.Process(child.pid)
            except psutil.Error:
                return
            while not done.wait(0.2):
                peak[0] = max(peak[0], tree_rss(process))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = child.communicate()
        done.set()
        sampler.join()
        out.write(stdout)
    lines = [line for line in stdout.splitlines() if line.startswith("NISHARD-BENCH ")]
    if child.returncode or not lines:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"stage {args['stage']} failed ({child.returncode}):\n{tail}")
    result = json.loads(lines[-1].removeprefix("NISHARD-BENCH "))
    result["peak"] = max(peak[0], result.pop("hwm"))
    return result


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def shard_bytes(folders: list[Path]) -> int:
    total = 0
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        total += sum(s["bytes"] for s in manifest["shards"])
    return total


def write_spec(path: Path, data: Path, subjects: list[str] | None, mask_only: bool) -> Path:
    filters: list = ["complete"]
    if subjects is not None:
        filters.append({"name": "entities", "include": {"subject": subjects}})
    spec = {
        "input": {"path": str(data), "schema": {"name": "fmriprep", "res": "2"},
                  "filters": filters},
        "transforms": [{"mask": {}}] + ([] if mask_only else [CLEAN]),
        "output": {"path": "shards", "shards": {"max_samples": 1}},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class Bench:
    """The state of one run: where things are, what the stages measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.dir = args, args.dir
        self.log = args.dir / "stages.log"
        self.cold = True
        self.generated: list[dict] = []

    def stage(self, args: dict, env: dict | None = None) -> dict:
        self.cold &= drop_caches()
        return run_child(args, self.log, env)

    def generate(self, root: Path, seed: int, runs: int) -> None:
        print(f"  generating {runs} runs of {self.args.timepoints} volumes (seed {seed}) ...",
              flush=True)  # fmt: skip
        got = self.stage({"stage": "generate", "root": str(root), "seed": seed, "runs": runs,
                          "timepoints": self.args.timepoints, "folders": []})  # fmt: skip
        got.update(runs=runs, bytes=folder_bytes(root))
        self.generated.append(got)
        print(f"    {got['seconds']:.0f} s, {got['bytes'] / GB:.2f} GB of inputs, peak RSS "
              f"{got['peak'] / 2**20:.0f} MiB", flush=True)  # fmt: skip

    def build(self, data: Path, subjects: list[str] | None, output: Path) -> dict:
        spec = write_spec(output.parent / f"{output.name}.yaml", data, subjects,
                          self.args.mask_only)  # fmt: skip
        got = self.stage({"stage": "build", "spec": str(spec), "output": str(output),
                          "jobs": self.args.build_jobs, "folders": []}, env=THREADS)  # fmt: skip
        got["bytes"] = shard_bytes([output])
        manifest = json.loads((output / "manifest.json").read_text())
        got["samples"] = manifest["records"]["written"]
        if manifest["records"].get("quarantined"):
            raise SystemExit(f"{output}: records quarantined: {manifest.get('quarantine')}")
        print(f"    build {output.name}: {got['samples']} runs, {got['bytes'] / GB:.2f} GB in "
              f"{got['seconds']:.1f} s, peak RSS {got['peak'] / 2**30:.2f} GiB",
              flush=True)  # fmt: skip
        return got

    def passes(self, folders: list[Path]) -> dict[str, dict]:
        a, out = self.args, {}
        common = {"folders": [str(f) for f in folders], "components": a.components,
                  "n_init": a.n_init, "budget": a.memory_budget}  # fmt: skip
        for stage in ("stream", "canica", "dictlearning", "disk"):
            out[stage] = self.stage({"stage": stage, **common})
            r = out[stage]
            extra = f", pass {r['timings']['reduce']:.1f} s" if "timings" in r else ""
            print(f"    {stage:<12} {r['seconds']:8.1f} s{extra}, peak RSS "
                  f"{r['peak'] / 2**30:.2f} GiB", flush=True)  # fmt: skip
        return out


def plan(args, run_shard: float, run_input: float, free: int) -> tuple[list[int], int, int]:
    """Runs per point, how many the single-build data set holds, the disk margin."""
    runs = sorted({max(1, round(s * GB / run_shard)) for s in args.sizes_gb})
    margin = int(max(2 * GB, 0.03 * free))
    largest = runs[-1] * run_shard + run_input + margin
    if largest > free:
        raise SystemExit(
            f"the largest point ({runs[-1]} runs, {runs[-1] * run_shard / GB:.1f} GB of "
            f"shards) cannot fit in {args.dir} even in batches of one run: it needs about "
            f"{largest / GB:.1f} GB free (shards + one run's inputs + {margin / GB:.1f} GB "
            f"margin), {free / GB:.1f} GB are; choose smaller --sizes-gb or another --dir"
        )  # fmt: skip
    limit = args.single_gb * GB if args.single_gb is not None else float("inf")
    single = [
        n for n in runs if n * (run_shard + run_input) + margin <= free and n * run_shard <= limit
    ]
    if not single:
        raise SystemExit(f"the smallest point ({runs[0]} runs) does not fit in one build")
    return runs, single[-1], margin


def slopes(rows: list[dict], key: str) -> list[float]:
    return [(b[key] - a[key]) / (b["gb"] - a["gb"]) for a, b in itertools.pairwise(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", default=None, help="GB of shards a point (1,4,16,48)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/nishard-bench-scale"))
    parser.add_argument("--timepoints", type=int, default=None, help="volumes a run (1200)")
    parser.add_argument("--memory-budget", default="2GiB", help="the learners' budget")
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--n-init", type=int, default=1, help="CanICA's ICA starts")
    parser.add_argument("--build-jobs", type=int, default=2, help="local build workers")
    parser.add_argument("--mask-only", action="store_true", help="build: mask, no clean")
    parser.add_argument("--single-gb", type=float, default=None,
                        help="the most GB of shards a point built in one build may hold "
                             "(default: what the disk allows; --quick: 0.3, so that its "
                             "larger point is built in batches)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the data and shards")
    parser.add_argument("--plot", type=Path, default=None,
                        help="draw seconds and peak RSS against GB into this PNG")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="0.25 and 0.5 GB of 120-volume runs: a smoke run")  # fmt: skip
    args = parser.parse_args()
    defaults = {"sizes_gb": "0.25,0.5", "timepoints": 120, "single_gb": 0.3} if args.quick else {
        "sizes_gb": "1,4,16,48", "timepoints": 1200}  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sizes_gb = sorted(float(s) for s in str(args.sizes_gb).split(","))

    from nishard.datasets.grid import load_grid
    from nishard.units import parse_bytes

    budget = parse_bytes(args.memory_budget)
    grid = load_grid(2)
    voxels = int(grid.brain.sum())
    run_shard = args.timepoints * voxels * 4 + 64 * 1024  # the array, headers, metadata
    run_input = 0.25 * grid.brain.size * args.timepoints * 4  # .nii.gz: ~0.2 of raw
    if args.dir.exists() and any(args.dir.iterdir()):
        if not (args.dir / MARKER).is_file():
            raise SystemExit(f"{args.dir} is not empty and not this benchmark's: choose --dir")
        shutil.rmtree(args.dir)
    args.dir.mkdir(parents=True, exist_ok=True)
    (args.dir / MARKER).write_text(json.dumps({"sizes_gb": args.sizes_gb}))
    free = shutil.disk_usage(args.dir).free
    runs, n_single, margin = plan(args, run_shard, run_input, free)
    cores, mem = os.cpu_count() or 1, psutil.virtual_memory().total
    print(f"{cores} cores, {mem / GB:.1f} GB of memory, {free / GB:.1f} GB free in {args.dir}")
    print(f"runs of {args.timepoints} volumes x {voxels:,} voxels: {run_shard / GB:.3f} GB a "
          f"run's shard; points of {runs} runs; the first {n_single} runs in one data set, "
          f"later ones in batches", flush=True)  # fmt: skip

    bench = Bench(args)
    started = time.perf_counter()
    shards = args.dir / "shards"
    shards.mkdir()
    data0 = args.dir / "inputs-0"
    bench.generate(data0, 0, n_single)
    labels = sorted(p.name.removeprefix("sub-") for p in data0.glob("sub-*") if p.is_dir())
    run_input = bench.generated[0]["bytes"] / n_single
    rows: list[dict] = []
    batches: list[tuple[Path, dict]] = []  # folders of the batched points, with their builds
    previous: Path | None = None
    for n in runs:
        print(f"point of {n} runs:", flush=True)
        if n <= n_single:
            if previous is not None:
                shutil.rmtree(previous)
            folder = shards / f"runs-{n}"
            built = bench.build(data0, labels[:n], folder)
            builds, folders, previous = [built], [folder], folder
            if n == n_single:
                batches = [(folder, built)]
                if n < runs[-1]:
                    shutil.rmtree(data0)
        else:
            done = sum(b["samples"] for _, b in batches)
            while done < n:
                left = runs[-1] * run_shard - shard_bytes([f for f, _ in batches])
                room = shutil.disk_usage(args.dir).free - left - margin
                size = min(n - done, int(room // run_input))
                if size < 1:
                    raise SystemExit(f"no room left for a batch ({room / GB:.1f} GB)")
                seed = len(batches)
                data = args.dir / f"inputs-{seed}"
                bench.generate(data, 1000 + seed, size)
                folder = shards / f"batch-{seed}"
                batches.append((folder, bench.build(data, None, folder)))
                shutil.rmtree(data)
                done += size
            builds = [b for _, b in batches]
            folders = [f for f, _ in batches]
        measured = bench.passes(folders)
        row = {"runs": n, "folders": len(folders), "gb": shard_bytes(folders) / GB,
               "build_s": sum(b["seconds"] for b in builds),
               "build_peak": max(b["peak"] for b in builds)}  # fmt: skip
        for stage, r in measured.items():
            row[f"{stage}_s"], row[f"{stage}_peak"] = r["seconds"], r["peak"]
            if stage in ("canica", "dictlearning"):
                row[f"{stage}_pass_s"] = r["timings"]["reduce"]
                row[f"{stage}_added"] = r["added"]
                row[f"{stage}_plan"] = r["plan"]  # the group buffer's rows and the estimate
                row[f"{stage}_streamed_gb"] = r["bytes"] / GB
                if "compute_s_per_gb" in r:
                    row[f"{stage}_compute_s_per_gb"] = r["compute_s_per_gb"]
        rows.append(row)
    elapsed = time.perf_counter() - started
    if not args.keep:
        shutil.rmtree(args.dir)

    summary = report(args, rows, bench, budget, voxels, elapsed, cores, mem)
    if args.plot is not None:
        plot(summary, budget, mem, args.plot)
        print(f"the curves: {args.plot}")


def plot(summary: dict, budget: int, mem: int, path: Path) -> None:
    """Seconds and peak RSS of each stage against the GB of shards, from the JSON summary.

    Straight lines through the origin are what linear cost and flat memory look like; the
    disk's own read is drawn as the floor the passes are held to.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    sizes = summary["sizes_gb"]
    labels = {"build": "build (mask + clean)", "stream": "one streamed epoch",
              "canica": "CanICA fit", "dictlearning": "DictLearning fit",
              "disk": "disk's sequential read"}  # fmt: skip
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage in STAGES:
        stages = summary["stages"][stage]
        style = {"linestyle": "--", "color": "0.4"} if stage == "disk" else {}
        left.plot(sizes, stages["seconds"], marker="o", label=labels[stage], **style)
        right.plot(sizes, [m / 1024 for m in stages["peak_rss_mb"]], marker="o",
                   label=labels[stage], **style)  # fmt: skip
    for stage in ("canica", "dictlearning"):
        added = [m / 1024 for m in summary["stages"][stage]["added_mb"]]
        right.plot(sizes, added, marker="x", linestyle=":",
                   label=f"{labels[stage]}: added by the fit")  # fmt: skip
    right.axhline(budget / 2**30, color="crimson", linewidth=1,
                  label=f"learners' budget ({summary['memory_budget']})")  # fmt: skip
    left.axvline(mem / GB, color="0.6", linewidth=1, linestyle=":")
    left.text(mem / GB, left.get_ylim()[1] * 0.97, " machine's memory", va="top", fontsize=8,
              color="0.4")  # fmt: skip
    left.set(xlabel="GB of shards", ylabel="seconds", title="Seconds against the data")
    right.set(xlabel="GB of shards", ylabel="peak RSS (GiB)",
              title="Peak resident memory")  # fmt: skip
    for axes, where in ((left, "upper left"), (right, "center right")):
        axes.set_xlim(left=0)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc=where)
    cache = "page cache dropped before each stage" if summary["cold_cache"] else "warm cache"
    figure.suptitle(f"benchmarks/scale.py: {summary['timepoints']}-volume 2 mm runs, "
                    f"{summary['cores']} cores, {summary['memory_gb']} GB of memory, {cache}",
                    fontsize=9)  # fmt: skip
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(figure)


def report(args, rows, bench, budget, voxels, elapsed, cores, mem) -> dict:
    warm = "" if bench.cold else " (WARM CACHE: drop_caches not permitted)"
    print(f"\nper stage and size{warm}; GB of shards (1e9 bytes)")
    print(f"{'stage':<13} {'runs':>5} {'GB':>7} {'seconds':>9} {'GB/s':>7} {'peak RSS':>10}")
    for stage in STAGES:
        for row in rows:
            s = row[f"{stage}_s"]
            print(f"{stage:<13} {row['runs']:>5} {row['gb']:>7.2f} {s:>9.1f} "
                  f"{row['gb'] / s:>7.3f} {row[f'{stage}_peak'] / 2**30:>8.2f} GiB")  # fmt: skip
    print("\nmarginal seconds per GB between consecutive sizes (goal: within +-20 % of "
          "their mean)")  # fmt: skip
    result: dict[str, dict] = {}
    for stage in STAGES:
        per = slopes(rows, f"{stage}_s")
        mean = statistics.fmean(per) if per else None
        spread = max(abs(p / mean - 1) for p in per) if per and mean else None
        met = spread is not None and spread <= 0.2
        result[stage] = {
            "seconds": [round(r[f"{stage}_s"], 2) for r in rows],
            "s_per_gb": [round(p, 3) for p in per],
            "spread": None if spread is None else round(spread, 3),
            "linear_met": met if len(per) > 1 else None,
            "peak_rss_mb": [round(r[f"{stage}_peak"] / 2**20) for r in rows],
        }  # fmt: skip
        text = ", ".join(f"{p:.2f}" for p in per)
        verdict = "n/a (one slope)" if len(per) < 2 else ("met" if met else "MISSED")
        tail = f" (largest deviation {spread:.0%})" if len(per) > 1 else ""
        print(f"  {stage:<13} {text}{tail}: {verdict}")
    print(f"\nlearners' memory against the budget ({args.memory_budget}; the fit's addition)")
    for stage in ("canica", "dictlearning"):
        added = [r[f"{stage}_added"] for r in rows]
        met = all(a <= budget for a in added)
        # The plan's estimate and group buffer: memory grows with the data while every
        # row fits the buffer (an exact group PCA), and stops where the budget caps it.
        plans = [r[f"{stage}_plan"] or {} for r in rows]
        estimates = [p.get("estimate", 0) for p in plans]
        result[stage].update(added_mb=[round(a / 2**20) for a in added], budget_met=met,
                             plan_estimate_mb=[round(e / 2**20) for e in estimates],
                             buffer_rows=[p.get("capacity") for p in plans])  # fmt: skip
        print(f"  {stage:<13} added " + ", ".join(f"{a / 2**20:.0f}" for a in added)
              + " MiB (the plan's estimate " + ", ".join(f"{e / 2**20:.0f}" for e in estimates)
              + " MiB; group buffer " + ", ".join(str(p.get("capacity")) for p in plans)
              + " rows); process peak " + ", ".join(
                  f"{r[f'{stage}_peak'] / 2**20:.0f}" for r in rows)
              + f" MiB: {'met' if met else 'MISSED'}")  # fmt: skip
    last = rows[-1]
    over = last["gb"] * GB / mem
    print(f"\nthe largest point: {last['gb']:.1f} GB of shards, {over:.2f}x the memory "
          f"({mem / GB:.1f} GB; goal >= 2x): {'met' if over >= 2 else 'not reached'}")  # fmt: skip
    disk_rate = last["gb"] / last["disk_s"]
    print(f"\nat {last['gb']:.1f} GB against the disk's read ({disk_rate:.3f} GB/s), goal "
          ">= 70 %")  # fmt: skip
    compute = last.get("canica_compute_s_per_gb")
    if compute:
        print(
            f"  (the subject reduction's compute alone, one run in memory: {1 / compute:.3f} "
            f"GB/s = {1 / compute / disk_rate:.0%} of the disk: the learners' ceiling here)"
        )
        result["canica"]["compute_gb_per_s"] = round(1 / compute, 3)
    for stage in PASSES:
        if stage == "stream":
            rate = last["gb"] / last["stream_s"]
        else:
            rate = last[f"{stage}_streamed_gb"] / last[f"{stage}_pass_s"]
        ratio = rate / disk_rate
        result[stage].update(gb_per_s=round(rate, 3), ratio=round(ratio, 3),
                             ratio_met=ratio >= 0.7)  # fmt: skip
        verdict = "met" if ratio >= 0.7 else "MISSED"
        print(f"  {stage:<13} {rate:.3f} GB/s = {ratio:.0%}: {verdict}")
    gen_s = sum(g["seconds"] for g in bench.generated)
    gen_runs = sum(g["runs"] for g in bench.generated)
    gen_gb = sum(g["bytes"] for g in bench.generated) / GB
    print(f"\ngenerated {gen_runs} runs ({gen_gb:.1f} GB of inputs) in {gen_s:.0f} s, "
          f"{gen_s / gen_runs:.1f} s a run; whole run {elapsed / 60:.1f} min")  # fmt: skip
    goals = {
        "linear": all(result[s]["linear_met"] is not False for s in STAGES),
        "budget": all(result[s]["budget_met"] for s in ("canica", "dictlearning")),
        "disk_ratio": all(result[s]["ratio_met"] for s in PASSES),
    }
    summary = {
        "benchmark": "scale", "cores": cores, "memory_gb": round(mem / GB, 1),
        "cold_cache": bench.cold, "timepoints": args.timepoints, "voxels": voxels,
        "transforms": "mask" if args.mask_only else "mask+clean",
        "components": args.components, "n_init": args.n_init,
        "memory_budget": args.memory_budget, "build_jobs": args.build_jobs,
        "sizes_gb": [round(r["gb"], 3) for r in rows], "runs": [r["runs"] for r in rows],
        "folders": [r["folders"] for r in rows],
        "largest_over_memory": round(over, 2), "disk_gb_per_s": round(disk_rate, 3),
        "stages": result,
        "generate": {"runs": gen_runs, "gb": round(gen_gb, 2), "seconds": round(gen_s, 1),
                     "peak_rss_mb": round(max(g["peak"] for g in bench.generated) / 2**20)},
        "goals": goals, "goals_met": all(goals.values()), "elapsed_s": round(elapsed, 1),
    }  # fmt: skip
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
