"""The dataset card: Hugging Face's form, and the real ``datasets`` library loading the
shards through it (exactly the shards of each configuration, the values webdataset reads),
and what ``datasets`` cannot read left out and said."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import webdataset as wds
import yaml
from huggingface_hub import DatasetCardData

# Hugging Face's datasets (ruff's isort takes it for first-party: tests/datasets exists).
import datasets
import nishard as ns
from nishard.archives import Family, TFRecord, WebDataset
from nishard.archives.shards import ShardInfo
from nishard.archives.verify import verify
from nishard.builder.card import CARD, card_text, data_files_glob, hf_split
from nishard.builder.finish import side_files
from nishard.builder.splits import Stratified
from tests.helpers import TINY_RES

DESCRIPTION = {
    "Name": "Tiny resting state",
    "BIDSVersion": "1.8.0",
    "License": "CC0",
    "Authors": ["Ada Lovelace", "Alan Turing"],
    "DatasetDOI": "doi:10.0000/tiny.1",
    "HowToAcknowledge": "Cite the tiny dataset.",
}
SPLIT = Stratified("diagnosis", fractions={"train": 0.5, "test": 0.5}, seed=3)


def _header(folder) -> dict:
    text = (folder / CARD).read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _load(*args, cache, **kwargs):
    return datasets.load_dataset(*args, cache_dir=str(cache), **kwargs)


@pytest.fixture(scope="module")
def source(tiny, tmp_path_factory):
    """tiny with a dataset description and a variable ``note`` that is missing in the
    first samples written to train (records in sorted order) and text in its last
    subject's: what stops ``datasets`` guessing features from the first samples."""
    root = shutil.copytree(tiny, tmp_path_factory.mktemp("card") / "fmriprep")
    (root / "dataset_description.json").write_text(json.dumps(DESCRIPTION))
    records = _records(root)
    subjects = sorted(set(records.frame["subject"][SPLIT.assign(records.frame) == "train"]))
    table = root / "participants.tsv"
    lines = table.read_text().splitlines()
    noted = [ln + ("\tleft-handed" if ln.startswith(f"sub-{subjects[-1]}\t") else "\tn/a")
             for ln in lines[1:]]  # fmt: skip
    table.write_text("\n".join([lines[0] + "\tnote", *noted]) + "\n")
    return root


def _records(root):
    columns = ["age", "sex", "diagnosis", "site"]
    if "note" in (root / "participants.tsv").read_text():
        columns.append("note")
    return ns.locate(root, schema=ns.schemas.fmriprep(res=TINY_RES),
                     variables=ns.tables.participants(columns))  # fmt: skip


def _plan(atlas, *cast):
    steps = [ns.t.Parcellate(atlas, mask=True), ns.t.Standardize(), ns.t.Connectivity(), *cast]
    return ns.assemble(steps, products=["bold", "connectivity"])


@pytest.fixture(scope="module")
def built(source, atlas, tmp_path_factory):
    """Train and test; every product in ``<split>-*.tar`` (which ``train-*.tar`` would
    confuse with the family's), bold alone in the family ``timeseries``, connectivity
    in TFRecord."""
    out = tmp_path_factory.mktemp("shards")
    formats = [WebDataset(), Family(WebDataset(), ("bold",), "timeseries"),
               Family(TFRecord(), "connectivity")]  # fmt: skip
    manifest = ns.write(_records(source), _plan(atlas), out, formats=formats, split=SPLIT,
                        shuffle=None, shards=ns.shards.by_count(2), progress=False)  # fmt: skip
    return out, manifest


def _shards(manifest, split, family, fmt="webdataset"):
    wanted = (split, fmt, family)
    return sorted(
        s["name"]
        for s in manifest["shards"]
        if (s["split"], s["format"], s.get("family")) == wanted
    )


def _webdataset(out, names) -> dict[str, dict]:
    """The samples as the webdataset library decodes them, by key."""
    urls = [str(out / name) for name in names]
    return {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False).decode()}


