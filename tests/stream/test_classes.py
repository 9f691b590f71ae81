"""Text variables come back as int64 class indices: ``.classes("diagnosis")``.

The ground truth is the synthetic dataset's ``participants.tsv`` (the stream tests' shared
build, :mod:`tests.stream.conftest`): each sample's index must be its subject's diagnosis'
place in the sorted values of the whole table, in every split, format and terminal.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import nishard as ns
from nishard.archives import TFRecord, WebDataset
from nishard.builder.splits import Random
from nishard.stream import ClassLabel, LabelError


def participants(root: Path) -> dict[str, dict[str, str]]:
    """``participants.tsv`` by subject label (``01``), as written."""
    with (root / "participants.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {row["participant_id"].removeprefix("sub-"): row for row in rows}


@pytest.fixture(scope="module")
def truth(shards) -> dict[str, dict[str, str]]:
    return participants(shards.parent / "data")


def expected_index(truth: dict, subject: str, variable: str = "diagnosis") -> int:
    values = sorted({row[variable] for row in truth.values()})
    return values.index(truth[subject][variable])


def test_the_manifest_lists_each_text_variable_sorted_over_every_split(shards, truth):
    labels = ns.stream.open(shards).class_labels()
    for variable in ("diagnosis", "sex", "site"):
        names = sorted({row[variable] for row in truth.values()})
        assert labels[variable] == ClassLabel(variable, tuple(names))
    assert "age" not in labels  # a number is not a class
    diagnosis = labels["diagnosis"]
    assert (diagnosis.num_classes, diagnosis.names) == (2, ("control", "patient"))
    assert diagnosis.class_to_idx == {"control": 0, "patient": 1}
    assert (diagnosis.str2int("patient"), diagnosis.int2str(0)) == (1, "control")
    with pytest.raises(KeyError, match="'unknown' is not a class of 'diagnosis'"):
        diagnosis.str2int("unknown")
    with pytest.raises(IndexError, match="class -1 of 'diagnosis'"):
        diagnosis.int2str(-1)


@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord", "hdf5"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_each_sample_gets_its_subjects_class_index(shards, truth, fmt, split):
    stream = (ns.stream.open(shards, split, format=fmt).keys()
              .fields(meta=["subject", "diagnosis"]).classes("diagnosis", "site"))  # fmt: skip
    samples = list(stream.arrays())
    assert len(samples) == {"train": 12, "test": 4}[split]
    for sample in samples:
        subject = sample["subject"]
        # In place of the text, an int64 index (0-d per sample), the same in each split.
        assert sample["diagnosis"].dtype == np.int64 and sample["diagnosis"].shape == ()
        assert sample["diagnosis"] == expected_index(truth, subject)
        assert sample["site"] == expected_index(truth, subject, "site")


def test_batches_hold_an_int64_array_and_the_text_stays_in_the_metadata(shards, truth):
    stream = ns.stream.open(shards).keys("connectivity").batch(5).classes("diagnosis")
    batches = list(stream.arrays())
    for batch in batches:
        subjects = [meta["subject"] for meta in batch["__meta__"]]
        assert batch["diagnosis"].dtype == np.int64
        np.testing.assert_array_equal(batch["diagnosis"],
                                      [expected_index(truth, s) for s in subjects])  # fmt: skip
        assert [m["diagnosis"] for m in batch["__meta__"]] == [
            truth[s]["diagnosis"] for s in subjects
        ]
    assert [len(b["diagnosis"]) for b in batches] == [5, 5, 2]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_torch_loader_gives_int64_tensors_a_loss_takes(shards, truth, workers):
    stream = (ns.stream.open(shards).keys("connectivity").shuffle(seed=3, buffer=8).batch(4)
              .fields(meta=["subject"]).classes("diagnosis"))  # fmt: skip
    loader = torch.utils.data.DataLoader(stream.torch(), batch_size=None, num_workers=workers)
    seen = []
    for batch in loader:
        target = batch["diagnosis"]
        assert isinstance(target, torch.Tensor) and target.dtype == torch.int64
        assert target.tolist() == [expected_index(truth, s) for s in batch["subject"]]
        logits = torch.zeros(len(target), 2, requires_grad=True)
        torch.nn.functional.cross_entropy(logits, target).backward()  # what it is for
        seen += batch["subject"]
    assert len(seen) == 12


@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_jax_batches_carry_the_indices_as_numpy_int64(shards, truth):
    pytest.importorskip("jax")
    stream = (ns.stream.open(shards).keys("connectivity").batch(6)
              .fields(meta=["subject"]).classes("diagnosis"))  # fmt: skip
    for batch in stream.jax():
        # On the host, as the metadata: a jitted loss takes them as they are.
        assert batch["diagnosis"].dtype == np.int64
        assert batch["diagnosis"].tolist() == [expected_index(truth, s) for s in batch["subject"]]


def test_the_map_dataset_and_grain_source_stack_the_indices(shards, truth):
    stream = ns.stream.open(shards, "test").keys().fields(meta=["subject"]).classes()
    dataset = stream.map_dataset()
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["diagnosis"].dtype == torch.int64
    assert batch["diagnosis"].tolist() == [expected_index(truth, s) for s in batch["subject"]]
    assert set(batch) >= {"diagnosis", "sex", "site"}  # no names: every text variable
    source = stream.grain()
    item = source[0]
    assert item["sex"] == expected_index(truth, item["subject"], "sex")
    assert pickle.loads(pickle.dumps(source))[1]["site"] == source[1]["site"]


def test_a_variable_without_classes_and_bad_options_are_refused(shards):
    with pytest.raises(KeyError, match=r"no classes for \['age'\].*'diagnosis', 'sex', 'site'"):
        ns.stream.open(shards).keys().classes("age").arrays()
    with pytest.raises(ValueError, match="missing is an integer index or 'error'"):
        ns.stream.open(shards).classes("diagnosis", missing="skip")
    with pytest.raises(ValueError, match=r"missing=1 is the index of a class of \['diagnosis'\]"):
        ns.stream.open(shards).keys().classes("diagnosis", missing=1).torch()
    stream = ns.stream.open(shards).classes("diagnosis", missing=-100).batch(2)
    assert repr(stream).endswith(
        ".classes('diagnosis', missing=-100).batch(size=2, drop_last=False)"
    )


# -- missing and rare labels ----------------------------------------------------------------

#: Subject labels: a missing one (n/a), and "other", a class of one subject (one split).
DIAGNOSES = ["control", "patient", "control", "n/a", "patient", "other", "control", "patient"]


def raw_bids(base: Path, diagnoses: list[str]) -> tuple[ns.RecordTable, ns.Plan]:
    """Raw BIDS runs of a subject per diagnosis (``n/a``: missing), 2 regions of 2 voxels
    and 30 frames; their records and a plan of their region signals."""
    root = base / "data"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "gaps"}))
    (root / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    labels = np.repeat(np.arange(1, 3, dtype=np.int16), 2)[:, None, None] * np.ones((1, 2, 2))
    atlas = base / "regions.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.int16), np.eye(4)), atlas)
    rng = np.random.default_rng(0)
    rows = ["participant_id\tdiagnosis"]
    for i, diagnosis in enumerate(diagnoses, start=1):
        name = f"sub-{i:02d}"
        (root / name / "func").mkdir(parents=True)
        voxels = rng.standard_normal((*labels.shape, 30)).astype(np.float32)
        path = root / name / "func" / f"{name}_task-rest_bold.nii"
        nib.save(nib.Nifti1Image(voxels, np.eye(4)), path)
        rows.append(f"{name}\t{diagnosis}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    records = ns.locate(root, schema=ns.schemas.bids(), stage=["bold"],
                        variables=ns.tables.participants(["diagnosis"]))  # fmt: skip
    return records, ns.assemble([ns.t.Parcellate(str(atlas))])


@pytest.fixture(scope="module")
def gaps(tmp_path_factory) -> tuple[Path, dict]:
    """Shards of :data:`DIAGNOSES`' subjects, one with no diagnosis; train and test."""
    base = tmp_path_factory.mktemp("gaps")
    records, plan = raw_bids(base, DIAGNOSES)
    manifest = ns.write(records, plan, base / "shards", formats=[WebDataset(), TFRecord()],
                        split=Random(fractions={"train": 0.5, "test": 0.5}, seed=0),
                        shards=ns.shards.by_count(3), progress=False)  # fmt: skip
    return base / "shards", manifest


