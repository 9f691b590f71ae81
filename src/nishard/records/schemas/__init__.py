"""Schemas: primitives that tell ``locate`` how a dataset lays out its records.

Every schema has a ``name`` (its key in a YAML spec), ``kinds`` (the file kinds a user can
stage, each giving one or more file columns), ``default_stage``, ``scan(root) -> Scan`` and
``hint(root)`` (a line for the error when nothing matched), and is a frozen dataclass of its
options.
"""

from ...registry import Registry
from .base import ENTITY_COLUMNS, Run, Scan
from .bids import Bids
from .fmriprep import Fmriprep
from .hcp import Hcp
from .regex import Regex

#: Schemas by the name a YAML spec gives them.
SCHEMAS: Registry = Registry("schema", (Fmriprep, Bids, Hcp, Regex))

__all__ = ["ENTITY_COLUMNS", "SCHEMAS", "Bids", "Fmriprep", "Hcp", "Regex", "Run", "Scan"]