def test_the_card_is_huggingface_metadata_from_the_manifest_and_description(built):
    out, manifest = built
    header = _header(out)
    assert header["pretty_name"] == "Tiny resting state"
    assert header["license"] == "cc0-1.0"
    assert header["size_categories"] == ["n<1K"]
    assert "nishard" in header["tags"]
    digits = "[0-9]" * 6
    assert header["configs"] == [
        {"config_name": "default", "data_files": [
            {"split": "train", "path": f"train-{digits}.tar"},
            {"split": "test", "path": f"test-{digits}.tar"}]},
        {"config_name": "timeseries", "data_files": [
            {"split": "train", "path": f"train-timeseries-{digits}.tar"},
            {"split": "test", "path": f"test-timeseries-{digits}.tar"}]},
    ]  # fmt: skip
    infos = {info["config_name"]: info for info in header["dataset_info"]}
    for name, family in (("default", None), ("timeseries", "timeseries")):
        for entry in infos[name]["splits"]:
            shards = [s for s in manifest["shards"] if s["name"] in _shards(
                manifest, entry["name"], family)]  # fmt: skip
            assert entry["num_examples"] == manifest["splits"]["splits"][entry["name"]]["records"]
            assert entry["num_bytes"] == sum(s["bytes"] for s in shards)
    # datasets' own reader of card metadata takes the header: features and splits.
    card = datasets.info.DatasetInfosDict.from_dataset_card_data(DatasetCardData(**header))
    assert set(card) == {"default", "timeseries"}
    assert set(card["default"].features) == {"bold.npy", "connectivity.npy", "json", "__key__",
                                             "__url__"}  # fmt: skip
    assert set(card["timeseries"].features) == {"bold.npy", "json", "__key__", "__url__"}
    body = (out / CARD).read_text(encoding="utf-8")
    assert "```bibtex" in body and "Ada Lovelace and Alan Turing" in body
    assert "10.0000/tiny.1" in body and "Cite the tiny dataset." in body
    assert str(out) not in body and "/" + out.parts[1] not in body  # no absolute path


def test_datasets_loads_each_configuration_from_exactly_its_shards(built, source, tmp_path):
    out, manifest = built
    participants = {
        line.split("\t")[0].removeprefix("sub-"): line.split("\t")[-1]
        for line in (source / "participants.tsv").read_text().splitlines()[1:]
    }
    for config, family, fields in (("default", None, {"bold.npy", "connectivity.npy"}),
                                   ("timeseries", "timeseries", {"bold.npy"})):  # fmt: skip
        loaded = _load(str(out), config, cache=tmp_path / config)
        assert set(loaded) == {"train", "test"}
        for split in ("train", "test"):
            names = _shards(manifest, split, family)
            rows = loaded[split].with_format("numpy")
            # The glob takes this family's shards of this split, and no other.
            assert sorted({str(u).rsplit("/", 1)[-1] for u in rows["__url__"]}) == names
            truth = _webdataset(out, names)
            assert sorted(rows["__key__"]) == sorted(truth)
            for row in rows:
                sample = truth[str(row["__key__"])]
                assert set(row) == fields | {"json", "__key__", "__url__"}
                for field in fields:
                    np.testing.assert_array_equal(row[field], sample[field])
                metadata = {k: _plain(v) for k, v in row["json"].items()}
                assert metadata == sample["json"]
                note = participants[sample["json"]["subject"]]
                assert metadata["note"] == (None if note == "n/a" else note)


