"""Scale-out: shard tasks on 1 and 2 processes against the single writer; what passes
through the coordinator; SLURM (array and Pydra) against ``local``.

The data: ``nishard synth --size large`` runs (2 mm MNI grid, 235,375 brain voxels, TR
0.72 s) of ``--timepoints`` volumes (default 100, so that a full run fits in about ten
minutes; the preset's own runs have 1200), ``max(--sizes)`` of them, made once in
``--cache`` and reused; a build of N records keeps the first N subjects (an ``entities``
filter). The spec: mask, then nilearn-style cleaning (detrend, 0.01-0.1 Hz band, simple
confounds, z-score), WebDataset shards of ``--per-group`` samples: each shard is one shard
group, so one task of the task executors. BLAS and OpenMP pools are pinned to one thread,
so that 2 processes are 2 cores; the inputs are read once before each size (page cache).

1. **Shard tasks against the single writer**, at each of ``--sizes`` records: ``serial``,
   ``local`` with 2 workers (today's path: every product goes to the one writer process),
   ``tasks`` with 1 and with 2 processes (each group a process ``nishard build --output OUT
   --shard-task K`` writing its own shard; one record worker inside). Goal: 2 processes at
   least 1.8x one. Two sizes give each executor's cost per record (the slope) apart from
   its fixed cost.
2. **Bytes through the coordinator.** Each build runs in a fresh process (``python -c``
   calling ``nishard.cli.main``) that reads ``/proc/self/io`` at its end. Linux adds to a
   process's ``/proc/<pid>/io`` the counts of every child it has waited for (the task
   processes, ended loky workers): a ``sitecustomize`` put on the builds' ``PYTHONPATH``
   has every Python process of the build write its own final counts, and the coordinator's
   own are its total less those of its children that had ended. Commands that are not
   Python (``sbatch``, ``sacct``) stay counted with it. ``rchar``/``wchar`` count every
   ``read``/``write`` call (page cache and pipes included), ``read_bytes``/``write_bytes``
   what reached the disk. Compared with the bytes of the shards: goal 0 sample bytes
   through the coordinator of ``tasks`` and ``slurm-array``.
3. **SLURM against local** (skipped with a note where ``sbatch`` is not on ``PATH``): the
   ``large`` preset's 8 runs (at ``--large-timepoints`` volumes, default ``--timepoints``;
   1200 is the preset itself, about 12 minutes to generate once and 20 to run) and the
   ``demo`` preset (48 runs on the 4 mm grid, where scheduling dominates), each in 8 shard
   groups: ``local`` (2), ``slurm-array`` (2 elements at once, ``poll`` 0.5 s), Pydra's
   ``slurm`` worker with one job per shard group (``per: group``) and with one job per
   record and node (the default, a single writer), 2 jobs at once, ``poll_delay`` 0.5 s.
   Every job asks ``--slurm-mem`` MiB (default: what slurm-array asks, the plan's estimate
   of a record's peak plus 1 GiB; on a node of 21 GB, two 1200-volume records at that
   estimate do not fit at once). Start SLURM with ``bash scripts/slurm/start.sh``; jobs of
   others on the node share it (the script lists the queue first).

The builds of one data set must write the same shard bytes (hashed after each build,
outside the timing). Builds run in ``--repeats`` rounds; the fastest of each counts (the
machine is shared). Times are those of ``nishard.cli.main`` in the build's process: the
coordinator's interpreter start (the same for all) is left out, the task processes' are in.

    python benchmarks/scaleout.py [--cache /tmp/nishard-bench-scaleout] [--sizes 16,32]
        [--timepoints 100] [--per-group 2] [--repeats 1] [--skip-slurm] [--quick]
        [--only-slurm] [--large-timepoints 1200] [--slurm-mem 8192]

Prints tables, then one line of JSON: per size each executor's seconds and the ratios, the
slopes, the coordinator's bytes per executor, the SLURM overheads and whether the goals hold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

from nishard.checksums import sha256_file
from nishard.datasets import SIZES, generate

TRANSFORMS = [
    {"mask": {}},
    {"clean": {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
               "high_pass": 0.01, "confounds": "simple"}},
]  # fmt: skip
IO_FIELDS = ("rchar", "wchar", "read_bytes", "write_bytes")
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Every Python process of a build writes its final /proc/self/io (with the counts of the
#: children it waited for) to $NISHARD_BENCH_IO/<pid>.json when it exits.
SITECUSTOMIZE = """
import atexit, json, os, resource, sys, time

