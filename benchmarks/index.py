"""Indexing speed: nishard ``locate`` against pybids ``BIDSLayout`` and bids2table.

Generates a raw BIDS layout of empty placeholder files (``--subjects`` x ``--runs`` BOLD
runs, each with its events file, one T1w per subject, a dataset-level
``task-rest_bold.json`` holding RepetitionTime and a ``participants.tsv``), then builds the
same result three ways, each in a fresh Python process so that no cache or index is shared:

- nishard: ``ns.locate(root, schema=ns.schemas.bids(), stage=["bold"],
  variables=ns.tables.participants(), filters=[])``: the BOLD runs with the repetition time
  resolved by the inheritance principle and participants.tsv joined.
- pybids: ``BIDSLayout(root)`` as a user writes it (validation on, in-memory database),
  ``layout.get(suffix="bold", extension=[".nii", ".nii.gz"])``, the RepetitionTime of each
  through ``get_metadata()``, and participants.tsv joined with pandas.
- bids2table: ``bids2table.index_dataset(root)`` (one process: bids2table indexes the
  subjects of one dataset serially), the BOLD rows selected, the RepetitionTime of each
  through ``bids2table.load_bids_metadata()``, and participants.tsv joined with pandas.
  The index alone (``index_dataset`` + selecting the BOLD rows) is timed too.

Each tool runs ``--repeat`` times (default 3), each time in a new process, and the fastest
run counts; imports are not timed. pybids takes about 30 s a run at the default size on a
2-core machine; for much larger layouts, ``--pybids-subjects N`` times it on a layout of the
first N subjects only and scales its time linearly to the full size (the output says so).

    python benchmarks/index.py [--subjects 5000] [--runs 2] [--repeat 3]
                               [--pybids-subjects N] [--out DIR [--keep]]

Prints a table of times and ratios, then one line of JSON: ``nishard_s``, ``pybids_s``,
``bids2table_s``, ``ratio_pybids`` and ``ratio_bids2table`` (how many times faster nishard
is), and ``match``: whether the three found the same (subject, run) pairs and
repetition times.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TR = 2.0
TOOLS = ("nishard", "pybids", "bids2table")


def generate(root: Path, subjects: int, runs: int) -> int:
    """Write a raw BIDS layout of empty placeholder files; the number of files written."""
    root.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(subjects)))
    labels = [f"{i:0{width}d}" for i in range(1, subjects + 1)]
    description = {"Name": "nishard index benchmark", "BIDSVersion": "1.9.0"}
    (root / "dataset_description.json").write_text(json.dumps(description))
    (root / "task-rest_bold.json").write_text(
        json.dumps({"RepetitionTime": TR, "TaskName": "rest"})
    )
    lines = ["participant_id\tage\tsex"]
    lines += [f"sub-{s}\t{20 + i % 50}\t{'FM'[i % 2]}" for i, s in enumerate(labels)]
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    files = 3
    for s in labels:
        anat, func = root / f"sub-{s}" / "anat", root / f"sub-{s}" / "func"
        anat.mkdir(parents=True)
        func.mkdir()
        (anat / f"sub-{s}_T1w.nii.gz").touch()
        files += 1
        for r in range(1, runs + 1):
            (func / f"sub-{s}_task-rest_run-{r}_bold.nii.gz").touch()
            (func / f"sub-{s}_task-rest_run-{r}_events.tsv").touch()
            files += 2
    return files


def _participants(root: Path):
    import pandas as pd

    table = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    table["subject"] = table.pop("participant_id").str.removeprefix("sub-")
    return table


def _found(frame, *columns: str) -> list:
    """(subject, run, repetition time) of every BOLD run, JSON-able."""
    return [[s, str(r), float(t)] for s, r, t in zip(*(frame[c] for c in columns), strict=True)]


def index_nishard(root: Path) -> tuple[dict, list]:
    import nishard as ns

    started = time.perf_counter()
    records = ns.locate(
        root,
        schema=ns.schemas.bids(),
        stage=["bold"],
        variables=ns.tables.participants(),
        filters=[],
    )
    seconds = time.perf_counter() - started
    frame = records.frame
    return {"total": seconds}, _found(frame, "subject", "run", "t_r")


def index_pybids(root: Path) -> tuple[dict, list]:
    import pandas as pd
    from bids import BIDSLayout

    started = time.perf_counter()
    layout = BIDSLayout(root)
    indexed = time.perf_counter()
    bold = layout.get(suffix="bold", extension=[".nii", ".nii.gz"])
    rows = [
        {**f.get_entities(), "RepetitionTime": f.get_metadata().get("RepetitionTime")} for f in bold
    ]
    frame = pd.DataFrame(rows).merge(_participants(root), on="subject", how="left")
    seconds = time.perf_counter() - started
    found = _found(frame, "subject", "run", "RepetitionTime")
    return {"total": seconds, "index": indexed - started}, found


def index_bids2table(root: Path) -> tuple[dict, list]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from bids2table import index_dataset, load_bids_metadata

    started = time.perf_counter()
    table = index_dataset(root)
    nifti = pc.is_in(table["ext"], value_set=pa.array([".nii", ".nii.gz"]))
    bold = table.filter(pc.and_(pc.equal(table["suffix"], "bold"), nifti))
    indexed = time.perf_counter()
    frame = bold.select(["sub", "ses", "task", "run", "path"]).to_pandas()
    frame["RepetitionTime"] = [
        load_bids_metadata(root / path).get("RepetitionTime") for path in frame["path"]
    ]
    frame = frame.rename(columns={"sub": "subject"})
    frame = frame.merge(_participants(root), on="subject", how="left")
    seconds = time.perf_counter() - started
    found = _found(frame, "subject", "run", "RepetitionTime")
    return {"total": seconds, "index": indexed - started}, found


INDEXERS = {"nishard": index_nishard, "pybids": index_pybids, "bids2table": index_bids2table}


def run_fresh(tool: str, root: Path) -> tuple[dict, list]:
    """Index ``root`` with ``tool`` in a new Python process (imports not timed)."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", tool, str(root)], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{tool} failed on {root}:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], result["found"]


