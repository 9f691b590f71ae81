"""The learners' pass read past the page cache (``O_DIRECT``) against through it.

The data of ``scale.py`` (HCP-like runs of the ``large`` preset, 600 volumes by default:
0.565 GB of masked float32 a run), built into shard folders of 2, 4 and 8 runs (``--runs``)
from one generated data set. At each size, CanICA (20 components, one start,
``memory_budget="2GiB"``, ``score=False``) fits the folder reading its samples through
the page cache (``Shards(direct=False)``) and past it (``direct=True``), each fit in a
fresh process with the page cache dropped before it, the two alternated for
``--rounds`` rounds (the fastest pass of each kept). Both must give the same maps
(``match``: the sha256 of ``components_``), as they read the same bytes.

The learners choose direct reads on their own when a pass streams more bytes than the
memory available (``Shards(direct=None)``); this script forces each way at sizes that
fit in memory, so that the two are measured on the same files.

    python benchmarks/direct_read.py [--runs 2,4,8] [--timepoints 600] [--rounds 2]
        [--dir /tmp/nishard-bench-direct]

Prints the pass (seconds, GB/s) of each way at each size, the marginal seconds per GB of
each, the ratio of the passes at the largest size (direct / buffered; under 1: direct is
faster) and one line of JSON. About 7 minutes at the defaults on 2 cores (5 of them
generating the 8 runs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

from scale import GB, MARKER, Bench, shard_bytes  # benchmarks/, this script's folder

WAYS = {"buffered": False, "direct": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="2,4,8", help="runs of each size")
    parser.add_argument("--timepoints", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/nishard-bench-direct"))
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.runs.split(","))
    if args.dir.exists() and any(args.dir.iterdir()):
        if not (args.dir / MARKER).is_file():
            raise SystemExit(f"{args.dir} is not empty and not this benchmark's: choose --dir")
        shutil.rmtree(args.dir)
    args.dir.mkdir(parents=True)
    (args.dir / MARKER).write_text(json.dumps({"runs": sizes}))
    # What scale.py's stages read from its arguments.
    options = argparse.Namespace(
        dir=args.dir, timepoints=args.timepoints, mask_only=False, build_jobs=2,
        components=20, n_init=1, memory_budget="2GiB",
    )  # fmt: skip
    bench = Bench(options)
    started = time.perf_counter()
    data = args.dir / "inputs"
    bench.generate(data, 0, sizes[-1])
    labels = sorted(p.name.removeprefix("sub-") for p in data.glob("sub-*") if p.is_dir())
    rows = []
    for n in sizes:
        folder = args.dir / f"runs-{n}"
        bench.build(data, labels[:n], folder)
        row: dict = {"runs": n, "gb": shard_bytes([folder]) / GB}
        for _ in range(args.rounds):
            for way, direct in WAYS.items():
                got = bench.stage({"stage": "canica", "folders": [str(folder)], "components": 20,
                                   "n_init": 1, "budget": "2GiB", "direct": direct})  # fmt: skip
                if got["direct"] != direct:
                    raise SystemExit(f"asked for direct={direct}, the fit read {got['direct']}")
                best = row.get(f"{way}_s")
                pass_s = got["timings"]["reduce"]
                row[f"{way}_s"] = pass_s if best is None else min(best, pass_s)
                row.setdefault(f"{way}_maps", set()).add(got["maps_sha256"])
        row["match"] = len(row.pop("buffered_maps") | row.pop("direct_maps")) == 1
        rows.append(row)
        print(f"  {n} runs, {row['gb']:.2f} GB: pass through the cache {row['buffered_s']:.2f} s "
              f"({row['gb'] / row['buffered_s']:.2f} GB/s), past it {row['direct_s']:.2f} s "
              f"({row['gb'] / row['direct_s']:.2f} GB/s), same maps: {row['match']}",
              flush=True)  # fmt: skip
    shutil.rmtree(args.dir)

    def slopes(way: str) -> list[float]:
        return [round((b[f"{way}_s"] - a[f"{way}_s"]) / (b["gb"] - a["gb"]), 3)
                for a, b in itertools.pairwise(rows)]  # fmt: skip

    last = rows[-1]
    ratio = last["direct_s"] / last["buffered_s"]
    print("marginal seconds per GB:")
    for way in WAYS:
        print(f"  {way:<9} {', '.join(f'{s:.3f}' for s in slopes(way))}")
    print(
        f"at {last['gb']:.2f} GB the direct pass takes {ratio:.2f}x the buffered one "
        f"({(1 - ratio) * 100:.0f} % less), {'the same' if last['match'] else 'DIFFERENT'} maps"
    )
    result = {
        "benchmark": "direct_read", "cold_cache": bench.cold, "timepoints": args.timepoints,
        "gb": [round(r["gb"], 3) for r in rows],
        "buffered_s": [round(r["buffered_s"], 3) for r in rows],
        "direct_s": [round(r["direct_s"], 3) for r in rows],
        "s_per_gb": {way: slopes(way) for way in WAYS},
        "ratio": round(ratio, 3), "match": all(r["match"] for r in rows),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
