"""Splits: which split (train, val, test...) each record goes to, a whole group at a time.

Every strategy is a frozen dataclass with a pure, deterministic ``assign(frame)`` that maps
record ids to split names. The unit of assignment is the group (``group="subject"`` by
default): all records of one subject land in one split, so no subject is in two splits,
and fractions and per-class counts are counted in groups, not records.

Variables are read per group. A categorical variable (anything not numeric, and numeric
columns with at most ``bins`` distinct values) takes the group's most frequent value, ties
going to the first value in sorted order, so a subject whose diagnosis changes across
sessions counts under the diagnosis of most of its records. A continuous variable takes
the group's mean and is cut into ``bins`` quantile bins over the groups (``q1``, ``q2``,
...). A group with no value at all is its own class, ``n/a``: dropping it would lose the
subject, and giving it a guessed class would hide it.

``stable=True`` assigns each group by a hash of ``(seed, group id)`` alone, so that adding
groups later moves none of the old ones; the price is that fractions and per-class
proportions then hold only in expectation (binomial spread, about ``sqrt(n f (1 - f))``
groups), since any balancing needs to look at the other groups. Strata are not hashed in:
a group's stratum can change when groups are added (quantile edges move, new sessions
change a most frequent value), and a hash that included it would move the group.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import ClassVar

import numpy as np
import pandas as pd

from ..registry import Registry

#: The class of a group that has no value for a variable.
MISSING = "n/a"

_COMMON = ("group", "seed", "stable")


def _default_fractions() -> dict[str, float]:
    return {"train": 0.8, "val": 0.1, "test": 0.1}


#: What a split may be called: it starts shard names (``train-000000.tar``), so ASCII
#: letters, digits and ``_`` only (``-`` separates a family and the shard number).
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_]+")


def check_split_name(name: object) -> str:
    """``name`` if it can name a split, else a ValueError saying what can: the one rule
    for split names, in specs and in Python."""
    if not isinstance(name, str) or not _SPLIT_NAME.fullmatch(name):
        raise ValueError(f"split name {name!r}: use ASCII letters, digits and _")
    return name


@dataclass(frozen=True, kw_only=True)
class Split:
    """What every strategy shares: the group column, the seed and the stable option."""

    name: ClassVar[str]

    group: str | None = "subject"
    seed: int = 0
    stable: bool = False

    def __post_init__(self) -> None:
        if self.group is not None and not isinstance(self.group, str):
            raise ValueError(f"group must be a column name or None, got {self.group!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.stable, bool):
            raise ValueError(f"stable must be true or false, got {self.stable!r}")
        if hasattr(self, "by"):
            object.__setattr__(self, "by", _check_by(self.by))
        if hasattr(self, "bins") and (
            not isinstance(self.bins, int) or isinstance(self.bins, bool) or self.bins < 2
        ):
            raise ValueError(f"bins must be an integer of at least 2, got {self.bins!r}")
        if hasattr(self, "fractions"):
            object.__setattr__(self, "fractions", _check_fractions(self.fractions))

    def to_dict(self) -> dict:
        """The spec of this split, as YAML's ``output.split`` and the manifest write it."""
        out: dict = {"name": self.name}
        names = [f.name for f in fields(self)]
        for key in [n for n in names if n not in _COMMON] + list(_COMMON):
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
            if isinstance(value, Mapping):
                out[key] = dict(value)
        return out

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        """The split of every record.

        Parameters
        ----------
        frame : pandas.DataFrame
            Records indexed by id, as ``RecordTable.frame``; needs the group column and
            the variables the strategy reads.

        Returns
        -------
        pandas.Series
            Split name per record id, in the frame's order. The result depends on the
            frame's content only, not on its row order.

        Raises
        ------
        ValueError
            When a column is missing, a group id is missing, or there are fewer groups
            than splits.
        """
        groups = _groups(frame, self.group)
        ids = pd.Index(np.unique(groups.to_numpy(dtype=str)))
        names = list(self._fractions())
        if len(ids) < len(names):
            unit = f"groups ({self.group})" if self.group else "records"
            raise ValueError(
                f"{len(ids)} {unit} for {len(names)} splits ({', '.join(names)}): "
                "every split needs at least one; use fewer splits or more data"
            )
        fractions = np.array(list(self._fractions().values()))
        if self.stable:
            index = _by_hash(ids, self.seed, fractions)
        else:
            index = self._assign_groups(frame, groups, ids, fractions)
        per_group = pd.Series(np.array(names, dtype=object)[index], index=ids)
        return pd.Series(
            groups.map(per_group).to_numpy(dtype=object), index=frame.index, name="split"
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The split names ``assign`` gives, in order."""
        return tuple(self._fractions())

    def _fractions(self) -> dict[str, float]:
        return self.fractions  # type: ignore[attr-defined]

    def _assign_groups(
        self, frame: pd.DataFrame, groups: pd.Series, ids: pd.Index, fractions: np.ndarray
    ) -> np.ndarray:
        """Split index per group id (sorted ids), for the non-stable strategy."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Random(Split):
    """Groups shuffled and cut at the fractions; sizes within one group of the target.

    Parameters
    ----------
    fractions : dict
        Split name to fraction of the groups (names: letters, digits, ``_``); they must
        sum to 1. Default: train 0.8, val 0.1, test 0.1.
    group : str or None
        Column whose values are kept together (default ``subject``); None: each record
        on its own.
    seed : int
        Same seed, same splits.
    stable : bool
        Assign by a hash of ``(seed, group)`` so that adding groups moves no old one;
        sizes then hold only in expectation.
    """

    name: ClassVar[str] = "random"

    fractions: dict[str, float] = field(default_factory=_default_fractions)

    def _assign_groups(self, frame, groups, ids, fractions):
        rng = np.random.default_rng(self.seed)
        labels = pd.DataFrame(index=ids)
        return _balanced(labels, fractions, rng)


@dataclass(frozen=True)
class Stratified(Split):
    """Each class (of each stratum) split at the fractions, within one group of target.

    Strata are the combinations of the classes of ``by``. Each stratum's groups are cut at
    the fractions, rounded down, and the groups left over go to the splits furthest below
    their target so far, overall and per class of each variable, so that rounding does
    not pile up in one split. Every split then has, in every stratum, a number of groups
    within one of the stratum's size times its fraction.

    Parameters
    ----------
    by : str or sequence of str
        The variables to stratify on; continuous ones are cut in ``bins`` quantile bins.
    bins : int
        Quantile bins for continuous variables (default 4).
    fractions, group, seed, stable
        As in :class:`Random`. With ``stable=True`` the strata do not steer the
        assignment (see the module's notes): proportions hold in expectation only.
    """

    name: ClassVar[str] = "stratified"

    by: str | tuple[str, ...]
    _: KW_ONLY
    bins: int = 4
    fractions: dict[str, float] = field(default_factory=_default_fractions)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.by:
            raise ValueError("stratified needs at least one variable in by")

    def _assign_groups(self, frame, groups, ids, fractions):
        rng = np.random.default_rng(self.seed)
        labels = pd.DataFrame(
            {v: _labels(frame, groups, v, self.bins)[0].reindex(ids) for v in self.by},
            index=ids,
        )
        return _balanced(labels, fractions, rng)


@dataclass(frozen=True)
class Representative(Split):
    """Splits whose distributions of several variables all match the whole's.

    Groups start from a random split of the exact sizes; then, group by group, the swap
    with a group of another split that most lowers the imbalance is made, until a pass
    over all groups finds none. The imbalance is ``sum over splits of n_s * |m_s|^2``,
    with ``m_s`` the split's mean of the standardized features: for a continuous variable
    its z-score and squared z-score (so means and spreads match), a missing indicator
    when values are missing; for a categorical one, one indicator per class. Weighting by
    ``n_s`` measures each split's deviation in units of its own sampling noise, so small
    test sets are not sacrificed to the large training set.

    This is preferred over stratifying on the joint of binned variables: with a few
    variables the joint has more cells than a dataset has subjects per cell, and rounding
    within tiny cells leaves the margins no better matched than a random split.

    Parameters
    ----------
    by : str or sequence of str
        The variables whose distributions should match; numeric ones are continuous.
    fractions, group, seed, stable
        As in :class:`Random`. With ``stable=True`` the assignment is the hash alone,
        and the variables are not matched.
    """

    name: ClassVar[str] = "representative"

    by: str | tuple[str, ...]
    _: KW_ONLY
    fractions: dict[str, float] = field(default_factory=_default_fractions)

    #: Passes over all groups at most; the search stops earlier when a pass finds no swap.
    passes: ClassVar[int] = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.by:
            raise ValueError("representative needs at least one variable in by")

    def _assign_groups(self, frame, groups, ids, fractions):
        rng = np.random.default_rng(self.seed)
        index = _balanced(pd.DataFrame(index=ids), fractions, rng)
        features = _features(frame, groups, ids, self.by)
        return _swap_search(features, index, len(fractions), rng, self.passes)


@dataclass(frozen=True)
class KFold(Split):
    """``k`` folds of the groups, optionally stratified; each group is in one test fold.

    ``assign`` gives the fold of every record (``fold0`` ... ``fold{k-1}``) when ``fold``
    is None, and ``train``/``test`` for that fold otherwise; :meth:`folds` gives all ``k``
    train/test assignments at once.

    Parameters
    ----------
    k : int
        Number of folds, at least 2.
    fold : int or None
        The fold to hold out as ``test``, from 0; None: name the folds.
    by : str or sequence of str
        Variables to stratify the folds on (default: none).
    bins : int
        Quantile bins for continuous variables.
    group, seed, stable
        As in :class:`Random`.
    """

    name: ClassVar[str] = "kfold"

    k: int = 5
    _: KW_ONLY
    fold: int | None = None
    by: str | tuple[str, ...] = ()
    bins: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 2:
            raise ValueError(f"k must be an integer of at least 2, got {self.k!r}")
        if self.fold is not None and (
            not isinstance(self.fold, int) or isinstance(self.fold, bool)
            or not 0 <= self.fold < self.k
        ):  # fmt: skip
            raise ValueError(f"fold must be None or in 0..{self.k - 1}, got {self.fold!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The split names ``assign`` gives, in order."""
        return tuple(self._fractions()) if self.fold is None else ("train", "test")

    def _fractions(self) -> dict[str, float]:
        return {f"fold{i}": 1 / self.k for i in range(self.k)}

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        """Fold name per record id, or ``train``/``test`` when ``fold`` is set."""
        named = super().assign(frame)
        if self.fold is None:
            return named
        return _held_out(named, self.fold)

    def folds(self, frame: pd.DataFrame) -> list[pd.Series]:
        """All ``k`` assignments: in the i-th, fold i is ``test`` and the rest ``train``."""
        named = super().assign(frame)
        return [_held_out(named, i) for i in range(self.k)]

    def _assign_groups(self, frame, groups, ids, fractions):
        rng = np.random.default_rng(self.seed)
        labels = pd.DataFrame(
            {v: _labels(frame, groups, v, self.bins)[0].reindex(ids) for v in self.by},
            index=ids,
        )
        return _balanced(labels, fractions, rng)


#: Split strategies by the name a YAML spec gives them.
SPLITS: Registry = Registry("split", (Random, Stratified, Representative, KFold))


def from_dict(spec: Mapping) -> Split:
    """A split from its spec, e.g. ``{name: stratified, by: diagnosis, seed: 0}``.

    The same as ``SPLITS.from_dict(spec)``.

    Raises
    ------
    ValueError
        (a :class:`~nishard.errors.SpecError`) When the name is unknown, a key is not a
        parameter of that strategy, or the strategy refuses a value.
    """
    return SPLITS.from_dict(spec)


def counts_table(
    frame: pd.DataFrame,
    assignment: pd.Series,
    variables: Sequence[str] = (),
    group: str | None = "subject",
    bins: int = 4,
    splits: Sequence[str] = (),
) -> dict:
    """Counts per class per split, for the manifest.

    Parameters
    ----------
    frame : pandas.DataFrame
        The records, indexed by id.
    assignment : pandas.Series
        Split name per record id (from ``assign``).
    variables : sequence of str
        Columns to tabulate.
    group : str or None
        Count groups (a group's value as :mod:`splits` reads it) rather than records;
        None counts records.
    bins : int
        Quantile bins for continuous variables, edges taken over all groups.
    splits : sequence of str
        The splits to list first and in this order, even when empty (a strategy's
        ``names``); the others follow in order of appearance.

    Returns
    -------
    dict
        JSON-able: ``unit``; ``splits`` (records and groups per split); ``variables``,
        per variable its ``kind`` and ``counts`` (split to class to count, every class in
        every split, ``n/a`` for missing). A continuous variable adds the bin ``edges``
        and the ``mean`` and ``sd`` per split.
    """
    split = assignment.reindex(frame.index)
    if split.isna().any():
        raise ValueError(f"no split for records {list(split.index[split.isna()][:5])}")
    split = split.astype(str)
    groups = _groups(frame, group)
    # A (group, split) pair is the unit, so a hand-made assignment that splits a group
    # still counts it in each split it is in.
    units = groups + "\x1f" + split
    unit_split = pd.Series(split.to_numpy(), index=units.to_numpy()).groupby(level=0).first()
    order = list(dict.fromkeys([*splits, *split]))
    table: dict = {
        "unit": group or "record",
        "splits": {
            s: {"records": int((split == s).sum()), "groups": int((unit_split == s).sum())}
            for s in order
        },
        "variables": {},
    }
    for variable in variables:
        labels, edges, values = _labels(frame, units, variable, bins)
        present = set(labels)
        classes = (
            sorted(present - {MISSING}) if edges is None
            else [f"q{i + 1}" for i in range(len(edges) - 1)]
        ) + ([MISSING] if MISSING in present else [])  # fmt: skip
        by_split = pd.crosstab(unit_split.reindex(labels.index), labels)
        by_split = by_split.reindex(index=order, columns=classes, fill_value=0)
        entry: dict = {
            "kind": "categorical" if edges is None else "continuous",
            "counts": {s: {c: int(by_split.at[s, c]) for c in classes} for s in order},
        }
        if edges is not None:
            per = values.groupby(unit_split.reindex(values.index))
            entry["edges"] = [float(e) for e in edges]
            entry["mean"] = {s: _number(per.mean().get(s)) for s in order}
            entry["sd"] = {s: _number(per.std().get(s)) for s in order}
        table["variables"][variable] = entry
    return table


def _held_out(named: pd.Series, fold: int) -> pd.Series:
    test = named == f"fold{fold}"
    return pd.Series(np.where(test, "test", "train").astype(object), index=named.index,
                     name="split")  # fmt: skip


def _check_by(by: object) -> tuple[str, ...]:
    if isinstance(by, str):
        by = (by,)
    if not isinstance(by, Sequence) or not all(isinstance(v, str) for v in by):
        raise ValueError(f"by must be a variable name or a list of them, got {by!r}")
    return tuple(by)


def _check_fractions(fractions: object) -> dict[str, float]:
    if not isinstance(fractions, Mapping) or not fractions:
        raise ValueError(f"fractions must map split names to fractions, got {fractions!r}")
    out: dict[str, float] = {}
    for name, value in fractions.items():
        check_split_name(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ValueError(f"fraction of {name} must be in (0, 1], got {value!r}")
        out[name] = float(value)
    total = sum(out.values())
    if not math.isclose(total, 1, abs_tol=1e-6):
        raise ValueError(f"fractions sum to {total:g}, not 1: {out}")
    return out


def _groups(frame: pd.DataFrame, group: str | None) -> pd.Series:
    """Group id (str) per record; each record is its own group when ``group`` is None,
    but the echoes of one multi-echo acquisition (one ``acquisition_key``) stay one."""
    if group is None:
        ids = pd.Series(frame.index.astype(str), index=frame.index)
        if "acquisition_key" in frame.columns:
            return (
                frame["acquisition_key"]
                .astype(object)
                .where(frame["acquisition_key"].notna(), ids)
                .astype(str)
            )
        return ids
    if group not in frame.columns:
        raise ValueError(f"group column {group!r} not in the records: {list(frame.columns)}")
    column = frame[group]
    if column.isna().any():
        raise ValueError(f"records without a {group}: {list(frame.index[column.isna()][:5])}")
    return column.astype(str)


def _is_continuous(column: pd.Series, bins: int) -> bool:
    # Numeric codes with few values (0/1, site 1..3) read as classes, not as quantities.
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return numeric and column.nunique(dropna=True) > bins


def _labels(
    frame: pd.DataFrame, groups: pd.Series, variable: str, bins: int
) -> tuple[pd.Series, np.ndarray | None, pd.Series | None]:
    """Class per group of ``variable``: its label, the bin edges and the group means
    (the last two only for continuous variables)."""
    if variable not in frame.columns:
        raise ValueError(f"variable {variable!r} not in the records: {list(frame.columns)}")
    column = frame[variable]
    if not _is_continuous(column, bins):
        return _modes(column, groups), None, None
    values = pd.to_numeric(column).groupby(groups.to_numpy()).mean()
    present = values.dropna()
    edges = np.quantile(present.to_numpy(dtype=float), np.linspace(0, 1, bins + 1))
    which = np.searchsorted(edges[1:-1], values.to_numpy(dtype=float), side="right")
    labels = np.where(values.isna(), MISSING, [f"q{i + 1}" for i in which])
    return pd.Series(labels, index=values.index), edges, values


def _modes(column: pd.Series, groups: pd.Series) -> pd.Series:
    """The most frequent value of each group, as str; ties to the first in sorted order."""
    pairs = pd.DataFrame({"g": groups.to_numpy(), "v": column.to_numpy(dtype=object)})
    pairs = pairs[column.notna().to_numpy()]
    pairs["v"] = pairs["v"].map(str)
    counts = pairs.groupby(["g", "v"]).size().reset_index(name="n")
    counts = counts.sort_values(["g", "n", "v"], ascending=[True, False, True])
    modes = counts.drop_duplicates("g").set_index("g")["v"]
    every = pd.Index(np.unique(groups.to_numpy(dtype=str)))
    return modes.reindex(every).fillna(MISSING).astype(object)


def _by_hash(ids: pd.Index, seed: int, fractions: np.ndarray) -> np.ndarray:
    """Split index per group from a hash of (seed, group id): the same whatever else is."""
    units = np.array([
        int.from_bytes(hashlib.blake2b(f"{seed}\x1f{i}".encode(), digest_size=8).digest(),
                       "big") / 2**64
        for i in ids
    ])  # fmt: skip
    edges = np.cumsum(fractions)[:-1]
    return np.searchsorted(edges, units, side="right")


def _balanced(labels: pd.DataFrame, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split index per row of ``labels`` (sorted group ids, one column per variable).

    Within each stratum (a combination of classes) a split gets its fraction of the
    stratum rounded down; the leftover groups go to the splits that are furthest below
    their targets, overall and per class of each variable, counting the strata done so
    far. Only splits with a fractional share may get a leftover, which keeps every split
    within one group of its target in every stratum.
    """
    n, k = len(labels), len(fractions)
    keys = (
        labels.astype(str).agg("\x1f".join, axis=1).to_numpy(dtype=str)
        if labels.shape[1]
        else np.zeros(n, dtype=str)
    )
    order = rng.permutation(n)
    order = order[np.argsort(keys[order], kind="stable")]  # strata sorted, shuffled within
    starts = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1]])
    out = np.empty(n, dtype=int)
    seen_all, count_all = 0, np.zeros(k)
    seen: dict = defaultdict(int)
    count: dict = defaultdict(lambda: np.zeros(k))
    for members in np.split(order, starts[1:]):
        m = len(members)
        classes = list(labels.iloc[members[0]].items())
        exact = np.round(m * fractions, 9)  # so that 10 * 0.1 is 1, not 0.999...
        share = np.floor(exact).astype(int)
        left = m - share.sum()
        if left:
            deficit = (seen_all + m) * fractions - (count_all + share)
            for c in classes:
                deficit = deficit + (seen[c] + m) * fractions - (count[c] + share)
            score = np.where(exact - share > 1e-9, deficit, -np.inf)
            ranked = np.lexsort((rng.random(k), exact - share, score))[::-1]
            share[ranked[:left]] += 1
        out[members] = np.repeat(np.arange(k), share)
        seen_all, count_all = seen_all + m, count_all + share
        for c in classes:
            seen[c] += m
            count[c] = count[c] + share
    _fill_empty(out, keys, fractions)
    return out


def _fill_empty(out: np.ndarray, keys: np.ndarray, fractions: np.ndarray) -> None:
    """Move groups into splits that rounding left empty (few groups, small fractions).

    A split with no group at all is worse than one off its target by a little more than
    one; with at least as many groups as splits a donor with two or more always exists.
    The group moved comes from the stratum where the donor is furthest above its target.
    """
    for empty in range(len(fractions)):
        if (out == empty).any():
            continue
        sizes = np.bincount(out, minlength=len(fractions))
        surplus = np.where(sizes >= 2, sizes - len(out) * fractions, -np.inf)
        donor = int(np.argmax(surplus))
        members = np.flatnonzero(out == donor)
        strata, inverse, size = np.unique(keys, return_inverse=True, return_counts=True)
        mine = np.bincount(inverse[members], minlength=len(strata))
        over = mine - size * fractions[donor]
        moved = members[np.argmax(over[inverse[members]])]
        out[moved] = empty


def _features(frame: pd.DataFrame, groups: pd.Series, ids: pd.Index, by: tuple[str, ...]):
    """Standardized features per group (rows in ``ids`` order) for representative splits."""
    columns: list[np.ndarray] = []
    for variable in by:
        if variable not in frame.columns:
            raise ValueError(f"variable {variable!r} not in the records: {list(frame.columns)}")
        column = frame[variable]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = pd.to_numeric(column).groupby(groups.to_numpy()).mean().reindex(ids)
            missing = values.isna().to_numpy()
            z = _standard(values.fillna(values.mean()).to_numpy(dtype=float))
            columns += [z, z**2] + ([missing.astype(float)] if missing.any() else [])
        else:
            labels = _modes(column, groups).reindex(ids).to_numpy(dtype=str)
            columns += [(labels == c).astype(float) for c in np.unique(labels)]
    if not columns:
        return np.zeros((len(ids), 0))
    matrix = np.column_stack([_standard(c) for c in columns])
    return matrix[:, np.abs(matrix).sum(axis=0) > 0]


def _standard(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _swap_search(
    x: np.ndarray, index: np.ndarray, k: int, rng: np.random.Generator, passes: int
) -> np.ndarray:
    """Swap groups between splits while it lowers ``sum_s |S_s|^2 / n_s`` (features
    centred, so that is ``n_s`` times the squared distance of the split mean to the
    whole's); swaps keep the sizes."""
    index = index.copy()
    if x.shape[1] == 0:
        return index
    sizes = np.bincount(index, minlength=k).astype(float)
    sums = np.stack([x[index == s].sum(axis=0) for s in range(k)])
    for _ in range(passes):
        swapped = False
        for g in rng.permutation(len(index)):
            a = index[g]
            others = np.flatnonzero(index != a)
            d = x[others] - x[g]  # what split a gains by the swap, and the other loses
            b = index[others]
            sq = (d**2).sum(axis=1)
            change = (2 * d @ sums[a] + sq) / sizes[a]
            change += (-2 * (d * sums[b]).sum(axis=1) + sq) / sizes[b]
            best = int(np.argmin(change))
            if change[best] < -1e-9:
                h = others[best]
                sums[a] += d[best]
                sums[index[h]] -= d[best]
                index[g], index[h] = index[h], a
                swapped = True
        if not swapped:
            break
    return index


def _number(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
