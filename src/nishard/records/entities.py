"""BIDS file names parsed by entity name, never by position.

Beyond the BIDS specification, two namings that preprocessed datasets use are read:

- templateflow cohorts: the ``cohort-`` entity after ``space-``
  (``space-MNIInfant_cohort-1_res-2``, as NiBabies and fMRIPrep write it through
  niworkflows) and a cohort joined to its template by ``+`` in the space label
  (``space-MNIInfant+1``, as QSIPrep, QSIRecon and the HBCD derivatives write it);
- fMRIPrep 1.0-1.1's names, where the source suffix comes before the derivative's
  entities and suffix (``sub-01_task-rest_bold_confounds.tsv``,
  ``sub-01_task-rest_bold_space-MNI152NLin2009cAsym_preproc.nii.gz``): the two suffixes
  are kept together, ``bold_confounds``, so that no schema mistakes such a file for its
  source (a raw ``bold``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The fixed order of BIDS entities in a file name (BIDS specification, appendix "Entities").
ENTITY_ORDER: tuple[str, ...] = (
    "sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo",
    "space", "cohort", "res", "den", "hemi", "label", "desc",
)  # fmt: skip

#: Entities that identify one acquisition (a "run" record); the rest describe a derivative of it.
RUN_ENTITIES: tuple[str, ...] = ENTITY_ORDER[: ENTITY_ORDER.index("echo") + 1]

_PAIR = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9]+)$")
#: A space label: a template, and its cohort after a ``+`` (templateflow's ``MNIInfant+1``).
_SPACE = re.compile(r"^space-([a-zA-Z0-9]+(?:\+[a-zA-Z0-9]+)?)$")
_SUFFIX = re.compile(r"^[a-zA-Z0-9]+$")
#: Source suffixes that fMRIPrep 1.0-1.1 put before a derivative's entities and suffix.
LEGACY_SOURCES: tuple[str, ...] = ("bold", "T1w")


@dataclass(frozen=True)
class BidsName:
    """A parsed BIDS file name.

    Attributes
    ----------
    entities : dict
        Entity name to label, e.g. ``{"sub": "01", "task": "rest"}``.
    suffix : str
        The part after the last entity, e.g. ``bold``, ``mask``, ``timeseries``; in
        fMRIPrep 1.0-1.1's names the source and derivative suffixes joined by ``_``, e.g.
        ``bold_confounds``, ``bold_preproc``, ``bold_brainmask``.
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

    Notes
    -----
    Labels are letters and digits (BIDS), except that a ``space-`` label may join a
    templateflow cohort to its template with one ``+`` (``space-MNIInfant+1``). One
    source suffix of :data:`LEGACY_SOURCES` may stand between the entities, as fMRIPrep
    1.0-1.1 named its outputs; it is joined to the suffix (``bold_confounds``).
    """
    stem, dot, rest = name.partition(".")
    parts = stem.split("_")
    if len(parts) < (2 if require_subject else 1):
        return None
    suffix = parts[-1]
    if not _SUFFIX.match(suffix):
        return None
    entities: dict[str, str] = {}
    source = None
    for i, part in enumerate(parts[:-1]):
        match = _PAIR.match(part) or _SPACE.match(part)
        if match is None and source is None and i > 0 and part in LEGACY_SOURCES:
            source = part
            continue
        key = part.split("-", 1)[0]
        if match is None or key in entities:
            return None
        entities[key] = match.group(match.lastindex)
    if require_subject and "sub" not in entities:
        return None
    if source is not None:
        suffix = f"{source}_{suffix}"
    return BidsName(entities=entities, suffix=suffix, extension=dot + rest)


def split_space(space: str) -> tuple[str, str | None]:
    """A space's template and templateflow cohort (None when it names none).

    Parameters
    ----------
    space : str
        ``MNIInfant+1`` (the ``+`` of file names), ``MNIInfant:cohort-1`` (fMRIPrep's and
        NiBabies' ``--output-spaces``) or a template alone, ``MNI152NLin2009cAsym``.

    Returns
    -------
    tuple
        ``("MNIInfant", "1")``; ``("MNI152NLin2009cAsym", None)``.
    """
    template, plus, cohort = space.partition("+")
    if not plus:
        template, colon, cohort = space.partition(":cohort-")
        if not colon:
            return space, None
    return template, _cohort(cohort)


def _cohort(label: str) -> str:
    # templateflow and niworkflows read numeric cohorts as integers: cohort-01 is cohort-1.
    return str(int(label)) if label.isdigit() else label


def in_space(entities: dict[str, str], space: str) -> bool:
    """Whether a file's ``space-`` (and ``cohort-``) entities place it in ``space``.

    Parameters
    ----------
    entities : dict
        A parsed name's entities.
    space : str
        A template, with or without a cohort (see :func:`split_space`). Without one, a
        file of any cohort of the template is in it; with one, only a file of that cohort
        (``space-MNIInfant+1`` or ``space-MNIInfant_cohort-1``).
    """
    if "space" not in entities:
        return False
    template, cohort = split_space(space)
    found, found_cohort = split_space(entities["space"])
    cohorts = {c for c in (found_cohort, entities.get("cohort")) if c is not None}
    named = {_cohort(c) for c in cohorts}
    if found != template or len(named) > 1:
        return False  # another template, or a name that gives two different cohorts
    return cohort is None or named == {cohort}


def record_id(entities: dict[str, str], keys: tuple[str, ...] = RUN_ENTITIES) -> str:
    """Identifier of a record: its identifying entities joined in BIDS order.

    The result has no dots, so it is a valid WebDataset sample key: letters, digits,
    ``-`` and ``_``. A ``+`` (a space label's cohort, should ``keys`` name ``space``)
    becomes ``-``, which no label holds, so two labels still give two ids.
    """
    return "_".join(f"{key}-{entities[key].replace('+', '-')}" for key in keys if key in entities)
