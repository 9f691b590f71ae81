"""RecordTable: one row per record, with its files, metadata and variables."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Record:
    """One record as a processing step sees it.

    Attributes
    ----------
    id : str
        Unique identifier, usable as a WebDataset key (no dots).
    files : dict
        File column to path (only those present); a list of paths, one per run, for
        session- or subject-level records.
    metadata : dict
        Entities (subject, session, task, run, ...), ``t_r`` and the joined variables,
        as plain JSON-able Python values (missing values are None).
    """

    id: str
    files: dict[str, str | list[str]]
    metadata: dict[str, object]


@dataclass(frozen=True)
class RecordTable:
    """Records located in a dataset: a pandas frame plus what made it.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per record, indexed by record id. Columns: entities (``subject``,
        ``session``, ``task``, ``run``...), one column per staged file kind holding a path
        or None, ``t_r``, then the variables.
    files : tuple of str
        The staged file kinds (columns of ``frame`` that hold absolute paths).
    root : str
        The dataset's root folder, absolute.
    level : str
        ``run``, ``session`` or ``subject``: what one row is.
    variables : tuple of str
        The joined variables (columns of ``frame``).
    spec : dict
        The input section of a pipeline spec that reproduces this table.
    dropped : pandas.DataFrame
        Records removed by filters, with the reason (columns ``record``, ``reason``).
    unparsed : tuple of str
        Files under subject folders whose names the schema could not read.
    unmatched : tuple of str
        Subjects that a variables table has no row for.
    """

    frame: pd.DataFrame
    files: tuple[str, ...]
    root: str = "."
    level: str = "run"
    variables: tuple[str, ...] = ()
    spec: dict = field(default_factory=dict)
    dropped: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"record": [], "reason": []}, dtype=str)
    )
    unparsed: tuple[str, ...] = ()
    unmatched: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Record]:
        frame = self.frame
        if not frame.columns.is_unique:  # a column label twice: a row says what it holds
            for record_id, row in frame.iterrows():
                yield self._record(str(record_id), row)
            return
        # Each column read once, as iterating it gives its values (what a row of the
        # frame holds too), rather than a Series built for every row.
        columns = list(frame.columns)
        values = [list(frame[column]) for column in columns]
        for i, record_id in enumerate(frame.index):
            row = dict(zip(columns, [column[i] for column in values], strict=True))
            yield self._record(str(record_id), row)

    def __getitem__(self, record_id: str) -> Record:
        return self._record(record_id, self.frame.loc[record_id])

    def _record(self, record_id: str, row: pd.Series | dict) -> Record:
        files = {c: row[c] for c in self.files if _paths(row[c]) is not None}
        metadata = {key: _plain(value) for key, value in row.items() if key not in self.files}
        return Record(id=record_id, files=files, metadata=metadata)

    def summary(self) -> str:
        """A few lines: records, subjects, sessions, missing files, variables, and the
        dropped records counted by reason."""
        frame = self.frame
        lines = [f"{len(frame)} records"]
        if "subject" in frame:
            lines[0] += f" from {frame['subject'].nunique()} subjects"
        if "session" in frame and self.level != "subject":
            sessions = frame[["subject", "session"]].dropna().drop_duplicates()
            lines[0] += f", {len(sessions)} sessions"
        found = {column: sum(map(_count_paths, frame[column])) for column in self.files}
        lines.append("files: " + ", ".join(f"{k} ({n} found)" for k, n in found.items()))
        if self.variables:
            lines.append("variables: " + ", ".join(self.variables))
        if self.level != "run":
            lines[0] = lines[0].replace("records", f"{self.level} records", 1)
        if len(self.dropped):
            lines.append(f"dropped {len(self.dropped)} records:")
            for reason, records in self.dropped_by_reason().items():
                more = f" and {len(records) - 3} more" if len(records) > 3 else ""
                lines.append(f"  {len(records)} x {reason}: {', '.join(records[:3])}{more}")
        if self.unmatched:
            lines.append(f"no variables for {len(self.unmatched)} subjects: "
                         + ", ".join(self.unmatched))  # fmt: skip
        if self.unparsed:
            shown = ", ".join(self.unparsed[:5]) + (" ..." if len(self.unparsed) > 5 else "")
            lines.append(f"{len(self.unparsed)} files with names that are not BIDS: {shown}")
        return "\n".join(lines)

    def dropped_by_reason(self) -> dict[str, list[str]]:
        """The dropped records' ids by their reason, the most frequent reason first (ties in
        the order first met)."""
        groups: dict[str, list[str]] = {}
        for record, reason in zip(self.dropped["record"], self.dropped["reason"], strict=True):
            groups.setdefault(str(reason), []).append(str(record))
        return dict(sorted(groups.items(), key=lambda item: -len(item[1])))

    def to_parquet(self, path: str | Path) -> None:
        """Save the table, with its files, variables, spec and dropped records, to Parquet."""
        frame = self.frame.reset_index()
        frame.attrs = {}
        meta = {
            "files": list(self.files),
            "root": self.root,
            "level": self.level,
            "unparsed": list(self.unparsed),
            "unmatched": list(self.unmatched),
            "variables": list(self.variables),
            "spec": self.spec,
            "dropped": self.dropped.to_dict(orient="records"),
            # Parquet keeps only the categories a column uses: an empty table, or one
            # whose records of some category were dropped, would come back with fewer.
            "categories": {
                str(column): frame[column].cat.categories.tolist()
                for column in frame.columns
                if isinstance(frame[column].dtype, pd.CategoricalDtype)
            },
        }
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        merged = {**(table.schema.metadata or {}), b"nishard": json.dumps(meta).encode()}
        pq.write_table(table.replace_schema_metadata(merged), path)

    @classmethod
    def from_parquet(cls, path: str | Path) -> RecordTable:
        """Load a table saved by :meth:`to_parquet`."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"nishard"])
        frame = table.to_pandas().set_index("record")
        for column in frame.columns:  # Arrow lists come back as arrays: make them lists again
            # Only object columns can hold them; mapping a categorical (a text variable)
            # maps its categories, and with one category or none the result is no array
            # of booleans to ask ``any`` of.
            if frame[column].dtype != object:
                continue
            if frame[column].map(lambda v: hasattr(v, "tolist")).any():
                frame[column] = frame[column].map(
                    lambda v: v.tolist() if hasattr(v, "tolist") else v
                )
        for column, categories in meta.get("categories", {}).items():
            frame[column] = frame[column].astype(pd.CategoricalDtype(categories))
        return cls(
            frame=frame,
            files=tuple(meta["files"]),
            root=meta["root"],
            level=meta["level"],
            unparsed=tuple(meta["unparsed"]),
            unmatched=tuple(meta["unmatched"]),
            variables=tuple(meta["variables"]),
            spec=meta["spec"],
            dropped=pd.DataFrame(meta["dropped"], columns=["record", "reason"], dtype=str),
        )


def _paths(value: object) -> str | list[str] | None:
    """A file cell: a path, a list of paths (coarser levels), or None when missing."""
    return value if isinstance(value, str | list) else None


def _count_paths(value: object) -> int:
    """Files present in a cell: 0 or 1, or the paths of a list (coarser levels)."""
    if isinstance(value, list):
        return sum(isinstance(v, str) for v in value)
    return int(isinstance(value, str))


def _plain(value: object) -> object:
    """A JSON-able Python value: numpy scalars unwrapped; NA, NaN and infinities as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
