"""Loading for training: nishard's stream against what users do today and the machine's limit.

The data: ``nishard synth --size demo`` (24 subjects x 2 runs, 120 frames on the 4 mm MNI
grid, 29,398 brain voxels), each run denoised as a resting-state study would (fMRIPrep
``simple`` confounds, 0.01-0.1 Hz Butterworth band, linear detrend, z-score), either
parcellated into 121 regions (8 x 8 x 8-voxel cubes of the brain mask: an atlas of the
Schaefer-100 scale; 120 x 121 float32, 58 kB a sample) or kept voxel-level (120 x 29,398
float32, 14.1 MB a sample). The same 48 records in every measurement:

(a) what users do today, per sample: ``nibabel.load`` of the ``.nii.gz`` and
    ``NiftiLabelsMasker(labels_img=atlas, standardize="zscore_sample", detrend=True,
    low_pass=0.1, high_pass=0.01, t_r=2).fit_transform(img, confounds=...)`` with
    ``load_confounds_strategy(..., "simple")``: the parcellated, cleaned array.
    ``--anchor-samples`` samples are timed and the per-sample rate extrapolated (each takes
    about a second; all 48 would add a minute and tell nothing more). Their output is
    compared with nishard's shards (``max_abs_diff``): the same cleaned data.
(b) nishard: ``DataLoader(ns.stream.open(shards, "all").keys("bold").batch(B)
    .fields(meta=False).torch(), batch_size=None, num_workers=W)`` over the tar shards of
    the cleaned data, parcellated (B = 32) and voxel-level (B = 2), for W = 0 (nishard's
    reader threads) and W = 2.
(c) the limit: the voxel-level tar shards read sequentially from the page cache, no
    decoding, into reused buffers in RAM: ``readinto`` one sample's bytes (14 MB) at a time
    into sample-sized buffers in turn, and one batch's (28 MB) into batch-sized ones, the
    same 168 MB in both (six batches: what nishard's pool holds in-process); the faster of
    the two is the limit. The bytes must land in memory a consumer can use, which is RAM,
    not cache: every loader writes them there. The former figure is printed too,
    labelled: 1 MiB ``readinto`` calls into one reused buffer (``dd bs=1M``), which stays
    in the core's 1 MiB L2 cache and so runs about twice as fast as any read into
    RAM-resident memory (``fraction_of_l2_read_voxel``).
(d) what a careful user does by hand: one ``.npy`` per sample (the same arrays), a
    map-style dataset whose ``__getitem__`` is ``torch.from_numpy(np.load(path))``, through
    the same ``DataLoader(batch_size=B, num_workers=W)``.

Every loader runs ``--epochs`` passes over the 48 samples (the same samples again: nishard
with ``.epoch(length=...)``, the ``.npy`` dataset by index modulo 48); the loop only
counts samples.
The sequential reads run as many passes over the voxel-level shards as the voxel-level
loaders do (``--voxel-epochs``). The loaders and the sequential reads run in rounds,
interleaved, so that the load of a shared machine falls on all alike; round 0 warms the
page cache and is not counted, and the median of the ``--repeats`` timed rounds counts
for each, loaders and limits alike. Samples/s is the figure;
bytes/s is samples/s times the mean bytes a sample takes in the tar shards (the ``.npy``
files hold the same array bytes). ``ratio_parcellated`` is (b) over (a),
``ratio_npy_files`` (b) over (d) for the parcellated data, ``fraction_of_limit_voxel`` (b)
over (c), ``fraction_of_l2_read_voxel`` (b) over the former 1 MiB figure; (b) and (d) each
at their faster ``num_workers`` (the other setting is printed too). nishard's reader
threads (two, for samples this large) may use both cores where the sequential read (c)
uses one.

    python benchmarks/loading.py [--out /tmp/nishard-bench-loading] [--anchor-samples 3]
                                 [--epochs 800] [--voxel-epochs 8] [--repeats 5]

Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import nishard as ns
from nishard import stream
from nishard.archives import read_manifest
from nishard.datasets import SIZES, generate

SIZE, SEED = "demo", 0
CLEAN = {"confounds": "simple", "low_pass": 0.1, "high_pass": 0.01, "standardize": "zscore_sample"}
BATCH = {"parcellated": 32, "voxel": 2}


def cube_atlas(mask_path: Path, out: Path, side: int = 8) -> Path:
    """Labels 1..n: the brain mask cut into cubes of ``side`` voxels (121 at 4 mm)."""
    image = nib.load(mask_path)
    mask = np.asarray(image.dataobj) > 0
    corner = np.indices(mask.shape) // side
    block = (corner[0] * 1000 + corner[1]) * 1000 + corner[2]
    _, label = np.unique(block[mask], return_inverse=True)
    labels = np.zeros(mask.shape, np.int16)
    labels[mask] = label + 1
    nib.save(nib.Nifti1Image(labels, image.affine), out)
    return out


def prepare(out: Path) -> tuple[object, Path, dict[str, Path]]:
    """The dataset, the atlas and both shard folders (made once, reused when present)."""
    data = out / "data"
    stamp = out / "data.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == {"size": SIZE, "seed": SEED}):
        print(f"generating the {SIZE!r} synthetic dataset in {data} ...", flush=True)
        generate(data, size=SIZE, seed=SEED)
        stamp.write_text(json.dumps({"size": SIZE, "seed": SEED}))
    resolution = f"{SIZES[SIZE].resolution_mm:g}"
    records = ns.locate(data, schema=ns.schemas.fmriprep(res=resolution),
                        stage=["bold", "mask", "confounds"],
                        variables=ns.tables.participants(["diagnosis"]))  # fmt: skip
    atlas = out / "cubes_atlas.nii.gz"
    if not atlas.is_file():
        cube_atlas(next(iter(records)).files["mask"], atlas)
    steps = {
        "parcellated": [ns.t.Parcellate(str(atlas)), ns.t.Clean(**CLEAN)],
        "voxel": [ns.t.Mask(), ns.t.Clean(**CLEAN)],
    }
    folders = {}
    for name, transforms in steps.items():
        folder = folders[name] = out / name
        if not (folder / "manifest.json").is_file():
            print(f"building the {name} shards in {folder} ...", flush=True)
            ns.write(records, ns.assemble(transforms), folder, shards=ns.shards.by_size("128MB"),
                     executor=ns.executors.local(jobs=2), progress=False)  # fmt: skip
    return records, atlas, folders


def npy_files(folder: Path, out: Path) -> list[str]:
    """One ``.npy`` per sample of the shards, the same arrays (written once)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in stream.open(folder, "*").keys("bold").arrays():
        path = out / f"{sample['__key__']}.npy"
        if not path.is_file():
            np.save(path, sample["bold"])
        paths.append(str(path))
    return paths


