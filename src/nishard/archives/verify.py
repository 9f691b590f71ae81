"""verify(): check a shard folder against its manifest, byte for byte and sample by sample.

Each shard the manifest lists must exist, have its size and its sha256, and decode:
every sample read back by its format's decoder (:mod:`.decoders`), with the keys the
manifest lists for the shard and arrays of the dtype and shape it lists for each
product. A sha256 catches any changed byte; decoding says which sample it broke, and
catches damage a manifest edited to match would hide, where the format checks itself
(tar headers, TFRecord and zip CRCs, HDF5 metadata checksums). A format without a
registered decoder gets the size and checksum checks alone, and a note says so. Files
the manifest lists beside the shards with a sha256 (per-split statistics, wids indexes)
must be present and unchanged.

The manifest is checked first against the content checksum stored in it (manifest v2):
a manifest edited by hand, or damaged, is a problem before any shard is read. Tar and
TFRecord shards list each sample's byte range and CRC-32C; they are checked in the same
sequential pass as the sha256, so a changed byte is pinned to the sample that holds it
even where the format's framing still reads.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import crc32c
import numpy as np

from ..errors import NishardError, StorageError
from ..progress import bar as progress_bar
from ..units import format_bytes
from . import FORMATS
from .decoders import DECODERS, DecodeError, Sample
from .manifest import MANIFEST, content_checksum, read_manifest
from .storage import LocalStorage, Stat, Storage, sha256_of, storage_for

#: Bytes read at a time when a shard is hashed.
CHUNK = 1 << 22


@dataclass(frozen=True)
class Problem:
    """What is wrong, and where: a shard (None: the manifest), a sample (None: the shard)."""

    shard: str | None
    sample: str | None
    expected: str
    found: str

    def __str__(self) -> str:
        where = self.shard or MANIFEST
        if self.sample is not None:
            where += f" [{self.sample}]"
        return f"{where}: expected {self.expected}, found {self.found}"


@dataclass
class Report:
    """The outcome of :func:`verify`: problems make it fail, warnings and notes do not."""

    folder: Path | str
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "folder": str(self.folder), "ok": self.ok}

    def to_text(self) -> str:
        """A line per problem, warning and note, and a last line with the verdict."""
        lines = [f"problem: {problem}" for problem in self.problems]
        lines += [f"warning: {warning}" for warning in self.warnings]
        lines += [f"note: {note}" for note in self.notes]
        checked = (
            f"{self.shards} shards, {self.samples} samples, {format_bytes(self.bytes)} "
            f"in {self.folder}"
        )
        if self.ok:
            lines.append(f"verified {checked}")
        else:
            lines.append(f"{len(self.problems)} problems in {checked}")
        return "\n".join(lines)


def verify(folder: str | Path | Storage, *, progress: bool = True) -> Report:
    """Check every shard of a folder against its manifest.

    Parameters
    ----------
    folder : str, Path or Storage
        A folder that :func:`nishard.write` wrote (with its ``manifest.json``), or that
        manifest; its shards are read through :func:`~nishard.archives.storage.storage_for`.
    progress : bool
        Show a progress bar over the shards' bytes.

    Returns
    -------
    Report
        Its ``problems`` (a missing, resized, changed or undecodable shard, a sample
        missing or of the wrong dtype or shape...) and ``warnings`` (files that look like
        shards but which the manifest does not list, partial ``.tmp`` files).

    Raises
    ------
    NishardError
        When the folder has no readable manifest.
    """
    storage = storage_for(folder)
    where = storage.folder if isinstance(storage, LocalStorage) else storage.url
    try:
        manifest = read_manifest(storage)
    except (OSError, ValueError) as err:
        raise NishardError(f"no readable {MANIFEST} in {storage.url}: {err}") from err
    report = Report(where)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        report.problems.append(Problem(None, None, "a list of shards", "none"))
        return report
    _check_checksum(manifest, report)
    keys = manifest.get("keys") if isinstance(manifest.get("keys"), dict) else {}
    entries = _entries(manifest["shards"], report)
    _check_totals(manifest, entries, report)
    total = sum(_size(storage, entry["name"]) for entry in entries)
    with progress_bar(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="verify",
        disable=not progress,
    ) as bar:  # fmt: skip
        for entry in entries:
            _check_shard(storage, entry, keys, report)
            bar.update(_size(storage, entry["name"]))
            bar.set_postfix(problems=len(report.problems), refresh=False)
    _check_side_files(storage, manifest, report)
    _check_strays(storage, entries, report)
    return report


def _check_checksum(manifest: dict, report: Report) -> None:
    """The manifest's content against the checksum stored in it (none before v2)."""
    stored = manifest.get("checksum")
    if stored is None:
        version = manifest.get("upgraded_from", manifest.get("format_version"))
        report.notes.append(
            f"{MANIFEST}: format version {version}, without a content checksum; its shards "
            "are checked against what it lists"
        )
    elif (found := content_checksum(manifest)) != stored:
        report.problems.append(
            Problem(None, None, f"content checksum {stored} (it was edited or damaged)", found)
        )


