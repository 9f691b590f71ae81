"""The build report: one HTML page read at a glance, drawn from the manifest alone.

Sections, each a ``<section id=...>``: ``summary`` (counts, products), ``qc`` (per-record
temporal SNR, framewise displacement and censored fraction, their distributions per
split), ``carpets`` (thumbnails of the worst and the median record by FD), ``splits``
(counts and the distribution of each variable per split, and the check that no subject
sits in two splits), ``excluded`` (quarantined and dropped records with their reasons),
``shards`` (names, counts, bytes, sha256) and ``provenance`` (the spec, the versions).

The page is a pure function of the manifest (and of the two samples a carpet shows): no
date, no host, no absolute path (a path in the spec is shown by its last parts), so that
two builds of the same inputs give the same bytes and ``nishard report`` gives the page
the build wrote. The manifest's own ``checksum`` and ``report`` entries are not shown
(the page is written before the manifest that lists it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from html import escape
from pathlib import Path

import numpy as np

from ..archives.manifest import read_manifest
from ..archives.storage import Storage, publishing, storage_for
from .figures import COLOURS, carpet_pixels, data_uri, histogram_svg, number, png_gray
from .samples import read_series, series_key

REPORT = "report.html"
#: Per-record rows shown in the QC table (worst first); the manifest has them all.
MAX_ROWS = 200
#: The QC figures shown, with their headings.
FIGURES = {
    "tsnr": "temporal SNR",
    "fd_mean": "mean FD (mm)",
    "fd_max": "max FD (mm)",
    "censored": "censored fraction",
    "volumes": "volumes",
}

_STYLE = """
body{font-family:sans-serif;margin:1.5em 2em;color:#222;max-width:1300px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#186a1e;font-weight:bold}.bad{color:#b00020;font-weight:bold}
.note{color:#666;font-size:.9em}code,pre{font-size:.85em;background:#f7f7f7}
pre{padding:.6em;overflow:auto;max-height:30em}
.bar{display:inline-block;height:.7em;background:#4477aa;vertical-align:middle;margin-right:.3em}
figure{display:inline-block;margin:0 1.5em 1em 0}
figure img{width:480px;height:240px;image-rendering:pixelated;border:1px solid #999}
.hist{display:inline-block;margin-right:2em;vertical-align:top}
nav a{margin-right:1em}
"""


def render(manifest: dict, storage: Storage | None = None) -> str:
    """The report's HTML for a manifest (sealed or not).

    Parameters
    ----------
    manifest : dict
    storage : Storage, optional
        The shard folder, to read the carpets' samples back; without one the page has
        none.
    """
    members = _members(manifest)
    qc = {k: v for k, v in manifest.get("qc", {}).items() if isinstance(v, dict)}
    sections = [
        _summary(manifest, qc),
        _qc(qc, members, _split_names(manifest, members)),
        _carpets(manifest, qc, storage),
        _splits(manifest, members),
        _excluded(manifest),
        _shards(manifest),
        _provenance(manifest),
    ]
    nav = "".join(
        f'<a href="#{key}">{title}</a>'
        for key, title in (("summary", "Summary"), ("qc", "Quality"), ("carpets", "Carpets"),
                           ("splits", "Splits"), ("excluded", "Excluded"),
                           ("shards", "Shards"), ("provenance", "Provenance"))
    )  # fmt: skip
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>nishard build report</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>nishard build report</h1>"
        f"<nav>{nav}</nav>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_report(where: str | os.PathLike | Storage, manifest: dict) -> dict:
    """Write ``report.html`` into the shard folder; the manifest's ``report`` entry.

    Returns
    -------
    dict
        ``{"file": "report.html", "sha256": ...}``.
    """
    storage = storage_for(where)
    data = render(manifest, storage).encode("utf-8")
    with publishing(storage, REPORT) as temporary:
        temporary.write_bytes(data)
    return {"file": REPORT, "sha256": hashlib.sha256(data).hexdigest()}


def report(where: str | os.PathLike | Storage, output: str | os.PathLike = REPORT) -> Path:
    """Draw the report of a finished build (``nishard report``); where it was written.

    The page is the one the build wrote beside its manifest (the same bytes, by the
    same nishard), drawn again: for a build made before builds wrote one, or elsewhere.

    Parameters
    ----------
    where : path or Storage
        The shard folder (or its ``manifest.json``).
    output : path
        Default: ``report.html`` in the current folder.
    """
    storage = storage_for(where)
    text = render(read_manifest(storage), storage)
    path = Path(output)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- sections


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{escape(title)}</h2>\n{body}</section>'


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    """A table of already escaped cells; columns in ``numeric`` right-aligned."""
    numeric = set(numeric)
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = (f"<td class=n>{c}</td>" if i in numeric else f"<td>{c}</td>"
                 for i, c in enumerate(row))  # fmt: skip
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _members(manifest: dict) -> dict[str, str]:
    """Each written record's split, in the order its shards list them."""
    members: dict[str, str] = {}
    for shard in manifest.get("shards", []):
        for key in shard.get("keys", []):
            members.setdefault(key, shard.get("split", ""))
    return members


def _split_names(manifest: dict, members: dict[str, str]) -> list[str]:
    """The splits in the order of the shard list (the plan's): the manifest's dicts have
    their keys sorted once written, so their order is not the build's."""
    shards = [s.get("split", "") for s in manifest.get("shards", [])]
    listed = (manifest.get("splits", {}) or {}).get("splits") or {}
    named = list(dict.fromkeys(shards + list(members.values())))
    return named + sorted(set(listed) - set(named))


def _summary(manifest: dict, qc: dict) -> str:
    counts = manifest.get("records", {})
    rows = [[escape(k), str(counts.get(k, "–"))]
            for k in ("located", "dropped", "quarantined", "written")]  # fmt: skip
    keys = [
        [f"<code>{escape(name)}</code>", escape(str(entry.get("dtype"))),
         escape(str(entry.get("shape")))]
        for name, entry in sorted(manifest.get("keys", {}).items())
    ]  # fmt: skip
    medians = []
    for figure, title in FIGURES.items():
        values = [v[figure] for v in qc.values() if figure in v]
        if values:
            medians.append(f"{title}: median {number(float(np.median(values)))}")
    body = (
        _table(["records", "count"], rows, {1})
        + "<h3>Products</h3>"
        + _table(["key", "dtype", "shape (null: varies)"], keys)
        + (f"<p>{'; '.join(medians)} (over {len(qc)} records).</p>" if medians else "")
    )
    return _section("summary", "Summary", body)


def _qc(qc: dict, members: dict[str, str], names: list[str]) -> str:
    if not qc:
        return _section(
            "qc", "Quality per record",
            "<p class=note>No QC figures: the build loaded no BOLD data or confounds "
            "(or its manifest predates them).</p>",
        )  # fmt: skip
    shown = [f for f in FIGURES if any(f in v for v in qc.values())]
    # (In the manifest's order of splits: a manifest read back has its qc keys sorted.)
    splits = [s for s in names if any(members.get(r) == s for r in qc)]
    splits += sorted({members.get(r, "") for r in qc} - set(splits))
    hists = []
    for figure in (f for f in ("tsnr", "fd_mean", "censored") if f in shown):
        groups = [(s, [qc[r][figure] for r in qc if members.get(r, "") == s and figure in qc[r]])
                  for s in splits]  # fmt: skip
        hists.append(
            f"<div class=hist><h3>{escape(FIGURES[figure])}</h3>{histogram_svg(groups)}</div>"
        )
    order = sorted(qc, key=lambda r: (-qc[r].get("fd_mean", 0.0), qc[r].get("tsnr", 0.0), r))
    rows = [
        [f"<code>{escape(r)}</code>", escape(members.get(r, "")),
         *(number(qc[r].get(f)) for f in shown)]
        for r in order[:MAX_ROWS]
    ]  # fmt: skip
    more = (
        f"<p class=note>The {MAX_ROWS} records with the highest mean FD of {len(order)}; "
        "every record's figures are in manifest.json under <code>qc</code>.</p>"
        if len(order) > MAX_ROWS
        else ""
    )
    body = (
        "<p class=note>Temporal SNR: median over brain voxels of mean/std along time of the "
        "BOLD data as loaded; FD: framewise displacement (Power) from the confounds; "
        "censored: fraction of volumes removed by censoring. Measured by the workers "
        "during the build.</p>"
        + "".join(hists)
        + "<h3>Records, highest mean FD first</h3>"
        + _table(
            ["record", "split", *(escape(FIGURES[f]) for f in shown)],
            rows,
            set(range(2, 2 + len(shown))),
        )
        + more
    )
    return _section("qc", "Quality per record", body)


def chosen_records(qc: dict) -> list[tuple[str, str]]:
    """The records a carpet is drawn for, with why: the worst and the median by mean FD
    (by temporal SNR, lowest, when there is no FD)."""
    by = "fd_mean" if any("fd_mean" in v for v in qc.values()) else "tsnr"
    ranked = sorted((r for r in qc if by in qc[r]), key=lambda r: (qc[r][by], r))
    if not ranked:
        return []
    if by == "fd_mean":
        picks = [(ranked[-1], "highest mean FD"), (ranked[(len(ranked) - 1) // 2], "median FD")]
    else:
        picks = [(ranked[0], "lowest tSNR"), (ranked[(len(ranked) - 1) // 2], "median tSNR")]
    return list({r: (r, why) for r, why in picks}.values())


def _carpets(manifest: dict, qc: dict, storage: Storage | None) -> str:
    key = series_key(manifest)
    picks = chosen_records(qc)
    if key is None or not picks or storage is None:
        why = "no (time, feature) product to draw" if key is None else "no QC figures"
        return _section("carpets", "Carpet plots", f"<p class=note>None: {why}.</p>")
    figures = []
    for record, why in picks:
        series = read_series(storage, manifest, record, key)
        if series is None:
            continue
        png = png_gray(carpet_pixels(series))
        caption = (f"<code>{escape(record)}</code>: {why} ("
                   + ", ".join(f"{FIGURES[f]} {number(qc[record][f])}"
                               for f in FIGURES if f in qc[record]) + ")")  # fmt: skip
        figures.append(
            f'<figure><img alt="carpet of {escape(record)}" src="{data_uri(png)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    body = (
        f"<p class=note>Product <code>{escape(key)}</code> as written: features down "
        "(evenly spaced), volumes across; grey levels from the 2nd to the 98th percentile.</p>"
        + "".join(figures)
    )
    return _section("carpets", "Carpet plots", body)


_SUBJECT = re.compile(r"(?:^|_)sub-([A-Za-z0-9]+)")


def _splits(manifest: dict, members: dict[str, str]) -> str:
    table = manifest.get("splits", {}) or {}
    names = _split_names(manifest, members)
    per_split = table.get("splits") or {}
    rows = [[escape(s), str((per_split.get(s) or {}).get("records", "–")),
             str((per_split.get(s) or {}).get("groups", "–"))] for s in names]  # fmt: skip
    strategy = table.get("strategy")
    body = (
        f"<p>Strategy: <code>{escape(json.dumps(strategy, sort_keys=True))}</code>; "
        f"unit: {escape(str(table.get('unit', '–')))}.</p>"
        + _table(["split", "records", f"{escape(str(table.get('unit', 'group')))}s"], rows, {1, 2})
        + _leakage(members)
    )
    for name, variable in sorted((table.get("variables") or {}).items()):
        body += _variable(name, variable, names)
    return _section("splits", "Splits", body)


def _leakage(members: dict[str, str]) -> str:
    """Whether a subject (``sub-`` in its record ids) sits in two splits."""
    subjects: dict[str, set[str]] = {}
    unknown = 0
    for record, split in members.items():
        found = _SUBJECT.search(record)
        if found is None:
            unknown += 1
            continue
        subjects.setdefault(found.group(1), set()).add(split)
    if not subjects:
        return "<p class=note>Subject check: record ids carry no <code>sub-</code> entity.</p>"
    shared = {s: v for s, v in sorted(subjects.items()) if len(v) > 1}
    if not shared:
        extra = f" ({unknown} records without a subject in their id)" if unknown else ""
        return (
            f"<p class=ok id=subject-check>No subject sits in two splits: "
            f"{len(subjects)} subjects{extra}.</p>"
        )
    items = "".join(f"<li>sub-{escape(s)}: {escape(', '.join(sorted(v)))}</li>"
                    for s, v in shared.items())  # fmt: skip
    return (
        f"<p class=bad id=subject-check>{len(shared)} subjects sit in more than one split:"
        f"</p><ul>{items}</ul>"
    )


def _variable(name: str, variable: dict, splits: list[str]) -> str:
    """One variable's counts per split (by class or by quartile), with bars."""
    counts = variable.get("counts") or {}
    classes = sorted({c for s in splits for c in (counts.get(s) or {})}, key=str)
    totals = {s: sum((counts.get(s) or {}).values()) for s in splits}
    rows = []
    for c in classes:
        cells = [escape(str(c))]
        for s in splits:
            n = (counts.get(s) or {}).get(c, 0)
            share = n / totals[s] if totals[s] else 0.0
            colour = COLOURS[splits.index(s) % len(COLOURS)]
            cells.append(
                f'<span class=bar style="width:{round(60 * share)}px;background:{colour}">'
                f"</span>{n} ({round(100 * share)}%)"
            )
        rows.append(cells)
    extra = ""
    if variable.get("kind") == "continuous":
        edges = variable.get("edges")
        means, sds = variable.get("mean") or {}, variable.get("sd") or {}
        extra = (
            "<p class=note>Quartile edges: "
            + escape(", ".join(number(e) for e in edges or []))
            + "; mean (sd): "
            + escape(
                "; ".join(f"{s} {number(means.get(s))} ({number(sds.get(s))})" for s in splits)
            )
            + "</p>"
        )
    return (
        f"<h3><code>{escape(name)}</code> ({escape(str(variable.get('kind', '')))})</h3>"
        + _table(["class", *(escape(s) for s in splits)], rows)
        + extra
    )


def _excluded(manifest: dict) -> str:
    quarantine = manifest.get("quarantine") or []
    dropped = manifest.get("dropped") or []
    body = f"<h3>Quarantined ({len(quarantine)})</h3>"
    if quarantine:
        body += _table(
            ["record", "file", "expected", "found"],
            [[f"<code>{escape(str(e.get('record')))}</code>", _path(e.get("file")),
              escape(str(e.get("expected"))), escape(_clean(str(e.get("found"))))]
             for e in quarantine[:MAX_ROWS]],
        ) + _more(len(quarantine), "quarantine")  # fmt: skip
    else:
        body += "<p class=ok>None.</p>"
    body += f"<h3>Dropped before the build ({len(dropped)})</h3>"
    if dropped:
        reasons: dict[str, int] = {}
        for entry in dropped:
            reason = _clean(str(entry.get("reason", "")))
            reasons[reason] = reasons.get(reason, 0) + 1
        body += _table(
            ["reason", "records"],
            [[escape(r), str(n)] for r, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))],
            {1},
        )
        # The record first, then whatever else the entries hold (its reason, its file).
        head = sorted({k for e in dropped for k in e}, key=lambda k: (k != "record", k))
        body += _table(
            [escape(h) for h in head],
            [[escape(_clean(str(e.get(h, "")))) for h in head] for e in dropped[:MAX_ROWS]],
        ) + _more(len(dropped), "dropped")
    else:
        body += "<p class=ok>None.</p>"
    warnings = manifest.get("warnings") or []
    if warnings:
        body += f"<h3>Warnings ({len(warnings)})</h3>" + _table(
            ["record", "file", "warning"],
            [[f"<code>{escape(str(w.get('record')))}</code>", _path(w.get("file")),
              escape(_clean(str(w.get("warning"))))] for w in warnings[:MAX_ROWS]],
        ) + _more(len(warnings), "warnings")  # fmt: skip
    return _section("excluded", "Quarantined and dropped records", body)


def _more(total: int, section: str) -> str:
    """A note when a table shows the first :data:`MAX_ROWS` of its entries only."""
    if total <= MAX_ROWS:
        return ""
    return (
        f"<p class=note>The first {MAX_ROWS} of {total}; every one is in manifest.json "
        f"under <code>{section}</code>.</p>"
    )


def _shards(manifest: dict) -> str:
    shards = manifest.get("shards") or []
    rows = [
        [f"<code>{escape(str(s.get('name')))}</code>", escape(str(s.get("split"))),
         escape(str(s.get("format"))), str(s.get("samples")), str(s.get("bytes")),
         f"<code>{escape(str(s.get('sha256')))}</code>"]
        for s in shards
    ]  # fmt: skip
    side = []
    for section in ("stats", "indexes"):
        for _, entry in sorted((manifest.get(section) or {}).items()):
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                side.append([f"<code>{escape(entry['file'])}</code>", escape(section),
                             f"<code>{escape(str(entry.get('sha256')))}</code>"])  # fmt: skip
    total = sum(int(s.get("bytes") or 0) for s in shards)
    body = (
        f"<p>{len(shards)} shards, {total} bytes.</p>"
        + _table(["shard", "split", "format", "samples", "bytes", "sha256"], rows, {3, 4})
        + ("<h3>Side files</h3>" + _table(["file", "kind", "sha256"], side) if side else "")
    )
    return _section("shards", "Shards and checksums", body)


def _provenance(manifest: dict) -> str:
    versions = manifest.get("versions") or {}
    rows = [[escape(k), escape(str(v))] for k, v in sorted(versions.items())]
    spec = dict(manifest.get("spec") or {})
    spec.pop("execution", None)
    if isinstance(spec.get("output"), dict) and "path" in spec["output"]:
        spec["output"] = {**spec["output"], "path": "(this folder)"}
    spec = json.dumps(_relative(spec), indent=1, sort_keys=True)
    inputs = manifest.get("inputs") or {}
    body = (
        f"<p>Manifest format version {escape(str(manifest.get('format_version')))}; "
        f"{len(inputs)} input files checksummed (sha256, in manifest.json).</p>"
        + "<h3>Versions</h3>"
        + _table(["package", "version"], rows)
        + "<h3>Spec</h3>"
        + "<p class=note>Without its <code>execution</code> section (what ran the build "
        "does not change its output: the page is the same whatever ran it; manifest.json "
        "records it). A path is shown by its last parts.</p>" + f"<pre>{escape(spec)}</pre>"
    )
    return _section("provenance", "Provenance", body)


# --------------------------------------------------------------------------- paths

_ABSOLUTE = re.compile(r"(?<![\w.])(/[^\s'\",:;()]+)")


def _short(path: str) -> str:
    """An absolute path by its last two parts: where the build ran is not the page's."""
    parts = [p for p in path.split("/") if p]
    return ".../" + "/".join(parts[-2:]) if parts else path


def _clean(text: str) -> str:
    """``text`` with every absolute path shortened (:func:`_short`)."""
    return _ABSOLUTE.sub(lambda m: _short(m.group(1)), text)


def _path(value: object) -> str:
    if value is None:
        return "–"
    return f"<code>{escape(_clean(str(value)))}</code>"


def _relative(value: object) -> object:
    """A spec with its absolute paths shortened, wherever they are."""
    if isinstance(value, dict):
        return {k: _relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v) for v in value]
    if isinstance(value, str):
        return _clean(value)
    return value
