"""Pictures of learned maps: one PNG per component and a montage, with nilearn plotting.

Volumes are drawn with ``nilearn.plotting.plot_stat_map`` on the MNI template, cut
through each map's peak, with nilearn's L/R labels and cut coordinates; surface maps (and
the left cortex of CIFTI maps) on nilearn's packaged fsaverage5 mesh when they have its
10,242 vertices per hemisphere. The montage shares one colour scale (its colorbar says
what the values are), draws the maps in the order given (the report gives decreasing
explained variance) and frames flagged maps in red. Drawing runs in worker processes
(matplotlib is not thread-safe), ``jobs`` at a time.

Pictures are byte-deterministic: matplotlib's Agg backend, PNG metadata without the
``Software`` entry (Agg writes no date).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .spaces import FSAVERAGE5_VERTICES, CiftiSpace, SurfaceSpace, VolumeSpace

#: nilearn's default colour map for stat maps, named so the shared colorbar matches it.
CMAP = "RdBu_r"

#: What a colorbar says when the caller does not say what the maps hold.
DEFAULT_LABEL = "map value (a.u.)"

#: The colour of a flagged map's frame and title.
FLAG_COLOUR = "#d62728"

#: PNG metadata: without matplotlib's version (``Software``) the bytes depend on the
#: drawing alone.
PNG_METADATA = {"Software": None}


def peak_coordinates(space: VolumeSpace, maps: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of each map's largest value, shape (n, 3)."""
    coords = space.mask.coordinates()
    return coords[np.argmax(maps, axis=1)]


def _use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)


def _volume_png(
    image, peak, title: str, path: Path, colorbar: bool = True, label: str | None = None
) -> None:
    _use_agg()
    import warnings

    from nilearn import plotting

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        display = plotting.plot_stat_map(
            image,
            cut_coords=tuple(float(c) for c in peak),
            title=title,
            colorbar=colorbar,
            draw_cross=False,
            annotate=True,
            black_bg=False,
            cmap=CMAP,
        )
        colour_bar = getattr(display, "_cbar", None)  # nilearn keeps it private
        if colorbar and label and colour_bar is not None:
            colour_bar.set_label(label, fontsize=8)
        # "tight": nilearn's colorbar sits at the figure's right edge, its label beyond it.
        display.savefig(str(path), dpi=72, metadata=PNG_METADATA, bbox_inches="tight")
        display.close()


def _surface_vertices(space) -> tuple[str, slice | np.ndarray] | None:
    """The hemisphere and the features drawn on fsaverage5, if any."""
    if isinstance(space, SurfaceSpace) and space.n_vertices == FSAVERAGE5_VERTICES:
        return space.hemisphere, slice(None)
    if isinstance(space, CiftiSpace):
        for name, part, model in space.axis.iter_structures():
            if name == "CIFTI_STRUCTURE_CORTEX_LEFT" and len(model) == FSAVERAGE5_VERTICES:
                return "left", part
    return None


def _surface_png(
    values: np.ndarray, hemisphere: str, title: str, path: Path, label: str | None = None
) -> None:
    _use_agg()
    import warnings

    import matplotlib.pyplot as plt
    from nilearn import datasets, plotting

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mesh = datasets.fetch_surf_fsaverage("fsaverage5")
        side = "left" if hemisphere == "left" else "right"
        figure = plotting.plot_surf_stat_map(
            mesh[f"infl_{side}"],
            values,
            hemi=side,
            bg_map=mesh[f"sulc_{side}"],
            title=f"{title}\n{side} hemisphere, lateral view",
            colorbar=True,
            cmap=CMAP,
        )
        if label:
            figure.axes[-1].set_ylabel(label, fontsize=8)  # nilearn's colorbar comes last
        figure.savefig(str(path), dpi=72, metadata=PNG_METADATA, bbox_inches="tight")
        plt.close(figure)


def _one(space, maps: np.ndarray, index: int, path: Path, peak, title: str, label) -> Path:
    if isinstance(space, VolumeSpace):
        _volume_png(space.mask.to_image(maps[index]), peak, title, path, label=label)
    else:
        hemisphere, part = _surface_vertices(space)
        _surface_png(maps[index][part], hemisphere, title, path, label=label)
    return path


def drawable(space) -> bool:
    """Whether maps of this space can be drawn."""
    return isinstance(space, VolumeSpace) or _surface_vertices(space) is not None


def component_pngs(
    space,
    maps: np.ndarray,
    folder: Path,
    jobs: int = 1,
    titles: list[str] | None = None,
    label: str | None = None,
) -> list[Path]:
    """One PNG per map, ``component_00.png``...; none for a space that cannot be drawn.

    Parameters
    ----------
    space : VolumeSpace, SurfaceSpace or CiftiSpace
    maps : ndarray, shape (n, features)
    folder : Path
    jobs : int
        Pictures drawn at once (processes).
    titles : list of str, optional
        One per map (default ``"component i"``).
    label : str, optional
        What the colorbar's values are.

    Returns
    -------
    list of Path
    """
    if not drawable(space):
        return []
    titles = titles or [f"component {i}" for i in range(len(maps))]
    folder.mkdir(parents=True, exist_ok=True)
    peaks = peak_coordinates(space, maps) if isinstance(space, VolumeSpace) else [None] * len(maps)
    paths = [folder / f"component_{i:02d}.png" for i in range(len(maps))]
    if jobs > 1 and len(maps) > 1:
        from joblib import Parallel, delayed

        Parallel(n_jobs=jobs)(
            delayed(_one)(space, maps, i, p, peaks[i], titles[i], label)
            for i, p in enumerate(paths)
        )
    else:
        for i, path in enumerate(paths):
            _one(space, maps, i, path, peaks[i], titles[i], label)
    return paths


