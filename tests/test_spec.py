"""YAML specs: strict keys, clear errors, and the same run as the Python calls."""

import re

import pytest
import yaml

import nishard as ns
from nishard.pipeline import locate_records
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
    with pytest.raises(ns.SpecError, match=r"output\.shards\.max_bytes: a size like 512MB"):
        ns.load_spec(path)


def test_a_missing_input_folder_is_named(tmp_path):
    spec = write_spec(tmp_path, tmp_path / "no-such-dataset")
    with pytest.raises(ns.SpecError, match=r"input folder not found: .*no-such-dataset"):
        ns.build(spec, progress=False)


def test_yaml_and_python_give_the_same_shards_and_spec(tiny, tmp_path):
    from_yaml = ns.build(write_spec(tmp_path, tiny), progress=False)
    records = ns.locate(
        tiny,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
    )
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize(method="zscore_sample")])
    shards = ns.shards.ShardSpec(max_samples=3)
    out = tmp_path / "shards"
    from_python = ns.write(records, plan, out, shards=shards, progress=False)
    assert from_python["shards"] == from_yaml["shards"]
    # The specs differ only by the output path, which YAML writes relative to its file.
    assert from_yaml["spec"]["output"]["path"] == "shards"
    from_yaml["spec"]["output"]["path"] = str(out)
    assert from_python["spec"] == from_yaml["spec"]


def test_yaml_types_are_checked_or_coerced(tiny, tmp_path):
    numeric_res = write_spec(tmp_path, tiny, input={"path": str(tiny), "schema": {
        "name": "fmriprep", "res": int(TINY_RES)}})  # fmt: skip
    assert ns.load_spec(numeric_res).schema.res == TINY_RES
    for section, bad, message in [
        ("output", {"path": "s", "shards": {"max_samples": "3"}}, "max_samples must be a"),
        ("execution", {"executor": "local", "jobs": "many"}, "execution.jobs must be an int"),
        ("execution", {"executor": "serial", "jobs": 2}, "unknown key 'jobs' in execution"),
        ("execution", {"executor": "local", "worker": "cf"}, "unknown key 'worker' in execution"),
        ("execution", {"executor": "pydra", "wroker": "cf"}, "did you mean 'worker'"),
        ("execution", {"executor": "pydra", "batch": 0}, "batch must be a positive int"),
        ("output", {"path": "s", "split": "../x"}, "output.split: split name '../x'"),
    ]:
        with pytest.raises(ns.SpecError, match=re.escape(message)):
            ns.load_spec(write_spec(tmp_path, tiny, **{section: bad}))


def test_pydra_options_come_from_the_execution_section(tiny, tmp_path):
    execution = {"executor": "pydra", "worker": "slurm", "jobs": 8, "batch": 16,
                 "cache_dir": "/scratch/nishard", "options": {"sbatch_args": "--mem=8G"},
                 "memory_budget": "2GiB"}  # fmt: skip
    pipeline = ns.load_spec(write_spec(tmp_path, tiny, execution=execution))
    assert pipeline.executor == ns.executors.pydra(
        "slurm", jobs=8, batch=16, cache_dir="/scratch/nishard", sbatch_args="--mem=8G"
    )
    assert pipeline.spec["execution"] == execution


def test_the_normalized_spec_reads_back_as_itself(tiny, tmp_path):
    pipeline = ns.load_spec(write_spec(tmp_path, tiny))
    again = tmp_path / "again.yaml"
    again.write_text(pipeline.to_yaml())
    assert ns.load_spec(again).spec == pipeline.spec
    assert pipeline.spec["output"]["shards"] == {"max_samples": 3, "max_bytes": 512_000_000}
    unlimited = write_spec(tmp_path, tiny, output={"path": "s", "shards": {
        "max_samples": 3, "max_bytes": None}})  # fmt: skip
    spec = ns.load_spec(unlimited).spec
    again.write_text(yaml.safe_dump(spec))
    assert ns.load_spec(again).shards == ns.shards.by_count(3)


