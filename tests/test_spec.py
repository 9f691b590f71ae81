"""YAML specs: strict keys, clear errors, and the same run as the Python calls."""

import pytest
import yaml

import nishard as ns
from tests.helpers import TINY_RES, write_spec


def test_unknown_keys_are_named_with_their_place_and_a_suggestion(tiny, tmp_path):
    spec = write_spec(tmp_path, tiny)
    raw = yaml.safe_load(spec.read_text())
    raw["trasforms"] = raw.pop("transforms")
    spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(ns.SpecError, match=r"spec.yaml: unknown key 'trasforms' in the spec "
                       r"\(did you mean 'transforms'\?\)"):  # fmt: skip
        ns.load_spec(spec)

    for section, bad, where in [
        ("output", {"path": "s", "shard": {}}, "unknown key 'shard' in output"),
        ("transforms", [{"mask": {}}, {"standardise": {}}], "unknown transform at transforms"),
        ("transforms", [{"standardize": {"ddof": 1}}], "unknown key 'ddof' in transforms.0."),
        ("execution", {"executor": "slurm"}, "unknown execution.executor 'slurm'"),
    ]:
        path = write_spec(tmp_path, tiny, **{section: bad})
        with pytest.raises(ns.SpecError, match=where.replace(".0.", r"\[0\]\.standardize")):
            ns.load_spec(path)


def test_a_bad_value_is_reported_where_it_stands(tiny, tmp_path):
    path = write_spec(tmp_path, tiny, transforms=[{"standardize": {"method": "robust"}}])
    with pytest.raises(ns.SpecError, match=r"transforms\[0\]\.standardize: method one of"):
        ns.load_spec(path)
    path = write_spec(tmp_path, tiny, output={"path": "s", "shards": {"max_bytes": "lots"}})
    with pytest.raises(ns.SpecError, match=r"output\.shards: a size like 512MB"):
        ns.load_spec(path)


def test_a_missing_input_folder_is_named(tmp_path):
    spec = write_spec(tmp_path, tmp_path / "no-such-dataset")
    with pytest.raises(ns.SpecError, match=r"input folder not found: .*no-such-dataset"):
        ns.build(spec, progress=False)


def test_yaml_and_python_give_the_same_shards(tiny, tmp_path):
    from_yaml = ns.build(write_spec(tmp_path, tiny), progress=False)
    records = ns.locate(
        tiny,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(method="zscore_sample")])
    from_python = ns.write(
        records, plan, tmp_path / "python", shards=ns.shards.by_count(3), progress=False
    )
    assert [s["sha256"] for s in from_python["shards"]] == [
        s["sha256"] for s in from_yaml["shards"]
    ]
    # The manifests differ only by the paths as the user wrote them.
    assert from_python["spec"]["transforms"] == from_yaml["spec"]["transforms"]
    assert from_python["spec"]["input"]["schema"] == from_yaml["spec"]["input"]["schema"]


def test_the_normalized_spec_reads_back_as_itself(tiny, tmp_path):
    pipeline = ns.load_spec(write_spec(tmp_path, tiny))
    again = tmp_path / "again.yaml"
    again.write_text(pipeline.to_yaml())
    assert ns.load_spec(again).spec == pipeline.spec
    assert pipeline.spec["output"]["shards"] == {"max_samples": 3, "max_bytes": 512_000_000}
