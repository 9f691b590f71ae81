"""Pictures of learned maps: one PNG per component and a montage, with nilearn plotting.

Volumes are drawn with ``nilearn.plotting.plot_stat_map`` on the MNI template, cut
through each map's peak; surface maps (and the left cortex of CIFTI maps) on nilearn's
packaged fsaverage5 mesh when they have its 10,242 vertices per hemisphere. Drawing
runs in worker processes (matplotlib is not thread-safe), ``jobs`` at a time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .spaces import FSAVERAGE5_VERTICES, CiftiSpace, SurfaceSpace, VolumeSpace


def peak_coordinates(space: VolumeSpace, maps: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of each map's largest value, shape (n, 3)."""
    coords = space.mask.coordinates()
    return coords[np.argmax(maps, axis=1)]


def _use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)


def _volume_png(image, peak, title: str, path: Path, colorbar: bool = True) -> None:
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
        )
        display.savefig(str(path), dpi=72)
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


def _surface_png(values: np.ndarray, hemisphere: str, title: str, path: Path) -> None:
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
            title=title,
            colorbar=True,
        )
        figure.savefig(str(path), dpi=72)
        plt.close(figure)


def _one(space, maps: np.ndarray, index: int, path: Path, peak, title: str) -> Path:
    if isinstance(space, VolumeSpace):
        _volume_png(space.mask.to_image(maps[index]), peak, title, path)
    else:
        hemisphere, part = _surface_vertices(space)
        _surface_png(maps[index][part], hemisphere, title, path)
    return path


def drawable(space) -> bool:
    """Whether maps of this space can be drawn."""
    return isinstance(space, VolumeSpace) or _surface_vertices(space) is not None


def component_pngs(
    space, maps: np.ndarray, folder: Path, jobs: int = 1, titles: list[str] | None = None
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
            delayed(_one)(space, maps, i, p, peaks[i], titles[i]) for i, p in enumerate(paths)
        )
    else:
        for i, path in enumerate(paths):
            _one(space, maps, i, path, peaks[i], titles[i])
    return paths


def montage(
    space, maps: np.ndarray, path: Path, titles: list[str] | None = None, columns: int = 5
) -> Path | None:
    """Every map in one figure, a small axial cut through each peak (volumes), or the
    maps on the inflated fsaverage5 surface (surfaces); ``titles`` one per map (default:
    its number)."""
    if not drawable(space):
        return None
    titles = titles or [str(i) for i in range(len(maps))]
    _use_agg()
    import warnings

    import matplotlib.pyplot as plt
    from nilearn import plotting

    n = len(maps)
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    volume = isinstance(space, VolumeSpace)
    figure = plt.figure(figsize=(3.0 * columns, 2.7 * rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if volume:
            peaks = peak_coordinates(space, maps)
            for i in range(n):
                axes = figure.add_subplot(rows, columns, i + 1)
                plotting.plot_stat_map(
                    space.mask.to_image(maps[i]),
                    display_mode="z",
                    cut_coords=[float(peaks[i][2])],
                    axes=axes,
                    colorbar=False,
                    annotate=False,
                    draw_cross=False,
                    title=None,
                    black_bg=False,
                )
                # Small titles above the cut: nilearn's own sit inside the cut, in a font
                # sized for a whole figure, and run into their neighbours here.
                axes.set_title(titles[i], fontsize=9)
        else:
            from nilearn import datasets

            hemisphere, part = _surface_vertices(space)
            mesh = datasets.fetch_surf_fsaverage("fsaverage5")
            for i in range(n):
                axes = figure.add_subplot(rows, columns, i + 1, projection="3d")
                plotting.plot_surf_stat_map(
                    mesh[f"infl_{hemisphere}"],
                    maps[i][part],
                    hemi=hemisphere,
                    bg_map=mesh[f"sulc_{hemisphere}"],
                    axes=axes,
                    colorbar=False,
                    title=None,
                    figure=figure,
                )
                axes.set_title(titles[i], fontsize=9)
    figure.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01, wspace=0.02, hspace=0.2)
    figure.savefig(str(path), dpi=72)
    plt.close(figure)
    return path
