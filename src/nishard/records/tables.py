"""Tabular variables joined to records: participants.tsv, phenotype files, any table."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import pandas as pd

from ..errors import SpecError
from ..registry import Registry


class _Joined:
    """What every table primitive shares: find its file, read it, index it for the join."""

    columns: tuple[str, ...] | None
    subject: str
    session: str | None
    name: ClassVar[str]

    def __post_init__(self) -> None:
        if isinstance(self.columns, str):  # `columns: age` in YAML means one column
            object.__setattr__(self, "columns", (self.columns,))
        elif self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))

    def to_dict(self) -> dict:
        out: dict = {"table": self.name}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and not isinstance(value, pd.DataFrame):
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def find(self, root: Path) -> Path:
        raise NotImplementedError

    def read(self, root: Path) -> pd.DataFrame:
        path = self.find(root)
        sep = "\t" if path.suffix == ".tsv" else ","
        try:
            with warnings.catch_warnings():
                # A row longer than the header only warns; it would shift every column.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                return pd.read_csv(
                    path, sep=sep, na_values=["n/a", ""], keep_default_na=False, dtype=str,
                    index_col=False, on_bad_lines="error", encoding="utf-8",
                )  # fmt: skip
        except (
            pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError,
            UnicodeDecodeError,
        ) as err:  # fmt: skip
            why = f"{type(err).__name__}: {err}".strip()
            raise SpecError(f"{path}: expected a {'tab' if sep == chr(9) else 'comma'}-"
                            f"separated table with a header, found {why}") from err  # fmt: skip

    def describe(self, root: Path) -> str:
        return str(self.find(root))

    def load(self, root: Path) -> pd.DataFrame:
        """The table indexed by ``subject`` (and ``session``), labels without prefixes.

        Raises
        ------
        SpecError
            When the key columns or asked columns are missing, or a subject (session) is
            listed twice; the message names the table and the offending subjects.
        """
        frame = self.read(root)
        where = self.describe(root)
        if self.subject not in frame.columns:
            raise SpecError(f"{where}: no subject column {self.subject!r}; it has {list(frame)}")
        session = self.session or ("session_id" if "session_id" in frame.columns else None)
        if session is not None and session not in frame.columns:
            raise SpecError(f"{where}: no session column {session!r}; it has {list(frame)}")
        keys = {self.subject: "subject"} | ({session: "session"} if session else {})
        written = frame[list(keys)].copy()  # the keys as the table writes them, for errors
        frame = frame.rename(columns=keys)
        blank = frame.index[frame["subject"].isna()]
        if len(blank):
            rows = ", ".join(str(i + 2) for i in blank)  # + header line, 1-based
            raise SpecError(f"{where}: no subject in {self.subject!r} on lines {rows}")
        frame["subject"] = frame["subject"].str.removeprefix("sub-")
        if session:
            frame["session"] = frame["session"].str.removeprefix("ses-")
        index = list(keys.values())
        duplicated = frame.duplicated(index, keep=False)
        if duplicated.any():
            raise SpecError(f"{where}: listed more than once: {_twice(frame, index, written)}")
        others = [c for c in frame.columns if c not in index]
        wanted = others if self.columns is None else list(self.columns)
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise SpecError(f"{where}: no column {missing}; the table has {list(frame.columns)}")
        return frame.set_index(index)[wanted].apply(_infer_type)


@dataclass(frozen=True)
class Participants(_Joined):
    """Variables of ``participants.tsv``.

    Parameters
    ----------
    columns : tuple of str or None
        The columns to join; None joins every column.
    path : str or None
        The table; None looks in the dataset root, then in the raw dataset two levels
        up (``ds/derivatives/fmriprep`` -> ``ds``).
    subject, session : str
        Key columns; see :class:`Table`.
    """

    columns: tuple[str, ...] | None = None
    path: str | None = None
    subject: str = "participant_id"
    session: str | None = None

    name: ClassVar[str] = "participants"

    def find(self, root: Path) -> Path:
        if self.path is not None:
            return _resolve(root, self.path)
        candidates = [root / "participants.tsv", root.parent.parent / "participants.tsv"]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise SpecError(
            "participants table not found; looked for " + ", ".join(map(str, candidates))
        )


@dataclass(frozen=True)
class Phenotype(_Joined):
    """Variables of a BIDS phenotype file, ``phenotype/<measure>.tsv``; see :class:`Table`."""

    measure: str
    columns: tuple[str, ...] | None = None
    subject: str = "participant_id"
    session: str | None = None

    name: ClassVar[str] = "phenotype"

    def find(self, root: Path) -> Path:
        for base in (root, root.parent.parent):
            candidate = base / "phenotype" / f"{self.measure}.tsv"
            if candidate.is_file():
                return candidate
        raise SpecError(f"phenotype table not found: {root / 'phenotype' / self.measure}.tsv")


@dataclass(frozen=True)
class Table(_Joined):
    """Variables from any CSV/TSV file or DataFrame, joined on subject (and session).

    Parameters
    ----------
    path : str or DataFrame
        A path relative to the dataset root (or absolute), ``.tsv`` read tab-separated and
        anything else comma-separated; or a DataFrame.
    columns : tuple of str or None
        The columns to join; None joins every column but the keys.
    subject : str
        The column of subject labels; a ``sub-`` prefix is dropped on either side.
    session : str or None
        The column of session labels, to join on subject and session; None uses
        ``session_id`` when the table has it (as BIDS phenotype files do), else joins on
        subject only.

    Notes
    -----
    ``n/a`` and empty cells are missing values. A column whose present values all parse as
    numbers becomes numeric; any other becomes categorical (sorted categories).
    """

    path: str | pd.DataFrame
    columns: tuple[str, ...] | None = None
    subject: str = "participant_id"
    session: str | None = None

    name: ClassVar[str] = "table"

    def to_dict(self) -> dict:
        out = super().to_dict()
        if isinstance(self.path, pd.DataFrame):
            digest = int(pd.util.hash_pandas_object(self.path, index=True).sum())
            out["path"] = f"<DataFrame {self.path.shape[0]}x{self.path.shape[1]} hash {digest}>"
        return out

    def find(self, root: Path) -> Path:
        return _resolve(root, self.path)

    def read(self, root: Path) -> pd.DataFrame:
        if isinstance(self.path, pd.DataFrame):
            frame = self.path.astype(str).where(self.path.notna())
            return frame.replace({"n/a": None, "": None}).reset_index(drop=True)
        return super().read(root)

    def describe(self, root: Path) -> str:
        return (
            "the given DataFrame" if isinstance(self.path, pd.DataFrame) else super().describe(root)
        )


def _resolve(root: Path, path: str) -> Path:
    resolved = Path(path) if Path(path).is_absolute() else root / path
    if not resolved.is_file():
        raise SpecError(f"variables table not found: {resolved}")
    return resolved


def _twice(frame: pd.DataFrame, index: list[str], written: pd.DataFrame) -> str:
    """Each key listed more than once, with the lines that list it as they write it:
    ``02 as 'sub-02' on line 3 and '02' on line 5`` (labels differ only by a prefix)."""
    duplicated = frame[frame.duplicated(index, keep=False)]
    groups = []
    for key, rows in duplicated.groupby(index, sort=True):
        as_written = " and ".join(
            f"{_as_written(written.loc[row])} on line {row + 2}"  # + header line, 1-based
            for row in rows.index
        )
        groups.append(f"{'-'.join(map(str, key))} as {as_written}")
    return "; ".join(groups)


def _as_written(keys: pd.Series) -> str:
    values = tuple(str(v) for v in keys)
    return repr(values[0]) if len(values) == 1 else repr(values)


def _infer_type(column: pd.Series) -> pd.Series:
    """Numeric when every present value parses as a number, categorical otherwise."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum():
        return numeric
    # Sorted categories: the same codes whatever order the rows come in.
    return column.astype(pd.CategoricalDtype(sorted(column.dropna().unique())))


#: Tables by the name a YAML spec gives them.
TABLES: Registry = Registry(
    "table", (Table, Participants, Phenotype), key="table", default="participants"
)
