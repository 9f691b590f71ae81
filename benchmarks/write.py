"""Write throughput: nishard's tar and TFRecord shards against a plain write of the same bytes.

The data: ``--samples`` synthetic products held in memory, each one float32 array of
``--timepoints`` x ``--voxels`` (default 32 of 200 x 60000, 48 MB each, 1.5 GB in all, 3 or
4 shards per side: a masked fMRIPrep run is 200 x 235375, 188 MB, but 64 of those do not fit
in a 24 GB box's RAM next to the page cache, and the run should stay within ~3 minutes),
and the metadata dict of a record (entities, TR, age, sex...).

- nishard (each format): per sample, exactly what ``nishard.write`` does for it
  (``builder/driver.py``): the format's ``encode`` (``.npy`` bytes + JSON for WebDataset;
  the ``tf.train.Example`` for TFRecord), then ``ShardWriter.add`` (tar headers and
  padding; TFRecord framing with its two CRC-32C), shards rolled at ``--max-bytes`` (512 MB,
  the default), written under a temporary name, and ``ShardWriter.close``, which computes
  the sha256 of each shard (computed while it is written, in a second thread) for the
  manifest and renames it. No manifest is written (a few kB). ``sha256_file`` is also
  timed alone, over files of the shards' sizes in the page cache, to show what hashing
  costs on this CPU.
- the anchor, a plain write: the same arrays' raw bytes (a buffer of the array: no copy),
  one ``f.write`` each, in files rolled at the same ``--max-bytes``, in the same folder.

Two disk policies, each applied to both sides alike:

- ``durable`` (the headline): every file is ``fsync``-ed when it is finished, so the time
  includes getting the bytes to the disk. nishard's shards by ShardWriter itself where it
  does so (after the sha256, with the folder synced after the rename), else through a thin
  wrapper of the format that fsyncs each shard file when it is closed.
- ``cached``: no fsync on either side (ShardWriter's own fsync, if any, is patched out);
  the bytes end in the page cache, so the time is the CPU's work (copies, encoding,
  checksums) plus copying into the cache. Dirty pages can still be written back in the
  background while it runs.

The caches cannot be dropped without root: every run writes fresh files, removed after it
(with fsync no dirty pages remain from one run to the next). The runs go in ``--repeats``
rounds (plain, tar, tfrecord, then again),
after an untimed warm-up round of two samples; the fastest of each counts. The machine may
be shared: the load average before and after is printed.

    python benchmarks/write.py [--samples 32] [--timepoints 200] [--voxels 60000]
                               [--max-bytes 512000000] [--repeats 3]
                               [--dir /tmp/nishard-bench-write]

Throughput is MB/s (10**6 bytes) of payload: the arrays' bytes, the same for every side
(nishard's files are a little larger: headers, framing, JSON). Prints a table, then one line
of JSON: ``payload_mb``, MB/s of each side, ``fraction_of_plain_tar`` and
``fraction_of_plain_tfrecord`` (nishard MB/s / plain MB/s, durable, sha256 included),
``ratio`` (the smaller of the two; the goal is at least 0.7), the same for the cached
policy, and the sha256 rate alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from nishard.archives import shards as shards_module
from nishard.archives.shards import ShardSpec, ShardWriter
from nishard.archives.tfrecord import TFRecord
from nishard.archives.webdataset import WebDataset
from nishard.checksums import sha256_file

Sample = tuple[str, dict[str, np.ndarray], dict]


def make_samples(n: int, timepoints: int, voxels: int) -> list[Sample]:
    """``n`` distinct samples: a random array plus the sample's index, and a record's metadata."""
    base = np.random.default_rng(0).standard_normal((timepoints, voxels), dtype=np.float32)
    samples = []
    for i in range(n):
        key = f"sub-{i // 2 + 1:02d}_task-rest_run-{i % 2 + 1}"
        meta = {
            "subject": f"{i // 2 + 1:02d}", "session": None, "task": "rest", "run": i % 2 + 1,
            "space": "MNI152NLin2009cAsym", "t_r": 2.0, "age": 20 + i % 30,
            "sex": "FM"[i % 2], "diagnosis": ("control", "patient")[i % 3 == 0],
        }  # fmt: skip
        samples.append((key, {"bold": base + np.float32(i)}, meta))
    return samples


class _Synced:
    """A shard file that is fsync-ed when closed."""

    def __init__(self, inner, path: str):
        self.inner, self.path = inner, path

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        self.inner.add(key, fields)

    def close(self) -> None:
        self.inner.close()
        fsync_path(self.path)


class Durable:
    """A format whose shard files are fsync-ed when closed, as the plain anchor's are."""

    def __init__(self, fmt):
        self.fmt, self.name, self.extension = fmt, fmt.name, fmt.extension

    def open(self, path: str) -> _Synced:
        return _Synced(self.fmt.open(path), path)

    def __getattr__(self, name: str):
        return getattr(self.fmt, name)


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_hook() -> tuple[object | None, str]:
    """The module and name of the fsync ShardWriter calls when it publishes a shard: the
    shard module's ``_sync`` in older nishard, the storage's ``sync`` since shards are
    published through ``LocalStorage.publish``; ``(None, "")`` where it fsyncs nothing."""
    if hasattr(shards_module, "_sync"):
        return shards_module, "_sync"
    try:
        storage = importlib.import_module("nishard.archives.storage")
    except ImportError:
        return None, ""
    return storage, "sync"


