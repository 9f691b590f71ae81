"""Write a fitted estimator's maps, draw them, and say what happened in one HTML page.

:func:`learn_report` (also ``estimator.report(out)``) is what ``nishard learn`` and the
demo run after the fit; it fits nothing, reading only what the fitted estimator holds,
and writes into ``out``:

- ``components.nii.gz`` (``.func.gii``, ``.dscalar.nii`` for surface keys; ``.npy``
  without a mask): the maps in the original space;
- ``components/component_XX.png`` and ``montage.png`` (nilearn plotting: colorbars that
  say what the values are, cut coordinates, L/R; the montage in decreasing explained
  variance, flagged maps framed in red);
- ``results.json``: the figures of the fit (explained variance, time, memory, the flags
  of each map, how far DictLearning learned its dictionary...);
- ``report.html``: the maps, the explained variance, the time and peak memory of the
  fit, and the shards' manifest summary (splits, counts, quarantined records) as the fit
  recorded it, with the match to ground-truth maps when they are given, and the maps
  flagged as matching no true network or looking like noise (:mod:`.flags`).
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..units import format_bytes
from .canica import CanICA
from .dictlearning import DictLearning
from .errors import LearnError
from .flags import MATCH_MIN, NEIGHBOUR_MIN, SPREAD_MAX, flag_maps
from .grouppca import GroupPCA
from .plots import component_pngs, montage, peak_coordinates
from .spaces import VolumeSpace

#: The estimators by the names ``nishard learn`` and the reports give them.
METHODS = {"canica": CanICA, "dictlearning": DictLearning, "grouppca": GroupPCA}

#: What each method's maps hold, as the colorbars say it. Every method scales each map to
#: unit l2 norm over the mask (CanICA before its threshold zeroes the small values), so
#: the values are weights without a physical unit, comparable between maps of one fit.
VALUE_LABELS = {
    "canica": "ICA weight (unit-norm map, a.u.)",
    "dictlearning": "dictionary weight (unit-norm map, a.u.)",
    "grouppca": "PCA loading (unit-norm map, a.u.)",
}


def value_label(method: str) -> str:
    """What a method's map values are, for a colorbar."""
    return VALUE_LABELS.get(method, "map weight (a.u.)")


def _truth_match(estimator, truth: object) -> dict | None:
    """Hungarian match of the maps to ground-truth maps (a 4D image on the same mask)."""
    if truth is None:
        return None
    from .matching import image_maps

    if not isinstance(estimator.space_, VolumeSpace):
        raise LearnError("ground-truth maps are compared on volume data only")
    reference = image_maps(truth, estimator.space_.mask)
    names = _truth_names(truth, len(reference))
    return match_summary(estimator.components_, reference, names, str(truth))


def match_summary(maps: np.ndarray, reference: np.ndarray, names: list[str], file: str) -> dict:
    """The report's match of maps to true maps, JSON-able.

    Parameters
    ----------
    maps : ndarray, shape (n, features)
    reference : ndarray, shape (m, features)
        The true maps on the same features.
    names : list of str
        One per true map.
    file : str
        Where the true maps come from (for the page).

    Returns
    -------
    dict
        ``pairs`` (Hungarian assignment on |spatial correlation|: ``truth``, ``name``,
        ``component``, ``correlation``), ``worst`` and ``closest`` (per map, the true map
        it resembles most, matched to it or not: ``name``, ``correlation``).
    """
    from .matching import match_components, spatial_correlation

    match = match_components(maps, reference)
    similarity = np.abs(spatial_correlation(maps, reference))
    closest = similarity.argmax(axis=0)
    return {
        "file": file,
        "pairs": [
            {"truth": int(r), "name": names[int(r)], "component": int(c), "correlation": float(v)}
            for r, c, v in zip(match.reference, match.component, match.correlation, strict=True)
        ],
        "worst": match.worst,
        "closest": [
            {"name": names[int(r)], "correlation": float(similarity[r, c])}
            for c, r in enumerate(closest)
        ],
    }