_started = time.time()

def _nishard_bench_io():
    where = os.environ.get("NISHARD_BENCH_IO")
    try:
        with open("/proc/self/io") as f:
            io = {k: int(v) for k, v in (line.split(": ") for line in f.read().splitlines())}
        with open(os.path.join(where, f"{os.getpid()}.json"), "w") as f:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            json.dump({"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv, "io": io,
                       "cpu_s": usage.ru_utime + usage.ru_stime, "started": _started,
                       "ended": time.time()}, f)
    except OSError:
        pass

if os.environ.get("NISHARD_BENCH_IO"):
    atexit.register(_nishard_bench_io)
"""

#: The build's process: nishard's command line, timed, then its own counts and its
#: children still running (not waited for: not in its counts).
WRAPPER = textwrap.dedent("""
    import json, os, sys, time
    from nishard.cli import main

    def io(path):
        with open(path) as f:
            return {k: int(v) for k, v in (line.split(": ") for line in f.read().splitlines())}

    started = time.perf_counter()
    code = main(sys.argv[1:])
    wall = time.perf_counter() - started
    total = io("/proc/self/io")
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        for key, value in io(f"/proc/self/task/{tid}/io").items():
            threads[key] = threads.get(key, 0) + value
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid():
            alive.append(int(pid))
    print("NISHARD-BENCH " + json.dumps({"code": code, "wall_s": wall, "pid": os.getpid(),
          "io": total, "threads": threads, "alive": alive}), flush=True)
    sys.exit(code)
