"""Run metadata from BIDS sidecars (with the inheritance principle) and image headers."""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from ..imageio import describe
from .entities import BidsName, parse_bids_name


def usable_tr(value: object) -> bool:
    """A positive, finite number (a header zoom is a numpy float32, no Python float)."""
    if type(value) is float or type(value) is int:  # a sidecar's: no ABC to ask
        return math.isfinite(value) and value > 0
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and value > 0


class SidecarError(ValueError):
    """A JSON sidecar that is not BIDS metadata: its message names the file, the key and
    what was found (the record is dropped with it, never given a guessed value)."""


#: Where a record's repetition time came from (the ``t_r_source`` column):
#: ``sidecar`` (BIDS: it wins over the header), ``header`` (the NIfTI or CIFTI header),
#: ``protocol`` (the acquisition protocol a schema knows, e.g. HCP's 0.72 s),
#: ``volume_timing`` (irregular acquisition: ``VolumeTiming``, no single TR), ``pending``
#: (no sidecar gives it and the image cannot be read yet, e.g. not fetched: read when
#: the image is loaded) and ``none`` (the files were read and give none).
TR_SOURCES: tuple[str, ...] = (
    "sidecar", "header", "protocol", "volume_timing", "pending", "none",
)  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """A run's timing as indexing found it.

    Attributes
    ----------
    t_r : float
        Repetition time in seconds; NaN when there is none (yet).
    source : str
        One of :data:`TR_SOURCES`.
    volume_timing : tuple of float or None
        Onsets of the volumes in seconds, from a sidecar's ``VolumeTiming``.
    """

    t_r: float = math.nan
    source: str = "none"
    volume_timing: tuple[float, ...] | None = None


def not_fetched(path: str) -> bool:
    """A file whose content is not there yet: a broken symlink (a DataLad or git-annex
    file before ``get``) or an empty placeholder."""
    file = Path(path)
    if file.is_symlink() and not file.exists():
        return True
    try:
        return file.stat().st_size == 0
    except OSError:
        return False


@lru_cache(maxsize=4096)
def read_sidecar(path: str) -> dict | None:
    """A JSON sidecar's content; None when there is no such file or it is not fetched yet.

    Raises
    ------
    SidecarError
        When the file is there but is not a JSON object (empty, malformed, a list),
        naming the file and what was found.
    """
    return _sidecar(path)


def _sidecar(path: str) -> dict | None:
    """:func:`read_sidecar`, without its cache (for a file read once)."""
    try:
        data = _read_bytes(path, at_once=True)
    except FileNotFoundError:
        return None  # absent, or a broken symlink: not fetched yet
    content = None if data is None else _object(data)
    return _explained_sidecar(path) if content is None else content


def _object(data: bytes) -> dict | None:
    """A sidecar's bytes as parsed, when they are the common case: a well-formed object
    from the first byte. None for anything else (even a file that one read did not
    return whole), which the caller reads again and explains."""
    try:
        text = data.decode("utf-8")
        content, end = _json_value(text)
    except ValueError:
        return None
    if type(content) is dict and (end == len(text) or text[end:].isspace()):
        return content
    return None


def _own_timing(path: str) -> Timing | None:
    """The timing a data file's own sidecar gives (:func:`sidecar_timing`), or None.

    Read for its run alone, so no content is kept; but a study's runs share a few
    sidecars' bytes (the same task, TR and fields for every subject), and the timing
    of bytes seen already is not parsed again.
    """
    try:
        data = _read_bytes(path, at_once=True)
    except FileNotFoundError:
        return None  # absent, or a broken symlink: not fetched yet
    if data is not None:
        # Only a sidecar's usual size is kept (64 of them at most): a rare long one (a
        # whole scanner protocol) is worked out and let go.
        timing = (_timing_of if len(data) < _CHUNK else _timing_of.__wrapped__)(data)
        if timing is not _UNSURE:
            return timing
    # Not the common case: read again, and what is wrong said with the file's name.
    return sidecar_timing(_explained_sidecar(path) or {}, path)


#: What :func:`_timing_of` answers for bytes it cannot vouch for.
_UNSURE = object()


