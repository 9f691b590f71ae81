"""Samples of uneven length: the learners' memory plan takes each sample's size from the
manifest, so one run much longer than the rest in a shard of short ones cannot take a fit
past its budget (a shard's average would hide it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.learn import CanICA, LearnError
from nishard.learn.source import Shards

GRID, SHORT, LONG, RUNS, NETWORKS = (24, 24, 24), 40, 800, 10, 4


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """Ten runs of 40 frames and one of 800 (about 44 MB of float32), in one shard."""
    root = tmp_path_factory.mktemp("uneven")
    rng = np.random.default_rng(1)
    mask = np.zeros(GRID, bool)
    mask[2:22, 2:22, 2:22] = True
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), root / "mask.nii")
    voxels = int(mask.sum())
    shape = (NETWORKS, voxels)
    maps = np.where(rng.random(shape) < 0.2, rng.standard_normal(shape), 0)
    for run in range(RUNS + 1):
        frames = LONG if run == RUNS else SHORT
        series = rng.standard_normal((frames, NETWORKS)) @ maps
        series += rng.standard_normal((frames, voxels))
        volume = np.zeros((*GRID, frames), np.float32)
        volume[mask] = series.T
        image = nib.Nifti1Image(volume, affine)
        image.header["pixdim"][4] = 2.0
        nib.save(image, root / f"sub-{run:02d}_bold.nii")
    records = ns.locate(root, schema=ns.schemas.regex({"bold": r"sub-(?P<subject>\d+)_bold\.nii"}))
    plan = ns.assemble([ns.t.Mask(source=str(root / "mask.nii"))])
    ns.write(records, plan, root / "shards", shards=ns.shards.by_size("512MB"), progress=False)
    return root / "shards", voxels


def test_the_plan_sees_the_long_run_a_shard_average_would_hide(uneven):
    folder, voxels = uneven
    manifest = json.loads((folder / "manifest.json").read_text())
    [shard] = manifest["shards"]  # every run in one shard
    long_bytes = LONG * voxels * 4
    assert shard["bytes"] / shard["samples"] < long_bytes / 5  # the premise: hidden there
    data = Shards(folder, key="bold")
    assert long_bytes <= data.sample_bytes <= long_bytes * 1.01
    # A budget that holds a short run but not the long one is refused before streaming.
    with pytest.raises(LearnError, match="too small: one sample of"):
        CanICA(n_components=NETWORKS, memory_budget=long_bytes // 2).fit(folder)


FIT = """
import json, sys
from nishard.learn import CanICA
ica = CanICA(n_components=4, memory_budget=int(sys.argv[2]), n_init=2)
ica.fit(sys.argv[1])
print(json.dumps(ica.memory_usage_))
"""


def test_a_fit_with_one_long_run_stays_under_its_budget(uneven):
    folder, voxels = uneven
    budget = 4 * LONG * voxels * 4  # four long runs' worth: room, but not unbounded
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(FIT), str(folder), str(budget)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    assert usage["exact"] is True and usage["added"] <= budget, usage
