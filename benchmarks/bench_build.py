"""Build throughput: nishard (mask + z-score -> WebDataset shards) against nilearn by hand.

The anchor is what a careful user writes today: for every run, ``NiftiMasker(mask_img=run's
mask, standardize="zscore_sample").fit_transform(bold)`` and one ``.npy`` file per run. Both
sides read the same gzipped NIfTI files from the page cache (one warm-up read first) and give
the same arrays; the script checks that they do.

    python benchmarks/bench_build.py [--subjects 4] [--timepoints 200] [--size large]

Prints a table, then one line of JSON: times, ``ratio`` (anchor time / nishard time, for the
serial and the 2-process executor) and ``max_abs_diff`` between the two outputs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds
from nilearn.maskers import NiftiMasker

import nishard as ns
from nishard.datasets import SIZES, generate


def anchor(records, out: Path) -> float:
    started = time.perf_counter()
    for record in records:
        masker = NiftiMasker(mask_img=record.files["mask"], standardize="zscore_sample")
        np.save(out / f"{record.id}.npy", masker.fit_transform(record.files["bold"]))
    return time.perf_counter() - started


def nishard_build(records, out: Path, executor) -> float:
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(method="zscore_sample")])
    started = time.perf_counter()
    ns.write(records, plan, out, executor=executor, progress=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=list(SIZES))
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--timepoints", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "data", size=args.size, seed=0, subjects=args.subjects,
                 sessions=0, runs=1, timepoints=args.timepoints)  # fmt: skip
        res = f"{SIZES[args.size].resolution_mm:g}"
        records = ns.locate(tmp / "data", schema=ns.schemas.fmriprep(res=res))
        for record in records:  # warm the page cache for both sides alike
            Path(record.files["bold"]).read_bytes()

        (tmp / "npy").mkdir()
        t_anchor = anchor(records, tmp / "npy")
        t_serial = nishard_build(records, tmp / "serial", ns.executors.serial())
        t_local = nishard_build(records, tmp / "local", ns.executors.local(2))

        manifest = ns.read_manifest(tmp / "serial")
        urls = [str(tmp / "serial" / s["name"]) for s in manifest["shards"]]
        diff = 0.0
        for sample in wds.WebDataset(urls, shardshuffle=False).decode():
            expected = np.load(tmp / "npy" / f"{sample['__key__']}.npy")
            diff = max(diff, float(np.abs(sample["bold.npy"] - expected).max()))
        shape = manifest["keys"]["bold"]["shape"]

    n = len(records)
    print(f"{n} runs of {args.timepoints} time points, {shape[1]} voxels, {args.size} grid")
    rows = [
        ("nilearn NiftiMasker + np.save", t_anchor),
        ("nishard serial", t_serial),
        ("nishard local(2)", t_local),
    ]
    for label, seconds in rows:
        print(f"  {label:<30} {seconds:7.2f} s  {n / seconds:6.2f} runs/s")
    print(json.dumps({
        "runs": n, "timepoints": args.timepoints, "voxels": shape[1],
        "anchor_s": round(t_anchor, 3), "nishard_serial_s": round(t_serial, 3),
        "nishard_local2_s": round(t_local, 3),
        "ratio": round(t_anchor / t_serial, 3), "ratio_local2": round(t_anchor / t_local, 3),
        "max_abs_diff": diff,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
