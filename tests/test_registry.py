"""Registries: one register()/from_dict() for every primitive a spec names."""

# String annotations, as nishard's own primitives have: from_dict checks scalar ones.
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from nishard.archives import FORMATS, Zarr, register_format
from nishard.builder.splits import SPLITS, Random, Stratified
from nishard.builder.splits import from_dict as split_from_dict
from nishard.errors import SpecError
from nishard.records import FILTERS, SCHEMAS, SOURCES, TABLES, Bids, Participants, Where
from nishard.records.sources import Url
from nishard.registry import Registry
from nishard.transforms import TRANSFORMS, Standardize
from nishard.workflow import EXECUTORS, FUSIONS, Greedy
from nishard.workflow import Local as LocalExecutor

#: One primitive of every registry, with options away from their defaults.
EXAMPLES = [
    (SCHEMAS, Bids(task="rest", metadata=("EchoTime",))),
    (TABLES, Participants(columns=("age", "sex"), session="ses")),
    (FILTERS, Where("age > 3")),
    (SOURCES, Url(listing="files.tsv", retries=5)),
    (TRANSFORMS, Standardize(method="zscore_sample")),
    (FORMATS, Zarr(zarr_format=2)),
    (SPLITS, Stratified("diagnosis", seed=3, fractions={"train": 0.5, "test": 0.5})),
    (EXECUTORS, LocalExecutor(jobs=2)),
    (FUSIONS, Greedy(memory_budget="2GiB")),
]


@dataclass(frozen=True)
class Toy:
    name: ClassVar[str] = "toy"
    size: int = 1
    label: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "label": self.label}


@pytest.fixture
def toys():
    return Registry("toy", (Toy,))


@pytest.mark.parametrize(("registry", "primitive"), EXAMPLES, ids=[r.kind for r, _ in EXAMPLES])
def test_every_registry_builds_back_what_to_dict_gives(registry, primitive):
    spec = primitive.to_dict()
    rebuilt = registry.from_dict(spec)
    assert rebuilt == primitive
    assert type(rebuilt) is type(primitive)
    assert rebuilt.to_dict() == spec


def test_the_examples_cover_every_registry_of_the_package():
    kinds = {registry.kind for registry, _ in EXAMPLES}
    assert kinds == {"schema", "table", "filter", "source", "transform", "format", "split",
                     "executor", "fusion"}  # fmt: skip
    assert all(isinstance(registry, Registry) for registry, _ in EXAMPLES)


def test_a_registry_reads_as_the_dict_it_replaced():
    assert SCHEMAS["bids"] is Bids
    assert "bids" in SCHEMAS and "bdis" not in SCHEMAS
    assert list(SCHEMAS) == ["fmriprep", "bids", "hcp", "regex"]
    assert dict(SPLITS.items())["stratified"] is Stratified
    assert sorted(EXECUTORS) == ["local", "pydra", "serial", "slurm-array", "tasks"]
    with pytest.raises(KeyError):
        SCHEMAS["bdis"]


def test_a_name_is_given_as_a_plain_string_for_the_defaults():
    assert SCHEMAS.from_dict("bids") == Bids()
    assert TRANSFORMS.from_dict("standardize") == Standardize()
    assert EXECUTORS.from_dict("local") == LocalExecutor()
    # Tables default to participants.tsv when the entry names no table.
    assert TABLES.from_dict({"columns": ["age"]}) == Participants(columns=("age",))


def test_a_duplicate_name_is_refused_unless_replaced(toys):
    assert toys.register(Toy) is Toy  # the same class again: nothing changes

    @dataclass(frozen=True)
    class Other(Toy):
        pass

    with pytest.raises(ValueError, match=r"a toy named 'toy' is registered already .*replace=True"):
        toys.register(Other)
    assert toys["toy"] is Toy
    assert toys.register(Other, replace=True) is Other
    assert toys["toy"] is Other


def test_register_is_a_decorator_with_or_without_options(toys):
    @toys.register
    @dataclass(frozen=True)
    class Big(Toy):
        name: ClassVar[str] = "big"

    @toys.register(name="small")
    @dataclass(frozen=True)
    class Small(Toy):
        pass

    assert toys["big"] is Big and toys["small"] is Small
    assert list(toys) == ["toy", "big", "small"]
    assert toys.from_dict({"name": "small", "size": 2}) == Small(size=2)
    assert toys.pop("small") is Small and "small" not in toys
    assert toys.pop("small", None) is None


