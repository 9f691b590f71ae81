"""Shards to stream: 16 synthetic runs parcellated, cleaned and made into connectivity.

One build, shared by the stream tests: a train and a test split (whole subjects,
diagnosis stratified), tar, TFRecord and HDF5 shards of 3 samples, keys ``bold``
(120 x 7 float32 region signals), ``connectivity`` (7 x 7, stored as float16),
``regions`` (int64) and ``volumes`` (int32).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.archives import HDF5, TFRecord, WebDataset
from nishard.archives.decoders import DECODERS
from nishard.builder.splits import Stratified
from nishard.datasets import generate
from tests.helpers import TINY_RES


def network_atlas(root: Path, out: Path) -> Path:
    """A labels atlas of the dataset's true networks: each voxel to its strongest one."""
    image = nib.load(root / "truth" / "networks.nii.gz")
    maps = image.get_fdata()
    labels = np.where(maps.max(-1) > 0.2 * maps.max(), maps.argmax(-1) + 1, 0)
    path = out / "networks_atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.int16), image.affine), path)
    return path


def build(root: Path, out: Path) -> dict:
    records = ns.locate(
        root,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        stage=["bold", "mask", "confounds"],
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )
    plan = ns.assemble([
        ns.t.Parcellate(str(network_atlas(root, out.parent)), missing="zero"),
        ns.t.Clean(confounds="simple", low_pass=0.1, high_pass=0.01, standardize="zscore_sample"),
        ns.t.Connectivity(),
        ns.t.Cast("float16", keys=("connectivity",)),
    ])  # fmt: skip
    split = Stratified(by=("diagnosis",), fractions={"train": 0.75, "test": 0.25}, seed=0)
    return ns.write(records, plan, out, formats=[WebDataset(), TFRecord(), HDF5()], split=split,
                    shards=ns.shards.by_count(3), progress=False)  # fmt: skip


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    """The shard folder (read-only)."""
    base = tmp_path_factory.mktemp("stream")
    generate(base / "data", size="tiny", seed=0, subjects=16, sessions=0)
    out = base / "shards"
    build(base / "data", out)
    return out


def decoded(folder: Path, split: str, format: str = "webdataset") -> dict:
    """Every sample of a split read by the verifying decoders: key -> Sample, in order."""
    manifest = ns.archives.read_manifest(folder)
    samples = {}
    for shard in manifest["shards"]:
        if shard["split"] == split and shard["format"] == format:
            for sample in DECODERS[format](folder / shard["name"]):
                samples[sample.key] = sample
    return samples
