"""inspect(): what a shard folder holds, from its manifest alone (no shard is opened).

Counts per split and format and per shard, the products' dtypes and shapes, their
statistics per split where the manifest has them, the split strategy's table of counts per class,
the records quarantined with their reasons, and the records dropped. The manifest is read
defensively: a section it lacks (an older or a newer build's) is left out, not an error.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import NishardError
from ..units import format_bytes
from .manifest import MANIFEST, read_manifest
from .storage import Storage, storage_for


def summarize(manifest: dict) -> dict:
    """The facts :func:`inspect` shows, as plain data (for ``nishard inspect --json``).

    Parameters
    ----------
    manifest : dict
        As :func:`~nishard.archives.read_manifest` gives it.

    Returns
    -------
    dict
        ``records`` (located, dropped, quarantined, written), ``splits`` (split to format,
        or format and family, to shards, samples and bytes), ``shards`` (name, split,
        format, samples, bytes),
        ``keys`` (product to dtype and shape, and anything else listed there), ``stats``
        (split to key to summary statistics), ``split_table`` (the manifest's
        ``splits``), ``quarantine``, ``dropped`` (reason to count) and ``indexes``
        (split to the file of its wids index).
    """
    shards = [s for s in _list(manifest.get("shards")) if isinstance(s, dict)]
    splits: dict[str, dict[str, dict[str, int]]] = {}
    for shard in shards:
        # A family's shards (some products only) are counted apart: "tfrecord connectivity".
        label = " ".join(str(shard[f]) for f in ("format", "family") if shard.get(f) is not None)
        row = splits.setdefault(str(shard.get("split")), {}).setdefault(
            label, {"shards": 0, "samples": 0, "bytes": 0}
        )
        row["shards"] += 1
        row["samples"] += _int(shard.get("samples"))
        row["bytes"] += _int(shard.get("bytes"))
    keys = _dict(manifest.get("keys"))
    dropped = [d for d in _list(manifest.get("dropped")) if isinstance(d, dict)]
    return {
        "records": _dict(manifest.get("records")),
        "splits": splits,
        "shards": [
            {field: shard.get(field) for field in ("name", "split", "format", "samples", "bytes")}
            for shard in shards
        ],
        "keys": {name: _dict(entry) for name, entry in keys.items()},
        "stats": _stats(manifest.get("stats")),
        "split_table": _dict(manifest.get("splits")),
        "quarantine": [q for q in _list(manifest.get("quarantine")) if isinstance(q, dict)],
        "dropped": dict(Counter(str(d.get("reason")) for d in dropped)),
        "indexes": {
            str(split): entry.get("file")
            for split, entry in _dict(manifest.get("indexes")).items()
            if isinstance(entry, dict)
        },
    }


def _stats(stats: object) -> dict[str, dict[str, dict]]:
    """Split to key to summary statistics, from the manifest's ``stats`` section."""
    found: dict[str, dict[str, dict]] = {}
    for split, entry in _dict(stats).items():
        per_key = {k: v for k, v in _dict(_dict(entry).get("keys")).items() if isinstance(v, dict)}
        if per_key:
            found[str(split)] = per_key
    return found


def inspect(folder: str | Path | Storage) -> str:
    """A readable account of a shard folder's manifest.

    Parameters
    ----------
    folder : str, Path or Storage
        A folder that :func:`nishard.write` wrote, or its ``manifest.json`` (see
        :func:`~nishard.archives.storage.storage_for`).

    Returns
    -------
    str
        Sections: records, counts per split and format, shards, keys, splits, quarantine,
        dropped.

    Raises
    ------
    NishardError
        When there is no readable manifest (a
        :class:`~nishard.errors.StorageError` for a store not supported yet).
    """
    storage = storage_for(folder)
    try:
        manifest = read_manifest(storage)
    except (OSError, ValueError) as err:
        raise NishardError(f"no readable {MANIFEST} in {folder}: {err}") from err
    if not isinstance(manifest, dict):
        raise NishardError(f"{folder}: the manifest is not a mapping")
    return render(summarize(manifest))


def render(summary: dict) -> str:
    """The text of :func:`inspect`, from :func:`summarize`'s dict."""
    sections = [
        _records(summary["records"]),
        _splits(summary["splits"]),
        _shards(summary["shards"]),
        _keys(summary["keys"]),
        _statistics(summary["stats"]),
        _split_table(summary["split_table"]),
        _quarantine(summary["quarantine"]),
        _dropped(summary["dropped"]),
    ]
    if summary["indexes"]:
        files = ", ".join(f"{split}: {file}" for split, file in summary["indexes"].items())
        sections.append(f"wids indexes: {files}")
    return "\n\n".join(section for section in sections if section)


def _records(records: dict) -> str:
    names = ("located", "dropped", "quarantined", "written")
    parts = [f"{records[n]} {n}" for n in names if n in records]
    return "records: " + ", ".join(parts) if parts else ""


