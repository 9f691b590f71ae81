"""Shards of a synthetic dataset with known networks, built once per session."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import nishard as ns
from nishard.datasets import SIZES, generate

#: The `tiny` preset (12 runs, 8 mm grid, 3,666 voxels) with 10-minute runs and networks
#: of 10 mm nodes: compact enough that the true maps barely correlate, as spatial ICA
#: assumes (with the default 15 mm nodes the large default-mode map correlates with its
#: neighbours down to -0.25, and CanICA, nilearn's as well as nishard's, tops out near
#: 0.88 for it).
NETWORKS = dataclasses.replace(SIZES["tiny"], n_timepoints=300, network_sigma_mm=10.0)

#: Motion-only denoising: "simple" also regresses the white matter and CSF means, which at
#: 8 mm share voxels with the midline nodes of the default mode network.
CLEAN = ns.t.Clean(confounds="24P", low_pass=0.1, high_pass=0.01, standardize="zscore_sample")


def build(data: Path, out: Path, mask: ns.t.Mask, count: int = 4) -> Path:
    records = ns.locate(data, schema=ns.schemas.fmriprep(res="8"))
    ns.write(
        records, ns.assemble([mask, CLEAN]), out, shards=ns.shards.by_count(count), progress=False
    )
    return out


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """One BLAS thread: on a shared 2-core machine, OpenBLAS threads that wait for a busy
    core make small products (and the synthetic dataset's generator) ten times slower."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def networks(tmp_path_factory) -> SimpleNamespace:
    """The dataset, its shards (a given common mask) and the truth; read-only."""
    root = tmp_path_factory.mktemp("networks")
    with threadpool_limits(limits=1):  # made before the module fixture applies
        dataset = generate(root / "data", size=NETWORKS, seed=0)
        mask = dataset.mask_paths[0]
        shards = build(dataset.root, root / "shards", ns.t.Mask(source=str(mask)))
    return SimpleNamespace(
        root=root,
        data=dataset.root,
        shards=shards,
        mask=mask,
        truth=dataset.truth_dir / "networks.nii.gz",
    )


@pytest.fixture(scope="session")
def truth_maps(networks) -> np.ndarray:
    """The true network maps at the mask's voxels, shape (7, voxels)."""
    mask = np.asanyarray(nib.load(networks.mask).dataobj) > 0
    return np.asanyarray(nib.load(networks.truth).dataobj)[mask].T.astype(np.float64)