def test_a_class_without_a_name_is_refused(toys):
    class Nameless:
        pass

    with pytest.raises(ValueError, match="Nameless: a toy is registered by a name"):
        toys.register(Nameless)
    assert list(toys) == ["toy"]


def test_an_unknown_name_is_named_with_the_kind_and_a_close_match():
    with pytest.raises(SpecError, match=r"unknown schema 'bdis' \(did you mean 'bids'\?\); "
                       r"known: bids, fmriprep, hcp, regex"):  # fmt: skip
        SCHEMAS.from_dict({"name": "bdis"})
    with pytest.raises(SpecError, match=r"unknown transform 'standardise' \(did you mean "
                       r"'standardize'\?\)"):  # fmt: skip
        TRANSFORMS.from_dict({"standardise": {}})
    with pytest.raises(SpecError, match=r"unknown format 'parquet'; known: hdf5, tfrecord"):
        FORMATS.from_dict("parquet")
    with pytest.raises(SpecError, match="unknown split 'randm' \\(did you mean 'random'"):
        split_from_dict({"name": "randm"})


def test_where_places_the_error_in_the_spec():
    with pytest.raises(SpecError, match=r"unknown input.schema 'bdis' \(did you mean"):
        SCHEMAS.from_dict("bdis", where="input.schema")
    with pytest.raises(SpecError, match=r"unknown input.variables\[0\].table 'phenotyp'"):
        TABLES.from_dict({"table": "phenotyp"}, where="input.variables[0]")
    with pytest.raises(SpecError, match=r"unknown execution.executor 'slurm'"):
        EXECUTORS.from_dict({"executor": "slurm"}, where="execution")
    with pytest.raises(SpecError, match=r"unknown transform at transforms\[1\] 'msk'"):
        TRANSFORMS.from_dict({"msk": {}}, where="transforms[1]")
    with pytest.raises(SpecError, match=r"unknown key 'ky' in transforms\[1\]\.mask "
                       r"\(did you mean 'key'\?\)"):  # fmt: skip
        TRANSFORMS.from_dict({"mask": {"ky": "bold"}}, where="transforms[1]")


def test_unknown_parameters_and_bad_values_are_named(toys):
    with pytest.raises(SpecError, match=r"unknown key 'sise' in toy toy \(did you mean "
                       r"'size'\?\); expected one of size, label"):  # fmt: skip
        toys.from_dict({"name": "toy", "sise": 2})
    with pytest.raises(SpecError, match=r"toy toy.size must be an integer, got '2'"):
        toys.from_dict({"name": "toy", "size": "2"})
    with pytest.raises(SpecError, match=r"split kfold: k must be an integer of at least 2"):
        SPLITS.from_dict({"name": "kfold", "k": 1})
    with pytest.raises(SpecError, match=r"toy must be a mapping, got list"):
        toys.from_dict(["toy"])
    with pytest.raises(SpecError, match=r"transform must name one transform, got \['a', 'b'\]"):
        TRANSFORMS.from_dict({"a": {}, "b": {}})


def test_the_old_functions_are_the_registries_own():
    @dataclass(frozen=True)
    class Npy:
        name: ClassVar[str] = "npy_registry_test"
        extension: ClassVar[str] = ".npy"

        def to_dict(self): return {"name": self.name}  # fmt: skip

        def open(self, path): ...  # fmt: skip
        def encode(self, key, products, meta): ...  # fmt: skip
        def sample_size(self, key, fields): ...  # fmt: skip
        def file_size(self, content): ...  # fmt: skip

    try:
        assert register_format(Npy) is Npy
        assert FORMATS.from_dict("npy_registry_test") == Npy()
        with pytest.raises(ValueError, match="registered already"):
            FORMATS.register(type("Npy", (Npy,), {}))
    finally:
        FORMATS.pop(Npy.name, None)
    # The format check still runs on the registry's own register().
    with pytest.raises(TypeError, match=r"Toy\.extension must be a string"):
        FORMATS.register(Toy)
    assert "toy" not in FORMATS
    assert split_from_dict({"name": "random", "seed": 4}) == Random(seed=4)
