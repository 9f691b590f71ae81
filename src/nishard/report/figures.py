"""The report's pictures, byte-deterministic: inline SVG histograms and grayscale PNGs.

Both are written by hand rather than by matplotlib: a histogram is a few rectangles, a
carpet thumbnail a small 8-bit image, and neither needs a plotting library's import time
(about a second) in every build, nor its metadata (dates, versions, random ids) scrubbed.
The PNG's bytes depend only on the pixels and zlib's level-9 output.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from html import escape

import numpy as np

#: Colours of the splits, in the manifest's order (then repeated).
COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")


def number(value: float | int | None, digits: int = 4) -> str:
    """A figure as the page shows it: ``digits`` significant digits, or a dash."""
    if value is None:
        return "–"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{float(value):.{digits}g}"


def histogram_svg(
    groups: Sequence[tuple[str, Sequence[float]]], *, bins: int = 20, width: int = 320
) -> str:
    """Histograms of one figure, one row per group (a split), on a shared range.

    Parameters
    ----------
    groups : sequence of (label, values)
    bins : int
    width : int
        Pixels of the plotting area.

    Returns
    -------
    str
        An ``<svg>`` element (no ids, no dates: equal values give equal text).
    """
    values = [float(v) for _, vs in groups for v in vs]
    if not values:
        return "<p class=note>no values</p>"
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    row, left, label_w = 46, 8, 70
    height = row * len(groups) + 18
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + label_w + 2 * left}" '
        f'height="{height}" role="img">'
    ]
    for i, (label, vs) in enumerate(groups):
        counts, _ = np.histogram(np.asarray(vs, dtype=float), bins=edges)
        top = max(int(counts.max()), 1) if counts.size else 1
        y0 = i * row
        colour = COLOURS[i % len(COLOURS)]
        parts.append(
            f'<text x="0" y="{y0 + row // 2 + 4}" font-size="11">{escape(label)} ({len(vs)})</text>'
        )
        step = width / bins
        for j, count in enumerate(counts):
            if count == 0:
                continue
            h = round((row - 8) * int(count) / top, 1)
            x = round(label_w + left + j * step, 1)
            parts.append(
                f'<rect x="{x}" y="{round(y0 + row - 4 - h, 1)}" width="{round(step - 1, 1)}" '
                f'height="{h}" fill="{colour}"><title>{int(count)}</title></rect>'
            )
    axis_y = row * len(groups) + 12
    parts.append(f'<text x="{label_w + left}" y="{axis_y}" font-size="10">{number(low)}</text>')
    parts.append(
        f'<text x="{label_w + left + width}" y="{axis_y}" font-size="10" '
        f'text-anchor="end">{number(high)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def carpet_pixels(series: np.ndarray, rows: int = 160, columns: int = 320) -> np.ndarray:
    """A (time, feature) array as an 8-bit carpet: features down, time across.

    At most ``rows`` features and ``columns`` volumes, evenly spaced (a thumbnail, not an
    average: it shows spikes as they are); grey levels span the 2nd to 98th percentile.
    """
    data = np.asarray(series, dtype=np.float64)
    if data.ndim != 2 or data.size == 0:
        raise ValueError(f"a (time, feature) array, got shape {data.shape}")
    times = np.unique(np.linspace(0, data.shape[0] - 1, min(columns, data.shape[0])).astype(int))
    features = np.unique(np.linspace(0, data.shape[1] - 1, min(rows, data.shape[1])).astype(int))
    picture = data[np.ix_(times, features)].T
    picture = np.where(np.isfinite(picture), picture, 0.0)
    low, high = np.percentile(picture, [2, 98])
    if high <= low:
        return np.full(picture.shape, 128, dtype=np.uint8)
    scaled = np.clip((picture - low) / (high - low), 0, 1)
    return np.round(scaled * 255).astype(np.uint8)


def png_gray(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a 2-D uint8 array: no text chunks, no time."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def data_uri(png: bytes) -> str:
    """The PNG inline, for an ``<img src=...>``: the page is one file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
