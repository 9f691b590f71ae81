"""The demo's tiny classifier: trained from the shards, reported next to chance."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.archives import TFRecord, WebDataset
from nishard.builder.splits import Stratified
from nishard.demo.classifier import train_classifier
from tests.stream.conftest import decoded


def test_classifier_trains_and_reports_accuracy_next_to_chance(shards):
    result = train_classifier(shards, key="connectivity", label="diagnosis", epochs=40)
    test = [s.meta["diagnosis"] for s in decoded(shards, "test").values()]
    train = [s.meta["diagnosis"] for s in decoded(shards, "train").values()]
    assert result["chance"] == max(Counter(test).values()) / len(test)
    assert (result["n_train"], result["n_test"]) == (len(train), len(test)) == (12, 4)
    assert result["classes"] == sorted(set(train)) == ["control", "patient"]
    assert result["features"] == 7 * 6 // 2  # the connectivity matrix above its diagonal
    # 21 features for 12 samples: a trained linear model separates the training split.
    # Its test accuracy here says nothing: at 8 mm the 16 runs' coupling is too noisy for
    # any linear model of 12 to beat chance on 4 (see the test below for one that must).
    assert result["train_accuracy"] == 1.0 and result["final_loss"] < 0.5
    # Same seed, same model; the TFRecord shards hold the same samples.
    assert train_classifier(shards, epochs=40, format="tfrecord") == result


def coupled_dataset(root: Path, subjects: int = 32, frames: int = 100, seed: int = 0) -> Path:
    """Raw BIDS runs of three regions whose first two correlate in patients (0.7), not in
    controls; returns the labels atlas of the regions (outside ``root``)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "coupled"}))
    (root / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    labels = np.repeat(np.arange(1, 4, dtype=np.int16), 2)[:, None, None] * np.ones((1, 4, 4))
    atlas = root.parent / "regions.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.int16), np.eye(4)), atlas)
    rows = ["participant_id\tdiagnosis"]
    for subject in range(1, subjects + 1):
        patient = subject % 2 == 0
        sources = rng.standard_normal((3, frames))
        if patient:
            sources[1] = 0.7 * sources[0] + np.sqrt(1 - 0.7**2) * sources[1]
        voxels = sources[labels.astype(int) - 1] + rng.standard_normal((*labels.shape, frames))
        name = f"sub-{subject:02d}"
        (root / name / "func").mkdir(parents=True)
        image = nib.Nifti1Image(voxels.astype(np.float32), np.eye(4))
        nib.save(image, root / name / "func" / f"{name}_task-rest_bold.nii.gz")
        rows.append(f"{name}\t{'patient' if patient else 'control'}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return atlas


@pytest.fixture(scope="module")
def coupled(tmp_path_factory) -> Path:
    """Connectivity shards of :func:`coupled_dataset`: 24 train and 8 test runs."""
    base = tmp_path_factory.mktemp("coupled")
    atlas = coupled_dataset(base / "data")
    records = ns.locate(base / "data", schema=ns.schemas.bids(), stage=["bold"],
                        variables=ns.tables.participants(["diagnosis"]))  # fmt: skip
    plan = ns.assemble([ns.t.Parcellate(str(atlas)), ns.t.Connectivity(keep_timeseries=False)])
    split = Stratified(by=("diagnosis",), fractions={"train": 0.75, "test": 0.25}, seed=0)
    ns.write(records, plan, base / "shards", formats=[WebDataset(), TFRecord()], split=split,
             shards=ns.shards.by_count(4), progress=False)  # fmt: skip
    return base / "shards"


@pytest.mark.parametrize("format", ["webdataset", "tfrecord"])
def test_classifier_beats_chance_where_the_label_is_in_the_connectivity(coupled, format):
    # Patients' first two regions correlate (0.7 against 0): one of the 3 features tells
    # the classes apart, so the test split must be classified far above chance. Labels
    # mismatched with features, or a model that does not learn, fail here.
    result = train_classifier(coupled, epochs=40, format=format)
    assert (result["n_train"], result["n_test"], result["features"]) == (24, 8, 3)
    assert result["chance"] == 0.5
    assert result["test_accuracy"] >= 7 / 8 > result["chance"]