@lru_cache(maxsize=64)
def _timing_of(data: bytes) -> Timing | object | None:
    """The timing that a sidecar's bytes give; ``_UNSURE`` unless they are a well-formed
    object with usable timing keys (or none), so that errors are said with a path."""
    content = _object(data)
    if content is None:
        return _UNSURE
    try:
        return sidecar_timing(content, "")
    except SidecarError:
        return _UNSURE


#: ``json.loads`` without its wrapper's whitespace checks (two regular expressions a
#: sidecar), which :func:`_sidecar` makes only where the object does not end the file.
_json_value = json.JSONDecoder().raw_decode


def _explained_sidecar(path: str) -> dict | None:
    """:func:`_sidecar`'s general case: the file read whole, and what is wrong said."""
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        return None
    if data is None:
        text = _read_text(path)
        if text is None:
            return None
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SidecarError(f"{path}: expected a JSON sidecar, found {describe(err)}") from err
        if "\r" in text:  # as read_text gives it: newlines translated
            text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SidecarError(f"{path}: expected a JSON object, found an empty file")
    try:
        content = json.loads(text)
    except ValueError as err:
        raise SidecarError(f"{path}: expected a JSON object, found malformed JSON ({err})") from err
    if not isinstance(content, dict):
        raise SidecarError(f"{path}: expected a JSON object, found a {type(content).__name__}")
    return content


#: What one ``read`` of a sidecar asks for: more than any sidecar holds but the longest.
_CHUNK = 1 << 16
_READ = os.O_RDONLY | os.O_CLOEXEC


def _read_bytes(path: str, at_once: bool = False) -> bytes | None:
    """A file's bytes in the fewest system calls (a sidecar is read for every run); None
    when it cannot be read so (a folder, a loop of links, no permission: the caller
    then asks as the general case does, for its own answer and message).

    With ``at_once``, a read that returns less than it asked for is taken as the end of
    the file (what a local file system does, not a promise: the caller checks what it
    got), saving the second read that would return nothing.

    Raises
    ------
    FileNotFoundError
        No such file, or a broken symlink.
    """
    if not path:
        return None
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        raise
    except OSError:
        return None
    try:
        data = os.read(fd, _CHUNK)
        if at_once and len(data) < _CHUNK:
            return data  # a sidecar, whole in the first read
        chunks = [data]
        while data:
            data = os.read(fd, _CHUNK)
            chunks.append(data)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_text(path: str) -> str | None:
    """A sidecar's text, None when it does not exist (``Path.exists``' answer)."""
    file = Path(path)
    if not file.exists():
        return None  # absent, or a broken symlink: not fetched yet
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SidecarError(f"{path}: expected a JSON sidecar, found {describe(err)}") from err


@cache
def _from_sidecar(t_r: float) -> Timing:
    # One Timing per repetition time (it is immutable): a dataset has a few, and a scan
    # asks for one per run.
    return Timing(t_r, "sidecar")


def sidecar_timing(sidecar: dict, path: str) -> Timing | None:
    """The timing a sidecar gives (``RepetitionTime``, else ``VolumeTiming``), or None.

    Parameters
    ----------
    sidecar : dict
        The (merged) sidecar content.
    path : str
        The sidecar that gave it, named in errors.

    Raises
    ------
    SidecarError
        When ``RepetitionTime`` is not a positive number of seconds (``"2.0s"``, a list,
        a boolean) or ``VolumeTiming`` not a list of increasing onsets in seconds.
    """
    if "RepetitionTime" in sidecar:
        value = sidecar["RepetitionTime"]
        if not usable_tr(value):
            units = " (BIDS gives seconds as a bare number)" if isinstance(value, str) else ""
            raise SidecarError(
                f"{path}: RepetitionTime must be a positive number of seconds, "
                f"found {value!r}{units}"
            )
        return _from_sidecar(float(value))
    if "VolumeTiming" in sidecar:
        value = sidecar["VolumeTiming"]
        onsets = value if isinstance(value, list) else []
        valid = len(onsets) > 0 and all(
            isinstance(t, numbers.Real) and not isinstance(t, bool) and math.isfinite(t)
            for t in onsets
        )
        if not valid or any(b <= a for a, b in itertools.pairwise(onsets)):
            raise SidecarError(
                f"{path}: VolumeTiming must be a list of increasing onsets in seconds, "
                f"found {value!r}"
            )
        return Timing(math.nan, "volume_timing", tuple(float(t) for t in onsets))
    return None