def best(tool: str, root: Path, repeat: int) -> tuple[dict, list]:
    """The fastest of ``repeat`` fresh runs."""
    runs = [run_fresh(tool, root) for _ in range(repeat)]
    return min(runs, key=lambda run: run[0]["total"])


def pairs(found: list) -> set[tuple[str, int]]:
    return {(subject, int(run)) for subject, run, _ in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--pybids-subjects",
        type=int,
        default=0,
        help="time pybids on the first N subjects and scale linearly (0: the full layout)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N fresh runs per tool")
    parser.add_argument("--out", type=Path, default=None, help="where to write the layout")
    parser.add_argument("--keep", action="store_true", help="keep the generated layout")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        tool, root = args.worker
        seconds, found = INDEXERS[tool](Path(root))
        print(json.dumps({"seconds": seconds, "found": found}))
        return

    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty (it is removed at the end unless --keep)")
    out = args.out or Path(tempfile.mkdtemp(prefix="nishard-index-"))
    try:
        report(args, out)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


def report(args: argparse.Namespace, out: Path) -> None:
    root = out / "full"
    files = generate(root, args.subjects, args.runs)
    subset = 0 < args.pybids_subjects < args.subjects
    pybids_root = out / "subset" if subset else root
    if subset:
        generate(pybids_root, args.pybids_subjects, args.runs)
    pybids_subjects = args.pybids_subjects if subset else args.subjects

    t_ns, found_ns = best("nishard", root, args.repeat)
    t_b2t, found_b2t = best("bids2table", root, args.repeat)
    t_pb, found_pb = best("pybids", pybids_root, args.repeat)
    scale = args.subjects / pybids_subjects
    pybids_s = t_pb["total"] * scale

    expected = {(s, r) for s, _ in pairs(found_ns) for r in range(1, args.runs + 1)}
    trs = {t for found in (found_ns, found_pb, found_b2t) for _, _, t in found}
    in_subset = {(s, r) for s, r in pairs(found_ns) if int(s) <= pybids_subjects}
    match = (
        len(found_ns) == len(found_b2t) == args.subjects * args.runs
        and pairs(found_ns) == pairs(found_b2t) == expected
        and len(found_pb) == len(in_subset)
        and pairs(found_pb) == in_subset
        and trs == {TR}
    )

    n = args.subjects * args.runs
    print(f"{args.subjects} subjects x {args.runs} runs: {n} BOLD runs among {files} files")
    if subset:
        print(
            f"pybids timed on the first {pybids_subjects} subjects "
            f"({pybids_subjects * args.runs} runs, {t_pb['total']:.2f} s) and scaled "
            f"x{scale:g} to the full layout"
        )
    rows = [
        ("nishard locate", t_ns["total"], True),
        ("pybids BIDSLayout + get_metadata" + (" (scaled)" if subset else ""), pybids_s, True),
        ("  of which BIDSLayout()" + (" (scaled)" if subset else ""), t_pb["index"] * scale, False),
        ("bids2table (1 worker) + metadata", t_b2t["total"], True),
        ("  of which index_dataset + select", t_b2t["index"], False),
    ]
    print(f"  {'':<42} {'seconds':>9} {'runs/s':>10} {'nishard is':>11}")
    for label, seconds, ratio in rows:
        times = f"{seconds / t_ns['total']:.1f}x faster" if ratio and label[0] != "n" else ""
        print(f"  {label:<42} {seconds:9.3f} {n / seconds:10.0f} {times:>11}")
    print(f"  match: {'true' if match else 'false'}")
    print(json.dumps({
        "subjects": args.subjects, "runs": args.runs, "files": files,
        "nishard_s": round(t_ns["total"], 3), "pybids_s": round(pybids_s, 3),
        "bids2table_s": round(t_b2t["total"], 3),
        "bids2table_index_s": round(t_b2t["index"], 3),
        "pybids_scaled_from_subjects": pybids_subjects if subset else None,
        "ratio_pybids": round(pybids_s / t_ns["total"], 2),
        "ratio_bids2table": round(t_b2t["total"] / t_ns["total"], 2),
        "ratio_bids2table_index": round(t_b2t["index"] / t_ns["total"], 2),
        "match": match,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
