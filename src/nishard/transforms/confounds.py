"""Confound selection from fMRIPrep's confounds table: named strategies and censoring.

A :class:`ConfoundStrategy` names the groups of regressors to take from a run's
``desc-confounds_timeseries.tsv`` (motion, white matter and CSF, global signal, CompCor, the
cosine high-pass basis, explicit columns and regular expressions) and the censoring of
high-motion volumes (framewise displacement and standardized DVARS thresholds, minimum
segment length). :func:`select_confounds` applies one to a table and its JSON metadata and
returns the regressors and the volumes to keep.

The presets and every option give what nilearn's ``load_confounds_strategy`` and
``load_confounds`` (``nilearn.interfaces.fmriprep``, 0.14) give on the same files: the same
columns in the same (sorted) order, the same values and the same sample mask:

- ``n/a`` in the first row (derivatives, FD, DVARS) is replaced by the second row's value;
- regressors are demeaned over the kept volumes (all volumes when none is censored);
- volumes flagged by fMRIPrep's ``non_steady_state_outlierXX`` columns are always censored;
- the sample mask is ``None`` when there is no outlier column at all (no non-steady-state
  column in the file and no volume over a scrubbing threshold).

Differences, all on input nilearn would fail on or pass through silently: a missing column, a
wrong row count, ``n/a`` left in a kept volume after the first-row fill, every volume censored,
and a regular expression that matches nothing are :class:`ValueError` naming what is wrong;
CompCor components that the JSON marks ``"Retained": false`` are skipped.

fMRIPrep 1.0-1.1's tables (``sub-01_task-rest_bold_confounds.tsv``: CamelCase columns, no
expansions, no JSON), which nilearn refuses ("We only support fmriprep outputs >= 1.2.0"),
are brought to today's naming by :func:`upgrade_confounds` when read, so that every
strategy applies to them; see its notes for what that adds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from ..registry import not_one_of

Model = Literal["basic", "power2", "derivatives", "full"]
CompCorKind = Literal[
    "anat_combined", "anat_separated", "temporal", "temporal_anat_combined",
    "temporal_anat_separated",
]  # fmt: skip
MODELS: tuple[str, ...] = get_args(Model)
COMPCOR_KINDS: tuple[str, ...] = get_args(CompCorKind)

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
WM_CSF_COLUMNS = ("csf", "white_matter")
GLOBAL_SIGNAL_COLUMNS = ("global_signal",)
FD_COLUMN = "framewise_displacement"
DVARS_COLUMN = "std_dvars"

#: Suffixes each expansion model adds to a base column, after the base column itself.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "basic": (),
    "derivatives": ("_derivative1",),
    "power2": ("_power2",),
    "full": ("_derivative1", "_power2", "_derivative1_power2"),
}
#: CompCor kind -> (prefix, anatomical masks or None) for each family of components.
_COMPCOR_FAMILIES: dict[str, tuple[tuple[str, tuple[str, ...] | None], ...]] = {
    "anat_combined": (("a", ("combined",)),),
    "anat_separated": (("a", ("WM", "CSF")), ("w", None), ("c", None)),
    "temporal": (("t", None),),
    "temporal_anat_combined": (("t", None), ("a", ("combined",))),
    "temporal_anat_separated": (("t", None), ("a", ("WM", "CSF")), ("w", None), ("c", None)),
}
#: Substrings that make a column an outlier indicator (censoring) rather than a regressor.
_OUTLIER_MARKS = ("motion_outlier", "non_steady_state")
_HIGH_PASS_MARK = "cosine"


def _is_outlier_column(name: str) -> bool:
    return any(mark in name for mark in _OUTLIER_MARKS)


@dataclass(frozen=True)
class ConfoundStrategy:
    """Which confounds to regress out of a run and which volumes to censor.

    Parameters
    ----------
    name : str
        The preset it came from (``simple``, ``scrubbing``, ``compcor``, ``24P``, ``36P``)
        or ``custom``; a label only, the other fields say what is selected.
    motion, wm_csf, global_signal : {None, "basic", "derivatives", "power2", "full"}
        The six motion parameters, the CSF and white-matter means, the global signal: the
        base columns alone (``basic``), plus their temporal derivatives (``derivatives``),
        plus their squares (``power2``) or plus both and the squared derivatives (``full``).
        ``None`` (or ``"none"``) leaves the group out.
    compcor : {None, "anat_combined", "anat_separated", "temporal", "temporal_anat_combined", \
"temporal_anat_separated"}
        CompCor components, found through the JSON metadata (fMRIPrep keeps those that
        explain 50 % of the variance); needs ``high_pass``, as fMRIPrep's components were
        computed after that high-pass filter.
    n_compcor : int or "all"
        Components kept per family and mask (the first ones).
    high_pass : bool
        Add the ``cosineXX`` discrete cosine basis.
    scrub : int or None
        Censor volumes over ``fd_threshold`` or ``std_dvars_threshold``, and then every
        segment of kept volumes shorter than ``scrub`` volumes (``0``: no segment rule).
        ``None``: no censoring of high-motion volumes.
    fd_threshold, std_dvars_threshold : float or None
        Censoring thresholds on ``framewise_displacement`` (mm) and ``std_dvars`` (strictly
        greater than is censored); ``None`` ignores that criterion.
    demean : bool
        Remove each regressor's mean over the kept volumes.
    columns : tuple of str
        Columns taken by name (each must exist).
    patterns : tuple of str
        Regular expressions; the columns they match (``re.search``) are taken, and each must
        match at least one.

    Notes
    -----
    Columns whose name contains ``motion_outlier`` or ``non_steady_state`` are outlier
    indicators: taken by ``columns`` or ``patterns`` they censor the volumes they flag
    instead of becoming regressors, as nilearn treats them. ``non_steady_state_outlierXX``
    columns of the table always censor their volumes.
    """

    name: str = "custom"
    motion: Model | None = None
    wm_csf: Model | None = None
    global_signal: Model | None = None
    compcor: CompCorKind | None = None
    n_compcor: int | Literal["all"] = "all"
    high_pass: bool = False
    scrub: int | None = None
    fd_threshold: float | None = 0.5
    std_dvars_threshold: float | None = 1.5
    demean: bool = True
    columns: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for group in ("motion", "wm_csf", "global_signal", "compcor"):
            if getattr(self, group) == "none":
                object.__setattr__(self, group, None)
        for group in ("motion", "wm_csf", "global_signal"):
            value = getattr(self, group)
            if value is not None and value not in MODELS:
                raise ValueError(not_one_of(group, value, MODELS, " or None"))
        if self.compcor is not None and self.compcor not in COMPCOR_KINDS:
            raise ValueError(not_one_of("compcor", self.compcor, COMPCOR_KINDS, " or None"))
        if self.compcor is not None and not self.high_pass:
            raise ValueError(
                "compcor needs high_pass=True: fMRIPrep computes its CompCor components after "
                "the cosine high-pass filter, whose regressors must come with them"
            )
        if self.n_compcor != "all" and not (
            isinstance(self.n_compcor, int) and not isinstance(self.n_compcor, bool)
            and self.n_compcor > 0
        ):  # fmt: skip
            raise ValueError(f"n_compcor a positive integer or 'all'; got {self.n_compcor!r}")
        if self.scrub is not None:
            if isinstance(self.scrub, bool) or not isinstance(self.scrub, int) or self.scrub < 0:
                raise ValueError(f"scrub a minimum segment length >= 0 or None; got {self.scrub!r}")
            if self.fd_threshold is None and self.std_dvars_threshold is None:
                raise ValueError("scrub needs fd_threshold or std_dvars_threshold (both None)")
        for threshold in ("fd_threshold", "std_dvars_threshold"):
            value = getattr(self, threshold)
            if value is not None and not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{threshold} a number >= 0 or None; got {value!r}")
        for listing in ("columns", "patterns"):
            value = getattr(self, listing)
            if isinstance(value, str):
                raise ValueError(f"{listing} a list of strings, got the string {value!r}")
            object.__setattr__(self, listing, tuple(value))
            if not all(isinstance(v, str) for v in getattr(self, listing)):
                raise ValueError(f"{listing} a list of strings; got {value!r}")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"patterns: {pattern!r} is no regular expression: {err}") from err

    def to_dict(self) -> dict:
        """The strategy as plain values (lists for the tuples), for a YAML spec."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["columns"], out["patterns"] = list(self.columns), list(self.patterns)
        return out


