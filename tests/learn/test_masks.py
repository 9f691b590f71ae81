"""Finding the mask of the shards' voxels: given, stored, from the spec or the records."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import yaml

import nishard as ns
from nishard.learn import CanICA, Shards
from nishard.learn.masks import manifest_mask
from nishard.learn.spaces import ArraySpace, VolumeSpace, resolve_space
from nishard.pipeline import build as build_spec
from nishard.spec import load_spec
from tests.learn.conftest import build


def space_of(folder, mask=None):
    shards = Shards(folder)
    return resolve_space(shards.folders, shards.manifests, "bold", shards.n_features, mask)


def test_the_spec_mask_and_the_records_masks_are_found(networks, tmp_path):
    expected = np.asanyarray(nib.load(networks.mask).dataobj) > 0
    given = space_of(networks.shards)
    assert isinstance(given, VolumeSpace) and np.array_equal(given.mask.mask, expected)
    # Mask() uses each record's own mask: found among the manifest's inputs (one sha256).
    records = build(networks.data, tmp_path / "record", ns.t.Mask(), 12)
    found, why = manifest_mask(records, json.loads((records / "manifest.json").read_text()), "bold")
    assert found is not None and np.array_equal(found.mask, expected), why
    assert "desc-brain_mask" in found.origin


def test_relative_spec_paths_resolve_from_the_shard_folder(networks, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(networks.data, project / "data")
    spec = {
        "input": {"path": "data", "schema": {"name": "fmriprep", "res": "8"}},
        "transforms": [{"mask": {"source": f"data/{networks.mask.relative_to(networks.data)}"}}],
        "output": {"path": "out/shards", "shards": {"max_samples": 12}},
        "execution": {"executor": "serial"},
    }
    (project / "spec.yaml").write_text(yaml.safe_dump(spec))
    build_spec(load_spec(project / "spec.yaml"))
    monkeypatch.chdir(tmp_path)  # neither the spec's folder nor the shards'
    space = space_of(project / "out" / "shards")
    assert isinstance(space, VolumeSpace) and space.mask.n_voxels == 3666


def test_without_a_mask_maps_stay_arrays_and_a_stored_mask_wins(networks, tmp_path):
    folder = tmp_path / "moved"
    shutil.copytree(networks.shards, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["spec"]["transforms"][0]["mask"]["source"] = "/nowhere/mask.nii.gz"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert isinstance(space_of(folder), ArraySpace)
    ica = CanICA(n_components=8, score=False, n_init=2).fit(folder)
    assert ica.components_img_ is None and ica.save(tmp_path / "maps").suffix == ".npy"
    # A mask the writer stored beside the shards (manifest "masks") is read first.
    shutil.copy(networks.mask, folder / "bold.mask.nii.gz")
    manifest["masks"] = {"bold": {"file": "bold.mask.nii.gz"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert isinstance(space_of(folder), VolumeSpace)
