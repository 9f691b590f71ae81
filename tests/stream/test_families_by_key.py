"""Products written to families of different formats are streamed by key alone.

The README's case: the time series (``bold``) to tar, the connectivity to TFRecord, and no
shard of every product. ``ns.stream.open(folder).keys("connectivity")`` finds the format
whose family holds the key (it was a ``KeyError`` unless ``format="tfrecord"`` was given).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nishard as ns
from nishard.archives import HDF5, Family, TFRecord, WebDataset
from nishard.stream.catalog import open_catalog
from tests.archives.test_families import FAMILIES, _build, _decoded


@pytest.fixture(scope="module")
def split_products(tiny, atlas, tmp_path_factory):
    out = tmp_path_factory.mktemp("by-key")
    return out, _build(tiny, atlas, out, FAMILIES)


@pytest.mark.parametrize(("key", "fmt", "family"),
                         [("connectivity", "tfrecord", "connectivity"),
                          ("bold", "webdataset", "timeseries")])  # fmt: skip
def test_a_key_is_read_from_the_format_whose_family_holds_it(split_products, key, fmt, family):
    out, manifest = split_products
    expected = _decoded(out, manifest, fmt, family)
    stream = ns.stream.open(out).keys(key)  # no format named
    catalog = stream.catalog()
    assert (catalog.format, {s.name.split("-")[1] for s in catalog.shards}) == (fmt, {family})
    samples = list(stream.arrays())
    assert [s["__key__"] for s in samples] == list(expected)
    for sample in samples:
        np.testing.assert_array_equal(sample[key], expected[sample["__key__"]][key])
    # The same through the torch loader, batched.
    loader = torch.utils.data.DataLoader(stream.batch(2).torch(), batch_size=None)
    got = torch.cat([batch[key] for batch in loader]).numpy()
    np.testing.assert_array_equal(got, np.stack([expected[k][key] for k in expected]))


def test_keys_that_no_family_holds_together_name_each_formats_families(split_products):
    out, _ = split_products
    for stream in (ns.stream.open(out).keys("bold", "connectivity"), ns.stream.open(out)):
        with pytest.raises(KeyError, match="no family of shards holds all of") as raised:
            stream.arrays()
        message = str(raised.value)
        assert "'webdataset': {'timeseries': ['bold']}" in message
        assert "'tfrecord': {'connectivity': ['connectivity']}" in message
    # A format named is still the one read: its families are searched alone.
    with pytest.raises(KeyError, match="no family of shards holds all of"):
        ns.stream.open(out, format="webdataset").keys("connectivity").torch()


def test_webdataset_is_preferred_and_the_readers_skip_formats_they_cannot_read(
    tiny, atlas, tmp_path
):
    # HDF5 holds connectivity first in the manifest, then TFRecord, then tar: the offset
    # readers pick a format they read; webdataset when it holds the key.
    formats = [Family(HDF5(), ("connectivity",)), Family(TFRecord(), ("connectivity",)),
               Family(WebDataset(), ("connectivity",))]  # fmt: skip
    _build(tiny, atlas, tmp_path, formats)
    assert open_catalog(tmp_path, ["connectivity"]).format == "webdataset"
    _build(tiny, atlas, tmp_path / "two", formats[:2])
    assert open_catalog(tmp_path / "two", ["connectivity"]).format == "tfrecord"
    # arrays() reads HDF5 too: the manifest's first format, webdataset absent.
    assert open_catalog(tmp_path / "two", ["connectivity"], streamable=False).format == "hdf5"
    assert len(list(ns.stream.open(tmp_path / "two").keys("connectivity").arrays())) > 0