# ------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------


def simple(**changes) -> ConfoundStrategy:
    """nilearn's ``simple``: high-pass, motion ``full``, white matter and CSF ``basic``.

    ``changes`` replace fields, e.g. ``global_signal="basic"``, as nilearn's keyword
    arguments to ``load_confounds_strategy`` do.
    """
    base = ConfoundStrategy(name="simple", high_pass=True, motion="full", wm_csf="basic")
    return replace(base, **changes)


def scrubbing(**changes) -> ConfoundStrategy:
    """nilearn's ``scrubbing``: ``simple`` with ``wm_csf="full"`` and censoring.

    Volumes with FD > 0.5 mm or std_dvars > 1.5, then segments shorter than 5 volumes, are
    censored: the thresholds of nilearn's code (its docstring table still says 0.2 and 3).
    """
    base = ConfoundStrategy(
        name="scrubbing", high_pass=True, motion="full", wm_csf="full",
        scrub=5, fd_threshold=0.5, std_dvars_threshold=1.5,
    )  # fmt: skip
    return replace(base, **changes)


def compcor(**changes) -> ConfoundStrategy:
    """nilearn's ``compcor``: high-pass, motion ``full``, all combined anatomical CompCor."""
    base = ConfoundStrategy(
        name="compcor", high_pass=True, motion="full", compcor="anat_combined", n_compcor="all"
    )
    return replace(base, **changes)


