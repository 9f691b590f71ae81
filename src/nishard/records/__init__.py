"""Locate: find a dataset's records and collate them with tabular variables."""

from .filters import FILTERS, Complete
from .locate import input_spec, locate
from .schemas import SCHEMAS, Fmriprep, Run
from .table import Record, RecordTable
from .tables import Participants

__all__ = [
    "FILTERS", "SCHEMAS", "Complete", "Fmriprep", "Participants", "Record", "RecordTable",
    "Run", "input_spec", "locate",
]  # fmt: skip