def test_the_classes_do_not_depend_on_which_records_a_build_wrote(tmp_path):
    # The only "other" record is quarantined (its file cut short after it was located):
    # its class keeps its index, so a rebuild that writes it changes no label.
    records, plan = raw_bids(tmp_path, ["control", "patient", "other", "patient"])
    bold = tmp_path / "data" / "sub-03" / "func" / "sub-03_task-rest_bold.nii"
    bold.write_bytes(bold.read_bytes()[:400])
    manifest = ns.write(records, plan, tmp_path / "shards", formats=[WebDataset()],
                        split="all", progress=False)  # fmt: skip
    assert [q["record"] for q in manifest["quarantine"]] == ["sub-03_task-rest"]
    assert manifest["classes"] == {"diagnosis": ["control", "other", "patient"]}
    (batch,) = ns.stream.open(tmp_path / "shards").keys().classes().batch(4).arrays()
    assert batch["diagnosis"].tolist() == [0, 2, 2]


def test_missing_labels_are_minus_one_or_an_error_and_rare_classes_keep_their_index(gaps):
    folder, manifest = gaps
    # Decided from the whole table: "other" is listed though one split lacks it.
    assert manifest["classes"] == {"diagnosis": ["control", "other", "patient"]}
    truth = {f"{i:02d}": d for i, d in enumerate(DIAGNOSES, start=1)}
    index = {"control": 0, "other": 1, "patient": 2, "n/a": -1}
    splits_with_other = []
    for split in ("train", "test"):
        for fmt in ("webdataset", "tfrecord"):
            stream = (ns.stream.open(folder, split, format=fmt).keys()
                      .fields(meta=["subject"]).classes("diagnosis").batch(8))  # fmt: skip
            (batch,) = stream.arrays()
            assert batch["diagnosis"].tolist() == [index[truth[s]] for s in batch["subject"]]
        if any(truth[s] == "other" for s in batch["subject"]):
            splits_with_other.append(split)
    assert len(splits_with_other) == 1  # so the other split lacks it, and agrees anyway
    # Another index for missing labels, e.g. CrossEntropyLoss's default ignore_index.
    both = (ns.stream.open(folder, "train").keys().classes(missing=-100).batch(8),
            ns.stream.open(folder, "test").keys().classes(missing=-100).batch(8))  # fmt: skip
    got = np.concatenate([next(iter(s.arrays()))["diagnosis"] for s in both])
    assert sorted(got.tolist()) == sorted(index[d] if d != "n/a" else -100 for d in DIAGNOSES)
    # missing="error": the sample is named.
    split = next(s for s in ("train", "test")
                 if "04" in [m["subject"] for m in next(iter(
                     ns.stream.open(folder, s).keys().batch(8).arrays()))["__meta__"]])  # fmt: skip
    stream = ns.stream.open(folder, split).keys().classes(missing="error")
    with pytest.raises(
        LabelError, match=r"\.tar: sample '[^']*sub-04[^']*': 'diagnosis' is missing"
    ):
        list(stream.arrays())