def _check_side_files(storage: Storage, manifest: dict, report: Report) -> None:
    """The files beside the shards that the manifest lists with a sha256 (per-split
    statistics, wids indexes, documents such as the dataset card): present and unchanged."""
    for section in ("stats", "indexes", "documents"):
        entries = manifest.get(section)
        for split, entry in entries.items() if isinstance(entries, dict) else ():
            name = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(name, str) or Path(name).name != name or "sha256" not in entry:
                continue
            if _stat(storage, name) is None:
                report.problems.append(
                    Problem(name, None, f"the {section} file of {split}", "none")
                )
            elif (digest := sha256_of(storage, name)) != entry["sha256"]:
                expected = f"sha256 {entry['sha256']}"
                report.problems.append(Problem(name, None, expected, digest))


def _entries(shards: list, report: Report) -> list[dict]:
    """The manifest's shard entries that can be checked; a problem for each other."""
    found, seen = [], set()
    for index, entry in enumerate(shards):
        name = entry.get("name") if isinstance(entry, dict) else None
        # A name with a folder in it would have verify read outside the shard folder.
        if not isinstance(name, str) or not name or Path(name).name != name:
            report.problems.append(
                Problem(None, None, "a shard file name", f"shards[{index}] = {entry!r}")
            )
            continue
        if name in seen:
            report.problems.append(Problem(name, None, "a shard listed once", "twice"))
            continue
        seen.add(name)
        found.append(entry)
    return found


def _check_totals(manifest: dict, entries: list[dict], report: Report) -> None:
    """Every format (and family) holds every sample written: their counts add up to it."""
    written = (manifest.get("records") or {}).get("written")
    if not isinstance(written, int):
        return
    per_format = Counter()
    for entry in entries:
        family = entry.get("family")
        label = entry.get("format") if family is None else f"{entry.get('format')} {family!r}"
        per_format[label] += entry.get("samples") or 0
    for fmt, count in sorted(per_format.items(), key=str):
        if count != written:
            expected = f"{written} samples (the records written) in {fmt} shards"
            report.problems.append(Problem(None, None, expected, str(count)))


def _stat(storage: Storage, name: str) -> Stat | None:
    """The file's stat; None for a folder too: a shard that is not a file is missing."""
    try:
        return storage.stat(name)
    except StorageError:
        return None


def _size(storage: Storage, name: str) -> int:
    found = _stat(storage, name)
    return 0 if found is None else found.size


