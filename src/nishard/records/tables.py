"""Tabular variables joined to records: participants.tsv and friends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import SpecError


@dataclass(frozen=True)
class Participants:
    """Variables from a BIDS ``participants.tsv``, joined on subject.

    Parameters
    ----------
    columns : tuple of str or None
        The columns to join; None joins every column.
    path : str or None
        The table; None looks for ``participants.tsv`` in the dataset root, then in the
        raw dataset two levels up (``ds/derivatives/fmriprep`` -> ``ds``).
    """

    columns: tuple[str, ...] | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))

    def to_dict(self) -> dict:
        out: dict = {"table": "participants"}
        if self.columns is not None:
            out["columns"] = list(self.columns)
        if self.path is not None:
            out["path"] = self.path
        return out

    def find(self, root: Path) -> Path:
        if self.path is not None:
            candidates = [Path(self.path) if Path(self.path).is_absolute() else root / self.path]
        else:
            candidates = [root / "participants.tsv", root.parent.parent / "participants.tsv"]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise SpecError(
            "participants table not found; looked for " + ", ".join(map(str, candidates))
        )

    def load(self, root: Path) -> pd.DataFrame:
        """Read the table, indexed by subject label without the ``sub-`` prefix."""
        path = self.find(root)
        frame = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype=str)
        if "participant_id" not in frame.columns:
            raise SpecError(f"{path}: expected a 'participant_id' column, found {list(frame)}")
        frame["subject"] = frame.pop("participant_id").str.removeprefix("sub-")
        if frame["subject"].duplicated().any():
            dup = sorted(frame.loc[frame["subject"].duplicated(), "subject"])
            raise SpecError(f"{path}: participants listed twice: {dup}")
        wanted = list(frame.columns.drop("subject")) if self.columns is None else list(self.columns)
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise SpecError(f"{path}: no column {missing}; the table has {list(frame.columns)}")
        frame = frame.set_index("subject")[wanted]
        return frame.apply(_infer_type)


def _infer_type(column: pd.Series) -> pd.Series:
    """Numeric when every present value parses as a number, categorical-as-string otherwise."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum():
        return numeric
    return column