def p24(**changes) -> ConfoundStrategy:
    """24P (Friston 1996): the six motion parameters, their derivatives and all squares.

    Exactly 24 regressors: no cosine basis (``high_pass=True`` adds it).
    """
    return replace(ConfoundStrategy(name="24P", motion="full"), **changes)


def p36(**changes) -> ConfoundStrategy:
    """36P (Satterthwaite 2013, Ciric 2017): 24P plus CSF, white matter and global signal.

    Each of the 9 signals (6 motion, CSF, white matter, global) with its derivative and the
    squares of both: exactly 36 regressors, no cosine basis (``high_pass=True`` adds it).
    """
    base = ConfoundStrategy(name="36P", motion="full", wm_csf="full", global_signal="full")
    return replace(base, **changes)


def columns(names: Iterable[str], **changes) -> ConfoundStrategy:
    """A custom strategy of explicit column names (plus any other ``changes``)."""
    return ConfoundStrategy(name="custom", **{"columns": names, **changes})


def patterns(regexes: Iterable[str], **changes) -> ConfoundStrategy:
    """A custom strategy of the columns matched by regular expressions (``re.search``)."""
    return ConfoundStrategy(name="custom", **{"patterns": regexes, **changes})


#: Preset constructors by name; each takes field changes as keyword arguments.
PRESETS: dict[str, Callable[..., ConfoundStrategy]] = {
    "simple": simple,
    "scrubbing": scrubbing,
    "compcor": compcor,
    "24P": p24,
    "36P": p36,
}


def get_strategy(name: str = "custom", **changes) -> ConfoundStrategy:
    """A preset by name (case-insensitive; ``p24``/``p36`` too) with field ``changes``, or
    a ``custom`` strategy of those fields."""
    key = str(name).lower()
    aliases = {preset.lower(): make for preset, make in PRESETS.items()}
    aliases |= {"p24": p24, "p36": p36}
    if key in aliases:
        return aliases[key](**changes)
    if key == "custom":
        return ConfoundStrategy(name="custom", **changes)
    raise ValueError(not_one_of("confound strategy", name, [*PRESETS, "custom"]))


# ------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------


def _expand(bases: tuple[str, ...], model: str) -> list[str]:
    return [base + suffix for base in bases for suffix in ("", *_SUFFIXES[model])]


def _compcor_columns(metadata: dict | None, kind: str, n_compcor: int | str) -> list[str]:
    """CompCor column names of ``kind`` listed (and retained) in the JSON metadata."""
    if not isinstance(metadata, dict):
        raise ValueError(
            f"compcor={kind!r} needs the confounds JSON metadata (desc-confounds_timeseries"
            ".json), which lists the components and their masks; none was given"
        )
    found: list[str] = []
    for prefix, masks in _COMPCOR_FAMILIES[kind]:
        pattern = re.compile(rf"{prefix}_comp_cor_(\d+)")
        family = sorted(
            (int(m.group(1)), key)
            for key in metadata
            if (m := pattern.fullmatch(key))
            and not (isinstance(metadata[key], dict) and metadata[key].get("Retained") is False)
        )
        names = [key for _, key in family]
        groups = (
            [names]
            if masks is None
            else [[c for c in names if _mask_of(metadata, c) == mask] for mask in masks]
        )
        for group in groups:
            found += group if n_compcor == "all" else group[: int(n_compcor)]
    if not found:
        raise ValueError(
            f"compcor={kind!r}: the JSON metadata lists no such CompCor component "
            f"({', '.join(f'{p}_comp_cor_XX' for p, _ in _COMPCOR_FAMILIES[kind])})"
        )
    return found