""")

SERIAL = {"executor": "serial"}
LOCAL = {"executor": "local", "jobs": 2}
TASKS1 = {"executor": "tasks", "jobs": 1, "task_jobs": 1}
TASKS2 = {"executor": "tasks", "jobs": 2, "task_jobs": 1}
PART1 = {"serial": SERIAL, "local(2)": LOCAL, "tasks(1)": TASKS1, "tasks(2)": TASKS2}


def dataset(cache: Path, size: str, subjects: int, timepoints: int) -> Path:
    """A synthetic data set of the preset ``size`` with at least ``subjects`` runs of
    ``timepoints`` volumes: one in ``cache`` when there is one, else generated there."""
    for root in sorted(cache.glob(f"{size}-*x{timepoints}")):
        runs = len(list(root.glob("sub-*/func/*_desc-preproc_bold.nii.gz")))
        if runs >= subjects and runs == int(root.name.split("-")[1].split("x")[0]):
            return root
    root = cache / f"{size}-{subjects}x{timepoints}"
    started = time.perf_counter()
    print(f"generating {subjects} runs of {timepoints} volumes ({size} preset) in {root} ...",
          flush=True)  # fmt: skip
    generate(root, size=size, seed=0, subjects=subjects, sessions=0, runs=1,
             timepoints=timepoints)  # fmt: skip
    print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def warm(data: Path) -> None:
    """Read every input file once: each build then reads from the page cache alike."""
    for path in data.rglob("sub-*/func/*"):
        with open(path, "rb") as file:
            while file.read(1 << 24):
                pass


def write_spec(folder: Path, data: Path, res: str, subjects: int, per_group: int,
               execution: dict) -> Path:  # fmt: skip
    """The build's spec in ``folder``: the runs of the first ``subjects`` subjects of
    ``data``."""
    labels = sorted(p.name.removeprefix("sub-") for p in data.glob("sub-*") if p.is_dir())
    if len(labels) < subjects:
        raise SystemExit(f"{data} has {len(labels)} subjects, fewer than {subjects}")
    spec = {
        "input": {"path": str(data), "schema": {"name": "fmriprep", "res": res},
                  "filters": ["complete", {"name": "entities",
                                           "include": {"subject": labels[:subjects]}}]},
        "transforms": TRANSFORMS,
        "output": {"path": "shards", "shards": {"max_samples": per_group}},
        "execution": execution,
    }  # fmt: skip
    folder.mkdir(parents=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _sub(a: dict, b: dict) -> dict:
    return {key: a.get(key, 0) - b.get(key, 0) for key in IO_FIELDS}


def _sum(items: list[dict]) -> dict:
    return {key: sum(item.get(key, 0) for item in items) for key in IO_FIELDS}


def _machine_cpu() -> float:
    """CPU seconds every process of the machine has used (busy time, all cores)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def run_build(spec: Path, hook: Path) -> dict:
    """Build ``spec`` in a fresh process; its time, the coordinator's bytes (its own, its
    children's apart), the task processes' bytes, the shards' bytes and sha256, the CPU
    seconds of the build's Python processes and of the machine's other processes."""
    folder = spec.parent
    reports = folder / "io"
    reports.mkdir()
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **THREADS, "PYTHONPATH": path, "NISHARD_BENCH_IO": str(reports)}
    log = folder / "build.log"
    machine = _machine_cpu()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-c", WRAPPER, "build", str(spec)], cwd=folder,
                              env=env, stdout=subprocess.PIPE, stderr=out, text=True)  # fmt: skip
    machine = _machine_cpu() - machine
    lines = [line for line in done.stdout.splitlines() if line.startswith("NISHARD-BENCH ")]
    if done.returncode != 0 or not lines:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"build of {spec} failed ({done.returncode}):\n{tail}")
    result = json.loads(lines[-1].removeprefix("NISHARD-BENCH "))
    pid, alive = result["pid"], set(result["alive"])
    ended = [json.loads(p.read_text()) for p in reports.glob("*.json")]
    children = [r for r in ended if r["ppid"] == pid and r["pid"] not in alive]
    own = _sub(result["io"], _sum([r["io"] for r in children]))
    tasks = _sum([r["io"] for r in ended if "--shard-task" in r["argv"]])
    # Processes killed rather than ended (loky's idle workers at shutdown) report nothing:
    # then "others" also holds their CPU.
    cpu = sum(r["cpu_s"] for r in ended)
    manifest = json.loads((folder / "shards" / "manifest.json").read_text())
    assert manifest["records"]["quarantined"] == 0, manifest["quarantine"]
    shards = {s["name"]: sha256_file(folder / "shards" / s["name"]) for s in manifest["shards"]}
    shard_bytes = sum(s["bytes"] for s in manifest["shards"])
    shutil.rmtree(folder / "shards")  # only the hashes are kept
    return {
        "wall_s": result["wall_s"], "coordinator": own, "coordinator_total": result["io"],
        "coordinator_threads": {k: result["threads"].get(k, 0) for k in IO_FIELDS},
        "children_waited": len(children), "tasks_io": tasks, "shard_bytes": shard_bytes,
        "samples": manifest["records"]["written"], "shards": len(manifest["shards"]),
        "hashes": shards, "cpu_s": cpu, "others_cpu_s": max(0.0, machine - cpu),
    }  # fmt: skip


def mem_estimate(spec: Path) -> int:
    """The memory the slurm-array executor asks per element (the plan's peak estimate of a
    record, plus 1 GiB): given to Pydra's jobs too, so that 2 run at once on 2 cores."""
    from nishard.pipeline import locate_records, plan_for
    from nishard.spec import load_spec

    pipeline = load_spec(spec)
    plan = plan_for(pipeline, locate_records(pipeline))
    peaks = plan.estimate(plan.example) if plan.example else [0]
    return max(peaks, default=0) + (1 << 30)


