"""Denoising one run: nishard's Mask + Clean plan against nilearn's NiftiMasker, one core each.

The data: one fMRIPrep run of 200 volumes on the 2 mm MNI grid (99 x 117 x 95, 880 MB of
float32, a 170 MB .nii.gz), as ``nishard synth CACHE/data --size large --subjects 1
--sessions 0 --runs 1 --timepoints 200`` writes it; made once in ``--cache`` and reused.

- nilearn (the anchor): ``NiftiMasker(mask_img=<run's brain mask>, standardize=
  "zscore_sample", detrend=True, low_pass=0.1, high_pass=0.01, t_r=<TR>)
  .fit_transform(bold, confounds=<24P>)``, the 24 confounds from
  ``nilearn.interfaces.fmriprep.load_confounds(bold, strategy=["motion"], motion="full")``.
- nishard: ``assemble([Mask(), Clean(detrend=True, standardize="zscore_sample",
  low_pass=0.1, high_pass=0.01, confounds="24P")]).run(record)``: the product path, from
  the files on disk (checksums for provenance, mask, the .nii.gz read with the mask's
  voxels gathered volume by volume, confounds) to the cleaned (time, voxel) array; the TR
  comes from the record.

Both sides read the same files from the page cache (a warm-up read first) on one core:
BLAS and OpenMP pools are pinned to one thread before numpy is imported (XLA's CPU pools
too, for JAX), and nishard's ISA-L reader is single-threaded. The one exception is
nishard's provenance hash (sha256 of the inputs), which runs on a second thread while the
record is read, as it does in a build: its CPU time is reported (``nishard_cpu_s``, every
thread's) beside the wall time. Each side runs ``--repeats`` times and the fastest counts
(nishard's record in alternation with the ISA-L read of its bold alone, the goal's floor).
Then nishard's time is broken down by step, the NIfTI read alone is timed against nibabel
with zlib (and against ISA-L's threaded reader, for reference only), and the peak memory
of each path is measured with tracemalloc (numpy reports its buffers to it; JAX's do not
go through it, so no figure for the JAX plan).

``--backend jax`` (or ``both``) times the same plan with ``Clean(backend="jax")`` on JAX's
default device (a GPU when one is there): its first call, which compiles, apart, then the
fastest of ``--repeats``. Its output is compared with nilearn's and with the NumPy
backend's (computed untimed when only JAX is timed). ``--skip-nilearn`` leaves the anchor
out (about 10 minutes of a 2-core machine): ``nilearn_s``, ``ratio`` and ``max_abs_diff``
are then null.

    python benchmarks/clean.py [--cache /tmp/nishard-bench-clean] [--repeats 3]
                               [--backend numpy|jax|both] [--skip-nilearn]

Prints the figures, then one line of JSON: ``nishard_s``, ``nilearn_s``, ``ratio`` (how many
times faster nishard is), ``max_abs_diff`` between the two outputs (same voxel order), the
breakdown and the read-only times, ``record_over_read`` (the whole record's time over the
ISA-L read of its bold alone: the goal is 1.5 at most) and ``nishard_cpu_s``; with JAX
also ``jax_s``, ``jax_first_s``, ``jax_device``, ``jax_ratio`` (nilearn over JAX),
``jax_max_abs_diff`` (against nilearn) and ``jax_max_abs_diff_numpy``. Figures of a side
that did not run are null.
"""

from __future__ import annotations

import os

# One core each: thread pools size themselves when numpy/scipy load, so set this first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# XLA's CPU client sizes its pools from the cores, not from the variables above.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

import nishard as ns  # noqa: E402
from nishard.datasets import SIZES, generate  # noqa: E402
from nishard.imageio.nifti import load_nifti  # noqa: E402
from nishard.records.table import Record  # noqa: E402
from nishard.workflow.inputs import input_checksums, load_inputs  # noqa: E402

LOW_PASS, HIGH_PASS = 0.1, 0.01
TIMEPOINTS = 200


def dataset(cache: Path) -> Record:
    """The benchmark's run, generated into ``cache/data`` unless it is there already."""
    root = cache / "data"
    if not any(root.glob("sub-01/func/*_desc-preproc_bold.nii.gz")):
        generate(root, size="large", seed=0, subjects=1, sessions=0, runs=1,
                 timepoints=TIMEPOINTS)  # fmt: skip
    res = f"{SIZES['large'].resolution_mm:g}"
    [record] = list(ns.locate(root, schema=ns.schemas.fmriprep(res=res)))
    return record


def nilearn_clean(record: Record) -> np.ndarray:
    from nilearn.interfaces.fmriprep import load_confounds
    from nilearn.maskers import NiftiMasker

    bold = record.files["bold"]
    confounds, sample_mask = load_confounds(bold, strategy=["motion"], motion="full")
    masker = NiftiMasker(
        mask_img=record.files["mask"], standardize="zscore_sample", detrend=True,
        low_pass=LOW_PASS, high_pass=HIGH_PASS, t_r=record.metadata["t_r"],
    )  # fmt: skip
    return masker.fit_transform(bold, confounds=confounds, sample_mask=sample_mask)


