"""nishard: neuroimaging datasets to sharded archives for machine learning.

The three core routines, each taking small primitives::

    import nishard as ns

    records = ns.locate("ds/derivatives/fmriprep", schema=ns.schemas.fmriprep(res="4"),
                        variables=ns.tables.participants(["age", "diagnosis"]))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize()])
    ns.write(records, plan, "shards/", shards=ns.shards.by_count(16))
"""

from types import SimpleNamespace

from . import stream
from . import transforms as t
from .archives import (
    HDF5,
    Family,
    ShardSpec,
    TFRecord,
    WebDataset,
    Zarr,
    by_count,
    by_size,
    read_manifest,
    write,
)
from .archives import splits as _splits
from .errors import NishardError, RecordError, SpecError
from .pipeline import build
from .records import (
    Bids,
    Complete,
    Entities,
    Fmriprep,
    Hcp,
    Participants,
    Phenotype,
    RecordTable,
    Regex,
    Table,
    Where,
    locate,
)  # fmt: skip
from .records.sources import DataLad, Url
from .records.sources import Local as LocalFiles
from .spec import Pipeline, load_spec, parse_spec
from .workflow import Local, Plan, Pydra, Serial, assemble

from ._version import __version__

#: Namespaces of primitives, as the core routines take them: ``ns.schemas.fmriprep(res="2")``
#: builds the frozen dataclass :class:`~nishard.records.Fmriprep`, and so on.
schemas = SimpleNamespace(fmriprep=Fmriprep, bids=Bids, hcp=Hcp, regex=Regex)
tables = SimpleNamespace(participants=Participants, phenotype=Phenotype, table=Table)
filters = SimpleNamespace(complete=Complete, entities=Entities, where=Where)
sources = SimpleNamespace(local=LocalFiles, url=Url, datalad=DataLad)
formats = SimpleNamespace(
    webdataset=WebDataset, tfrecord=TFRecord, hdf5=HDF5, zarr=Zarr, family=Family
)
shards = SimpleNamespace(by_count=by_count, by_size=by_size, ShardSpec=ShardSpec)
executors = SimpleNamespace(serial=Serial, local=Local, pydra=Pydra)
splits = SimpleNamespace(
    random=_splits.Random, stratified=_splits.Stratified,
    representative=_splits.Representative, kfold=_splits.KFold,
)  # fmt: skip


def __getattr__(name: str):
    # ``ns.learn`` on first use: it imports scikit-learn and nilearn's plotting, which a
    # build or a training loop does not need.
    if name == "learn":
        import importlib

        return importlib.import_module(".learn", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NishardError", "Pipeline", "Plan", "RecordError", "RecordTable", "SpecError",
    "assemble", "build", "executors", "filters", "formats", "learn", "load_spec", "locate",
    "parse_spec", "read_manifest", "schemas", "shards", "sources", "splits", "stream", "t",
    "tables",
    "write",
]  # fmt: skip
