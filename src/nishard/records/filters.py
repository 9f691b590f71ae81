"""Filters: primitives that keep or drop records, and say why they dropped one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd


@dataclass(frozen=True)
class Complete:
    """Keep records that carry every staged file and a known repetition time.

    Parameters
    ----------
    variables : bool
        Also require a value for every joined variable.
    """

    variables: bool = False

    name: ClassVar[str] = "complete"

    def to_dict(self) -> dict:
        return {"name": self.name, "variables": self.variables}

    def reasons(
        self, frame: pd.DataFrame, stage: tuple[str, ...], variables: tuple[str, ...]
    ) -> pd.Series:
        """One string per record: empty to keep it, else why it is dropped."""
        checks = [(kind, f"no {kind} file") for kind in stage]
        checks.append(("t_r", "no RepetitionTime in sidecar or header"))
        if self.variables:
            checks += [(col, f"no value for {col}") for col in variables]
        missing = [(frame[column].isna().to_numpy(), why) for column, why in checks]
        return pd.Series(
            ["; ".join(why for flags, why in missing if flags[i]) for i in range(len(frame))],
            index=frame.index,
        )


#: Filters by the name a YAML spec gives them.
FILTERS: dict[str, type] = {Complete.name: Complete}
