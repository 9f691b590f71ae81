"""A record's repetition time settled where its image is loaded, not at index time.

Indexing reads sidecars and opens no header it can do without (a fMRIPrep run whose
sidecar gives the TR, every HCP run): the worker that loads the run opens the header
anyway, and compares. BIDS makes the sidecar authoritative, so a header that disagrees
by more than :data:`TOLERANCE_S` is a warning for the manifest, not a change; a TR the
schema took from a protocol, or could not read yet (``pending``: the file was not
fetched), is replaced by the header's.
"""

from __future__ import annotations

import dataclasses
import math

from ..imageio import ImageError, load_header
from ..records.metadata import header_tr
from ..records.table import Record

#: Sidecar and header TRs further apart than this (seconds) are reported (issue [2/6]:
#: 1 ms, above the rounding of a TR written in ms in one and in s in the other).
TOLERANCE_S = 1e-3

#: The file kinds whose header carries the repetition time, in the order looked at.
TIMED_KINDS: tuple[str, ...] = ("bold", "cifti")


#: A warning for the manifest: the file it is about, and what was noticed.
Warning = tuple[str, str]


def settle_timing(record: Record, kinds: tuple[str, ...]) -> tuple[Record, tuple[Warning, ...]]:
    """The record with its TR settled from the image header, and the warnings to report.

    Parameters
    ----------
    record : Record
        Its metadata's ``t_r`` and ``t_r_source`` as indexing left them.
    kinds : tuple of str
        The file kinds the plan loads: a plan that loads no image reads no header.

    Returns
    -------
    record : Record
        ``t_r`` and ``t_r_source`` updated: ``protocol`` or ``pending`` become ``header``
        when the header gives a TR; ``pending`` becomes ``none`` when it gives none (the
        steps that need a TR then quarantine the run, saying so).
    warnings : tuple of (str, str)
        Per disagreement, the file and a line giving both values.

    Notes
    -----
    An image that cannot be opened leaves the record as it is: its loader names what is
    wrong with the file when it quarantines it.
    """
    meta = record.metadata
    source = meta.get("t_r_source")
    kind = next((k for k in TIMED_KINDS if k in kinds and k in record.files), None)
    if kind is None or source not in ("sidecar", "protocol", "pending"):
        return record, ()
    path = record.files[kind]
    if not isinstance(path, str):  # a session- or subject-level record: one run each
        return record, ()
    try:
        header = load_header(path).header
    except ImageError:
        return record, ()
    found = header_tr(header) if header is not None else math.nan
    given = meta.get("t_r")
    if math.isnan(found):
        if source == "pending":
            return _with(record, math.nan, "none"), ()
        return record, ()
    differs = isinstance(given, float) and abs(found - given) > TOLERANCE_S
    if source == "sidecar":  # BIDS: the sidecar is authoritative, the header only checked
        return record, ((path, _differ(found, "sidecar", given, "sidecar")),) if differs else ()
    warnings = ((path, _differ(found, "protocol", given, "header")),) if differs else ()
    return _with(record, found, "header"), warnings


def _differ(found: float, what: str, given: float, used: str) -> str:
    return (
        f"the header's repetition time {found:g} s differs from the {what}'s {given:g} s; "
        f"the {used}'s is used{' (BIDS)' if used == 'sidecar' else ''}"
    )


def _with(record: Record, t_r: float, source: str) -> Record:
    meta = {**record.metadata, "t_r": None if math.isnan(t_r) else t_r, "t_r_source": source}
    return dataclasses.replace(record, metadata=meta)