def _truth_names(truth: object, count: int) -> list[str]:
    """Network names from a ``networks.tsv`` beside the truth image, when there is one."""
    if isinstance(truth, (str, os.PathLike)):
        table = Path(truth).with_name("networks.tsv")
        if table.is_file():
            import pandas as pd

            names = pd.read_csv(table, sep="\t")["name"].astype(str).tolist()
            if len(names) == count:
                return names
    return [f"map {i}" for i in range(count)]


def method_name(estimator) -> str:
    """``"canica"``, ``"dictlearning"``...: the estimator's name in :data:`METHODS`."""
    for name, cls in METHODS.items():
        if type(estimator) is cls:
            return name
    return type(estimator).__name__.lower()


def results(estimator, method: str, pictures: dict, match: dict | None) -> dict:
    """The JSON-able figures of a fitted estimator."""
    log = estimator.reduction_log_
    folders = list(estimator.shards_)
    ev = estimator.explained_variance_
    peaks = (
        peak_coordinates(estimator.space_, estimator.components_).round(1).tolist()
        if isinstance(estimator.space_, VolumeSpace)
        else None
    )
    return {
        "method": method,
        "key": estimator.key,
        "split": estimator.split,
        "folders": folders,
        "n_components": int(estimator.n_components),
        "parameters": {k: _plain(v) for k, v in estimator.get_params().items()},
        "space": estimator.space_.description,
        "samples": estimator.n_samples_,
        "timepoints": estimator.n_timepoints_,
        "bytes_streamed": estimator.bytes_streamed_,
        "reductions_from_cache": log.cached,
        "subject_variance_kept": log.variance_kept,
        "group_pca_exact": bool(estimator.group_exact_),
        "explained_variance": None if ev is None else [float(v) for v in ev],
        "explained_variance_total": estimator.explained_variance_total_,
        "peaks_mm": peaks,
        "fit_time_s": estimator.fit_time_,
        "timings_s": estimator.timings_,
        "memory": estimator.memory_usage_,
        "pictures": pictures,
        "truth_match": match,
        "dictionary_learning": _dictionary_learning(estimator),
    }


def _dictionary_learning(estimator: object) -> dict | None:
    """How far a DictLearning fit learned its dictionary; None for other methods."""
    if not isinstance(estimator, DictLearning):
        return None
    return {
        "mini_batches": estimator.n_steps_,
        "batch_size": int(estimator.batch_size),
        "passes": estimator.passes_,
        "stopped_early": estimator.passes_ < int(estimator.n_epochs),
    }


def map_titles(
    explained: np.ndarray | None, match: dict | None, count: int, flags: list | None = None
) -> list[str]:
    """Each map's title: its number and share of the variance, and on a second line the
    true network it matches, e.g. ``"3: 4.2% of variance\nvisual (r 0.95)"``; a flagged
    map (``flags``: :class:`~nishard.learn.flags.MapFlags` per map) gets a last line
    ``"flagged: noise-like"``, and no network a match below the threshold."""
    pairs = (match or {}).get("pairs", [])
    names = {p["component"]: f"{p['name']} (r {p['correlation']:.2f})" for p in pairs}
    if flags is not None:
        names = {i: n for i, n in names.items() if flags[i].truth is not None}
    titles = []
    for i in range(count):
        title = str(i) if explained is None else f"{i}: {explained[i]:.1%} of variance"
        title += f"\n{names[i]}" if i in names else ""
        if flags is not None and flags[i].flagged:
            title += f"\nflagged: {flags[i].short}"
        titles.append(title)
    return titles


def variance_order(explained: np.ndarray | None, count: int) -> list[int]:
    """The maps by decreasing explained variance (ties and no score: as given)."""
    if explained is None:
        return list(range(count))
    return [int(i) for i in np.argsort(-np.asarray(explained), kind="stable")]


