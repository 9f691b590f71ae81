"""Locate: find a dataset's records and collate them with tabular variables."""

from .filters import FILTERS, Complete, Entities, Where
from .locate import input_spec, locate
from .pivot import LEVELS, pivot
from .schemas import SCHEMAS, Bids, Fmriprep, Hcp, Regex, Run, Scan
from .sources import SOURCES, DataLad, Local, Source, Url
from .table import Record, RecordTable
from .tables import TABLES, Participants, Phenotype, Table

__all__ = [
    "FILTERS", "LEVELS", "SCHEMAS", "SOURCES", "TABLES", "Bids", "Complete", "DataLad", "Entities",
    "Fmriprep", "Hcp", "Local", "Participants", "Phenotype", "Record", "RecordTable", "Regex",
    "Run", "Scan", "Source", "Table", "Url", "Where", "input_spec", "locate", "pivot",
]  # fmt: skip
