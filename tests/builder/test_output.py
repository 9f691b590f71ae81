"""Output: one value for the output section, read from and written back to a spec."""

import re
from pathlib import Path

import pytest

from nishard.archives import HDF5, Family, ShardSpec, TFRecord, WebDataset
from nishard.builder import Output, output_spec
from nishard.builder.splits import KFold, Stratified
from nishard.errors import SpecError
from nishard.spec import parse_spec

SECTION = {
    "path": "shards",
    "formats": [
        "webdataset",
        {"name": "tfrecord", "products": ["connectivity"], "family": "conn"},
        {"name": "hdf5", "products": "each"},
    ],
    "shards": {"max_samples": 8, "max_bytes": "1GiB"},
    "split": {"name": "stratified", "by": ["diagnosis", "site"], "seed": 2},
    "shuffle": None,
    "products": ["regions", "connectivity"],
}


def test_the_defaults_are_those_a_spec_has_always_had():
    assert Output.from_dict({"path": "out"}) == Output("out")
    assert Output("out").to_dict() == {
        "path": "out",
        "formats": [{"name": "webdataset"}],
        "shards": {"max_samples": None, "max_bytes": 512_000_000},
        "split": "all",
        "shuffle": 0,
    }


def test_a_section_is_read_into_its_primitives():
    out = Output.from_dict(SECTION)
    assert out.path == "shards"
    assert out.formats == (
        WebDataset(),
        Family(TFRecord(), ("connectivity",), "conn"),
        Family(HDF5(), "each"),
    )
    assert out.shards == ShardSpec(max_samples=8, max_bytes=2**30)
    assert out.split == Stratified(("diagnosis", "site"), seed=2)
    assert out.shuffle is None
    assert out.products == ("regions", "connectivity")


def test_to_dict_reads_back_as_the_same_output():
    out = Output.from_dict(SECTION)
    written = out.to_dict()
    assert list(written) == ["path", "formats", "shards", "split", "shuffle", "products"]
    assert written["shards"] == {"max_samples": 8, "max_bytes": 2**30}
    assert written["formats"][1] == {"name": "tfrecord", "products": ["connectivity"],
                                     "family": "conn"}  # fmt: skip
    assert Output.from_dict(written) == out
    assert Output.from_dict(written).to_dict() == written


def test_output_spec_is_the_output_without_products():
    formats, split = [WebDataset(), TFRecord()], KFold(3, fold=1)
    spec = output_spec(Path("out"), formats, ShardSpec(max_samples=4), split, shuffle=7)
    assert spec == {
        "path": "out",
        "formats": [{"name": "webdataset"}, {"name": "tfrecord"}],
        "shards": {"max_samples": 4, "max_bytes": 512_000_000},
        "split": split.to_dict(),
        "shuffle": 7,
    }
    assert Output.from_dict(spec) == Output("out", tuple(formats), ShardSpec(4), split, 7)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"path": "s", "shard": {}}, "unknown key 'shard' in output (did you mean 'shards'?)"),
        ({"formats": ["tfrecord"]}, "missing key 'path' in output"),
        ("shards", "output must be a mapping, got str"),
        ({"path": "s", "formats": "tfrecord"}, "output.formats must be a list, got str"),
        ({"path": "s", "formats": ["tfrecrod"]},
         "unknown output.formats[0] 'tfrecrod' (did you mean 'tfrecord'?)"),
        ({"path": "s", "formats": [{"name": "zarr", "format": 2}]},
         "unknown key 'format' in output.formats[0] (did you mean 'zarr_format'?)"),
        ({"path": "s", "formats": [{"name": "tfrecord", "family": "x"}]},
         "output.formats[0]: a family names its products"),
        ({"path": "s", "shards": {"max_bytes": "lots"}},
         "output.shards.max_bytes: a size like 512MB or 1GiB, got 'lots'"),
        ({"path": "s", "shards": "512MB"},
         "output.shards must be a mapping of max_samples and max_bytes (either may be left "
         "out), e.g. {max_bytes: 512MB}; got str: '512MB'"),
        ({"path": "s", "shards": {"max_samples": "3"}}, "output.shards: max_samples must be a"),
        ({"path": "s", "split": "../x"}, "output.split: split name '../x'"),
        ({"path": "s", "split": {"name": "kfold", "k": 1}}, "output.split: k must be an integer"),
        ({"path": "s", "split": {"name": "random", "by": "age"}},
         "unknown key 'by' in output.split"),
        ({"path": "s", "shuffle": "yes"}, "output.shuffle must be an integer seed or null"),
        ({"path": "s", "shuffle": True}, "output.shuffle must be an integer seed or null"),
        ({"path": "s", "products": "bold"}, "output.products must be a list, got str"),
    ],
)  # fmt: skip
def test_a_bad_section_is_named_where_it_stands(section, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        Output.from_dict(section)


def test_the_pipeline_holds_the_output_of_its_spec(tmp_path):
    raw = {
        "input": {"path": "data", "schema": "bids"},
        "transforms": ["mask"],
        "output": {"path": "shards", "shards": {"max_samples": 3}, "products": ["bold"]},
    }
    pipeline = parse_spec(raw, tmp_path)
    assert pipeline.target == Output.from_dict(raw["output"])
    assert pipeline.spec["output"] == pipeline.target.to_dict()
    assert pipeline.output == tmp_path / "shards"
    assert (pipeline.formats, pipeline.shards) == ((WebDataset(),), ShardSpec(max_samples=3))
    assert (pipeline.split, pipeline.shuffle, pipeline.products) == ("all", 0, ("bold",))

    elsewhere = pipeline.with_overrides(output=tmp_path / "other")
    assert elsewhere.output == (tmp_path / "other").absolute()
    assert elsewhere.target.path == "other"
    assert elsewhere.spec["output"] == {**pipeline.spec["output"], "path": "other"}
    assert elsewhere.shards == pipeline.shards
