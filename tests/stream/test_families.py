"""Streams pick the archive family that holds the keys asked for."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nishard as ns
from nishard.archives import Family, TFRecord, WebDataset
from nishard.stream.catalog import open_catalog
from tests.archives.test_families import _build, _decoded


@pytest.fixture(scope="module")
def families(tiny, atlas, tmp_path_factory):
    out = tmp_path_factory.mktemp("families")
    formats = [WebDataset(), Family(WebDataset(), ("connectivity",)),
               Family(TFRecord(), ("connectivity",), "conn")]  # fmt: skip
    return out, _build(tiny, atlas, out, formats)


def test_the_narrowest_family_with_the_keys_is_read(families):
    out, manifest = families
    expected = _decoded(out, manifest, "webdataset", None)
    for fmt in ("webdataset", "tfrecord"):
        samples = list(ns.stream.open(out, "all", format=fmt).keys("connectivity").arrays())
        assert {s["__key__"] for s in samples} == set(expected)
        for sample in samples:
            want = expected[sample["__key__"]]["connectivity"]
            np.testing.assert_array_equal(sample["connectivity"], want)
    catalog = open_catalog(out, ["connectivity"], "all", "webdataset")
    assert {shard.path.name.split("-")[1] for shard in catalog.shards} == {"connectivity"}
    full = open_catalog(out, ["bold"], "all", "webdataset")
    assert all(re.fullmatch(r"all-\d{6}\.tar", shard.path.name) for shard in full.shards)
    both = next(iter(ns.stream.open(out, "all").keys("bold", "connectivity").arrays()))
    assert set(both) >= {"bold", "connectivity"}


def test_no_family_with_every_key_is_an_error(families):
    out, _ = families
    with pytest.raises(KeyError, match="no family of shards holds all of"):
        ns.stream.open(out, "all", format="tfrecord").keys("bold").arrays()
