"""Disaggregation: products to different formats and shard families, read by real readers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import webdataset as wds
import yaml

import nishard as ns
from nishard.archives import Family, TFRecord, WebDataset
from nishard.archives.decoders import DECODERS
from nishard.archives.inspect import summarize
from nishard.archives.verify import verify
from tests.builder.test_write import _records
from tests.helpers import write_spec


def _plan(atlas: str) -> ns.Plan:
    """Region time series and their connectivity: two products of one cleaned signal."""
    steps = [ns.t.Parcellate(atlas, mask=True), ns.t.Standardize(), ns.t.Connectivity()]
    return ns.assemble(steps, products=["bold", "connectivity"])


def _build(tiny, atlas, out, formats, **kwargs) -> dict:
    return ns.write(_records(tiny), _plan(atlas), out, formats=formats, progress=False,
                    shards=ns.shards.by_count(4), **kwargs)  # fmt: skip


def _decoded(out, manifest, fmt: str, family: str | None) -> dict[str, dict]:
    samples = {}
    for shard in manifest["shards"]:
        if shard["format"] == fmt and shard.get("family") == family:
            for sample in DECODERS[fmt](out / shard["name"]):
                samples[sample.key] = sample.arrays
    return samples


FAMILIES = [Family(WebDataset(), ("bold",), "timeseries"), Family(TFRecord(), "connectivity")]


@pytest.fixture(scope="module")
def together(tiny, atlas, tmp_path_factory):
    out = tmp_path_factory.mktemp("together")
    return out, _build(tiny, atlas, out, [WebDataset()])


def test_each_family_holds_its_products_in_shards_of_its_name(tiny, atlas, tmp_path, together):
    manifest = _build(tiny, atlas, tmp_path, FAMILIES)
    names = sorted(s["name"] for s in manifest["shards"])
    assert names[0] == "all-connectivity-000000.tfrecord"
    assert names[-1].startswith("all-timeseries-") and names[-1].endswith(".tar")
    assert {(s["format"], s["family"], tuple(s["products"])) for s in manifest["shards"]} == {
        ("webdataset", "timeseries", ("bold",)), ("tfrecord", "connectivity", ("connectivity",))
    }  # fmt: skip
    # The webdataset library reads the time series family: bold and metadata, nothing else.
    urls = [str(tmp_path / n) for n in names if n.endswith(".tar")]
    fields = {frozenset(k for k in s if not k.startswith("__"))
              for s in wds.WebDataset(urls, shardshuffle=False)}  # fmt: skip
    assert fields == {frozenset({"bold.npy", "json"})}
    # Every family has every sample, with the arrays of a build of all products together.
    reference = _decoded(together[0], together[1], "webdataset", None)
    bold = _decoded(tmp_path, manifest, "webdataset", "timeseries")
    conn = _decoded(tmp_path, manifest, "tfrecord", "connectivity")
    assert set(bold) == set(conn) == set(reference)
    for key, arrays in reference.items():
        assert set(bold[key]) == {"bold"} and set(conn[key]) == {"connectivity"}
        np.testing.assert_array_equal(bold[key]["bold"], arrays["bold"])
        np.testing.assert_array_equal(conn[key]["connectivity"], arrays["connectivity"])
    assert set(manifest["keys"]) == {"bold", "connectivity"}
    assert manifest["indexes"]["all-timeseries"]["file"] == "all-timeseries.wids.json"
    report = verify(tmp_path, progress=False)
    assert report.ok, report.problems
    counted = summarize(manifest)["splits"]["all"]
    assert {k: v["samples"] for k, v in counted.items()} == {
        "webdataset timeseries": len(reference), "tfrecord connectivity": len(reference)
    }  # fmt: skip


def test_verify_counts_each_family_apart(tiny, atlas, tmp_path):
    manifest = _build(tiny, atlas, tmp_path, FAMILIES)
    # A manifest that lost the last shard of one family (and the shard with it).
    last = [s for s in manifest["shards"] if s["family"] == "timeseries"][-1]
    manifest["shards"].remove(last)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / last["name"]).unlink()
    problems = [str(p) for p in verify(tmp_path, progress=False).problems]
    assert any("in webdataset 'timeseries' shards" in p for p in problems), problems
    assert not any("'connectivity' shards" in p for p in problems)


def test_products_each_from_a_spec(tiny, atlas, tmp_path):
    output = {"path": "shards", "formats": [{"name": "webdataset", "products": "each"}],
              "products": ["bold", "connectivity"], "shards": {"max_samples": 4}}  # fmt: skip
    transforms = [{"parcellate": {"atlas": atlas, "mask": True}}, "standardize", "connectivity"]
    spec = write_spec(tmp_path, tiny, output=output, transforms=transforms)
    manifest = ns.build(ns.load_spec(spec), progress=False)
    assert {(s["name"].split("-")[1], s["family"]) for s in manifest["shards"]} == {
        ("bold", "bold"),
        ("connectivity", "connectivity"),
    }
    assert manifest["spec"]["output"]["formats"] == [
        {"name": "webdataset", "products": "each", "family": None}
    ]
    again = yaml.safe_load(spec.read_text())
    assert ns.load_spec(spec).spec == ns.parse_spec(again, base=tmp_path).spec


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ([Family(WebDataset(), ("regions",))], "no product ['regions']"),
        ([WebDataset(), WebDataset()], "webdataset is written twice with all products"),
        ([Family(WebDataset(), "bold", "x"), Family(WebDataset(), "connectivity", "x")],
         "written twice with family 'x'"),
    ],
)  # fmt: skip
def test_refused_families(tiny, atlas, tmp_path, formats, message):
    with pytest.raises(ns.SpecError, match=re.escape(message)):
        _build(tiny, atlas, tmp_path, formats)


def test_bad_family_names_and_spec_entries(tiny, tmp_path):
    with pytest.raises(ValueError, match="family name 'a-b'"):
        Family(WebDataset(), ("bold",), "a-b")
    with pytest.raises(ValueError, match="at least one product"):
        Family(WebDataset(), ())
    spec = write_spec(tmp_path, tiny, output={"path": "s", "formats": [
        {"name": "tfrecord", "family": "x"}]})  # fmt: skip
    with pytest.raises(ns.SpecError, match="a family names its products"):
        ns.load_spec(spec)


def test_an_interrupted_family_build_resumes_to_the_same_bytes(tiny, atlas, tmp_path,
                                                               monkeypatch):  # fmt: skip
    expected = _build(tiny, atlas, tmp_path / "ref", FAMILIES)
    calls = {"n": 0}
    encode = TFRecord.encode

    def dying(self, key, products, meta):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return encode(self, key, products, meta)

    monkeypatch.setattr(TFRecord, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        _build(tiny, atlas, tmp_path / "out", FAMILIES)
    monkeypatch.setattr(TFRecord, "encode", encode)
    assert any((tmp_path / "out").glob("all-connectivity-000000.tfrecord"))
    again = _build(tiny, atlas, tmp_path / "out", FAMILIES)
    # The spec names the output folder, so it (and the checksum of the content) differs.
    unnamed = {"spec", "checksum"}
    assert {k: v for k, v in again.items() if k not in unnamed} == {
        k: v for k, v in expected.items() if k not in unnamed
    }
    for shard in expected["shards"]:
        same = (tmp_path / "out" / shard["name"]).read_bytes()
        assert same == (tmp_path / "ref" / shard["name"]).read_bytes(), shard["name"]
