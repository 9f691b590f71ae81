"""Locate: find a dataset's records and collate them with tabular variables."""

from .filters import FILTERS, Complete, complete
from .locate import locate
from .schemas import SCHEMAS, Fmriprep, fmriprep
from .table import Record, RecordTable
from .tables import Participants, participants

__all__ = [
    "FILTERS", "SCHEMAS", "Complete", "Fmriprep", "Participants", "Record", "RecordTable",
    "complete", "fmriprep", "locate", "participants",
]  # fmt: skip