def plan(backend: str = "numpy") -> ns.Plan:
    clean = ns.t.Clean(
        detrend=True, standardize="zscore_sample", low_pass=LOW_PASS, high_pass=HIGH_PASS,
        confounds="24P", backend=backend,
    )  # fmt: skip
    return ns.assemble([ns.t.Mask(), clean])


def nishard_clean(record: Record, backend: str = "numpy") -> np.ndarray:
    outcome = plan(backend).run(record)
    if outcome.error is not None:
        raise outcome.error
    return outcome.products["bold"]


def fastest(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The best wall time of ``repeats`` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None  # free the previous output before the next call allocates its own
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def breakdown(record: Record, backend: str = "numpy") -> dict[str, float]:
    """Seconds of each part of ``nishard_clean``, run one by one (the checksums apart: the
    plan hashes the inputs on a second thread while it reads them)."""
    steps = plan(backend)
    fused = steps.nodes[0].masks_on_read  # Mask() first: the read gathers the mask's voxels
    times = {}
    started = time.perf_counter()
    input_checksums(record, steps.inputs)
    times["checksums"] = time.perf_counter() - started
    started = time.perf_counter()
    sample = load_inputs(record, steps.inputs, masked_bold=fused)
    times["read"] = time.perf_counter() - started
    started = time.perf_counter()
    bold = _read_bold(record)
    times["read_bold"] = time.perf_counter() - started
    del bold
    for step in steps.steps[1:] if fused else steps.steps:
        started = time.perf_counter()
        sample = step(sample)
        times[step.name] = time.perf_counter() - started
    return times


def _read_bold(record: Record) -> np.ndarray:
    return np.asarray(load_nifti(record.files["bold"]).dataobj, dtype=np.float32)


def _read_bold_nibabel(record: Record) -> np.ndarray:
    return np.asarray(nib.load(record.files["bold"]).dataobj, dtype=np.float32)


def _inflate_threaded(record: Record, threads: int = 2) -> int:
    """ISA-L's threaded reader (reading and inflating overlap): raw bytes only."""
    from isal import igzip_threaded

    header = nib.load(record.files["bold"]).header
    size = int(header.get_data_offset()) + int(np.prod(header.get_data_shape())) * 4
    out = np.empty(size, np.uint8)
    with igzip_threaded.open(record.files["bold"], "rb", threads=threads) as stream:
        return stream.readinto(memoryview(out))


def peak_mb(function: Callable[[], object]) -> float:
    """Peak traced memory (MB) while ``function`` runs, its result included."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def jax_device() -> str:
    """JAX's default device, as ``platform (kind)``: where ``Clean(backend="jax")`` runs."""
    import jax

    device = jax.devices()[0]
    return f"{device.platform} ({device.device_kind})"


def max_abs_diff(ours: np.ndarray | None, theirs: np.ndarray | None) -> float | None:
    if ours is None or theirs is None:
        return None
    return float(np.abs(ours.astype(np.float64) - theirs).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nishard-bench-clean"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=("numpy", "jax", "both"), default="numpy",
                        help="the Clean backend(s) to time (default numpy)")  # fmt: skip
    parser.add_argument("--skip-nilearn", action="store_true",
                        help="leave out the nilearn anchor (about 10 minutes)")  # fmt: skip
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # nilearn's notices about defaults
    with_numpy = args.backend in ("numpy", "both")
    with_jax = args.backend in ("jax", "both")

    record = dataset(args.cache)
    for kind in ("bold", "mask", "confounds"):
        Path(record.files[kind]).read_bytes()  # the page cache, for both sides alike
    _read_bold(record)  # the first large allocation of a process costs more: not timed

    t_nilearn = theirs = t_nishard = ours = None
    if not args.skip_nilearn:
        t_nilearn, theirs = fastest(lambda: nilearn_clean(record), args.repeats)
    cpu = t_isal = None
    if with_numpy:
        # The record and the read of its bold alone in alternation, so that the ratio of
        # the two is not bent by whatever else the machine did between them.
        t_nishard = t_isal = float("inf")
        for _ in range(args.repeats):
            t, ours = fastest(lambda: nishard_clean(record), 1)
            t_nishard = min(t_nishard, t)
            t_isal = min(t_isal, fastest(lambda: _read_bold(record), 1)[0])
        started = time.process_time()  # every thread's: the checksums' second thread too
        nishard_clean(record)
        cpu = time.process_time() - started
    diff = max_abs_diff(ours, theirs)
    jax, on_jax = {}, None
    if with_jax:
        # The first call compiles a kernel per block shape: timed apart from the runs.
        t_first, _ = fastest(lambda: nishard_clean(record, "jax"), 1)
        t_jax, on_jax = fastest(lambda: nishard_clean(record, "jax"), args.repeats)
        numpy_out = ours if ours is not None else nishard_clean(record)
        jax = {
            "jax_s": round(t_jax, 3), "jax_first_s": round(t_first, 3),
            "jax_device": jax_device(),
            "jax_ratio": None if t_nilearn is None else round(t_nilearn / t_jax, 2),
            "jax_max_abs_diff": max_abs_diff(on_jax, theirs),
            "jax_max_abs_diff_numpy": max_abs_diff(on_jax, numpy_out),
            "jax_breakdown_s": {k: round(v, 3) for k, v in breakdown(record, "jax").items()},
        }  # fmt: skip
        del numpy_out
    shape = (ours if ours is not None else on_jax).shape
    del ours, theirs, on_jax

    parts = breakdown(record) if with_numpy else {}
    t_zlib, _ = fastest(lambda: _read_bold_nibabel(record), 1)
    if t_isal is None:
        t_isal, _ = fastest(lambda: _read_bold(record), args.repeats)
    t_threaded, _ = fastest(lambda: _inflate_threaded(record), args.repeats)
    memory = {
        "nishard_read": peak_mb(lambda: _read_bold(record)),
        "nibabel_read": peak_mb(lambda: _read_bold_nibabel(record)),
    }
    if with_numpy:
        memory["nishard_plan"] = peak_mb(lambda: nishard_clean(record))
    if not args.skip_nilearn:
        memory["nilearn_masker"] = peak_mb(lambda: nilearn_clean(record))

    gz_mb = Path(record.files["bold"]).stat().st_size / 1e6
    print(f"1 run: {shape[0]} volumes x {shape[1]} voxels, 2 mm MNI, .nii.gz {gz_mb:.0f} MB, "
          f"TR {record.metadata['t_r']} s, 24P, {HIGH_PASS}-{LOW_PASS} Hz; one core each, "
          f"fastest of {args.repeats}")  # fmt: skip
    if t_nilearn is not None:
        print(f"  nilearn NiftiMasker.fit_transform   {t_nilearn:7.2f} s")
    if t_nishard is not None:
        ratio = "" if t_nilearn is None else f"   {t_nilearn / t_nishard:.1f}x"
        print(f"  nishard Mask + Clean plan.run        {t_nishard:7.2f} s{ratio}")
    if jax:
        ratio = "" if t_nilearn is None else f"   {t_nilearn / jax['jax_s']:.1f}x"
        print(
            f"  nishard Clean(backend='jax')         {jax['jax_s']:7.2f} s{ratio}"
            f"   on {jax['jax_device']}; first call (compiling) {jax['jax_first_s']:.2f} s"
        )
        print(f"    clean step alone                   {jax['jax_breakdown_s']['clean']:7.2f} s")
    if parts:
        print("  nishard breakdown (one by one):")
        print(f"    checksums (sha256, provenance)     {parts['checksums']:7.2f} s"
              "   (on a second thread, while reading)")  # fmt: skip
        what = "bold + mask + confounds" if "mask" in parts else "mask + masked bold + confounds"
        print(f"    read {what:<30}{parts['read']:7.2f} s"
              f"   (the whole bold alone {parts['read_bold']:.2f} s)")  # fmt: skip
        if "mask" in parts:
            print(f"    mask                               {parts['mask']:7.2f} s")
        print(f"    clean (confounds, fused operator)  {parts['clean']:7.2f} s")
    if t_nishard is not None:
        print(f"  the record against reading its bold: {t_nishard / t_isal:.2f}x (goal <= 1.5x); "
              f"CPU {cpu:.2f} s over {t_nishard:.2f} s")  # fmt: skip
    print("  reading the bold to float32 alone:")
    print(f"    nibabel (zlib)                     {t_zlib:7.2f} s")
    print(f"    nishard (ISA-L, one thread)        {t_isal:7.2f} s   {t_zlib / t_isal:.1f}x")
    print(f"    ISA-L igzip_threaded(2), raw bytes {t_threaded:7.2f} s   (not used: 2 cores)")
    print("  peak traced memory (MB): " + ", ".join(f"{k} {v:,.0f}" for k, v in memory.items()))
    if diff is not None:
        print(f"  max_abs_diff {diff:.2e}")
    if jax:
        against = [f"numpy {jax['jax_max_abs_diff_numpy']:.2e}"]
        if jax["jax_max_abs_diff"] is not None:
            against.insert(0, f"nilearn {jax['jax_max_abs_diff']:.2e}")
        print(f"  jax max_abs_diff against {', '.join(against)}")
    rounded = None if t_nishard is None else round(t_nishard, 3)
    print(json.dumps({
        "volumes": shape[0], "voxels": shape[1], "backend": args.backend,
        "nishard_s": rounded,
        "nilearn_s": None if t_nilearn is None else round(t_nilearn, 3),
        "ratio": None if rounded is None or t_nilearn is None else round(t_nilearn / t_nishard, 2),
        "max_abs_diff": diff,
        "breakdown_s": {k: round(v, 3) for k, v in parts.items()} or None,
        "read_nibabel_zlib_s": round(t_zlib, 3), "read_isal_s": round(t_isal, 3),
        "inflate_isal_threaded2_s": round(t_threaded, 3),
        "record_over_read": None if rounded is None else round(t_nishard / t_isal, 3),
        "nishard_cpu_s": None if cpu is None else round(cpu, 3),
        "peak_mb": {k: round(v) for k, v in memory.items()},
        **jax,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
