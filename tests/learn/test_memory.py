"""Peak memory, measured in a fresh process, stays under the budget while streaming 3x it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.learn import LearnError, plan_memory

GRID, TIMEPOINTS, RUNS, NETWORKS = (40, 40, 40), 100, 20, 6
BUDGET = 64 * 2**20


@pytest.fixture(scope="module")
def big_shards(tmp_path_factory):
    """20 runs of 100 frames x 40,000 voxels (320 MB of float32) in shards, via the writer."""
    root = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    mask = np.zeros(GRID, bool)
    mask[5:35, 5:35, 2:38] = True  # 32,400 voxels
    mask[:, :, 2:38] |= np.add.outer(np.arange(40), np.arange(40))[:, :, None] % 3 == 0
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), root / "mask.nii")
    voxels = int(mask.sum())
    maps = np.where(
        rng.random((NETWORKS, voxels)) < 0.1, rng.standard_normal((NETWORKS, voxels)), 0
    )
    for run in range(RUNS):
        series = rng.standard_normal((TIMEPOINTS, NETWORKS)) @ maps
        series += rng.standard_normal((TIMEPOINTS, voxels))
        volume = np.zeros((*GRID, TIMEPOINTS), np.float32)
        volume[mask] = series.T
        image = nib.Nifti1Image(volume, affine)
        image.header.set_xyzt_units("mm", "sec")
        image.header["pixdim"][4] = 2.0
        nib.save(image, root / f"sub-{run:02d}_bold.nii")
    records = ns.locate(root, schema=ns.schemas.regex({"bold": r"sub-(?P<subject>\d+)_bold\.nii"}))
    plan = ns.assemble([ns.t.Mask(source=str(root / "mask.nii"))])
    ns.write(records, plan, root / "shards", shards=ns.shards.by_size("128MB"), progress=False)
    return root / "shards", voxels


FIT = """
import json, sys
from nishard.learn import CanICA
from nishard.learn.memory import current_rss
imported = current_rss()
ica = CanICA(n_components=10, memory_budget=int(sys.argv[2]), n_init=3, score=True)
ica.fit(sys.argv[1])
print(json.dumps({"imported": imported, **ica.memory_usage_, "streamed": ica.bytes_streamed_,
                  "group_exact": ica.group_exact_, "plan": ica.memory_plan_.to_dict(),
                  "samples": ica.n_samples_}))
"""


def test_peak_memory_stays_under_the_budget(big_shards):
    folder, voxels = big_shards
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIT), str(folder), str(BUDGET)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # The data streamed (twice: fit and explained variance) is 5x the budget, once 3x.
    assert figures["streamed"] == RUNS * TIMEPOINTS * voxels * 4 >= 3 * BUDGET
    assert figures["group_exact"] is False and figures["plan"]["capacity"] < RUNS * 10
    # Measured: the kernel's high-water mark of the process, reset when the fit starts.
    # "exact": the kernel's high-water mark was reset when the fit started (Linux).
    assert figures["exact"] is True and figures["added"] <= BUDGET, figures
    assert figures["peak"] - figures["imported"] <= BUDGET + 16 * 2**20


def test_the_plan_is_set_by_the_budget_not_the_subjects():
    shape = {
        "n_features": 200_000,
        "sample_bytes": 200 * 200_000 * 4,
        "n_timepoints": 200,
        "n_rows": 20,
        "n_components": 20,
    }
    few = plan_memory(2**30, **shape, jobs=4, total_rows=100 * 20)
    many = plan_memory(2**30, **shape, jobs=4, total_rows=100_000 * 20)
    assert few == many and few.estimate <= 2**30 * 0.8
    # Fewer rows than the budget's buffer holds: a buffer of every row (an exact group
    # PCA), so memory grows with the subjects until it reaches the budget's, then stops.
    plans = [plan_memory(4 * 2**30, **shape, total_rows=k * 20) for k in (5, 10, 20, 10**5, 10**6)]
    assert [p.capacity for p in plans[:3]] == [100, 200, 400] < [plans[3].capacity] * 3
    assert plans[0].estimate < plans[1].estimate < plans[2].estimate < plans[3].estimate
    assert plans[3] == plans[4] and plans[3].estimate <= 4 * 2**30 * 0.8
    assert few.jobs < 4  # four 160 MB samples at once do not fit beside the buffer
    unbounded = plan_memory(None, **shape, jobs=4, total_rows=100 * 20)
    assert unbounded.capacity == 2000 and unbounded.jobs == 4
    with pytest.raises(LearnError, match="too small"):
        plan_memory(100 * 2**20, **shape)
