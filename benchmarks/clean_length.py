"""The clean step against the run's length: nishard's NumPy backend beside nilearn.signal.clean.

A band-pass filter's operator has longer rows the longer the run, and the float32 products
of :func:`nishard.transforms.regression.apply_linear` carry a rounding error that grows
with them: past :data:`~nishard.transforms.regression.FLOAT32_ERROR` a column is computed
again in float64. At 1,200 volumes (an HCP run) most columns are, and a run then gives up
the float32 route after its first block (:data:`~nishard.transforms.regression.
REDO_LIMIT`). This measures what that saves, and how the cost grows with the length.

The data: (volumes, 40,000) float32 signals on a baseline of 1,000 with noise of standard
deviation 10 and per-voxel linear drifts of up to about 10 over the run (fMRI's temporal
SNR of about 100), and 24 smooth confounds; TR 0.72 s (HCP), 200, 600 and 1,200 volumes.
Each side on one core (BLAS pinned to one thread before numpy loads), the fastest of
``--repeats``:

- nishard: ``ns.transforms.signal.clean(x, t_r=0.72, detrend=True,
  standardize="zscore_sample", confounds=conf, low_pass=0.1, high_pass=0.01)``;
- nishard with every block on the float32 route (``REDO_LIMIT`` infinite: the route
  before the limit), reported as ``float32_route_s``;
- nilearn (the anchor): ``nilearn.signal.clean`` with the same arguments, on the same
  float32 array.

    python benchmarks/clean_length.py [--voxels 40000] [--repeats 3]

Ends with one line of JSON: one row a length (seconds of each side, ``redone``: the share
of columns the float32 route computes again, ``ratio``: nilearn over nishard,
``max_abs_diff`` against nilearn), ``ratio`` and ``max_abs_diff`` at 1,200 volumes, and
the log-log ``slope`` of each side's seconds against the volumes.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core; not when jax_device.py imports the data from here
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import json
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np

from nishard.transforms import regression
from nishard.transforms.signal import clean

T_R = 0.72
LENGTHS = (200, 600, 1200)
ARGS = {"t_r": T_R, "detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
        "high_pass": 0.01}  # fmt: skip


def signals(volumes: int, voxels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Float32 signals as fMRI's (baseline 1,000, noise 10, drifts up to 10 over the run)
    and 24 smooth float64 confounds."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, volumes, dtype=np.float32)[:, None]
    x = 10 * rng.standard_normal((volumes, voxels), dtype=np.float32)
    x += 1000 + 10 * t * rng.uniform(-1, 1, voxels).astype(np.float32)
    confounds = np.cumsum(rng.standard_normal((volumes, 24)), axis=0)
    return x, confounds


def fastest(run, repeats: int, warm: bool = False) -> tuple[float, object]:
    """Seconds of the fastest of ``repeats`` calls of ``run`` (after an untimed one when
    ``warm``: JAX compiles at its first call) and the last call's result."""
    if warm:
        run()
    best, out = math.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - started)
    return best, out


@contextmanager
def float32_route() -> Iterator[list[int]]:
    """Every block on the float32 route (``REDO_LIMIT`` infinite, the route before the
    limit); yields the list that gets each block's count of columns redone."""
    redone: list[int] = []
    block32, limit = regression._numpy_block32, regression.REDO_LIMIT

    def counted(block, *args):
        out = block32(block, *args)
        redone.append(out[-1])
        return out

    regression._numpy_block32, regression.REDO_LIMIT = counted, math.inf
    try:
        yield redone
    finally:
        regression._numpy_block32, regression.REDO_LIMIT = block32, limit


def main() -> None:
    import nilearn.signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for volumes in LENGTHS:
        x, confounds = signals(volumes, args.voxels)
        ours_once = partial(clean, x, confounds=confounds, **ARGS)
        nishard_s, ours = fastest(ours_once, args.repeats)
        with float32_route() as redone:
            float32_s, _ = fastest(ours_once, args.repeats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs_once = partial(nilearn.signal.clean, x, confounds=confounds, **ARGS)
            nilearn_s, theirs = fastest(theirs_once, args.repeats)
        row = {
            "volumes": volumes, "voxels": args.voxels, "nishard_s": nishard_s,
            "float32_route_s": float32_s, "nilearn_s": nilearn_s,
            "redone": sum(redone) / (args.repeats * args.voxels), "ratio": nilearn_s / nishard_s,
            "max_abs_diff": float(np.abs(ours - theirs).max()),
        }  # fmt: skip
        rows.append(row)
        print(f"{volumes:5d} volumes: nishard {nishard_s:.2f} s (float32 route alone "
              f"{float32_s:.2f} s, {row['redone']:.0%} of columns redone), nilearn "
              f"{nilearn_s:.2f} s: {row['ratio']:.1f}x, max |diff| {row['max_abs_diff']:.1e}",
              flush=True)  # fmt: skip
    logs = np.log([r["volumes"] for r in rows])
    slope = {
        key: float(np.polyfit(logs, np.log([r[key] for r in rows]), 1)[0])
        for key in ("nishard_s", "float32_route_s", "nilearn_s")
    }
    last = rows[-1]
    print(json.dumps({"rows": rows, "ratio": last["ratio"], "max_abs_diff": last["max_abs_diff"],
                      "float32_route_over_nishard": last["float32_route_s"] / last["nishard_s"],
                      "slope": slope}))  # fmt: skip


if __name__ == "__main__":
    main()