def _check_shard(storage: Storage, entry: dict, keys: dict, report: Report) -> None:
    name = entry["name"]
    problems = report.problems
    found = _stat(storage, name)
    if found is None:
        problems.append(Problem(name, None, "the shard file", "none: it is missing"))
        return
    report.shards += 1
    size = found.size
    report.bytes += size
    if entry.get("bytes") != size:
        problems.append(Problem(name, None, f"{entry.get('bytes')} bytes", f"{size} bytes"))
    ranges = sample_ranges(entry)
    if ranges is None:
        digest, crcs = sha256_of(storage, name), []
    else:
        digest, crcs = _digests(storage, name, ranges)
    if entry.get("sha256") != digest:
        problems.append(Problem(name, None, f"sha256 {entry.get('sha256')}", digest))
    for (key, _, _, listed), crc in zip(ranges or (), crcs, strict=True):
        if crc != listed:  # which sample holds the changed bytes
            problems.append(Problem(name, key, f"CRC-32C {listed:08x}", f"{crc:08x}"))
    decoder = DECODERS.get(entry.get("format"))
    if decoder is None:
        report.notes.append(
            f"{name}: no decoder for format {entry.get('format')!r}; size and sha256 checked only"
        )
        return
    if isinstance(entry.get("products"), list):  # a family's shard holds only its products
        keys = {k: v for k, v in keys.items() if k in entry["products"]}
    if not isinstance(storage, LocalStorage):  # the decoders open paths
        report.notes.append(f"{name}: decoded from local folders only; size and sha256 checked")
        return
    decoded: list[str] = []
    offsets: list[int | None] = []
    try:
        for sample in decoder(storage.path(name)):
            decoded.append(sample.key)
            offsets.append(sample.offset)
            report.samples += 1
            problems += [Problem(name, sample.key, e, f) for e, f in _check_arrays(sample, keys)]
    except DecodeError as err:
        problems.append(Problem(name, err.sample, err.expected, err.found))
        return  # the rest of the shard cannot be trusted to be framed right
    except Exception as err:  # the readers' own errors: OSError, KeyError, ReadError...
        after = f" after sample {decoded[-1]}" if decoded else ""
        found = f"{type(err).__name__}: {err}{after}"
        problems.append(Problem(name, None, f"a readable {entry.get('format')} shard", found))
        return
    _check_keys(name, entry, decoded, problems)
    _check_offsets(name, entry, decoded, offsets, problems)


def sample_ranges(entry: dict) -> list[tuple[str, int, int, int]] | None:
    """``(key, start, end, crc32c)`` of each sample of a shard that lists them (manifest
    v2's tar and TFRecord shards), in file order; None when it does not, or they do not
    line up (the sha256 and the decoder still check the shard)."""
    lists = [entry.get(k) for k in ("keys", "offsets", "sizes", "crc32c")]
    if not all(isinstance(v, list) for v in lists) or len({len(v) for v in lists}) != 1:
        return None
    ranges = []
    for key, start, size, crc in zip(*lists, strict=True):
        if not all(isinstance(v, int) and v >= 0 for v in (start, size, crc)):
            return None
        ranges.append((str(key), start, start + size, crc))
    ranges.sort(key=lambda r: r[1])
    if any(a[2] > b[1] for a, b in pairwise(ranges)):
        return None  # overlapping ranges: not what a writer lists
    return ranges


def _digests(
    storage: Storage, name: str, ranges: list[tuple[str, int, int, int]]
) -> tuple[str, list[int]]:
    """The file's sha256 and each range's CRC-32C, in one sequential read. A range past
    the file's end gets the CRC of what is there."""
    digest = hashlib.sha256()
    crcs = [0] * len(ranges)
    current, position = 0, 0
    with storage.open(name) as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            end = position + len(block)
            while current < len(ranges) and ranges[current][1] < end:
                _, start, stop, _ = ranges[current]
                piece = block[max(start - position, 0) : max(min(stop, end) - position, 0)]
                crcs[current] = crc32c.crc32c(piece, value=crcs[current])
                if stop > end:
                    break  # the range goes on in the next block
                current += 1
            position = end
    return digest.hexdigest(), crcs