SYNC_MODULE, SYNC_NAME = _sync_hook()
#: Whether ShardWriter fsyncs each finished shard itself (on its background thread).
SYNCS_ITSELF = SYNC_MODULE is not None


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """ShardWriter without its own fsync, where it has one (this process only)."""
    if not SYNCS_ITSELF:
        yield
        return
    original = getattr(SYNC_MODULE, SYNC_NAME)
    setattr(SYNC_MODULE, SYNC_NAME, lambda path: None)
    try:
        yield
    finally:
        setattr(SYNC_MODULE, SYNC_NAME, original)


def nishard_write(samples: list[Sample], folder: Path, fmt, max_bytes: int, sync: bool) -> int:
    """What ``nishard.write`` does per sample and at the end; the number of shards.

    With ``sync``, shards are fsync-ed: by ShardWriter itself where it does so, else by the
    :class:`Durable` wrapper; without, ShardWriter's own fsync is patched out.
    """
    if not sync:
        with no_fsync():
            return _nishard_write(samples, folder, fmt, max_bytes)
    return _nishard_write(samples, folder, fmt if SYNCS_ITSELF else Durable(fmt), max_bytes)


def _nishard_write(samples: list[Sample], folder: Path, fmt, max_bytes: int) -> int:
    writer = ShardWriter(folder, "all", fmt, ShardSpec(max_bytes=max_bytes))
    try:
        for key, products, meta in samples:
            writer.add(key, writer.fmt.encode(key, products, meta))
        return len(writer.close())
    except BaseException:
        writer.abort()
        raise


def plain_write(samples: list[Sample], folder: Path, max_bytes: int, sync: bool) -> int:
    """The arrays' raw bytes, one write each, in files rolled at ``max_bytes``."""
    groups: list[list[np.ndarray]] = [[]]
    size = 0
    for _, products, _ in samples:
        array = products["bold"]
        if groups[-1] and size + array.nbytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(array)
        size += array.nbytes
    for index, group in enumerate(groups):
        with open(folder / f"plain-{index:06d}.bin", "wb") as f:
            for array in group:
                f.write(memoryview(array).cast("B"))
            if sync:
                f.flush()
                os.fsync(f.fileno())
    return len(groups)


def timed(run: Callable[[Path], object], scratch: Path) -> float:
    """Seconds of ``run`` in a fresh empty folder, removed afterwards."""
    folder = scratch / "out"
    folder.mkdir()
    try:
        started = time.perf_counter()
        run(folder)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(folder)


def sha256_alone(samples: list[Sample], scratch: Path, max_bytes: int) -> float:
    """Seconds of ``sha256_file`` (as ShardWriter calls it) over the plain write's files, of
    the shards' sizes, read from the page cache: the rate does not depend on the format."""
    folder = scratch / "out"
    folder.mkdir()
    try:
        plain_write(samples, folder, max_bytes, sync=True)
        files = sorted(folder.iterdir())
        for path in files:  # in the page cache still, after fsync; read once to be sure
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass
        started = time.perf_counter()
        for path in files:
            sha256_file(path)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(folder)