class NpyFiles(Dataset):
    """The careful user's dataset: sample ``i`` is ``np.load`` of its file."""

    def __init__(self, paths: list[str], length: int):
        self.paths, self.length = paths, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.load(self.paths[index % len(self.paths)]))


def cpu_seconds() -> float:
    """CPU time of this process so far: all its threads, not its DataLoader workers."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_pass(loader) -> tuple[float, float]:
    """Samples per second of one full pass over a loader, and this process's CPU
    milliseconds per sample (the work done, whatever share of the cores it got)."""
    cpu, started, count = cpu_seconds(), time.perf_counter(), 0
    for batch in loader:
        count += len(batch["__key__"]) if isinstance(batch, dict) else len(batch)
    return count / (time.perf_counter() - started), (cpu_seconds() - cpu) / count * 1e3


def shard_files(folder: Path) -> list[Path]:
    manifest = read_manifest(folder)
    return [folder / s["name"] for s in manifest["shards"] if s["format"] == "webdataset"]


#: Memory the reads (c) fill in turn: as many batches as nishard's pool holds for one key
#: with two reader threads in-process (168 MB here, far more than the 32 MiB L3 cache).
LIMIT_BATCHES = 6


def read_passes(files: list[Path], buffers: list[np.ndarray], passes: int) -> tuple[float, float]:
    """Seconds to read ``files`` sequentially ``passes`` times, ``readinto`` each buffer's
    size at a time into ``buffers`` in turn, and the CPU seconds it took."""
    views = [memoryview(b).cast("B") for b in buffers]
    turn = 0
    cpu, started = cpu_seconds(), time.perf_counter()
    for _ in range(passes):
        for path in files:
            with open(path, "rb", buffering=0) as file:
                while file.readinto(views[turn % len(views)]):
                    turn += 1
    return time.perf_counter() - started, cpu_seconds() - cpu


def limit_buffers(sample_bytes: int, batch: int) -> dict[str, list[np.ndarray]]:
    """Where the reads (c) put the bytes: reused sample-sized or batch-sized buffers in RAM
    (the same memory in all), and the former single 1 MiB buffer, which stays in L2.

    Each is written once first, so that no read pays for faulting fresh pages in."""
    kinds = {
        "sample": [np.empty(sample_bytes, np.uint8) for _ in range(LIMIT_BATCHES * batch)],
        "batch": [np.empty(sample_bytes * batch, np.uint8) for _ in range(LIMIT_BATCHES)],
        "l2": [np.empty(1 << 20, np.uint8)],
    }
    for buffers in kinds.values():
        for buffer in buffers:
            buffer.fill(0)
    return kinds


def anchor(records, atlas: Path, samples: int, shards: Path) -> tuple[float, float]:
    """Seconds per sample of nibabel + nilearn's labels masker; the largest difference
    from nishard's parcellated shards on those samples."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    from nilearn.maskers import NiftiLabelsMasker

    bold = stream.open(shards, "*").keys("bold").arrays()
    stored = {s["__key__"]: s["bold"] for s in bold}
    chosen = list(records)[:samples]
    worst, started = 0.0, time.perf_counter()
    outputs = {}
    for record in chosen:
        bold = str(record.files["bold"])
        image = nib.load(bold)
        confounds, sample_mask = load_confounds_strategy(bold, denoise_strategy="simple")
        masker = NiftiLabelsMasker(labels_img=str(atlas), standardize="zscore_sample",
                                   detrend=True, low_pass=0.1, high_pass=0.01,
                                   t_r=record.metadata["t_r"])  # fmt: skip
        outputs[record.id] = masker.fit_transform(image, confounds=confounds,
                                                  sample_mask=sample_mask)  # fmt: skip
    seconds = (time.perf_counter() - started) / len(chosen)
    for key, array in outputs.items():
        worst = max(worst, float(np.abs(array - stored[key]).max()))
    return seconds, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/nishard-bench-loading"))
    parser.add_argument("--anchor-samples", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=800, help="passes, parcellated")
    parser.add_argument("--voxel-epochs", type=int, default=8, help="passes, voxel-level")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    records, atlas, folders = prepare(out)
    n = len(stream.open(folders["voxel"], "all").keys().map_dataset())
    passes = {"parcellated": args.epochs, "voxel": args.voxel_epochs}
    sample_bytes = {k: sum(p.stat().st_size for p in shard_files(f)) / n
                    for k, f in folders.items()}  # fmt: skip

    print(f"(a) nibabel + NiftiLabelsMasker on {args.anchor_samples} samples ...", flush=True)
    seconds_a, max_abs_diff = anchor(records, atlas, args.anchor_samples, folders["parcellated"])

    # Rounds of every loader and of the sequential read, interleaved so that the load of a
    # shared machine falls on all of them alike; round 0 warms the caches and is not counted.
    factories = {}
    for kind, folder in folders.items():
        paths = npy_files(folder, out / "npy" / kind)
        length, batch = n * passes[kind], BATCH[kind]
        for workers in (0, 2):
            factories[f"nishard_{kind}", workers] = lambda f=folder, b=batch, m=length, w=workers: (
                DataLoader(stream.open(f, "all").keys("bold").batch(b).epoch(length=m)
                           .fields(meta=False).torch(), batch_size=None, num_workers=w)
            )  # fmt: skip
            factories[f"npy_{kind}", workers] = lambda p=paths, b=batch, m=length, w=workers: (
                DataLoader(NpyFiles(p, m), batch_size=b, num_workers=w)
            )  # fmt: skip
    rounds: dict[str, dict[int, list[float]]] = {}
    files = shard_files(folders["voxel"])
    buffers = limit_buffers(round(sample_bytes["voxel"]), BATCH["voxel"])
    limit_rounds: dict[str, list[float]] = {kind: [] for kind in buffers}
    # CPU milliseconds a sample, in-process: on a shared machine, the work each does
    # whatever share of the cores it got (DataLoader workers are not counted).
    cpu_rounds: dict[str, list[float]] = {}
    for turn in range(args.repeats + 1):
        print(f"round {turn} of {args.repeats}: (b), (c), (d) ...", flush=True)
        for kind, memory in buffers.items():
            seconds, cpu = read_passes(files, memory, passes["voxel"])
            if turn:
                limit_rounds[kind].append(n * passes["voxel"] / seconds)
                cpu_rounds.setdefault(f"{kind}_read", []).append(cpu / n / passes["voxel"] * 1e3)
        for (name, workers), factory in factories.items():
            speed, cpu = one_pass(factory())
            if turn:
                rounds.setdefault(name, {}).setdefault(workers, []).append(speed)
                if workers == 0:
                    cpu_rounds.setdefault(name, []).append(cpu)
    results = {name: {w: float(np.median(r)) for w, r in by.items()}
               for name, by in rounds.items()}  # fmt: skip
    reads = {kind: float(np.median(r)) for kind, r in limit_rounds.items()}
    cpu_ms = {name: float(np.median(r)) for name, r in cpu_rounds.items()}
    # The limit is the faster of the two reads into RAM: nothing a loader does beats it.
    limit_kind = max(("sample", "batch"), key=reads.get)
    limit_rate, l2_rate = reads[limit_kind], reads["l2"]

    best = {name: max(by.values()) for name, by in results.items()}
    workers_of = {name: max(by, key=by.get) for name, by in results.items()}
    rate_a = 1 / seconds_a
    rows = [
        ("(a) nibabel + NiftiLabelsMasker", "parcellated", rate_a, ""),
        *[(f"(b) nishard stream, batch {BATCH[k]}", k, results[f"nishard_{k}"][w], w)
          for k in folders for w in (0, 2)],
        ("(c) sequential read, sample-sized reads", "voxel", reads["sample"], ""),
        ("(c) sequential read, batch-sized reads", "voxel", reads["batch"], ""),
        ("    former (c): 1 MiB buffer, in L2", "voxel", l2_rate, ""),
        *[(f"(d) .npy per sample, batch {BATCH[k]}", k, results[f"npy_{k}"][w], w)
          for k in folders for w in (0, 2)],
    ]  # fmt: skip
    print()
    print(f"{'loader':40s} {'data':12s} {'workers':>7s} {'samples/s':>11s} {'MB/s':>9s}")
    for name, kind, samples, workers in rows:
        megabytes = samples * sample_bytes[kind] / 1e6
        print(f"{name:40s} {kind:12s} {workers!s:>7s} {samples:11,.1f} {megabytes:9,.1f}")
    ratio_parcellated = best["nishard_parcellated"] / rate_a
    ratio_npy = best["nishard_parcellated"] / best["npy_parcellated"]
    fraction = best["nishard_voxel"] / limit_rate
    fraction_l2 = best["nishard_voxel"] / l2_rate
    print()
    print(f"(a) extrapolated from {args.anchor_samples} samples: {seconds_a:.2f} s a sample; "
          f"max |(a) - nishard's parcellated shards| = {max_abs_diff:.1e}")  # fmt: skip
    print(
        f"parcellated: nishard {ratio_parcellated:,.0f}x (a) (goal 1000x), "
        f"{ratio_npy:.2f}x the .npy files (goal 1.5x), each at its best num_workers"
    )
    print(
        f"voxel-level: nishard at {fraction:.0%} of the sequential read ({limit_kind}-sized, "
        "the faster; goal 70%); "
        f"with num_workers=2: {results['nishard_voxel'][2] / limit_rate:.0%}; "
        f"{fraction_l2:.0%} of the former, L2-resident 1 MiB read"
    )
    spread = {k: f"{min(v):,.0f}-{max(v):,.0f}" for k, v in limit_rounds.items()}
    voxel = rounds["nishard_voxel"][0]
    print(
        f"samples/s over the {args.repeats} rounds: (c) sample-sized {spread['sample']}, "
        f"batch-sized {spread['batch']}, 1 MiB {spread['l2']}; "
        f"(b) voxel in-process {min(voxel):,.0f}-{max(voxel):,.0f}"
    )
    print(
        f"CPU ms a voxel-level sample in-process: nishard {cpu_ms['nishard_voxel']:.2f} "
        f"(reader threads included), sample-sized read {cpu_ms['sample_read']:.2f}, "
        f"batch-sized read {cpu_ms['batch_read']:.2f}, 1 MiB read {cpu_ms['l2_read']:.2f}"
    )
    print(f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f} (2-core machine)")
    print(json.dumps({
        "ratio_parcellated": round(ratio_parcellated, 1),
        "ratio_npy_files": round(ratio_npy, 3),
        "fraction_of_limit_voxel": round(fraction, 3),
        "fraction_of_l2_read_voxel": round(fraction_l2, 3),
        "anchor_seconds_per_sample": round(seconds_a, 3),
        "anchor_samples_timed": args.anchor_samples,
        "max_abs_diff": max_abs_diff,
        "samples_per_s": {name: {str(w): round(r, 1) for w, r in by.items()}
                          for name, by in results.items()}
                         | {"anchor": round(rate_a, 3), "limit_voxel": round(limit_rate, 1),
                            "l2_read_voxel": round(l2_rate, 1)},
        "bytes_per_s": {name: round(best[name] * sample_bytes[name.split("_")[1]])
                        for name in best}
                       | {"limit_voxel": round(limit_rate * sample_bytes["voxel"]),
                          "l2_read_voxel": round(l2_rate * sample_bytes["voxel"])},
        "best_num_workers": workers_of,
        "rounds_samples_per_s": {
            "nishard_voxel": {str(w): [round(r, 1) for r in v]
                              for w, v in rounds["nishard_voxel"].items()},
            **{f"{kind}_read_voxel": [round(r, 1) for r in v]
               for kind, v in limit_rounds.items()},
        },
        "cpu_ms_per_sample": {name: round(v, 3) for name, v in cpu_ms.items()},
        "limit_read": limit_kind,
        "passes_voxel": passes["voxel"],
        "repeats": args.repeats,
        "sample_bytes": {k: round(v) for k, v in sample_bytes.items()},
        "samples": n,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
