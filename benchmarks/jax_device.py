"""JAX on an accelerator: the clean step and a streamed epoch, beside the same JAX code on the CPU.

Issue [5/6], item 5: ``Clean(backend="jax")`` on a GPU against the same JAX code on the CPU
(goal: 20x), with and without the copies between host and device, and a JAX streaming
epoch. ``benchmarks/device.sh`` runs this (and ``clean.py --backend jax``) on the device
machine in one call; anywhere else it runs with JAX's CPU as the "device" too, which
checks the script and gives this machine's CPU figures.

Clean step, at growing sizes (200 volumes of 25,000, 100,000 and 235,375 voxels, the 2 mm
brain; 1,200 volumes of 91,282 grayordinates, an HCP run). The signals are those of
``benchmarks/clean_length.py`` (float32 with fMRI's baseline, noise and drifts), the
operator nishard's own for ``Clean(detrend=True, low_pass=0.1, high_pass=0.01,
confounds=<24 columns>, standardize="zscore_sample")`` at a TR of 0.72 s
(:func:`~nishard.transforms.signal.clean_operator`, a dense (time x time) matrix), applied by
:func:`~nishard.transforms.regression.apply_linear`. Timed, fastest of ``--repeats``
after a first call that compiles:

- ``numpy_s``: the NumPy backend, the product's default on CPU;
- ``cpu_s`` / ``device_s``: ``apply_linear(..., backend="jax")`` with JAX's CPU / the
  accelerator as default device: a host array in, a host array out, in 64 MB column
  blocks (what ``Clean(backend="jax")`` does in a build: with the copies);
- ``cpu_kernel_s`` / ``device_kernel_s``: the same jitted kernel on the whole array
  already on that device, until its result is ready (without the copies);
- ``ratio`` = ``cpu_s / device_s`` and ``ratio_kernel`` = ``cpu_kernel_s /
  device_kernel_s``; ``max_abs_diff``: the device's output against NumPy's.

Stream (``--part stream``): ``nishard synth --size demo`` (48 runs of 120 volumes, 29,398
voxels, 14 MB a sample) masked and cleaned into WebDataset shards, then epochs of 48, 192
and 768 samples (``.epoch(length=...)``, from the page cache) in batches of 8:
``.torch()`` (host batches: without the copy to the device) and ``.jax()`` (each batch
put on the device by nishard's background thread, waited for as a training step would:
with it). GB/s of each, and ``stream_fraction`` (the device epoch's rate over the host
epoch's at the largest length). ``benchmarks/loading.py`` measures the host stream
against the disk's limit.

    python benchmarks/jax_device.py [--out /tmp/nishard-bench-jax] [--repeats 5]
                                    [--part clean|stream|all]

Ends with one line of JSON: ``device``, ``host`` (the CPU and its cores), ``clean`` (one
row a size), ``ratio``, ``ratio_kernel`` and ``max_abs_diff`` at the largest 2 mm size,
``stream`` (one row an epoch length) and ``stream_fraction``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from functools import partial
from pathlib import Path

import numpy as np

import nishard as ns
from clean_length import fastest, signals  # benchmarks/, this script's folder
from nishard.transforms.regression import _jax_kernel, _offset_parts, apply_linear
from nishard.transforms.signal import clean_operator

T_R, LOW_PASS, HIGH_PASS = 0.72, 0.1, 0.01
#: (volumes, voxels): the 2 mm brain at three sizes, then an HCP CIFTI run.
SIZES = ((200, 25_000), (200, 100_000), (200, 235_375), (1200, 91_282))
CLEAN = {"detrend": True, "standardize": "zscore_sample", "low_pass": LOW_PASS,
         "high_pass": HIGH_PASS, "confounds": "simple"}  # fmt: skip
LENGTHS, BATCH = (48, 192, 768), 8


def devices() -> tuple[object, object]:
    """JAX's CPU and its default device (the accelerator, or the CPU again without one)."""
    import jax

    return jax.devices("cpu")[0], jax.devices()[0]


def describe(device) -> str:
    return f"{device.platform} ({device.device_kind})"


def host() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def kernel_on(device, op, x: np.ndarray):
    """A call of the JAX backend's jitted kernel on ``x`` already on ``device``; it waits
    for the result, so the time it takes is the device's work alone."""
    import jax

    _, kernel = _jax_kernel()
    op = op.cheapest()
    dev, avg = _offset_parts(op)
    put = {
        name: None if value is None else jax.device_put(np.asarray(value, np.float32), device)
        for name, value in (("dense", op.dense), ("basis", op.basis), ("dev", dev),
                            ("avg", avg), ("weights", op.mean_weights))
    }  # fmt: skip
    on_device = jax.device_put(x, device).block_until_ready()

    def run():
        y, _, _, _ = kernel(on_device, rows=op.rows, method="zscore_sample",
                            ensure_finite=False, **put)  # fmt: skip
        return y.block_until_ready()

    return run