def rounds(
    work: Path, data: Path, res: str, subjects: int, per_group: int,
    executors: dict[str, dict], repeats: int, hook: Path,
) -> dict[str, list[dict]]:  # fmt: skip
    """Every executor's builds, ``repeats`` rounds of all in turn; all write the same bytes."""
    runs: dict[str, list[dict]] = {label: [] for label in executors}
    for r in range(repeats):
        for i, (label, execution) in enumerate(executors.items()):
            folder = work / f"{data.name}-{subjects}-{r}-{i}"
            spec = write_spec(folder, data, res, subjects, per_group, execution)
            runs[label].append(run_build(spec, hook))
            shutil.rmtree(folder, ignore_errors=True)
            last = runs[label][-1]
            print(f"    {label:<22} {last['wall_s']:7.2f} s  (CPU: the build's processes "
                  f"{last['cpu_s']:.1f} s, other processes {last['others_cpu_s']:.1f} s)",
                  flush=True)  # fmt: skip
    first = next(iter(runs.values()))[0]["hashes"]
    for label, results in runs.items():
        for result in results:
            assert result["hashes"] == first, f"{label} wrote other bytes"
    return runs


def best(runs: dict[str, list[dict]]) -> dict[str, dict]:
    return {label: min(results, key=lambda r: r["wall_s"]) for label, results in runs.items()}


def io_row(result: dict) -> dict:
    """The coordinator's own bytes and the shards', in MB; sample bytes through it as a
    fraction of the shards' (its bytes written over the shards')."""
    own, mb = result["coordinator"], 1e6
    return {
        "shards_mb": round(result["shard_bytes"] / mb, 1),
        **{f"{k}_mb": round(own[k] / mb, 2) for k in IO_FIELDS},
        "wchar_of_shards": round(own["wchar"] / result["shard_bytes"], 4),
        "tasks_wchar_mb": round(result["tasks_io"]["wchar"] / mb, 1),
        "children_waited": result["children_waited"],
    }  # fmt: skip