def _mask_of(metadata: dict, column: str) -> object:
    entry = metadata[column]
    return entry.get("Mask") if isinstance(entry, dict) else None


def _drop_short_segments(outliers: np.ndarray, min_length: int) -> np.ndarray:
    """Also flag every run of unflagged volumes shorter than ``min_length``."""
    flagged = outliers.copy()
    kept = np.flatnonzero(~outliers)
    if kept.size == 0:
        return flagged
    # Runs of consecutive kept volumes: split where the index jumps.
    starts = np.flatnonzero(np.diff(kept) > 1) + 1
    for run in np.split(kept, starts):
        if run.size < min_length:
            flagged[run] = True
    return flagged


def _motion_outliers(table: pd.DataFrame, strategy: ConfoundStrategy) -> np.ndarray:
    n = len(table)
    flagged = np.zeros(n, dtype=bool)
    for column, threshold in (
        (FD_COLUMN, strategy.fd_threshold), (DVARS_COLUMN, strategy.std_dvars_threshold)
    ):  # fmt: skip
        if threshold is not None:
            # n/a (the first volume) compares False: never censored for lack of a value.
            flagged |= table[column].to_numpy(dtype=np.float64) > threshold
    if strategy.scrub and flagged.any():
        flagged = _drop_short_segments(flagged, strategy.scrub)
    return flagged