def clean_rows(repeats: int) -> list[dict]:
    import jax

    cpu, accelerator = devices()
    rows = []
    for volumes, voxels in SIZES:
        x, confounds = signals(volumes, voxels)
        op = clean_operator(volumes, t_r=T_R, detrend=1, confounds=confounds, filter="butterworth",
                            low_pass=LOW_PASS, high_pass=HIGH_PASS)  # fmt: skip
        row = {"volumes": volumes, "voxels": voxels, "gb": round(x.nbytes / 1e9, 3)}
        row["numpy_s"], reference = fastest(partial(apply_linear, x, op, "zscore_sample"), repeats)
        with_jax = partial(apply_linear, x, op, "zscore_sample", backend="jax")
        for name, device in (("cpu", cpu), ("device", accelerator)):
            with jax.default_device(device):
                row[f"{name}_s"], out = fastest(with_jax, repeats, warm=True)
            row[f"{name}_kernel_s"], _ = fastest(kernel_on(device, op, x), repeats, warm=True)
        row["max_abs_diff"] = float(np.abs(out - reference).max())
        row["ratio"] = row["cpu_s"] / row["device_s"]
        row["ratio_kernel"] = row["cpu_kernel_s"] / row["device_kernel_s"]
        rows.append(row)
        print(f"clean {volumes:5d} x {voxels:7,d} ({row['gb']:.2f} GB): numpy "
              f"{row['numpy_s']:.3f} s, JAX cpu {row['cpu_s']:.3f} s (kernel "
              f"{row['cpu_kernel_s']:.3f}), device {row['device_s']:.3f} s (kernel "
              f"{row['device_kernel_s']:.4f}): {row['ratio']:.1f}x, kernel "
              f"{row['ratio_kernel']:.1f}x, max |diff| {row['max_abs_diff']:.2e}",
              flush=True)  # fmt: skip
    return rows


def shards(out: Path) -> Path:
    """The demo dataset masked and cleaned into WebDataset shards (made once)."""
    from nishard.datasets import SIZES as PRESETS
    from nishard.datasets import generate

    folder = out / "voxel"
    if (folder / "manifest.json").is_file():
        return folder
    data = out / "data"
    print(f"generating the demo dataset and its shards in {out} ...", flush=True)
    generate(data, size="demo", seed=0)
    records = ns.locate(data, schema=ns.schemas.fmriprep(res=f"{PRESETS['demo'].resolution_mm:g}"))
    ns.write(records, ns.assemble([ns.t.Mask(), ns.t.Clean(**CLEAN)]), folder,
             shards=ns.shards.by_size("128MB"), executor=ns.executors.local(jobs=os.cpu_count()),
             progress=False)  # fmt: skip
    return folder


def stream_rows(out: Path, repeats: int) -> list[dict]:
    folder = shards(out)
    _, accelerator = devices()
    stream = ns.stream.open(folder, "all").keys("bold").batch(BATCH).fields(meta=False)
    first = next(iter(stream.epoch(length=BATCH).torch()))["bold"]
    sample_bytes = first[0].numel() * first.element_size()

    def on_host(length: int):
        def run():
            for _ in stream.epoch(length=length).torch():
                pass

        return run

    def on_device(length: int):
        def run():
            for batch in stream.epoch(length=length).jax():
                batch["bold"].block_until_ready()

        return run

    rows = []
    for length in LENGTHS:
        gb = length * sample_bytes / 1e9
        row = {"samples": length, "gb": round(gb, 3),
               "host_s": fastest(on_host(length), repeats, warm=True)[0],
               "device_s": fastest(on_device(length), repeats, warm=True)[0]}  # fmt: skip
        for name in ("host", "device"):
            row[f"{name}_gb_s"] = gb / row[f"{name}_s"]
        rows.append(row)
        print(f"stream {length:4d} samples ({gb:.2f} GB): host {row['host_gb_s']:.2f} GB/s, "
              f"on {describe(accelerator)} {row['device_gb_s']:.2f} GB/s", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/nishard-bench-jax"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--part", choices=("clean", "stream", "all"), default="all")
    args = parser.parse_args()
    cpu, accelerator = devices()
    print(f"JAX device: {describe(accelerator)}; host: {host()}", flush=True)
    if accelerator == cpu:
        print("no accelerator: the 'device' figures are JAX's CPU again", flush=True)
    summary: dict = {"device": describe(accelerator), "host": host()}
    if args.part in ("clean", "all"):
        rows = clean_rows(args.repeats)
        largest = max((r for r in rows if r["volumes"] == SIZES[0][0]), key=lambda r: r["voxels"])
        summary |= {"clean": rows, "ratio": largest["ratio"],
                    "ratio_kernel": largest["ratio_kernel"],
                    "max_abs_diff": max(r["max_abs_diff"] for r in rows)}  # fmt: skip
    if args.part in ("stream", "all"):
        args.out.mkdir(parents=True, exist_ok=True)
        rows = stream_rows(args.out, args.repeats)
        summary |= {"stream": rows,
                    "stream_fraction": rows[-1]["device_gb_s"] / rows[-1]["host_gb_s"]}  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