def part1(args, work: Path, hook: Path) -> dict:
    data = dataset(args.cache, "large", max(args.sizes), args.timepoints)
    rows, all_runs = [], {}
    for records in args.sizes:
        groups = -(-records // args.per_group)
        print(f"  {records} records, {groups} shard groups:", flush=True)
        warm(data)
        runs = rounds(work, data, "2", records, args.per_group, PART1, args.repeats, hook)
        b = best(runs)
        t = {label: r["wall_s"] for label, r in b.items()}
        rows.append({
            "records": records, "groups": groups,
            "shard_mb": round(b["serial"]["shard_bytes"] / 1e6, 1),
            **{f"{label}_s": round(s, 2) for label, s in t.items()},
            "tasks2_over_tasks1": round(t["tasks(1)"] / t["tasks(2)"], 3),
            "local2_over_serial": round(t["serial"] / t["local(2)"], 3),
            "tasks2_over_local2": round(t["local(2)"] / t["tasks(2)"], 3),
            "rounds_s": {k: [round(r["wall_s"], 2) for r in v] for k, v in runs.items()},
            "others_cpu_s": {k: [round(r["others_cpu_s"], 1) for r in v]
                             for k, v in runs.items()},
        })  # fmt: skip
        all_runs[records] = b
    slopes = {}
    if len(rows) > 1:
        a, z = rows[0], rows[-1]
        for label in PART1:
            per = (z[f"{label}_s"] - a[f"{label}_s"]) / (z["records"] - a["records"])
            slopes[label] = {"s_per_record": round(per, 3),
                             "fixed_s": round(a[f"{label}_s"] - per * a["records"], 2)}  # fmt: skip
    largest = all_runs[rows[-1]["records"]]
    io = {label: io_row(r) for label, r in largest.items()}
    return {"rows": rows, "slopes": slopes, "io": io, "data": str(data)}


def part3(args, work: Path, hook: Path) -> dict:
    large, demo = SIZES["large"], SIZES["demo"]
    cases = [("large", "2", large.n_subjects, large.n_subjects, args.large_timepoints)]
    if not args.quick:
        cases.append(("demo", "4", demo.n_subjects, demo.n_subjects * demo.n_runs,
                      demo.n_timepoints))  # fmt: skip
    out = {}
    for preset, res, subjects, records, timepoints in cases:
        if preset == "large":
            data = dataset(args.cache, "large", subjects, timepoints)
        else:
            data = args.cache / "demo"
            if len(list(data.glob("sub-*/func/*_desc-preproc_bold.nii.gz"))) != records:
                print(f"generating the demo preset in {data} ...", flush=True)
                generate(data, size="demo", seed=0)
        per_group = -(-records // 8)  # 8 shard groups
        probe = write_spec(work / f"probe-{preset}", data, res, subjects, per_group, SERIAL)
        mem = mem_estimate(probe) >> 20 if args.slurm_mem is None else args.slurm_mem
        shutil.rmtree(probe.parent)
        pydra = {"executor": "pydra", "worker": "slurm", "jobs": 2,
                 "cache_dir": str(work / "pydra"),
                 "options": {"sbatch_args": f"--mem={mem}M --cpus-per-task=1",
                             "poll_delay": 0.5}}  # fmt: skip
        executors = {
            "local(2)": LOCAL,
            "slurm-array(2)": {
                "executor": "slurm-array",
                "jobs": 2,
                "poll": 0.5,
                "mem": f"{mem}MiB",
            },
            "pydra-slurm per group": {**pydra, "per": "group"},
            "pydra-slurm per record": pydra,
        }
        print(f"  {preset}: {records} runs of {timepoints} volumes ({res} mm), 8 shard "
              f"groups, {mem} MiB a SLURM job:", flush=True)  # fmt: skip
        warm(data)
        runs = rounds(work, data, res, subjects, per_group, executors, args.repeats, hook)
        b = best(runs)
        t_local = b["local(2)"]["wall_s"]
        out[preset] = {
            "records": records, "timepoints": timepoints, "groups": 8, "mem_mib": mem,
            **{f"{label}_s": round(r["wall_s"], 2) for label, r in b.items()},
            "overhead": {label: round(r["wall_s"] / t_local - 1, 3)
                         for label, r in b.items() if label != "local(2)"},
            "io": {label: io_row(r) for label, r in b.items()},
            "rounds_s": {k: [round(r["wall_s"], 2) for r in v] for k, v in runs.items()},
            "others_cpu_s": {k: [round(r["others_cpu_s"], 1) for r in v]
                             for k, v in runs.items()},
        }  # fmt: skip
    return out


def _mb(n: float) -> str:
    return f"{n:,.1f}"


def report_part1(p1: dict, args) -> tuple[float, bool]:
    """Print part 1's table and slopes; the ratio of tasks on 2 processes to 1 and the goal."""
    print(f"\n1. runs of {args.timepoints} volumes on the 2 mm grid, {args.per_group} a shard "
          f"group; fastest of {args.repeats}")  # fmt: skip
    print(f"{'records':>7} {'groups':>6}" + "".join(f"{label:>9}" for label in PART1)
          + "  tasks 2/1  local(2)/tasks(2)")  # fmt: skip
    for row in p1["rows"]:
        times = "".join(f"{row[f'{label}_s']:>8.1f}s" for label in PART1)
        print(f"{row['records']:>7} {row['groups']:>6}{times}  "
              f"{row['tasks2_over_tasks1']:>8.2f}x "
              f"{row['tasks2_over_local2']:>10.2f}x")  # fmt: skip
    for label, slope in p1["slopes"].items():
        print(f"  {label:<9} {slope['s_per_record']:.3f} s a record + {slope['fixed_s']:.1f} s")
    ratio = p1["rows"][-1]["tasks2_over_tasks1"]
    goal = ratio >= 1.8
    print(f"  goal (tasks on 2 processes >= 1.8x 1): {'met' if goal else 'MISSED'} ({ratio:.2f}x)")
    return ratio, goal


def report_io(ios: dict[str, dict]) -> None:
    print("\n2. bytes of the coordinator's own process (MB; tasks': every task process's)")
    print(f"  {'executor':<32} {'shards':>8} {'rchar':>8} {'wchar':>8} {'read_b':>8} "
          f"{'write_b':>8}  wchar/shards  tasks' wchar")  # fmt: skip
    for label, row in ios.items():
        print(f"  {label:<32} {_mb(row['shards_mb']):>8} {_mb(row['rchar_mb']):>8} "
              f"{_mb(row['wchar_mb']):>8} {_mb(row['read_bytes_mb']):>8} "
              f"{_mb(row['write_bytes_mb']):>8}  {row['wchar_of_shards']:>11.2%}  "
              f"{_mb(row['tasks_wchar_mb']):>10}")  # fmt: skip


def report_slurm(slurm: dict) -> None:
    print("\n3. SLURM against local(2):")
    for preset, s in slurm.items():
        times = ", ".join(f"{k} {s[f'{k}_s']:.1f} s" for k in s["io"])
        over = ", ".join(f"{k} {v:+.1%}" for k, v in s["overhead"].items())
        print(f"  {preset} ({s['records']} runs of {s['timepoints']} volumes): {times}")
        print(f"    overhead against local(2): {over}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nishard-bench-scaleout"))
    parser.add_argument("--sizes", default=None, help="records per build (default 16,32)")
    parser.add_argument("--timepoints", type=int, default=None, help="volumes a run (100)")
    parser.add_argument("--per-group", type=int, default=None, help="records a shard (2)")
    parser.add_argument("--large-timepoints", type=int, default=None,
                        help="volumes a run of the SLURM comparison's large case (default "
                             "--timepoints; 1200: the preset itself)")  # fmt: skip
    parser.add_argument("--slurm-mem", type=int, default=None,
                        help="MiB a SLURM job (default: the plan's estimate of a record's "
                             "peak plus 1 GiB, as slurm-array asks)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument("--only-slurm", action="store_true", help="skip part 1")
    parser.add_argument("--quick", action="store_true",
                        help="8 and 16 records of 60 volumes, 1 a group, no demo case")  # fmt: skip
    args = parser.parse_args()
    quick = {"sizes": "8,16", "timepoints": 60, "per_group": 1}
    full = {"sizes": "16,32", "timepoints": 100, "per_group": 2}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.large_timepoints = args.large_timepoints or args.timepoints
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.cache.mkdir(parents=True, exist_ok=True)
    hook = args.cache / "iohook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    p1, slurm = None, None
    with tempfile.TemporaryDirectory(dir=args.cache, prefix="work-") as tmp:
        work = Path(tmp)
        if not args.only_slurm:
            print(f"1. shard tasks against the single writer ({cores} cores):", flush=True)
            p1 = part1(args, work, hook)
        if args.skip_slurm:
            print("3. SLURM: skipped (--skip-slurm)")
        elif shutil.which("sbatch") is None:
            print("3. SLURM: skipped: no sbatch on PATH (start one with "
                  "`bash scripts/slurm/start.sh`)")  # fmt: skip
        else:
            queued = subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout
            if queued.strip():
                print(f"   note: other jobs in the queue, they share the node:\n{queued}")
            print("3. SLURM against local:", flush=True)
            slurm = part3(args, work, hook)
    load_after = os.getloadavg()[0]
    elapsed = time.perf_counter() - started

    print(f"\n{cores} cores; load (1 min) {load_before:.2f} before, {load_after:.2f} after")
    ratio, goal = report_part1(p1, args) if p1 else (None, None)
    ios = {}
    if p1:
        ios.update({f"{k} ({p1['rows'][-1]['records']})": v for k, v in p1["io"].items()})
    if slurm:
        ios.update({f"{k} ({p})": v for p, s in slurm.items() for k, v in s["io"].items()})
    report_io(ios)
    if slurm:
        report_slurm(slurm)
    print(f"\n(whole run {elapsed / 60:.1f} min)")
    print(json.dumps({
        "benchmark": "scaleout", "cores": cores, "timepoints": args.timepoints,
        "large_timepoints": args.large_timepoints,
        "per_group": args.per_group, "repeats": args.repeats,
        "sizes": p1["rows"] if p1 else [], "slopes": p1["slopes"] if p1 else {},
        "tasks2_over_tasks1": ratio, "goal_2x_met": goal,
        "coordinator_io": ios, "slurm": {p: {k: v for k, v in s.items() if k != "io"}
                                        for p, s in (slurm or {}).items()},
        "load_before": round(load_before, 2), "load_after": round(load_after, 2),
        "elapsed_s": round(elapsed, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