def montage_figure(
    space,
    maps: np.ndarray,
    titles: list[str] | None = None,
    columns: int = 5,
    *,
    order: Sequence[int] | None = None,
    flagged: Sequence[bool] | None = None,
    label: str | None = None,
):
    """The montage as a matplotlib figure (not saved): one panel per map, one colorbar.

    Parameters
    ----------
    space : VolumeSpace, SurfaceSpace or CiftiSpace
        Drawable (:func:`drawable`).
    maps : ndarray, shape (n, features)
    titles : list of str, optional
        One per map, in the maps' order (default: its number).
    columns : int
        Panels per row.
    order : sequence of int, optional
        The maps to draw, in the order of the panels (default: all, as given); e.g.
        decreasing explained variance.
    flagged : sequence of bool, optional
        Per map (maps' order): a flagged map gets a red frame and a red title.
    label : str, optional
        What the values are, written along the colorbar.

    Returns
    -------
    matplotlib.figure.Figure
        Panel axes carry ``gid`` ``"panel-<map>"``, frames ``"flag-<map>"`` and the
        colorbar's axes ``"colorbar"``.
    """
    _use_agg()
    import warnings

    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle
    from nilearn import plotting

    maps = np.asarray(maps)
    titles = titles or [str(i) for i in range(len(maps))]
    order = list(range(len(maps))) if order is None else [int(i) for i in order]
    flagged = [False] * len(maps) if flagged is None else [bool(f) for f in flagged]
    n = len(order)
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    volume = isinstance(space, VolumeSpace)
    # One scale for all: the maps are on one footing (unit norm), so the colours compare.
    vmax = float(np.max(np.abs(maps[order]))) if n else 1.0
    vmax = vmax if vmax > 0 else 1.0
    extra = max(title.count("\n") for title in titles) + 1
    width, height = 3.0 * columns + 1.1, (2.6 + 0.14 * extra) * rows
    figure = plt.figure(figsize=(width, height))
    right = 1.0 - 1.1 / width
    grid = figure.add_gridspec(
        rows,
        columns,
        left=0.01,
        right=right,
        top=1.0 - 0.12 * extra / height - 0.02,
        bottom=0.01,
        wspace=0.04,
        hspace=0.12 + 0.14 * extra,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not volume:
            from nilearn import datasets

            hemisphere, part = _surface_vertices(space)
            mesh = datasets.fetch_surf_fsaverage("fsaverage5")
        for slot, i in enumerate(order):
            cell = grid[slot // columns, slot % columns]
            if volume:
                axes = figure.add_subplot(cell)
                peak = peak_coordinates(space, maps[i : i + 1])[0]
                display = plotting.plot_stat_map(
                    space.mask.to_image(maps[i]),
                    display_mode="z",
                    cut_coords=[float(peak[2])],
                    axes=axes,
                    colorbar=False,
                    annotate=False,
                    draw_cross=False,
                    title=None,
                    black_bg=False,
                    cmap=CMAP,
                    vmax=vmax,
                    symmetric_cbar=True,
                )
                # nilearn's L/R and "z=..." labels, in a font sized for a small panel.
                display.annotate(left_right=True, positions=True, size=7)
            else:
                axes = figure.add_subplot(cell, projection="3d")
                plotting.plot_surf_stat_map(
                    mesh[f"infl_{hemisphere}"],
                    maps[i][part],
                    hemi=hemisphere,
                    bg_map=mesh[f"sulc_{hemisphere}"],
                    axes=axes,
                    colorbar=False,
                    title=None,
                    figure=figure,
                    cmap=CMAP,
                    vmax=vmax,
                    symmetric_cbar=True,
                )
                axes.text2D(
                    0.02, 0.02, f"{hemisphere} hemisphere, lateral", transform=axes.transAxes,
                    fontsize=7,
                )  # fmt: skip
            axes.set_gid(f"panel-{i}")
            # Small titles above the cut: nilearn's own sit inside the cut, in a font
            # sized for a whole figure, and run into their neighbours here.
            colour = FLAG_COLOUR if flagged[i] else "black"
            axes.set_title(titles[i], fontsize=8, color=colour)
            if flagged[i]:
                box = cell.get_position(figure)
                figure.add_artist(
                    Rectangle(
                        (box.x0, box.y0),
                        box.width,
                        box.height,
                        transform=figure.transFigure,
                        fill=False,
                        edgecolor=FLAG_COLOUR,
                        linewidth=2.5,
                        gid=f"flag-{i}",
                    )
                )
    bar = figure.add_axes((right + 0.25 / width, 0.15, 0.18 / width, 0.7), gid="colorbar")
    scale = ScalarMappable(Normalize(-vmax, vmax), cmap=CMAP)
    colour_bar = figure.colorbar(scale, cax=bar)
    colour_bar.set_label(label or DEFAULT_LABEL, fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)
    return figure


def montage(
    space,
    maps: np.ndarray,
    path: Path,
    titles: list[str] | None = None,
    columns: int = 5,
    *,
    order: Sequence[int] | None = None,
    flagged: Sequence[bool] | None = None,
    label: str | None = None,
) -> Path | None:
    """Every map in one PNG: a small axial cut through each peak (volumes) or the maps on
    the inflated fsaverage5 surface (surfaces), one shared colorbar; None for a space that
    cannot be drawn. See :func:`montage_figure` for the arguments."""
    if not drawable(space):
        return None
    import matplotlib.pyplot as plt

    figure = montage_figure(space, maps, titles, columns, order=order, flagged=flagged, label=label)
    figure.savefig(str(path), dpi=72, metadata=PNG_METADATA)
    plt.close(figure)
    return path
