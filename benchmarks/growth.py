"""Growth: what each step costs against the number of records, and locate near its floor.

Issue [5/6], item 4. Every step a build takes before and after its samples, timed at
``--sizes`` records (default 1,000, 10,000 and 100,000) on placeholder data, so that the
whole runs in minutes:

- the data: a UK Biobank-like fMRIPrep derivatives tree of empty placeholder files, one
  imaging session per subject with two functional runs (rest and faces), 24 files a
  subject (12 a record): anatomical derivatives and transforms, and per run the
  preprocessed BOLD in MNI152NLin2009cAsym with its JSON sidecar (``RepetitionTime``,
  the only file with content), its mask, boldref, confounds with their sidecar, the BOLD
  in T1w space and a transform; a ``participants.tsv`` (age, sex) at the root;
- ``index``: ``nishard index ROOT -o records.parquet`` (locate with the default
  ``complete`` filter and participants.tsv joined, the summary, the Parquet file);
- ``locate``: ``ns.locate`` with participants' age and sex joined, the filters
  ``complete``, ``entities`` (both tasks) and ``where("age >= 45")``, pivoted to one
  record per subject (``level="subject"``);
- ``plan``: ``plan_shards`` of those runs (``index``'s table), a random 80/10/10 split
  by subject, shuffled, 100 samples a shard;
- ``manifest``: ``build_manifest`` and ``write_manifest`` of a build of every run (one
  WebDataset shard per 1,000 samples, each sample's key, offset, size and CRC-32C listed;
  two inputs with their sha256 per record);
- ``verify``: ``nishard.archives.verify.verify`` of that build: real tar shards of tiny
  samples (a float32 vector of 4), every shard hashed and every sample decoded;
- ``catalog``: ``ns.stream``'s ``open_catalog`` of its train split;
- ``merge``: loading, merging and publishing the partial manifests such a build's shard
  tasks leave, as ``benchmarks/merge.py`` makes them (groups of 200 records).

Each step runs in a fresh process, once untimed on a tree of 20 records (imports, first
calls), then ``--repeats`` times after its setup; the fastest counts, in CPU time (user
and system, of the process) and in wall time. The log-log slope of time against records
(least squares over the sizes) says how it grows: 1 is linear, 2 quadratic; the goal is
at most 1.1 for every step. Goals are judged on CPU time, what a step costs: on a
machine shared with other work, wall time also counts the waits for a core.

Then locate close to its floor: on a UK Biobank-sized tree (``--ukb-subjects``, default
50,000 subjects: 1.2 million files, 100,000 runs), ``ns.locate(root)`` (fMRIPrep schema,
default stage and filter) against a plain ``os.scandir`` walk of the same tree (every
folder listed, each entry asked whether it is a folder, nothing else), the least any
indexer does on one core; ``os.walk`` is timed too, for reference, and so are the parts
of locate: nishard's own listing of the tree, and the fMRIPrep schema's scan (the listing,
the names sorted into runs, each run's sidecar read), the rest being the record table; and
each run's sidecar opened, read and closed, nothing parsed: what any indexer that gives
the runs' TR adds to the walk at the least (``ratio_with_sidecars``).
Alternating, fastest of ``--floor-repeats`` rounds, page cache warm; each round's own
ratio is printed too, since on a shared virtual machine they spread by about ±5 %.
Goal: locate within 2x the walk (CPU time; wall too).

    python benchmarks/growth.py [--sizes 1000,10000,100000] [--ukb-subjects 50000]
                                [--repeats 3] [--floor-repeats 5] [--out DIR [--keep]]

Prints a table, then one line of JSON: per step its CPU and wall seconds at each size and
their slopes, and for the UK Biobank-sized tree the seconds of locate, the walks and the
ratio of locate to the scandir walk. A tree takes 28 inodes (``df -i``) and about 24 kB
of disk (its folders' blocks) a subject: with the shards, about 1.5 GB and 1.4 million
inodes at the default sizes. Everything is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MNI = "space-MNI152NLin2009cAsym"
TASKS = ("rest", "faces")
RUNS_PER_SUBJECT = len(TASKS)
FILES_PER_SUBJECT = 24
SAMPLES_PER_SHARD = 1000
STAGES = ("index", "locate", "plan", "manifest", "verify", "catalog", "merge")
GOAL_SLOPE, GOAL_RATIO = 1.1, 2.0
FLOOR_RUNS = ("locate", "scandir", "os_walk", "listing", "scan", "sidecars")


# -- the data ---------------------------------------------------------------------------


def subject_files(label: str) -> list[str]:
    """The 24 files of one subject, relative to the root: what fMRIPrep 23 writes for a
    UK Biobank imaging visit (session 2) with a resting-state and a faces run."""
    sub, ses = f"sub-{label}", f"sub-{label}_ses-2"
    anat = f"{sub}/ses-2/anat/{ses}"
    files = [
        f"{sub}.html",
        f"{anat}_desc-preproc_T1w.nii.gz", f"{anat}_desc-preproc_T1w.json",
        f"{anat}_desc-brain_mask.nii.gz", f"{anat}_{MNI}_desc-preproc_T1w.nii.gz",
        f"{anat}_{MNI}_desc-brain_mask.nii.gz", f"{anat}_dseg.nii.gz",
        f"{anat}_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5",
    ]  # fmt: skip
    for task in TASKS:
        run = f"{sub}/ses-2/func/{ses}_task-{task}"
        files += [
            f"{run}_{MNI}_desc-preproc_bold.nii.gz", f"{run}_{MNI}_desc-preproc_bold.json",
            f"{run}_{MNI}_desc-brain_mask.nii.gz", f"{run}_{MNI}_boldref.nii.gz",
            f"{run}_desc-confounds_timeseries.tsv", f"{run}_desc-confounds_timeseries.json",
            f"{run}_space-T1w_desc-preproc_bold.nii.gz",
            f"{run}_from-scanner_to-T1w_mode-image_xfm.txt",
        ]  # fmt: skip
    return files


def labels(subjects: int) -> list[str]:
    """UK Biobank's seven-digit participant ids."""
    return [str(1_000_000 + i) for i in range(subjects)]


