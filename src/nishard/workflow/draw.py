"""A picture of a plan's DAG (PNG or SVG), drawn with matplotlib alone.

No graphviz: the layout is a layered one computed here. Record file kinds form the top
row, each node sits one row below the deepest node it reads from, and the products form
the bottom row. A node's box lists its fused steps, its backend and, when the plan knows
shapes to estimate from, its estimated peak memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpecError
from ..units import format_bytes

if TYPE_CHECKING:
    from ..records.table import Record
    from ..transforms.base import ArraySpec
    from .plan import Plan

#: Picture formats by file suffix.
FORMATS = {".png": "png", ".svg": "svg"}

# Layout units: one text line is 1 unit high; a character about 0.55 wide at the font
# size used, which sizes boxes to their text without measuring it.
_CHAR, _LINE, _PAD, _GAP_X, _GAP_Y = 0.55, 1.0, 0.6, 1.5, 2.0
_COLOURS = {"input": "#dbe9f6", "product": "#e3f1de", "numpy": "#fdf0d5", "jax": "#f6dede"}


@dataclass
class _Box:
    """One box of the picture: its lines of text, colour and centre."""

    lines: list[str]
    colour: str
    x: float = 0.0
    y: float = 0.0

    @property
    def width(self) -> float:
        return max(len(line) for line in self.lines) * _CHAR + 2 * _PAD

    @property
    def height(self) -> float:
        return len(self.lines) * _LINE + _PAD


def draw(
    plan: Plan,
    path: str | Path,
    example: Record | Mapping[str, ArraySpec] | None = None,
) -> Path:
    """Draw a plan's DAG to a PNG or SVG file (by suffix).

    Parameters
    ----------
    plan : Plan
    path : str or Path
        Ends in ``.png`` or ``.svg``; the folder must exist.
    example : Record or dict of ArraySpec, optional
        Shapes to estimate node peaks on; default: the example the plan was assembled
        with. Without either, boxes show no estimate.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SpecError
        For another suffix.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpecError(f"a picture file ending in {' or '.join(FORMATS)}, got {str(path)!r}")
    boxes, edges = _graph(plan, _peaks(plan, example))
    _layout(boxes, edges)
    _render(boxes, edges, path, fmt)
    return path


def _peaks(plan: Plan, example) -> list[int] | None:
    from ..records.table import Record

    if isinstance(example, Record):
        return plan.estimate_record(example)
    shapes = example if example is not None else plan.example
    return plan.estimate(dict(shapes)) if shapes else None


def _graph(plan: Plan, peaks: list[int] | None) -> tuple[list[list[_Box]], list[tuple]]:
    """Boxes in rows (inputs, node layers, products) and edges between them."""
    from .plan import _producer

    inputs = {kind: _Box([kind], _COLOURS["input"]) for kind in plan.inputs}
    depth: list[int] = []
    nodes: list[_Box] = []
    edges: list[tuple[_Box, _Box, str]] = []
    for number, node in enumerate(plan.nodes):
        depth.append(1 + max((depth[p] for p in node.parents), default=0))
        peak = f", ~{format_bytes(peaks[number])}" if peaks else ""
        lines = [f"node {number} [{node.backend}{peak}]", *(f"  {s.name}" for s in node.steps)]
        nodes.append(_Box(lines, _COLOURS.get(node.backend, _COLOURS["numpy"])))
        edges += [(inputs[kind], nodes[-1], "") for kind in node.loads if kind in inputs]
        for parent in node.parents:
            # What the node reads of its parent's outputs: the keys on the edge.
            read = {k for step in node.steps for k in step.reads} & set(plan.nodes[parent].outputs)
            edges.append((nodes[parent], nodes[-1], ", ".join(sorted(read))))
    products = {key: _Box([key], _COLOURS["product"]) for key in plan.products}
    for key, box in products.items():
        producer = _producer(plan.nodes, key)
        source = inputs.get(key) if producer is None else nodes[producer]
        if source is not None:
            edges.append((source, box, ""))
    layers: list[list[_Box]] = [[] for _ in range(max(depth, default=0))]
    for number, box in enumerate(nodes):
        layers[depth[number] - 1].append(box)
    return [list(inputs.values()), *layers, list(products.values())], edges


def _layout(rows: list[list[_Box]], edges: list[tuple]) -> None:
    """Centre each row horizontally; rows go down, spaced by their tallest box.

    Below the first row, boxes are ordered by the mean x of the boxes that point at them
    (the barycentre heuristic), which removes most crossings of a plan's few edges.
    """
    widest = max(sum(b.width for b in row) + _GAP_X * (len(row) - 1) for row in rows if row)
    sources: dict[int, list[_Box]] = {}
    for source, target, _ in edges:
        sources.setdefault(id(target), []).append(source)
    y = 0.0
    for number, row in enumerate(rows):
        if not row:
            continue
        if number:
            row.sort(key=lambda b: sum(s.x for s in sources.get(id(b), [])) /
                     max(1, len(sources.get(id(b), []))))  # fmt: skip
        tallest = max(b.height for b in row)
        x = (widest - sum(b.width for b in row) - _GAP_X * (len(row) - 1)) / 2
        for box in row:
            box.x, box.y = x + box.width / 2, y - tallest / 2
            x += box.width + _GAP_X
        y -= tallest + _GAP_Y


def _render(rows: list[list[_Box]], edges: list[tuple], path: Path, fmt: str) -> None:
    import matplotlib

    # Text as <text> in SVG (searchable, selectable), not as glyph outlines.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

        boxes = [b for row in rows for b in row]
        left = min(b.x - b.width / 2 for b in boxes) - 1
        right = max(b.x + b.width / 2 for b in boxes) + 1
        top = max(b.y + b.height / 2 for b in boxes) + 1
        bottom = min(b.y - b.height / 2 for b in boxes) - 1
        scale = 0.22  # inches per layout unit, matched to the 9 pt font below
        figure = Figure(figsize=((right - left) * scale, (top - bottom) * scale))
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(left, right)
        axes.set_ylim(bottom, top)
        axes.axis("off")
        for box in boxes:
            corner = (box.x - box.width / 2, box.y - box.height / 2)
            axes.add_patch(FancyBboxPatch(corner, box.width, box.height,
                                          boxstyle="round,pad=0.1", facecolor=box.colour,
                                          edgecolor="#555555", linewidth=0.8,
                                          zorder=2))  # fmt: skip
            axes.text(box.x - box.width / 2 + _PAD, box.y, "\n".join(box.lines),
                      ha="left", va="center", family="monospace", fontsize=9,
                      zorder=3)  # fmt: skip
        # Edges under the boxes: one that skips a row passes behind the boxes of that row.
        for source, target, label in edges:
            start = (source.x, source.y - source.height / 2)
            end = (target.x, target.y + target.height / 2)
            axes.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10,
                                           color="#333333", linewidth=0.8,
                                           zorder=1))  # fmt: skip
            if label:
                middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
                axes.text(*middle, label, ha="center", va="center", fontsize=8,
                          color="#333333", backgroundcolor="white", zorder=1.5)  # fmt: skip
        figure.savefig(path, format=fmt, dpi=100)