def _numeric(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    bad = [c for c in names if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise ValueError(f"confound column(s) {', '.join(map(repr, bad))} are not numeric")
    return table[names].to_numpy(dtype=np.float64, copy=True)


def select_confounds(
    table: pd.DataFrame,
    metadata: dict | None,
    strategy: ConfoundStrategy | str,
    n_volumes: int | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """The confound regressors and the volumes to keep, for one run.

    Parameters
    ----------
    table : pandas.DataFrame
        The fMRIPrep confounds table, one row per volume, ``n/a`` read as NaN (as
        :func:`read_confounds` and ``pandas.read_csv(sep="\\t")`` read it).
    metadata : dict or None
        The confounds JSON (needed for CompCor only).
    strategy : ConfoundStrategy or str
        A strategy or a preset name (:data:`PRESETS`).
    n_volumes : int, optional
        The run's number of volumes: the table must have that many rows.

    Returns
    -------
    confounds : ndarray of float64, shape (n_volumes, k)
        The regressors, columns in sorted name order (as nilearn), the first row's ``n/a``
        replaced by the second row's value, demeaned over the kept volumes if
        ``strategy.demean``.
    names : list of str
        The column names of ``confounds``.
    sample_mask : ndarray of int64 or None
        Indices of the volumes to keep, or ``None`` when the table has no
        non-steady-state column and no volume is censored for motion (nilearn's convention).

    Raises
    ------
    ValueError
        A column the strategy asks for is missing (named), the row count differs from
        ``n_volumes``, CompCor without metadata, a pattern matches no column, ``n/a`` in a
        kept volume after the first-row fill, or every volume is censored.
    """
    if isinstance(strategy, str):
        strategy = get_strategy(strategy)
    n = len(table)
    if n_volumes is not None and n != n_volumes:
        raise ValueError(f"the confounds table has {n} rows, the BOLD run has {n_volumes} volumes")
    if n < 2:
        raise ValueError(f"a confounds table of at least 2 rows, got {n}")
    available = set(table.columns)
    asked: list[tuple[str, str]] = []  # (column, what asked for it)
    for group, bases in (
        ("motion", MOTION_COLUMNS), ("wm_csf", WM_CSF_COLUMNS),
        ("global_signal", GLOBAL_SIGNAL_COLUMNS),
    ):  # fmt: skip
        model = getattr(strategy, group)
        if model is not None:
            asked += [(c, f"{group}={model!r}") for c in _expand(bases, model)]
    if strategy.compcor is not None:
        why = f"compcor={strategy.compcor!r}"
        asked += [
            (c, why) for c in _compcor_columns(metadata, strategy.compcor, strategy.n_compcor)
        ]
    if strategy.high_pass:
        asked += [(c, "high_pass") for c in table.columns if _HIGH_PASS_MARK in c]
    asked += [(c, "columns") for c in strategy.columns]
    for pattern in strategy.patterns:
        matched = [c for c in table.columns if re.search(pattern, c)]
        if not matched:
            raise ValueError(f"patterns: {pattern!r} matches no column of the confounds table")
        asked += [(c, f"patterns {pattern!r}") for c in matched]
    if strategy.scrub is not None:
        for column, threshold in (
            (FD_COLUMN, strategy.fd_threshold), (DVARS_COLUMN, strategy.std_dvars_threshold)
        ):  # fmt: skip
            if threshold is not None:
                asked.append((column, "scrub"))
    missing: dict[str, list[str]] = {}
    for column, why in asked:
        if column not in available and column not in missing.get(why, []):
            missing.setdefault(why, []).append(column)
    if missing:
        listing = "; ".join(
            f"{', '.join(map(repr, cols))} ({why})" for why, cols in missing.items()
        )
        raise ValueError(
            f"the confounds table lacks column(s) that strategy {strategy.name!r} asks for: "
            f"{listing}"
        )

    selected = list(dict.fromkeys(c for c, why in asked if why != "scrub"))
    regressors = sorted(c for c in selected if not _is_outlier_column(c))
    indicators = [c for c in selected if _is_outlier_column(c)]
    indicators += [c for c in table.columns if "non_steady_state" in c and c not in indicators]

    censored = np.zeros(n, dtype=bool)
    has_outliers = False
    if indicators:
        has_outliers = True
        censored |= np.nansum(_numeric(table, indicators), axis=1) != 0
    if strategy.scrub is not None:
        motion = _motion_outliers(table, strategy)
        has_outliers |= bool(motion.any())
        censored |= motion
    sample_mask = np.flatnonzero(~censored) if has_outliers else None
    if sample_mask is not None and sample_mask.size == 0:
        raise ValueError(f"all {n} volumes are censored (non-steady-state or motion outliers)")

    values = _numeric(table, regressors)
    if values.shape[1]:
        first = np.isnan(values[0])
        values[0, first] = values[1, first]
        kept = slice(None) if sample_mask is None else sample_mask
        holes = np.isnan(values[kept]).any(axis=0)
        if holes.any():
            names = ", ".join(repr(c) for c, h in zip(regressors, holes, strict=True) if h)
            raise ValueError(f"confound column(s) {names} have n/a in kept volumes after the first")
        if strategy.demean:
            # Sum each column as one contiguous vector (numpy's pairwise summation), as
            # pandas and scikit-learn do in nilearn: the same digits, not only close ones.
            by_column = np.ascontiguousarray(values[kept].T)
            values -= by_column.sum(axis=1) / by_column.shape[1]
    return values, regressors, sample_mask


def read_confounds(path: str | Path) -> tuple[pd.DataFrame, dict | None]:
    """A confounds TSV (``n/a`` as NaN) and its JSON sidecar (``None`` when absent).

    A table of fMRIPrep 1.0-1.1 (CamelCase columns) comes back in today's naming, with
    what later releases add to it (:func:`upgrade_confounds`).
    """
    path = Path(path)
    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    sidecar = path.with_suffix(".json")
    metadata = json.loads(sidecar.read_text()) if sidecar.is_file() else None
    return upgrade_confounds(table, metadata)


# ------------------------------------------------------------------------------------------
# fMRIPrep 1.0-1.1
# ------------------------------------------------------------------------------------------

#: fMRIPrep 1.0-1.1's column names and the names fMRIPrep has written since 1.2.
LEGACY_COLUMNS: dict[str, str] = {
    "CSF": "csf", "WhiteMatter": "white_matter", "GlobalSignal": "global_signal",
    "stdDVARS": "std_dvars", "non-stdDVARS": "dvars",
    "FramewiseDisplacement": "framewise_displacement",
    "X": "trans_x", "Y": "trans_y", "Z": "trans_z", "RotX": "rot_x", "RotY": "rot_y",
    "RotZ": "rot_z",
}  # fmt: skip
#: fMRIPrep 1.0-1.1's numbered column families and their names since 1.2 (the number kept).
LEGACY_FAMILIES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"aCompCor(\d+)"), "a_comp_cor_{}"),
    (re.compile(r"tCompCor(\d+)"), "t_comp_cor_{}"),
    (re.compile(r"Cosine(\d+)"), "cosine{}"),
    (re.compile(r"NonSteadyStateOutlier(\d+)"), "non_steady_state_outlier{}"),
    (re.compile(r"AROMAAggrComp(\d+)"), "aroma_motion_{}"),
)
#: The signals fMRIPrep (1.4 and later) expands with derivatives and squares.
EXPANDED_COLUMNS = (*MOTION_COLUMNS, *WM_CSF_COLUMNS, *GLOBAL_SIGNAL_COLUMNS)


