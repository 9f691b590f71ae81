"""nishard: neuroimaging datasets to sharded archives for machine learning.

The three core routines, each taking small primitives::

    import nishard as ns

    records = ns.locate("ds/derivatives/fmriprep", schema=ns.schemas.fmriprep(res="4"),
                        variables=ns.tables.participants(["age", "diagnosis"]))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize()])
    ns.write(records, plan, "shards/", shards=ns.shards.by_count(16))

Every name here is imported on first use (PEP 562), so that ``import nishard.stream`` in
a training process loads the readers and nothing of the build (records, transforms,
workflow: pandas, SciPy, nibabel).
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ._version import __version__

#: Public names by the module they live in, under the same name there.
_HOMES: dict[str, tuple[str, ...]] = {
    ".errors": ("NishardError", "RecordError", "SpecError"),
    ".records": ("RecordTable", "locate"),
    ".workflow": ("assemble", "Plan"),
    ".builder": ("write",),
    ".archives": ("read_manifest",),
    ".pipeline": ("build",),
    ".spec": ("Pipeline", "load_spec", "parse_spec"),
}
#: Public names and where they live: ``name: (module, attribute)``.
_NAMES: dict[str, tuple[str, str]] = {
    name: (module, name) for module, names in _HOMES.items() for name in names
}
_MODULES = {"t": ".transforms", "stream": ".stream", "learn": ".learn"}

#: Namespaces of primitives, as the core routines take them: ``ns.schemas.fmriprep(res="2")``
#: builds the frozen dataclass :class:`~nishard.records.Fmriprep`, and so on.
_NAMESPACES: dict[str, dict[str, tuple[str, str]]] = {
    "schemas": {"fmriprep": (".records", "Fmriprep"), "bids": (".records", "Bids"),
                "hcp": (".records", "Hcp"), "regex": (".records", "Regex")},
    "tables": {"participants": (".records", "Participants"),
               "phenotype": (".records", "Phenotype"), "table": (".records", "Table")},
    "filters": {"complete": (".records", "Complete"), "entities": (".records", "Entities"),
                "where": (".records", "Where")},
    "sources": {"local": (".records.sources", "Local"), "url": (".records.sources", "Url"),
                "datalad": (".records.sources", "DataLad")},
    "formats": {"webdataset": (".archives", "WebDataset"), "tfrecord": (".archives", "TFRecord"),
                "hdf5": (".archives", "HDF5"), "zarr": (".archives", "Zarr"),
                "family": (".archives", "Family")},
    "shards": {"by_count": (".archives", "by_count"), "by_size": (".archives", "by_size"),
               "ShardSpec": (".archives", "ShardSpec")},
    "executors": {"serial": (".workflow", "Serial"), "local": (".workflow", "Local"),
                  "pydra": (".workflow", "Pydra"), "tasks": (".workflow", "Tasks"),
                  "slurm_array": (".workflow", "SlurmArray")},
    "splits": {"random": (".builder.splits", "Random"),
               "stratified": (".builder.splits", "Stratified"),
               "representative": (".builder.splits", "Representative"),
               "kfold": (".builder.splits", "KFold")},
}  # fmt: skip


def _resolve(module: str, attribute: str):
    return getattr(importlib.import_module(module, __name__), attribute)


def __getattr__(name: str):
    if name in _NAMES:
        value = _resolve(*_NAMES[name])
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name], __name__)
    elif name in _NAMESPACES:
        value = SimpleNamespace(**{k: _resolve(*v) for k, v in _NAMESPACES[name].items()})
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once resolved, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES, *_MODULES, *_NAMESPACES])


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from . import learn, stream
    from . import transforms as t
    from .archives import read_manifest
    from .builder import write
    from .errors import NishardError, RecordError, SpecError
    from .pipeline import build
    from .records import RecordTable, locate
    from .spec import Pipeline, load_spec, parse_spec
    from .workflow import Plan, assemble

__all__ = [
    "NishardError", "Pipeline", "Plan", "RecordError", "RecordTable", "SpecError", "__version__",
    "assemble", "build", "executors", "filters", "formats", "learn", "load_spec", "locate",
    "parse_spec", "read_manifest", "schemas", "shards", "sources", "splits", "stream", "t",
    "tables", "write",
]  # fmt: skip