def _plain(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def learn_report(
    estimator,
    out: str | os.PathLike,
    *,
    truth: object = None,
    plots: bool = True,
    n_jobs: int | None = None,
) -> dict:
    """Write a fitted estimator's maps, pictures and report to ``out``; nothing is fitted.

    Parameters
    ----------
    estimator : CanICA, DictLearning or GroupPCA
        Fitted (``estimator.report(out)`` is the same call).
    out : path
        Output folder (created).
    truth : path, optional
        A 4D image of ground-truth maps (e.g. a synthetic dataset's
        ``truth/networks.nii.gz``): the report then matches the maps to it.
    plots : bool
        Draw the PNGs (the slowest part of a small fit's report).
    n_jobs : int, optional
        Processes drawing the PNGs; default: the estimator's ``n_jobs``.

    Returns
    -------
    dict
        ``report`` and ``components`` (paths), ``results`` (the figures) and
        ``estimator`` (the one given).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the estimator is not fitted.
    """
    check_is_fitted(estimator)
    # Absolute: the PNGs are drawn in worker processes, which a reused pool started in
    # another working directory (a notebook's chdir) would resolve a relative path from.
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    jobs = int(estimator.n_jobs if n_jobs is None else n_jobs)
    method = method_name(estimator)
    components = estimator.save(out / "components")
    match = _truth_match(estimator, truth)
    space = estimator.space_
    flags = flag_maps(
        estimator.components_,
        space.mask.mask if isinstance(space, VolumeSpace) else None,
        match,
    )
    label = value_label(method)
    tick = time.perf_counter()
    pictures: dict = {"components": [], "montage": None}
    if plots:
        count = len(estimator.components_)
        titles = map_titles(estimator.explained_variance_, match, count, flags)
        pngs = component_pngs(
            space, estimator.components_, out / "components", jobs, titles, label=label
        )
        pictures["components"] = [str(p.relative_to(out)) for p in pngs]
        picture = montage(
            space,
            estimator.components_,
            out / "montage.png",
            titles,
            order=variance_order(estimator.explained_variance_, count),
            flagged=[f.flagged for f in flags],
            label=label,
        )
        pictures["montage"] = None if picture is None else str(picture.relative_to(out))
    pictures["seconds"] = time.perf_counter() - tick
    figures = results(estimator, method, pictures, match)
    figures["components_file"] = components.name
    figures["values"] = label
    figures["flags"] = {
        "criteria": {
            "match_min": MATCH_MIN if match is not None else None,
            "spread_max": SPREAD_MAX,
            "neighbour_min": NEIGHBOUR_MIN if isinstance(space, VolumeSpace) else None,
        },
        "maps": [f.as_dict() for f in flags],
    }
    (out / "results.json").write_text(json.dumps(figures, indent=2, default=_plain) + "\n")
    report = out / "report.html"
    report.write_text(render_html(figures, estimator.shards_), encoding="utf-8")
    return {"report": report, "components": components, "results": figures, "estimator": estimator}


def canica_report(
    estimator: CanICA,
    out: str | os.PathLike = "canica",
    *,
    truth: object = None,
    plots: bool = True,
    n_jobs: int | None = None,
) -> dict:
    """A fitted CanICA's maps, pictures and HTML report (the demo's step); no second fit.

    Parameters
    ----------
    estimator : CanICA
        Fitted: ``CanICA(...).fit(folders)``.
    out, truth, plots, n_jobs
        See :func:`learn_report`.

    Returns
    -------
    dict
        ``report`` (the HTML file's path), ``components``, ``results``, ``estimator``.
    """
    if not isinstance(estimator, CanICA):
        raise TypeError(
            f"canica_report reports a fitted CanICA, got a {type(estimator).__name__}: "
            "ica = CanICA(...).fit(folders), then canica_report(ica, out) (or ica.report(out))"
        )
    return learn_report(estimator, out, truth=truth, plots=plots, n_jobs=n_jobs)


# -- HTML ----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.montage { max-width: 100%; } img.map { width: 26em; }
.bar { background: #4a7ab5; height: 0.8em; display: inline-block; }
.note { color: #666; font-size: 0.9em; }
.flag { color: #d62728; font-weight: 600; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    head = f"<tr>{head}</tr>" if any(header) else ""  # a two-column list has no header
    return f"<table>{head}{body}</table>"


def _fit_section(r: dict) -> str:
    memory = r["memory"]
    plan = memory.get("plan") or {}
    budget = memory.get("budget")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in r["timings_s"].items())
    kept = r["subject_variance_kept"]
    rows = [
        ["method", _e(r["method"])],
        ["key", _e(r["key"]) + (f" (split {_e(r['split'])})" if r["split"] else "")],
        ["shard folders", "<br>".join(_e(f) for f in r["folders"]) or "arrays"],
        ["space", _e(r["space"])],
        ["samples", f"{r['samples']} ({r['timepoints']} time points)"],
        [
            "data streamed",
            f"{format_bytes(r['bytes_streamed'])}"
            + (
                f", {r['reductions_from_cache']} reductions from the cache"
                if r["reductions_from_cache"]
                else ""
            ),
        ],
        ["time of the fit", f"{r['fit_time_s']:.2f} s ({_e(timings)})"],
        [
            "peak memory of the fit",
            f"{format_bytes(memory['added'])} added to the process "
            f"(peak resident {format_bytes(memory['peak'])}, of which "
            f"{format_bytes(memory['baseline'])} before the fit: interpreter and libraries)",
        ],
        [
            "memory budget",
            "none (every subject's rows kept)"
            if budget is None
            else f"{format_bytes(budget)}: {plan.get('jobs')} subject(s) at a time, group "
            f"buffer of {plan.get('capacity')} rows (MIGP keeps {plan.get('keep')})",
        ],
        [
            "group PCA",
            "exact (every subject's components held)"
            if r["group_pca_exact"]
            else "incremental (MIGP): the buffer was reduced as subjects came",
        ],
        ["subject PCA", "—" if kept is None else f"kept {kept:.1%} of the data's sum of squares"],
        *_dictionary_rows(r.get("dictionary_learning")),
        ["parameters", _e(", ".join(f"{k}={v}" for k, v in r["parameters"].items()))],
    ]
    return "<h2>Fit</h2>" + _table(["", ""], rows)


def _dictionary_rows(learned: dict | None) -> list[list[str]]:
    """The Fit table's row on how far the dictionary was learned (DictLearning only)."""
    if learned is None:
        return []
    text = (
        f"{learned['mini_batches']} mini-batches of {learned['batch_size']} voxels, "
        f"{learned['passes']:.2f} passes over the voxels"
    )
    if learned["stopped_early"]:
        # What a researcher needs to read the maps: learned from part of the voxels, on
        # a path the early stop fixed (another machine's rounding can move a hard map).
        text += (
            ": ended by the early stop (tol, max_no_improvement), as in nilearn; the maps "
            "depend on the learning's path. tol=0, max_no_improvement=None learns over "
            "n_epochs full passes"
        )
    return [["dictionary learning", _e(text)]]


def _maps_section(r: dict) -> str:
    parts = ["<h2>Components</h2>"]
    if r["pictures"].get("montage"):
        parts.append(f'<img class="montage" src="{_e(r["pictures"]["montage"])}" alt="montage">')
    values = r.get("values")
    parts.append(
        f'<p>Maps: <a href="{_e(r["components_file"])}">{_e(r["components_file"])}</a>'
        f" ({r['n_components']} components"
        + (f"; values: {_e(values)}" if values else "")
        + "), drawn in decreasing explained variance.</p>"
    )
    flags = (r.get("flags") or {}).get("maps") or []
    reasons = {f["component"]: f["reasons"] for f in flags if f["reasons"]}
    parts.append(_flags_note(r.get("flags"), len(reasons)))
    ev = r["explained_variance"]
    total = r["explained_variance_total"]
    if total is not None:
        parts.append(
            f"<p>All components together explain {total:.1%} of the data's sum of "
            "squares; each one alone (nilearn's per-component score):</p>"
        )
    rows = []
    pngs = r["pictures"].get("components") or []
    order = np.argsort(ev)[::-1] if ev is not None else range(r["n_components"])
    top = max(ev) if ev else 1.0
    for i in order:
        value = "—" if ev is None else f"{ev[i]:.2%}"
        bar = (
            "" if ev is None else f'<span class="bar" style="width:{8 * ev[i] / top:.2f}em"></span>'
        )
        peak = "—" if r["peaks_mm"] is None else _e(tuple(r["peaks_mm"][i]))
        image = (
            f'<img class="map" src="{_e(pngs[i])}" alt="component {i}">' if i < len(pngs) else ""
        )
        flag = (
            "<br>".join(f'<span class="flag">{_e(why)}</span>' for why in reasons[i])
            if i in reasons
            else ("—" if flags else "not assessed")
        )
        rows.append([str(i), f"{value} {bar}", peak, flag, image])
    parts.append(
        _table(["component", "explained variance", "peak (mm)", "flags", "map"], rows, {0})
    )
    return "".join(parts)


def _flags_note(flags: dict | None, count: int) -> str:
    """How maps were flagged, and how many were."""
    if not flags:
        return ""
    criteria = flags["criteria"]
    tests = []
    if criteria.get("match_min") is not None:
        tests.append(
            f"it matches no true network (no Hungarian match with |r| &ge; {criteria['match_min']})"
        )
    tests.append(
        "its values are spread as noise's are (mean|x| / rms &ge; "
        f"{criteria['spread_max']}: Gaussian noise has 0.80, a map of a few regions far less)"
    )
    if criteria.get("neighbour_min") is not None:
        tests.append(
            "it has no spatial structure (correlation of each voxel with the mean of its "
            f"neighbours &lt; {criteria['neighbour_min']}: white noise has 0)"
        )
    total = len(flags["maps"])
    return (
        f'<p class="note"><span class="flag">{count} of {total} maps flagged</span> (red '
        "frame in the montage). A map is flagged when " + "; or when ".join(tests) + ". "
        "The noise criteria are heuristics: a component fitting structured noise with a "
        "sparse, smooth map passes them.</p>"
    )


def _truth_section(match: dict | None) -> str:
    if not match:
        return ""
    rows = [[_e(p["name"]), str(p["component"]), f"{p['correlation']:.3f}"] for p in match["pairs"]]
    return (
        "<h2>Ground truth</h2>"
        f"<p>Each map of {_e(match['file'])} matched to a distinct component (Hungarian "
        f"assignment on |spatial correlation|); the worst match is {match['worst']:.3f}.</p>"
        + _table(["true map", "component", "|correlation|"], rows, {1, 2})
    )


def _manifest_section(summary: dict) -> str:
    parts = ["<h2>Shards</h2>"]
    for folder, facts in summary.items():
        records = facts.get("records") or {}
        counts = ", ".join(
            f"{records[k]} {k}"
            for k in ("located", "dropped", "quarantined", "written")
            if k in records
        )
        digest = facts.get("manifest_sha256")
        parts.append(
            f"<h3>{_e(folder)}</h3><p>Records: {_e(counts) or '—'}."
            + (f' <span class="note">manifest sha256 {_e(digest)}</span>' if digest else "")
            + "</p>"
        )
        rows = [
            [
                _e(split),
                _e(fmt),
                str(row["shards"]),
                str(row["samples"]),
                format_bytes(row["bytes"]),
            ]
            for split, formats in (facts.get("splits") or {}).items()
            for fmt, row in formats.items()
        ]
        parts.append(_table(["split", "format", "shards", "samples", "bytes"], rows, {2, 3, 4}))
        quarantine = facts.get("quarantine") or []
        if quarantine:
            rows = [
                [
                    _e(q.get("record")),
                    _e(q.get("file") or ""),
                    _e(q.get("expected")),
                    _e(q.get("found")),
                ]
                for q in quarantine
            ]
            parts.append(
                f"<p>{len(quarantine)} quarantined records:</p>"
                + _table(["record", "file", "expected", "found"], rows)
            )
        else:
            parts.append("<p>No record quarantined.</p>")
        dropped = facts.get("dropped") or {}
        if dropped:
            parts.append(
                "<p>Dropped: "
                + _e(", ".join(f"{n} x {why}" for why, n in dropped.items()))
                + "</p>"
            )
    return "".join(parts)


def render_html(figures: dict, summary: dict) -> str:
    """The report page of :func:`learn_report` from its figures and the shard folders'
    facts (``estimator.shards_``)."""
    title = (
        f"nishard learn {figures['method']}: {figures['n_components']} components "
        f"of {figures['key']}"
    )
    body = (
        f"<h1>{_e(title)}</h1>"
        + _fit_section(figures)
        + _truth_section(figures.get("truth_match"))
        + _maps_section(figures)
        + _manifest_section(summary)
        + '<p class="note">Written by nishard.learn.report.</p>'
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
