"""Locate: find a dataset's records and collate them with tabular variables."""

from .filters import FILTERS, Complete
from .locate import input_spec, locate
from .schemas import SCHEMAS, Fmriprep, Run
from .sources import SOURCES, Local, Source
from .table import Record, RecordTable
from .tables import Participants

__all__ = [
    "FILTERS", "SCHEMAS", "SOURCES", "Complete", "Fmriprep", "Local", "Participants", "Record",
    "RecordTable", "Run", "Source", "input_spec", "locate",
]  # fmt: skip