def _check_keys(name: str, entry: dict, decoded: list[str], problems: list[Problem]) -> None:
    """The samples read back are those the manifest lists for the shard, once each, and
    in its order where the file has one (readers take the i-th key at the i-th offset)."""
    if entry.get("samples") != len(decoded):
        problems.append(Problem(name, None, f"{entry.get('samples')} samples", f"{len(decoded)}"))
    listed = entry.get("keys")
    if not isinstance(listed, list):
        return
    have, want = Counter(decoded), Counter(listed)
    for key in sorted(want - have):
        problems.append(Problem(name, key, "the sample the manifest lists", "none"))
    for key in sorted(have - want):
        problems.append(Problem(name, key, "only the samples the manifest lists", "another"))
    # Order is the file's for tar and TFRecord (those with offsets); HDF5 and Zarr list
    # their groups by name.
    if have == want and decoded != listed and isinstance(entry.get("offsets"), list):
        at = next(i for i, (a, b) in enumerate(zip(decoded, listed, strict=True)) if a != b)
        problems.append(Problem(name, decoded[at], f"sample {at} to be {listed[at]!r}", "this one"))


def _check_offsets(
    name: str, entry: dict, decoded: list[str], offsets: list[int | None], problems: list[Problem]
) -> None:
    """Each sample starts where the manifest says (tar and TFRecord): a reader seeks there."""
    listed = entry.get("offsets")
    if not isinstance(listed, list) or None in offsets or len(listed) != len(offsets):
        return  # a count mismatch is reported already
    for key, found, expected in zip(decoded, offsets, listed, strict=True):
        if found != expected:
            problems.append(Problem(name, key, f"the sample at offset {expected}", f"{found}"))


def _check_arrays(sample: Sample, keys: dict) -> list[tuple[str, str]]:
    """``(expected, found)`` for each product missing, unlisted, or of another dtype or shape."""
    found = []
    for name in sorted(set(keys) - set(sample.arrays)):
        found.append((f"product {name!r}", "none"))
    for name, array in sorted(sample.arrays.items()):
        entry = keys.get(name)
        if not isinstance(entry, dict):
            found.append((f"only products {sorted(keys)}", repr(name)))
            continue
        dtype, shape = entry.get("dtype"), entry.get("shape")
        if isinstance(dtype, str) and dtype != "mixed" and not _same_dtype(array.dtype, dtype):
            found.append((f"{name} of dtype {dtype}", str(array.dtype)))
        if isinstance(shape, list) and not _fits(array.shape, shape):
            wanted = "(" + ", ".join("*" if n is None else str(n) for n in shape) + ")"
            found.append((f"{name} of shape {wanted}", str(array.shape)))
    return found


def _same_dtype(dtype: np.dtype, name: str) -> bool:
    if str(dtype) == name:
        return True
    try:  # '>f4' and float32 are the same numbers, in another byte order
        return np.dtype(name).newbyteorder("=") == dtype.newbyteorder("=")
    except TypeError:
        return False


def _fits(shape: tuple[int, ...], listed: list[int | None]) -> bool:
    # All None: the number of axes varied too (see KeyStats), so anything fits.
    if all(n is None for n in listed):
        return True
    return len(shape) == len(listed) and all(
        w is None or w == n for n, w in zip(shape, listed, strict=True)
    )


def _check_strays(storage: Storage, entries: list[dict], report: Report) -> None:
    """Warn of files that look like shards (or partial ones) which the manifest lacks."""
    listed = {entry["name"] for entry in entries}
    extensions = {cls.extension for cls in FORMATS.values()}
    extensions |= {"." + e["name"].split(".", 1)[1] for e in entries if "." in e["name"]}
    try:
        names = storage.list()
    except StorageError as err:  # an HTTP server cannot be listed
        report.notes.append(f"files the manifest does not list were not looked for: {err}")
        return
    for name in names:
        if name in listed or name == MANIFEST:
            continue
        if name.endswith(".tmp"):
            report.warnings.append(f"{name}: a partial file, left by a build that was stopped")
        elif any(name.endswith(extension) for extension in extensions):
            report.warnings.append(f"{name}: a shard the manifest does not list")
