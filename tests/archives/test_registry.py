"""The format registry: built-in formats by name, and a user's format in a few lines."""

import textwrap
import zipfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import nishard as ns
from nishard.archives import FORMATS, HDF5, TFRecord, WebDataset, Zarr, register_format
from nishard.archives.encode import encode_json, encode_npy
from nishard.errors import SpecError
from tests.helpers import TINY_RES, write_spec


class NpzShard:
    """One uncompressed zip of ``<key>.<field>`` members: what ``np.load`` reads as npz."""

    def __init__(self, path: str):
        self._zip = zipfile.ZipFile(path, "w")

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        for field, data in sorted(fields.items()):
            self._zip.writestr(zipfile.ZipInfo(f"{key}.{field}"), data)

    def close(self) -> None:
        self._zip.close()


@dataclass(frozen=True)
class Npz:
    """A toy format, as a user would write one."""

    name: ClassVar[str] = "npz_test"
    extension: ClassVar[str] = ".npz"

    label: str = "bold"

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label}

    def open(self, path: str) -> NpzShard:
        return NpzShard(path)

    def encode(self, key: str, products: dict, meta: dict) -> dict[str, bytes]:
        fields = {f"{self.label}.npy": encode_npy(products["bold"])}
        fields["json.npy"] = encode_npy(np.frombuffer(encode_json(meta), np.uint8))
        return fields

    def sample_size(self, key: str, fields: dict[str, bytes]) -> int:
        return sum(2 * len(f"{key}.{f}") + 76 + len(data) for f, data in fields.items())

    @staticmethod
    def file_size(content: int) -> int:
        return content + 22


@pytest.fixture
def npz():
    """The toy format, registered for one test."""
    yield register_format(Npz)
    FORMATS.pop(Npz.name)


def test_the_built_in_formats_are_registered_by_name():
    assert FORMATS["webdataset"] is WebDataset
    assert FORMATS["tfrecord"] is TFRecord
    assert FORMATS["hdf5"] is HDF5
    assert FORMATS["zarr"] is Zarr


def test_a_registered_format_is_written_by_the_python_api(npz, tiny, tmp_path):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize()])
    manifest = ns.write(
        records, plan, tmp_path, formats=[npz(label="x")], shards=ns.shards.by_count(5),
        progress=False,
    )  # fmt: skip
    assert manifest["spec"]["output"]["formats"] == [{"name": "npz_test", "label": "x"}]
    names = [s["name"] for s in manifest["shards"]]
    assert names == [f"all-{i:06d}.npz" for i in range(len(names))]
    seen = 0
    for name in names:
        with np.load(tmp_path / name) as arrays:
            for member in arrays.files:
                if member.endswith(".x"):
                    assert arrays[member].dtype == np.float32
                    seen += 1
    assert seen == len(records)


def test_a_registered_format_is_found_by_name_in_a_yaml_spec(npz, tiny, tmp_path):
    output = {
        "path": "shards",
        "formats": ["webdataset", {"name": "npz_test", "label": "y"}],
        "shards": {"max_samples": 6},
    }
    spec = write_spec(tmp_path, tiny, output=output)
    pipeline = ns.load_spec(spec)
    assert pipeline.formats == (WebDataset(), npz(label="y"))
    manifest = ns.build(pipeline, progress=False)
    extensions = {s["name"].split(".", 1)[1] for s in manifest["shards"]}
    assert extensions == {"tar", "npz"}


def test_built_in_formats_are_found_by_name_with_their_options(tiny, tmp_path):
    output = {"path": "shards", "formats": ["tfrecord", "hdf5", {"name": "zarr", "zarr_format": 2}]}
    pipeline = ns.load_spec(write_spec(tmp_path, tiny, output=output))
    assert pipeline.formats == (TFRecord(), HDF5(), Zarr(zarr_format=2))
    assert pipeline.spec["output"]["formats"][2] == {"name": "zarr", "zarr_format": 2}


def test_an_unregistered_name_is_a_spec_error(tiny, tmp_path):
    output = {"path": "shards", "formats": ["npz_test"]}
    with pytest.raises(SpecError, match="npz_test"):
        ns.load_spec(write_spec(tmp_path, tiny, output=output))


def test_a_name_is_registered_once_unless_replaced(npz):
    register_format(npz)  # the same class again: nothing changes

    @dataclass(frozen=True)
    class Other(Npz):
        pass

    with pytest.raises(ValueError, match="registered already"):
        register_format(Other)
    assert register_format(Other, replace=True) is Other
    assert FORMATS["npz_test"] is Other


def test_a_class_that_is_not_a_format_is_refused():
    class NoMethods:
        name, extension = "nothing", ".x"

    with pytest.raises(TypeError, match="lacks to_dict, open, encode, sample_size, file_size"):
        register_format(NoMethods)

    class BadName(Npz):
        name = "has space"

    with pytest.raises(ValueError, match="identifier"):
        register_format(BadName)

    class BadExtension(Npz):
        extension = "npz"

    with pytest.raises(TypeError, match="extension"):
        register_format(BadExtension)
    assert "nothing" not in FORMATS


def test_the_docstring_example_registers_a_working_format(tmp_path):
    """The example of ``nishard.archives``'s docstring, run as written."""
    import nishard.archives as archives

    source = archives.__doc__.split("::", 1)[1].split("\nafter which", 1)[0]
    namespace: dict = {}
    exec(compile(textwrap.dedent(source), "docstring", "exec"), namespace)
    try:
        fmt = FORMATS["npz"]()
        shard = fmt.open(str(tmp_path / "x.npz"))
        shard.add("k", fmt.encode("k", {"bold": np.arange(3, dtype=np.float32)}, {}))
        shard.close()
        with np.load(tmp_path / "x.npz") as arrays:
            assert arrays["k.bold"].tobytes() == np.arange(3, dtype=np.float32).tobytes()
    finally:
        FORMATS.pop("npz", None)
