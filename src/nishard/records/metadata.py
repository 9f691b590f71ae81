"""Run metadata from BIDS sidecars (with the inheritance principle) and image headers."""

from __future__ import annotations

import json
import math
import numbers
from functools import lru_cache
from pathlib import Path

from .entities import BidsName, parse_bids_name


def usable_tr(value: object) -> bool:
    """A positive, finite number (a header zoom is a numpy float32, no Python float)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and value > 0


@lru_cache(maxsize=4096)
def _read_json(path: str) -> dict:
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def sidecar_of(path: str) -> str:
    """The JSON sidecar beside a data file: ``x_bold.nii.gz`` -> ``x_bold.json``."""
    name = Path(path).name
    stem = name.split(".", 1)[0]
    return str(Path(path).with_name(stem + ".json"))


def by_folder(jsons: list[str]) -> dict[str, list[str]]:
    """JSON files (relative paths) grouped by folder (``""`` for the root), names sorted."""
    folders: dict[str, list[str]] = {}
    for relative in jsons:
        folder, _, name = relative.rpartition("/")
        folders.setdefault(folder, []).append(name)
    return {folder: sorted(names) for folder, names in folders.items()}


def inherited_sidecars(
    root: Path, relative: str, bids: BidsName, sidecars: dict[str, list[str]]
) -> list[str]:
    """Sidecars that apply to a file by the BIDS inheritance principle, least specific first.

    A JSON applies when it has the same suffix, sits in the file's folder or one of its
    parents up to the dataset root, and its entities are a subset of the file's.

    Parameters
    ----------
    root : Path
        Dataset root.
    relative : str
        The data file, relative to ``root``.
    bids : BidsName
        Its parsed name.
    sidecars : dict
        Every JSON of the dataset by folder, from :func:`by_folder`.

    Raises
    ------
    ValueError
        When two sidecars apply at one level (the specification forbids it).
    """
    parts = relative.split("/")[:-1]
    found = []
    for depth in range(len(parts) + 1):
        folder = "/".join(parts[:depth])
        level = [
            name
            for name in sidecars.get(folder, ())
            if (sidecar := parse_bids_name(name, require_subject=False)) is not None
            and sidecar.suffix == bids.suffix
            and all(bids.entities.get(k) == v for k, v in sidecar.entities.items())
        ]
        if len(level) > 1:
            # The inheritance principle allows one applicable sidecar per level.
            raise ValueError(
                f"{relative}: {len(level)} sidecars apply at one level, "
                f"{' and '.join(f'{root}/{folder}/{n}'.replace('//', '/') for n in level)}; "
                "BIDS allows one"
            )
        found += [f"{root}/{folder}/{name}" if folder else f"{root}/{name}" for name in level]
    return found


def merged(paths: list[str]) -> dict:
    """Sidecars merged in order: later (more specific) values win."""
    out: dict = {}
    for path in paths:
        out.update(_read_json(path))
    return out


def sidecar_tr(path: str) -> float:
    """RepetitionTime of the sidecar beside ``path``; NaN when absent or unusable."""
    value = _read_json(sidecar_of(path)).get("RepetitionTime")
    return float(value) if usable_tr(value) else math.nan


def header_tr(path: str) -> float:
    """Repetition time from a NIfTI header (4th zoom, ms converted) or a CIFTI series step."""
    from ..imageio import load_header

    try:
        img = load_header(path)  # the header only: a .nii.gz is inflated no further
        if hasattr(img.header, "get_index_map"):  # CIFTI-2: the series axis holds the step
            axis = img.header.get_index_map(0)
            step = float(axis.series_step)
            return step / 1000.0 if axis.series_unit == "MILLISECOND" else step
        zooms = img.header.get_zooms()
        units = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
    except Exception:
        return math.nan  # unreadable: the record is quarantined when its data is loaded
    if len(zooms) < 4 or not usable_tr(zooms[3]):
        return math.nan
    return float(zooms[3]) / 1000.0 if units == "msec" else float(zooms[3])


def first_tr(sidecar_candidates: list[str | None], header_candidates: list[str | None]) -> float:
    """The TR from the first file with a usable sidecar, else the first usable header."""
    for path in sidecar_candidates:
        if path is not None and not math.isnan(t_r := sidecar_tr(path)):
            return t_r
    for path in header_candidates:
        if path is not None and not math.isnan(t_r := header_tr(path)):
            return t_r
    return math.nan