def _modern_name(column: str) -> str | None:
    if column in LEGACY_COLUMNS:
        return LEGACY_COLUMNS[column]
    for pattern, name in LEGACY_FAMILIES:
        if match := pattern.fullmatch(column):
            return name.format(match.group(1))
    return None


def upgrade_confounds(
    table: pd.DataFrame, metadata: dict | None = None
) -> tuple[pd.DataFrame, dict | None]:
    """An fMRIPrep 1.0-1.1 confounds table in today's naming; other tables unchanged.

    Parameters
    ----------
    table : pandas.DataFrame
        A confounds table as read (``n/a`` as NaN).
    metadata : dict or None
        Its JSON sidecar.

    Returns
    -------
    table : pandas.DataFrame
        The same table when none of its columns has a name of fMRIPrep 1.0-1.1; else a
        copy with those columns renamed (:data:`LEGACY_COLUMNS`, :data:`LEGACY_FAMILIES`)
        and the expansions added (below). A column later releases dropped
        (``vx-wisestdDVARS``), and any other, keeps its name.
    metadata : dict or None
        ``metadata``; for an old table without one, the CompCor components it has.

    Raises
    ------
    ValueError
        When a renamed column would replace a column of that name already in the table.

    Notes
    -----
    Renaming alone would leave the presets without the columns they ask for, because
    fMRIPrep 1.0-1.1 wrote neither expansions nor a JSON sidecar. So, as fMRIPrep writes
    them since 1.4 (its model ``(dd1(rps + wm + csf + gsr))^^2``, niworkflows'
    ``temporal_derivatives`` and ``exponential_terms``), each of the six motion parameters,
    ``white_matter``, ``csf`` and ``global_signal`` gets ``_derivative1`` (the backward
    difference, ``n/a`` in the first row), ``_power2`` and ``_derivative1_power2``. And the
    CompCor components are described as the JSON of later releases would: 1.0-1.1
    computed ``aCompCorXX`` in one mask, the union of white matter and CSF (``"Mask":
    "combined"``), and ``tCompCorXX``, six of each, all retained.
    """
    renames = {c: new for c in table.columns if (new := _modern_name(str(c))) is not None}
    if not renames:
        return table, metadata
    taken = [f"{old!r} -> {new!r}" for old, new in renames.items() if new in table.columns]
    if taken:
        raise ValueError(
            "fMRIPrep 1.0-1.1 confounds table: renaming would replace existing column(s) "
            + ", ".join(taken)
        )
    table = table.rename(columns=renames)
    expansions: dict[str, np.ndarray] = {}
    for base in EXPANDED_COLUMNS:
        if base not in table.columns:
            continue
        values = table[base].to_numpy(dtype=np.float64)
        derivative = np.full_like(values, np.nan)
        derivative[1:] = np.diff(values)
        for name, column in (
            (f"{base}_derivative1", derivative), (f"{base}_power2", values**2),
            (f"{base}_derivative1_power2", derivative**2),
        ):  # fmt: skip
            if name not in table.columns:
                expansions[name] = column
    if expansions:
        table = pd.concat([table, pd.DataFrame(expansions, index=table.index)], axis=1)
    if metadata is None:
        metadata = {}
        for column in table.columns:
            if re.fullmatch(r"a_comp_cor_\d+", column):
                metadata[column] = {"Method": "aCompCor", "Mask": "combined", "Retained": True}
            elif re.fullmatch(r"t_comp_cor_\d+", column):
                metadata[column] = {"Method": "tCompCor", "Retained": True}
        metadata = metadata or None
    return table, metadata