def generate(root: Path, subjects: int) -> int:
    """Write the tree of ``subjects`` subjects; the number of files. One ``open`` and
    ``close`` a file (no pathlib, no buffered writer): about 40,000 files a second."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "growth", "BIDSVersion": "1.8.0", "DatasetType": "derivative"})
    )
    rows = [f"sub-{s}\t{40 + i % 30}\t{'FM'[i % 2]}" for i, s in enumerate(labels(subjects))]
    (root / "participants.tsv").write_text("participant_id\tage\tsex\n" + "\n".join(rows) + "\n")
    sidecar = json.dumps({"RepetitionTime": 0.735, "SkullStripped": False}).encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    files = 2
    for label in labels(subjects):
        for folder in ("anat", "func"):
            os.makedirs(f"{root}/sub-{label}/ses-2/{folder}")
        for relative in subject_files(label):
            fd = os.open(f"{root}/{relative}", flags, 0o644)
            if relative.endswith("_bold.json"):
                os.write(fd, sidecar)
            os.close(fd)
            files += 1
    return files


def record_keys(records: int) -> list[str]:
    return [
        f"sub-{label}_ses-2_task-{task}"
        for label in labels(-(-records // RUNS_PER_SUBJECT))
        for task in TASKS
    ][:records]


def split_counts(records: int) -> dict[str, int]:
    train, val = records * 8 // 10, records // 10
    return {"train": train, "val": val, "test": records - train - val}


def make_shards(folder: Path, records: int) -> None:
    """A finished build of ``records`` tiny samples: WebDataset shards and the manifest."""
    from nishard.archives import WebDataset
    from nishard.archives.manifest import KeyStats, build_manifest, write_manifest
    from nishard.archives.shards import ShardWriter, by_count

    folder.mkdir(parents=True)
    fmt, vector = WebDataset(), np.arange(4, dtype=np.float32)
    keys = KeyStats()
    keys.update({"x": vector})
    ids, infos, start = record_keys(records), [], 0
    for split, count in split_counts(records).items():
        writer = ShardWriter(folder, split, fmt, by_count(SAMPLES_PER_SHARD))
        for key in ids[start : start + count]:
            writer.add(key, fmt.encode(key, {"x": vector}, {"record": key}))
        infos += writer.close()
        start += count
    manifest = build_manifest(
        spec={}, shards=infos, keys=keys, inputs={}, quarantine=[], dropped=[],
        n_records=records,
    )  # fmt: skip
    write_manifest(folder, manifest)


def prepare(work: Path, records: int) -> dict:
    """Everything a size's steps read: the tree, the build, the partial manifests."""
    sys.path.insert(0, str(Path(__file__).parent))
    from merge import make_partials

    started = time.perf_counter()
    files = generate(work / "tree", -(-records // RUNS_PER_SUBJECT))
    make_shards(work / "shards", records)
    (work / "partials").mkdir()
    make_partials(work / "partials", records, 200)
    os.sync()  # no writeback of what was just written while the steps are timed
    return {"files": files, "seconds": time.perf_counter() - started}


# -- the steps: each returns what to time (its setup done) -------------------------------


def step_index(work: Path):
    from nishard.cli import main

    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(["index", str(work / "tree"), "-o", str(work / "records.parquet")])
        assert status == 0, status

    return run


def step_locate(work: Path):
    import nishard as ns

    def run() -> None:
        records = ns.locate(
            work / "tree",
            variables=ns.tables.participants(["age", "sex"]),
            filters=[
                ns.filters.complete(),
                ns.filters.entities(include={"task": list(TASKS)}),
                ns.filters.where("age >= 45"),
            ],
            level="subject",
        )
        assert len(records) > 0

    return run


def step_plan(work: Path):
    import nishard as ns
    from nishard.builder.planning import plan_shards

    records = ns.RecordTable.from_parquet(work / "records.parquet")
    split = ns.splits.random(seed=0)

    def run() -> None:
        plan = plan_shards(records, split, shuffle=0, shards=ns.shards.by_count(100))
        assert sum(len(group.records) for group in plan.groups) == len(records)

    return run


def step_manifest(work: Path):
    from nishard.archives.manifest import KeyStats, build_manifest, write_manifest
    from nishard.archives.shards import ShardInfo

    built = json.loads((work / "shards" / "manifest.json").read_text())
    shards = [ShardInfo.from_dict(entry) for entry in built["shards"]]
    keys = KeyStats()
    keys.add("x", "float32", [4])
    digest = "sha256:" + "0" * 64
    inputs = {}
    for key in record_keys(built["records"]["written"]):
        inputs[f"{key.split('_')[0]}/ses-2/func/{key}_{MNI}_desc-preproc_bold.nii.gz"] = digest
        inputs[f"{key.split('_')[0]}/ses-2/func/{key}_desc-confounds_timeseries.tsv"] = digest
    out = work / "manifest-out"

    def run() -> None:
        manifest = build_manifest(
            spec={}, shards=shards, keys=keys, inputs=inputs, quarantine=[], dropped=[],
            n_records=built["records"]["written"],
        )  # fmt: skip
        out.mkdir(exist_ok=True)
        write_manifest(out, manifest)

    return run


def step_verify(work: Path):
    from nishard.archives.verify import verify

    def run() -> None:
        report = verify(work / "shards", progress=False)
        assert report.ok, report.to_text()

    return run


def step_catalog(work: Path):
    from nishard.stream.catalog import open_catalog

    written = json.loads((work / "shards" / "manifest.json").read_text())["records"]["written"]

    def run() -> None:
        catalog = open_catalog(work / "shards")
        assert len(catalog) == split_counts(written)["train"]

    return run


def step_merge(work: Path):
    sys.path.insert(0, str(Path(__file__).parent))
    from merge import run_nishard

    def run() -> None:
        run_nishard(work / "partials", work / "merge-out")

    return run


STEPS = {name: globals()[f"step_{name}"] for name in STAGES}


def child_step(name: str, work: str, warm: str, repeats: int) -> None:
    STEPS[name](Path(warm))()  # imports and first calls, on a tiny tree: not timed
    run = STEPS[name](Path(work))
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(json.dumps({"seconds": min(wall), "cpu": min(cpu)}))


# -- locate against the walk -------------------------------------------------------------


def scandir_walk(root: str) -> int:
    """The floor: every folder listed, every entry asked whether it is a folder."""
    files, stack = 0, [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    files += 1
    return files


def read_sidecars(paths: list[str]) -> int:
    """What an indexer that gives each run's TR adds to the walk at the least: each
    run's sidecar opened, read and closed, nothing parsed."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.read(fd, 1 << 16)
        os.close(fd)
    return len(paths)


def scan_runs(schema, root: str) -> int:
    """The runs a schema's scan finds, with the garbage collector paused as locate does."""
    from nishard.records.locate import paused_gc

    with paused_gc():
        return len(schema.scan(Path(root)).runs)


def child_floor(root: str, warm: str, repeats: int) -> None:
    import nishard as ns
    from nishard.records.files import walk_folders

    ns.locate(warm)  # imports and first calls, on a tiny tree: not timed
    sidecars = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if name.endswith("_desc-preproc_bold.json")
    )
    runs = {
        "scandir": lambda: scandir_walk(root),
        "locate": lambda: len(ns.locate(root)),
        "os_walk": lambda: sum(len(names) for _, _, names in os.walk(root)),
        # Where locate's time goes: its own listing of the tree, then the schema's scan
        # (the listing, every name sorted into runs, every run's sidecar read); the rest
        # of locate is the record table (filters, frame).
        "listing": lambda: sum(len(names) for _, names in walk_folders(root, "sub-", True)),
        "scan": lambda: scan_runs(ns.schemas.fmriprep(), root),
        "sidecars": lambda: read_sidecars(sidecars),
    }
    best = {name: math.inf for name in runs} | {f"{name}_cpu": math.inf for name in runs}
    found, rounds = {}, []
    for _ in range(repeats):  # alternating: what load comes, comes to all
        cpu = {}
        for name, run in runs.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            found[name] = run()
            best[name] = min(best[name], time.perf_counter() - started)
            cpu[name] = time.process_time() - started_cpu
            best[f"{name}_cpu"] = min(best[f"{name}_cpu"], cpu[name])
        # Each round's own ratio, for the spread the fastest-of figures leave out.
        rounds.append(cpu["locate"] / cpu["scandir"])
    assert found["scandir"] == found["os_walk"] == found["listing"]
    assert found["scan"] == found["locate"] == found["sidecars"]
    print(json.dumps({**best, "rounds": rounds, "files": found["scandir"],
                      "records": found["locate"]}))  # fmt: skip


def in_child(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the report --------------------------------------------------------------------------


def slope(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(records)."""
    if len(sizes) < 2:
        return math.nan
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="records, comma-separated")
    parser.add_argument("--ukb-subjects", type=int, default=50_000, help="0: skip that tree")
    parser.add_argument("--repeats", type=int, default=3, help="fastest of N")
    parser.add_argument("--floor-repeats", type=int, default=5,
                        help="rounds of locate against the walk (fastest of N)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="where to write the data")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "prepare":
            print(json.dumps(prepare(Path(rest[0]), int(rest[1]))))
        elif kind == "floor":
            child_floor(rest[0], rest[1], int(rest[2]))
        else:
            child_step(kind, rest[0], rest[1], int(rest[2]))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty (it is removed at the end unless --keep)")
    out = args.out or Path(tempfile.mkdtemp(prefix="nishard-growth-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        report(args, sizes, out)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


def report(args: argparse.Namespace, sizes: list[int], out: Path) -> None:
    started = time.perf_counter()
    warm = out / "warm-up"  # each step runs once on it first: imports and first calls
    warm.mkdir()
    in_child("prepare", str(warm), "20")
    for name in STAGES:  # in order: plan reads what index wrote
        in_child(name, str(warm), str(warm), "1")
    wall: dict[str, list[float]] = {name: [] for name in STAGES}
    cpu: dict[str, list[float]] = {name: [] for name in STAGES}
    files = {}
    for records in sizes:
        work = out / f"records-{records}"
        work.mkdir()
        made = in_child("prepare", str(work), str(records))
        files[records] = made["files"]
        print(f"{records:>7} records: {made['files']:,} files, shards and partial manifests "
              f"made in {made['seconds']:.1f} s", flush=True)  # fmt: skip
        for name in STAGES:
            timed = in_child(name, str(work), str(warm), str(args.repeats))
            wall[name].append(timed["seconds"])
            cpu[name].append(timed["cpu"])
        print("    CPU s: " + ", ".join(f"{n} {cpu[n][-1]:.3f}" for n in STAGES), flush=True)
    slopes = {name: slope(sizes, cpu[name]) for name in STAGES}
    wall_slopes = {name: slope(sizes, wall[name]) for name in STAGES}
    print(f"\n  {'CPU s (wall s)':<15}" + "".join(f"{f'{n:,} records':>22}" for n in sizes)
          + f"{'slope':>7}{'(wall)':>8}")  # fmt: skip
    for name in STAGES:
        pairs = zip(cpu[name], wall[name], strict=True)
        cells = "".join(f"{f'{c:.3f} ({w:.3f})':>22}" for c, w in pairs)
        print(f"  {name:<15}{cells}{slopes[name]:7.2f}{f'({wall_slopes[name]:.2f})':>8}")
    worst = max(slopes.values())
    slopes_met = all(s <= GOAL_SLOPE for s in slopes.values())
    print(f"  log-log slopes of CPU time at most {GOAL_SLOPE}: "
          f"{'met' if slopes_met else 'MISSED'} (worst {worst:.2f})")  # fmt: skip

    ukb = None
    if args.ukb_subjects > 0:
        subjects = args.ukb_subjects
        reused = next((r for r in sizes if -(-r // RUNS_PER_SUBJECT) == subjects), None)
        if reused is not None:
            tree = out / f"records-{reused}" / "tree"
        else:
            tree = out / "ukb" / "tree"
            generate(tree, subjects)
            os.sync()
        floor = in_child("floor", str(tree), str(warm / "tree"), str(args.floor_repeats))
        ratio = floor["locate_cpu"] / floor["scandir_cpu"]
        wall_ratio = floor["locate"] / floor["scandir"]
        # The walk and the sidecars' reads: what an indexer that gives TRs cannot skip.
        read_ratio = floor["locate_cpu"] / (floor["scandir_cpu"] + floor["sidecars_cpu"])
        ukb = {
            "subjects": subjects, "files": floor["files"], "records": floor["records"],
            **{f"{k}_s": round(floor[k], 3) for k in FLOOR_RUNS},
            **{f"{k}_cpu_s": round(floor[f"{k}_cpu"], 3) for k in FLOOR_RUNS},
            "ratio": round(ratio, 2), "wall_ratio": round(wall_ratio, 2),
            "ratio_with_sidecars": round(read_ratio, 2),
            "round_ratios": [round(r, 3) for r in floor["rounds"]],
            "goal_met": ratio <= GOAL_RATIO,
        }  # fmt: skip
        print(f"\nUK Biobank-sized: {subjects:,} subjects, {floor['files']:,} files, "
              f"{floor['records']:,} records. CPU s (wall s): locate {floor['locate_cpu']:.2f} "
              f"({floor['locate']:.2f}), plain os.scandir walk {floor['scandir_cpu']:.2f} "
              f"({floor['scandir']:.2f}), os.walk {floor['os_walk_cpu']:.2f} "
              f"({floor['os_walk']:.2f}); locate is {ratio:.2f}x the walk ({wall_ratio:.2f}x "
              f"wall), goal at most {GOAL_RATIO}x: "
              f"{'met' if ratio <= GOAL_RATIO else 'MISSED'}")  # fmt: skip
        print(f"  each round's own ratio (this machine's noise): "
              f"{', '.join(f'{r:.2f}' for r in floor['rounds'])}")  # fmt: skip
        listing, scan, locate = (floor[f"{k}_cpu"] for k in ("listing", "scan", "locate"))
        print(f"  locate's CPU s: its listing of the tree {listing:.2f}, sorting the names "
              f"into runs and reading their sidecars {scan - listing:.2f}, the record table "
              f"{locate - scan:.2f}")  # fmt: skip
        print(f"  the walk and each run's sidecar opened, read and closed "
              f"({floor['sidecars_cpu']:.2f}): {floor['scandir_cpu'] + floor['sidecars_cpu']:.2f}"
              f"; locate is {read_ratio:.2f}x that")  # fmt: skip
    print(f"(all in {time.perf_counter() - started:.0f} s)")
    print(json.dumps({
        "benchmark": "growth", "sizes": sizes, "files": [files[r] for r in sizes],
        "repeats": args.repeats,
        "stages": {n: {"cpu_s": [round(t, 4) for t in cpu[n]],
                       "wall_s": [round(t, 4) for t in wall[n]],
                       "slope": round(slopes[n], 3), "wall_slope": round(wall_slopes[n], 3)}
                   for n in STAGES},
        "max_slope": round(worst, 3), "slopes_met": slopes_met, "ukb": ukb,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