def test_every_locate_primitive_is_reachable_from_yaml_and_round_trips(tmp_path):
    from tests.records import layouts

    layouts.raw_bids(tmp_path / "raw")
    (tmp_path / "raw" / "phenotype").mkdir()
    (tmp_path / "raw" / "phenotype" / "mood.tsv").write_text(
        "participant_id\tmood\nsub-01\t4\nsub-02\t2\n"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "input": {
                    "path": "raw",
                    "schema": {"name": "bids", "metadata": ["EchoTime"]},
                    "stage": ["bold"],
                    "variables": [
                        {"table": "participants", "columns": ["group"]},
                        {"table": "phenotype", "measure": "mood"},
                    ],
                    "filters": [
                        {"name": "entities", "include": {"task": ["rest"]}},
                        {"name": "where", "query": "mood > 3"},
                    ],
                    "level": "subject",
                },
                "transforms": [],
                "output": {"path": "out"},
            }
        )
    )
    pipeline = ns.load_spec(spec)
    records = locate_records(pipeline)
    assert list(records.frame.index) == ["sub-01"]
    assert records.frame.loc["sub-01", "mood"] == 4
    assert len(records.frame.loc["sub-01", "runs"]) == 2  # the rest runs only
    again = tmp_path / "again.yaml"
    again.write_text(pipeline.to_yaml())
    assert ns.load_spec(again).spec == pipeline.spec
    assert records.spec == {**pipeline.spec["input"], "path": str(pipeline.root)}


def test_products_memory_cache_and_atlas_paths_from_yaml(tiny, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    atlas = tiny / "truth" / "networks.nii.gz"
    spec = write_spec(
        folder, tiny,
        transforms=[
            {"maps": {"atlas": str(atlas)}},
            {"clean": {"filter": None}},
            {"connectivity": {"vectorize": True}},
        ],
        output={"path": "shards", "products": ["regions", "connectivity"]},
        execution={"executor": "serial", "memory_budget": "1GiB", "cache": "cache"},
    )  # fmt: skip
    pipeline = ns.load_spec(spec)
    assert pipeline.products == ("regions", "connectivity")
    assert pipeline.fusion.budget == 2**30 and pipeline.cache == folder / "cache"
    again = ns.spec.parse_spec(yaml.safe_load(pipeline.to_yaml()), folder)
    assert (again.products, again.fusion, again.cache) == (
        pipeline.products, pipeline.fusion, pipeline.cache
    )  # fmt: skip

    manifest = ns.build(pipeline, progress=False)
    assert set(manifest["keys"]) >= {"regions", "connectivity"}
    assert not any(key.startswith("bold") for key in manifest["keys"])
    assert any((folder / "cache").rglob("*.joblib"))

    # A relative atlas path is relative to the spec file, as the other paths are.
    raw = yaml.safe_load(spec.read_text())
    (folder / "atlas.nii.gz").write_bytes(atlas.read_bytes())
    raw["transforms"][0] = {"maps": {"atlas": "atlas.nii.gz"}}
    assert ns.spec.parse_spec(raw, folder).transforms[0].atlas == str(folder / "atlas.nii.gz")

    raw["execution"]["memory_budget"] = "lots"
    with pytest.raises(ns.SpecError, match=r"execution\.memory_budget: a size like 512MB"):
        ns.spec.parse_spec(raw, folder)
    raw["execution"]["memory_budget"] = "1GiB"
    raw["output"]["products"] = ["regoins"]
    with pytest.raises(ns.SpecError, match="product 'regoins'"):
        ns.build(ns.spec.parse_spec(raw, folder), progress=False)


def test_the_budget_has_one_name(tiny, tmp_path):
    """``memory`` is a joblib cache to scikit-learn and nilearn users: the spec's budget is
    ``memory_budget``, and the old key is refused with the new name."""
    spec = write_spec(tmp_path, tiny, execution={"executor": "serial", "memory": "1GiB"})
    with pytest.raises(ns.SpecError, match=r"execution\.memory is now execution\.memory_budget"):
        ns.load_spec(spec)
    spec = write_spec(tmp_path, tiny, execution={"executor": "serial", "memory_budget": "1GiB"})
    pipeline = ns.load_spec(spec)
    assert pipeline.fusion.to_dict() == {"name": "greedy", "memory_budget": "1GiB"}
    assert pipeline.with_overrides(memory_budget="2GiB").fusion.budget == 2 * 2**30


@pytest.mark.parametrize("name", ["trainé", "a-b", "a b"])
def test_one_rule_for_split_names(tiny, tmp_path, name):
    """The same names are refused in a spec and in Python (they start shard file names)."""
    spec = write_spec(tmp_path, tiny, output={"path": "shards", "split": name})
    with pytest.raises(ns.SpecError, match="use ASCII letters, digits and _"):
        ns.load_spec(spec)
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES))
    with pytest.raises(ns.SpecError, match="use ASCII letters, digits and _"):
        plan = ns.assemble([ns.t.Standardize()])
        ns.write(records, plan, tmp_path / "out", split=name, progress=False)