def _plain(value):
    """A NumPy-formatted scalar as the JSON value it came from."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def test_without_the_card_datasets_guesses_a_missing_variable_and_fails(built, tmp_path):
    """The premise of the declared features: datasets guesses from the first samples."""
    out, manifest = built
    first = _webdataset(out, _shards(manifest, "train", None)[:1])
    assert all(s["json"]["note"] is None for s in first.values())
    # A naive glob would mix the family's shards in.
    assert any("timeseries" in p.name for p in out.glob("train-*.tar"))
    files = {"train": str(out / data_files_glob("train", None))}
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as caught:
        _load("webdataset", data_files=files, cache=tmp_path / "guess")
    assert "null" in str(caught.value.__cause__)
    # With the card's features, the same files load.
    features = datasets.load_dataset_builder(str(out), cache_dir=str(tmp_path / "b")).info.features
    loaded = _load("webdataset", data_files=files, features=features, cache=tmp_path / "given")
    assert "left-handed" in {row["json"]["note"] for row in loaded["train"]}


def test_the_card_is_a_side_file_the_manifest_lists_and_verify_checks(built, tmp_path):
    out, manifest = built
    copy = shutil.copytree(out, tmp_path / "copy")
    entry = manifest["documents"]["card"]
    assert entry["file"] == CARD and CARD in side_files(manifest)
    assert verify(copy).ok
    (copy / CARD).write_text((copy / CARD).read_text() + "edited\n")
    problems = verify(copy).problems
    assert [p.shard for p in problems] == [CARD]


def test_bfloat16_shards_are_left_out_and_a_readable_family_is_the_default(source, atlas, tmp_path):
    plan = _plan(atlas, ns.t.Cast("bfloat16", keys=("connectivity",)))
    formats = [WebDataset(), Family(WebDataset(), ("bold",), "timeseries")]
    manifest = ns.write(_records(source), plan, tmp_path / "out", formats=formats,
                        shards=ns.shards.by_count(4), progress=False)  # fmt: skip
    out = tmp_path / "out"
    header = _header(out)
    # One split, "all", which datasets reserves: train in the card.
    assert header["configs"] == [{"config_name": "timeseries", "default": True, "data_files": [
        {"split": "train", "path": data_files_glob("all", "timeseries")}]}]  # fmt: skip
    body = (out / CARD).read_text(encoding="utf-8")
    assert "connectivity (bfloat16)" in body and "`all` | `train`" in body
    loaded = _load(str(out), cache=tmp_path / "card")
    assert loaded["train"].num_rows == manifest["records"]["written"]
    assert set(loaded["train"].features) == {"bold.npy", "json", "__key__", "__url__"}
    # What the card says of the shards of every product: datasets cannot read them.
    files = {"train": str(out / data_files_glob("all", None))}
    with pytest.raises(Exception, match=r"void|Unsupported numpy type"):
        _load("webdataset", data_files=files, cache=tmp_path / "bf16")


def test_card_text_is_pure_and_says_what_cannot_be_typed():
    shard = ShardInfo("all-000000.tar", "all", "webdataset", 2, 10240, "0" * 64, ("a", "b"))
    keys = {"bold": {"dtype": "float16", "shape": [None, 3, None]}}
    text = card_text(shards=[shard], keys=keys, names=["all"],
                     metadata={"x": {"int", "str"}, "y": set()}, description={})  # fmt: skip
    again = card_text(shards=[shard], keys=keys, names=["all"],
                      metadata={"x": {"int", "str"}, "y": set()}, description={})  # fmt: skip
    assert text == again
    assert "configs" not in yaml.safe_load(text.split("---\n")[1])
    assert "metadata of mixed types: x (int and str)" in text
    assert "no `dataset_description.json`" in text
    typed = card_text(shards=[shard], keys=keys, names=["all"], metadata={"y": set()},
                      description={"License": "Custom terms"})  # fmt: skip
    header = yaml.safe_load(typed.split("---\n")[1])
    assert header["license"] == "other" and header["license_name"] == "custom-terms"
    features = datasets.Features._from_yaml_list(header["dataset_info"][0]["features"])
    # Axes of varying length but the first: nested lists, not an ArrayND.
    float16 = datasets.Value("float16")
    assert features["bold.npy"] == datasets.List(datasets.List(datasets.List(float16), length=3))
    assert features["json"] == {"y": datasets.Value("null")}
    assert hf_split("all", ["all", "train"]) == "all_records"
