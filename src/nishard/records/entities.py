"""BIDS file names parsed by entity name, never by position."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The fixed order of BIDS entities in a file name (BIDS specification, appendix "Entities").
ENTITY_ORDER: tuple[str, ...] = (
    "sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo",
    "space", "res", "den", "hemi", "label", "desc",
)  # fmt: skip

#: Entities that identify one acquisition (a "run" record); the rest describe a derivative of it.
RUN_ENTITIES: tuple[str, ...] = ENTITY_ORDER[: ENTITY_ORDER.index("echo") + 1]

_PAIR = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9]+)$")
_SUFFIX = re.compile(r"^[a-zA-Z0-9]+$")


@dataclass(frozen=True)
class BidsName:
    """A parsed BIDS file name.

    Attributes
    ----------
    entities : dict
        Entity name to label, e.g. ``{"sub": "01", "task": "rest"}``.
    suffix : str
        The part after the last entity, e.g. ``bold``, ``mask``, ``timeseries``.
    extension : str
        Everything from the first dot, e.g. ``.nii.gz``.
    """

    entities: dict[str, str]
    suffix: str
    extension: str

    def get(self, entity: str, default: str | None = None) -> str | None:
        return self.entities.get(entity, default)


def parse_bids_name(name: str, require_subject: bool = True) -> BidsName | None:
    """Parse a BIDS file name into entities, suffix and extension.

    Parameters
    ----------
    name : str
        A file name (no directory), e.g. ``sub-01_task-rest_desc-preproc_bold.nii.gz``.
    require_subject : bool
        Refuse names without ``sub-``; False for dataset-level sidecars (``task-rest_bold.json``).

    Returns
    -------
    BidsName or None
        None when the name is not a BIDS name (no ``sub-`` entity, malformed pairs,
        or an entity repeated).
    """
    stem, dot, rest = name.partition(".")
    parts = stem.split("_")
    if len(parts) < (2 if require_subject else 1):
        return None
    suffix = parts[-1]
    if not _SUFFIX.match(suffix):
        return None
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        match = _PAIR.match(part)
        if match is None or match.group(1) in entities:
            return None
        entities[match.group(1)] = match.group(2)
    if require_subject and "sub" not in entities:
        return None
    return BidsName(entities=entities, suffix=suffix, extension=dot + rest)


def record_id(entities: dict[str, str], keys: tuple[str, ...] = RUN_ENTITIES) -> str:
    """Identifier of a record: its identifying entities joined in BIDS order.

    The result has no dots, so it is a valid WebDataset sample key.
    """
    return "_".join(f"{key}-{entities[key]}" for key in keys if key in entities)