def sidecar_of(path: str) -> str:
    """The JSON sidecar beside a data file: ``x_bold.nii.gz`` -> ``x_bold.json``."""
    folder, _, name = path.rpartition("/")
    plain = folder.startswith("/") and "//" not in path and "/./" not in path
    if plain and name not in ("", "."):
        # A plain absolute path (as a scan gives): what Path would answer, without Path.
        return f"{folder}/{name.split('.', 1)[0]}.json"
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
            if (sidecar := _sidecar_name(name)) is not None
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


@lru_cache(maxsize=4096)
def _sidecar_name(name: str) -> BidsName | None:
    # A dataset-level sidecar applies to every run: parsed once, not once a run.
    return parse_bids_name(name, require_subject=False)


def merged(paths: list[str]) -> tuple[dict, dict[str, str]]:
    """Sidecars merged in order, later (more specific) values winning; with the sidecar
    each key came from, so that an error names the file that holds the bad value.

    Raises
    ------
    SidecarError
        When one of them is not a JSON object.
    """
    out: dict = {}
    origin: dict[str, str] = {}
    for path in paths:
        content = read_sidecar(path) or {}
        out.update(content)
        origin.update(dict.fromkeys(content, path))
    return out, origin


def header_tr(header) -> float:
    """Repetition time in a loaded header: a NIfTI's 4th zoom (``msec`` converted) or a
    CIFTI-2 series step; NaN when it has none.

    Parameters
    ----------
    header : nibabel header
        ``img.header`` of an image (or :class:`nishard.imageio.ImageHeader`'s ``header``).
    """
    if hasattr(header, "get_index_map"):  # CIFTI-2: the series axis holds the step
        axis = header.get_index_map(0)
        step = float(axis.series_step)
        if not usable_tr(step):
            return math.nan
        return step / 1000.0 if axis.series_unit == "MILLISECOND" else step
    zooms = header.get_zooms()
    units = header.get_xyzt_units()[1] if hasattr(header, "get_xyzt_units") else "sec"
    if len(zooms) < 4 or not usable_tr(zooms[3]):
        return math.nan
    return float(zooms[3]) / 1000.0 if units == "msec" else float(zooms[3])


def header_timing(path: str) -> Timing:
    """The timing a file's header gives: ``header``, ``none`` (read: it has none) or
    ``pending`` (not readable yet, as a file before it is fetched: read when loaded)."""
    from ..imageio import ImageError, load_header

    if not_fetched(path):
        return Timing(math.nan, "pending")
    try:
        header = load_header(path).header  # the header only: a .nii.gz is inflated no further
    except ImageError:
        return Timing(math.nan, "pending")  # a broken file is quarantined when loaded
    if header is None:  # GIfTI: no repetition time in its header
        return Timing(math.nan, "none")
    t_r = header_tr(header)
    return Timing(t_r, "none") if math.isnan(t_r) else Timing(t_r, "header")


def first_timing(
    sidecar_candidates: list[str | None], header_candidates: list[str | None]
) -> Timing:
    """The timing of the first data file with a sidecar that gives one, else of the first
    header that gives a TR; ``pending`` when a header could not be read yet.

    Raises
    ------
    SidecarError
        When a sidecar is malformed or its timing keys unusable (never skipped for the
        next file: the bad value is named).
    """
    for path in sidecar_candidates:
        if path is None:
            continue
        timing = _own_timing(sidecar_of(path))
        if timing is not None:
            return timing
    pending = False
    for path in header_candidates:
        if path is not None:
            timing = header_timing(path)
            if timing.source == "header":
                return timing
            pending |= timing.source == "pending"
    return Timing(math.nan, "pending" if pending else "none")