def sides(max_bytes: int, sync: bool) -> dict[str, Callable[[list[Sample], Path], object]]:
    def nishard(fmt):
        return lambda samples, folder: nishard_write(samples, folder, fmt, max_bytes, sync)

    return {
        "plain": lambda samples, folder: plain_write(samples, folder, max_bytes, sync),
        "tar": nishard(WebDataset()),
        "tfrecord": nishard(TFRecord()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--timepoints", type=int, default=200)
    parser.add_argument("--voxels", type=int, default=60000)
    parser.add_argument("--max-bytes", type=int, default=512 * 10**6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/nishard-bench-write"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    samples = make_samples(args.samples, args.timepoints, args.voxels)
    payload = sum(a.nbytes for _, products, _ in samples for a in products.values())
    scratch = args.dir / f"run-{os.getpid()}"
    scratch.mkdir(parents=True)
    best: dict[str, dict[str, float]] = {}
    try:
        for policy, sync in (("durable", True), ("cached", False)):
            runs = sides(args.max_bytes, sync)
            for run in runs.values():  # warm-up: imports, first allocations
                timed(lambda folder, run=run: run(samples[:2], folder), scratch)
            times = {name: float("inf") for name in runs}
            for _ in range(args.repeats):
                for name, run in runs.items():
                    seconds = timed(lambda folder, run=run: run(samples, folder), scratch)
                    times[name] = min(times[name], seconds)
            best[policy] = times
        sha_seconds = sha256_alone(samples, scratch, args.max_bytes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            args.dir.rmdir()  # only if no one else's run is in it
    load_after = os.getloadavg()

    mb = payload / 1e6
    rate = {p: {name: mb / s for name, s in times.items()} for p, times in best.items()}
    fraction = {
        p: {name: r[name] / r["plain"] for name in r if name != "plain"} for p, r in rate.items()
    }
    shards = -(-payload // args.max_bytes)
    print(
        f"{args.samples} samples of float32 {args.timepoints} x {args.voxels} "
        f"({payload / args.samples / 1e6:.1f} MB each), {mb:,.0f} MB payload, shards of at most "
        f"{args.max_bytes / 1e6:.0f} MB (~{shards} per side), in {args.dir}; "
        f"fastest of {args.repeats}; ShardWriter fsyncs itself: {SYNCS_ITSELF}"
    )
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    labels = {
        "plain": "plain f.write of the array bytes",
        "tar": "nishard WebDataset tar",
        "tfrecord": "nishard TFRecord",
    }
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1):
        print("  note: the load average exceeds the CPUs: other work shares the machine (and its")
        print("  disk); the figures are noisy, compare sides within this run only")
    print(f"  {'':<34} {'durable (fsync)':>24}   {'cached (no fsync)':>24}")
    for name, label in labels.items():
        cells = []
        for policy in ("durable", "cached"):
            share = "  plain" if name == "plain" else f"{fraction[policy][name]:7.0%}"
            cells.append(f"{best[policy][name]:6.2f} s {rate[policy][name]:6.0f} MB/s{share}")
        print(f"  {label:<34} {cells[0]:>24}   {cells[1]:>24}")
    print(f"  sha256_file alone, files of the shards' sizes in the page cache: "
          f"{sha_seconds:.2f} s, {mb / sha_seconds:.0f} MB/s")  # fmt: skip
    durable, cached = fraction["durable"], fraction["cached"]
    print(json.dumps({
        "samples": args.samples, "shape": [args.timepoints, args.voxels],
        "payload_mb": round(mb, 1), "max_bytes": args.max_bytes, "repeats": args.repeats,
        "plain_mb_s": round(rate["durable"]["plain"], 1),
        "tar_mb_s": round(rate["durable"]["tar"], 1),
        "tfrecord_mb_s": round(rate["durable"]["tfrecord"], 1),
        "fraction_of_plain_tar": round(durable["tar"], 3),
        "fraction_of_plain_tfrecord": round(durable["tfrecord"], 3),
        "ratio": round(min(durable["tar"], durable["tfrecord"]), 3),
        "cached": {
            "plain_mb_s": round(rate["cached"]["plain"], 1),
            **{f"{k}_mb_s": round(v, 1) for k, v in rate["cached"].items() if k != "plain"},
            **{f"fraction_of_plain_{k}": round(v, 3) for k, v in cached.items()},
        },
        "sha256_alone_mb_s": round(mb / sha_seconds, 1),
        "seconds": {p: {k: round(v, 3) for k, v in t.items()} for p, t in best.items()},
        "shardwriter_fsyncs": SYNCS_ITSELF,
        "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