def _splits(splits: dict) -> str:
    rows = [
        [split, fmt, row["shards"], row["samples"], format_bytes(row["bytes"])]
        for split, formats in splits.items()
        for fmt, row in formats.items()
    ]
    return "samples per split\n" + _table(["split", "format", "shards", "samples", "bytes"], rows)


def _shards(shards: list[dict]) -> str:
    rows = [
        [
            *("?" if s[f] is None else s[f] for f in ("name", "split", "format", "samples")),
            format_bytes(_int(s["bytes"])),
        ]
        for s in shards
    ]
    return "shards\n" + _table(["name", "split", "format", "samples", "bytes"], rows)


def _keys(keys: dict) -> str:
    if not keys:
        return ""
    rows = []
    for name, entry in keys.items():
        shape = entry.get("shape")
        if isinstance(shape, list):
            shape = "(" + ", ".join("*" if n is None else str(n) for n in shape) + ")"
        # Anything else the manifest says of a key is shown as it is.
        extra = {k: v for k, v in entry.items() if k not in ("dtype", "shape")}
        rows.append([name, entry.get("dtype", "?"), shape or "?", _flat(extra)])
    if not any(row[-1] for row in rows):
        return "keys\n" + _table(["key", "dtype", "shape"], [row[:-1] for row in rows])
    return "keys\n" + _table(["key", "dtype", "shape", "other"], rows)


def _statistics(stats: dict) -> str:
    if not stats:
        return ""
    columns = ["samples", "count", "features", "mean", "std", "min", "max"]
    rows, extra = [], False
    for split, per_key in stats.items():
        for name, summary in per_key.items():
            others = {k: v for k, v in summary.items() if k not in columns}
            extra = extra or bool(others)
            rows.append([split, name, *(_number(summary.get(c)) for c in columns), _flat(others)])
    header = ["split", "key", *columns, "other"]
    if not extra:
        header, rows = header[:-1], [row[:-1] for row in rows]
    return "statistics, over every value of a key\n" + _table(header, rows)


def _flat(value: object, prefix: str = "") -> str:
    """``{"stats": {"mean": 0.1}}`` as ``stats.mean=0.1``; numbers to 4 digits."""
    if isinstance(value, dict):
        parts = [
            _flat(v, f"{prefix}{k}." if prefix or k != "stats" else "") for k, v in value.items()
        ]
        return " ".join(part for part in parts if part)
    name = prefix.rstrip(".")
    if isinstance(value, float):
        value = f"{value:.4g}"
    elif isinstance(value, list) and len(value) > 8:
        value = f"[{len(value)} values]"
    return f"{name}={value}" if name else str(value)


def _split_table(table: dict) -> str:
    if not table:
        return ""
    strategy = table.get("strategy")
    if isinstance(strategy, dict):
        by = strategy.get("by")
        strategy = strategy.get("name", "?") + (f" by {', '.join(map(str, by))}" if by else "")
    head = f"splits: {strategy}" if strategy else "splits"
    unit = table.get("unit")
    counts = _dict(table.get("splits"))
    names = list(counts)
    lines = [head + (f", whole {unit}s per split" if unit and unit != "record" else "")]
    if counts:
        columns = sorted({c for row in counts.values() if isinstance(row, dict) for c in row})
        rows = [[name, *(_dict(counts[name]).get(c, "") for c in columns)] for name in names]
        lines.append(_table(["split", *columns], rows))
    rows = []
    for variable, entry in _dict(table.get("variables")).items():
        per_split = _dict(entry.get("counts")) if isinstance(entry, dict) else {}
        classes = sorted({c for row in per_split.values() if isinstance(row, dict) for c in row})
        for klass in classes:
            rows.append([variable, klass, *(_dict(per_split.get(n)).get(klass, "") for n in names)])
            variable = ""
        for measure in ("mean", "sd"):
            values = _dict(entry.get(measure)) if isinstance(entry, dict) else {}
            if values:
                rows.append([variable, measure, *(_number(values.get(n)) for n in names)])
                variable = ""
    if rows and names:
        lines.append(_table(["variable", "class", *names], rows))
    return "\n".join(lines)


def _quarantine(entries: list[dict]) -> str:
    if not entries:
        return "quarantine: none"
    lines = [f"quarantine: {len(entries)} records"]
    for q in entries:
        where = f" ({q['file']})" if q.get("file") else ""
        lines.append(
            f"  {q.get('record')}{where}: expected {q.get('expected')}, found {q.get('found')}"
        )
    return "\n".join(lines)


def _dropped(reasons: dict) -> str:
    total = sum(reasons.values())
    if not total:
        return "dropped: none"
    lines = [f"dropped: {total} records"]
    lines += [f"  {count} x {reason}" for reason, count in sorted(reasons.items())]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _number(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []
