"""nishard: neuroimaging datasets to sharded archives for machine learning.

The three core routines, each taking small primitives::

    import nishard as ns

    records = ns.locate("ds/derivatives/fmriprep", schema=ns.schemas.fmriprep(res="4"),
                        variables=ns.tables.participants(["age", "diagnosis"]))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize()])
    ns.write(records, plan, "shards/", shards=ns.shards.by_count(16))
"""

from types import SimpleNamespace

from . import transforms as t
from .archives import ShardSpec, by_count, by_size, read_manifest, webdataset, write
from .errors import NishardError, RecordError, SpecError
from .pipeline import build
from .records import Complete, Participants, RecordTable, complete, fmriprep, locate, participants
from .spec import Pipeline, load_spec, parse_spec
from .workflow import Plan, assemble, local, serial

__version__ = "0.1.0"

#: Namespaces of primitives, as the core routines take them.
schemas = SimpleNamespace(fmriprep=fmriprep)
tables = SimpleNamespace(participants=participants)
filters = SimpleNamespace(complete=complete)
formats = SimpleNamespace(webdataset=webdataset)
shards = SimpleNamespace(by_count=by_count, by_size=by_size, ShardSpec=ShardSpec)
executors = SimpleNamespace(serial=serial, local=local)

__all__ = [
    "Complete", "NishardError", "Participants", "Pipeline", "Plan", "RecordError",
    "RecordTable", "SpecError", "assemble", "build", "executors", "filters", "formats",
    "load_spec", "locate", "parse_spec", "read_manifest", "schemas", "shards", "t", "tables",
    "write",
]  # fmt: skip
