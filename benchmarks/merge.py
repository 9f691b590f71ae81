"""Merging partial manifests: the coordinator's whole job in a distributed build.

A cluster build's shard tasks each leave a partial manifest (``PartialManifest.save``:
``<split>-<group>.json`` and its ``.stats.npz``); the coordinator loads them, joins them
(``merge``: shards in plan order, quarantine and warnings in writing order, statistics
merged exactly by Chan et al.'s pairwise update) and publishes ``manifest.json``
(``build_manifest`` seals it with its content checksum). Issue [3/6]'s goal: 100,000
samples in at most 10 s and 1 GiB.

The data: synthetic partial manifests as a UK Biobank-sized build would leave them:
``--samples`` records in groups of ``--per-group`` (one tar and one TFRecord shard per
group, every sample's key, offset, size and CRC-32C listed), 1 % quarantined with a
reason, per-group moments of two products (a 100-region connectivity vector and a
400-feature vector), three splits. They are written to disk once, untimed.

- nishard: load every partial (JSON and ``.npz``), ``merge``, ``build_manifest`` and
  ``write_manifest`` (canonical JSON, sha256 of its content, fsync and rename).
- the anchor: what any merge must do at least, with the standard library alone: read
  every partial JSON, concatenate their shard lists, and write one JSON file of them
  (no statistics, no checksum, no validation).

At each of ``--sizes`` (default 10k, 30k, 100k samples) both run in fresh processes
(so peak RSS is each one's own, ``ru_maxrss``), alternating, ``--repeats`` times; the
fastest counts. Ends with one JSON line: per size both times, their ratio and nishard's
peak RSS, the marginal seconds per 10k samples, and whether the goal holds.

    python benchmarks/merge.py [--sizes 10000,30000,100000] [--per-group 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
PRODUCTS = {"connectivity": 4950, "regions": 400}


def make_partials(folder: Path, samples: int, per_group: int) -> list[str]:
    """Write the partial manifests of a build of ``samples`` records; the writing order."""
    from nishard.archives.manifest import PartialManifest
    from nishard.archives.shards import ShardInfo
    from nishard.archives.stats import Moments

    rng = np.random.default_rng(0)
    order, groups = [], {name: 0 for name in SPLITS}
    for start in range(0, samples, per_group):
        ids = [
            f"sub-{i:07d}_ses-2_task-rest" for i in range(start, min(samples, start + per_group))
        ]
        order += ids
        tenth = (start // per_group) % 10  # 80 % of the groups train, 10 % val, 10 % test
        split = "train" if tenth < 8 else "val" if tenth == 8 else "test"
        index = groups[split]
        groups[split] += 1
        quarantined = {ids[j] for j in range(0, len(ids), 100)}
        written = [i for i in ids if i not in quarantined]
        shards = []
        for fmt, ext in (("webdataset", "tar"), ("tfrecord", "tfrecord")):
            sizes = rng.integers(40_000, 60_000, len(written))
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            shards.append(ShardInfo(
                name=f"{split}-{index:06d}.{ext}", split=split, format=fmt,
                samples=len(written), bytes=int(sizes.sum()), sha256="0" * 64,
                keys=tuple(written), offsets=tuple(int(o) for o in offsets),
                sizes=tuple(int(s) for s in sizes),
                crc32c=tuple(int(c) for c in rng.integers(0, 2**32, len(written))),
            ))  # fmt: skip
        moments = {}
        for name, n in PRODUCTS.items():
            moments[name] = Moments(
                count=len(written) * 100, samples=len(written), mean=rng.normal(size=n),
                m2=rng.random(n) * 1e3, low=-1.0, high=1.0,
            )  # fmt: skip
        PartialManifest(
            split=split, group=index, records=tuple(ids), written=len(written),
            shards=tuple(shards),
            keys={name: {"dtype": "float32", "shape": [n]} for name, n in PRODUCTS.items()},
            inputs={f"{i}/func/bold.nii.gz": "sha256:" + "1" * 64 for i in ids},
            quarantine=tuple({"record": i, "file": f"{i}/func/bold.nii.gz",
                              "expected": "a 4D NIfTI image", "found": "EOFError"}
                             for i in sorted(quarantined)),
            moments=moments,
        ).save(folder)  # fmt: skip
    (folder / "order.json").write_text(json.dumps(order))
    return order


def run_nishard(folder: Path, out: Path) -> None:
    from nishard.archives.manifest import (
        KeyStats,
        PartialManifest,
        build_manifest,
        merge,
        write_manifest,
    )  # fmt: skip

    order = json.loads((folder / "order.json").read_text())
    partials = [PartialManifest.load(p) for p in sorted(folder.glob("*-*.json"))]
    merged = merge(partials, SPLITS, order)
    assert isinstance(merged.keys, KeyStats)
    manifest = build_manifest(
        spec={}, shards=merged.shards, keys=merged.keys, inputs=merged.inputs,
        quarantine=merged.quarantine, dropped=[], n_records=len(order),
        stats={s: {k: {"count": m.count} for k, m in merged.moments[s].items()} for s in SPLITS},
        warnings=merged.warnings,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, manifest)
    written = sum(merged.written.values())
    assert sum(s["samples"] for s in manifest["shards"]) == 2 * written


def run_plain(folder: Path, out: Path) -> None:
    shards = []
    for path in sorted(folder.glob("*-*.json")):
        shards += json.loads(path.read_text())["shards"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.json", "w") as file:
        json.dump({"shards": shards}, file)
        file.flush()
        os.fsync(file.fileno())


def child(which: str, folder: str, out: str) -> None:
    started = time.perf_counter()
    (run_nishard if which == "nishard" else run_plain)(Path(folder), Path(out))
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": rss}))


def timed(which: str, folder: Path, work: Path) -> dict:
    out = work / f"out-{which}"
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, str(folder), str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--per-group", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nishard-bench-merge-") as tmp:
        for samples in sizes:
            folder = Path(tmp) / f"partials-{samples}"
            folder.mkdir()
            make_partials(folder, samples, args.per_group)
            runs: dict[str, list[dict]] = {"nishard": [], "plain": []}
            for _ in range(args.repeats):
                for which in runs:
                    runs[which].append(timed(which, folder, Path(tmp)))
            best = {w: min(r, key=lambda x: x["seconds"]) for w, r in runs.items()}
            row = {
                "samples": samples,
                "groups": -(-samples // args.per_group),
                "nishard_s": round(best["nishard"]["seconds"], 3),
                "plain_s": round(best["plain"]["seconds"], 3),
                "ratio": round(best["nishard"]["seconds"] / best["plain"]["seconds"], 2),
                "nishard_peak_rss_mib": round(best["nishard"]["peak_rss"] / 2**20, 1),
                "plain_peak_rss_mib": round(best["plain"]["peak_rss"] / 2**20, 1),
            }
            rows.append(row)
            print(f"{samples:>7} samples ({row['groups']} groups): nishard "
                  f"{row['nishard_s']:.2f} s, {row['nishard_peak_rss_mib']} MiB; plain JSON "
                  f"concatenation {row['plain_s']:.2f} s, {row['plain_peak_rss_mib']} MiB; "
                  f"ratio {row['ratio']}")  # fmt: skip
            shutil.rmtree(folder)
    slopes = [
        (b["nishard_s"] - a["nishard_s"]) / ((b["samples"] - a["samples"]) / 10_000)
        for a, b in itertools.pairwise(rows)
    ]
    largest = rows[-1]
    goal = largest["nishard_s"] <= 10 and largest["nishard_peak_rss_mib"] <= 1024
    print(
        f"marginal seconds per 10k samples: {', '.join(f'{s:.3f}' for s in slopes)}; "
        f"goal (<= 10 s and <= 1 GiB at {largest['samples']}): {'met' if goal else 'MISSED'}"
    )
    print(json.dumps({
        "benchmark": "merge", "sizes": rows, "marginal_s_per_10k": [round(s, 3) for s in slopes],
        "nishard_s": largest["nishard_s"], "plain_s": largest["plain_s"],
        "ratio": largest["ratio"], "peak_rss_mib": largest["nishard_peak_rss_mib"],
        "goal_met": goal,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
