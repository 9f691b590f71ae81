"""Learner pictures: flags against the synthetic truth, the montage's panels and colorbar,
byte-determinism."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from nishard.learn import CanICA
from nishard.learn.flags import MATCH_MIN, flag_maps, neighbour_correlation, spread
from nishard.learn.masks import load_volume_mask
from nishard.learn.plots import FLAG_COLOUR, component_pngs, montage, montage_figure
from nishard.learn.report import learn_report, match_summary
from nishard.learn.spaces import VolumeSpace

NAMES = [f"net{i}" for i in range(7)]


@pytest.fixture(scope="module")
def space(networks) -> VolumeSpace:
    return VolumeSpace(load_volume_mask(networks.mask))


def made_noise(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Maps made to be noise, each scaled to unit norm as the learners' maps are."""
    rng = np.random.default_rng(7)
    white = rng.standard_normal(int(mask.sum()))
    field = np.zeros(mask.shape)
    field[mask] = rng.standard_normal(int(mask.sum()))
    smooth = gaussian_filter(field, 1.5)[mask]  # 12 mm FWHM-ish on the 8 mm grid
    speckle = white.copy()  # salt and pepper: the largest 12 % of white noise
    speckle[np.abs(speckle) < np.percentile(np.abs(speckle), 88)] = 0.0
    maps = {"white": white, "smooth": smooth, "speckle": speckle}
    return {k: v / np.linalg.norm(v) for k, v in maps.items()}


def test_made_noise_is_flagged_and_the_true_networks_are_not(space, truth_maps):
    mask = space.mask.mask
    noise = made_noise(mask)
    maps = np.vstack([truth_maps, *noise.values()])
    match = match_summary(maps, truth_maps, NAMES, "truth")
    flags = flag_maps(maps, mask, match)
    for i, flag in enumerate(flags[:7]):
        assert not flag.flagged, (i, flag)
        assert flag.truth == NAMES[i] and flag.correlation == pytest.approx(1.0)
    for name, flag in zip(noise, flags[7:], strict=True):
        assert flag.flagged and flag.truth is None, name
        assert flag.reasons[0].startswith("matches no true network"), name
        assert any(r.startswith("noise-like") for r in flag.reasons), (name, flag.reasons)
    # Each criterion catches the noise it is made for, without the truth.
    alone = flag_maps(maps, mask)
    assert [f.flagged for f in alone] == [False] * 7 + [True] * 3
    assert "spread" in alone[8].reasons[0]  # the smooth field: structured, but spread
    assert neighbour_correlation(mask, noise["smooth"]) > 0.9
    assert "spatial structure" in " ".join(alone[9].reasons)  # speckle: sparse, no structure
    assert spread(noise["speckle"]) < 0.75
    # The measures themselves: a Gaussian's mean|x|/rms is sqrt(2/pi).
    assert spread(noise["white"]) == pytest.approx(np.sqrt(2 / np.pi), abs=0.02)
    assert abs(neighbour_correlation(mask, noise["white"])) < 0.1
    assert all(f.short == "" for f in flags[:7])
    assert flags[7].short == "no true network, noise-like"


def test_a_true_network_made_weaker_than_the_match_threshold_is_flagged(space, truth_maps):
    # Half a network and half white noise: still smooth and sparse enough, but its
    # correlation with the truth falls under MATCH_MIN.
    mask = space.mask.mask
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(truth_maps.shape[1])
    blurred = truth_maps[1] / np.linalg.norm(truth_maps[1]) + 2.0 * noise / np.linalg.norm(noise)
    match = match_summary(blurred[None], truth_maps, NAMES, "truth")
    (flag,) = flag_maps(blurred[None], mask, match)
    assert match["pairs"][0]["correlation"] < MATCH_MIN
    assert flag.flagged and flag.reasons[0].startswith("matches no true network (closest net1")


def panels(figure) -> dict[int, object]:
    return {
        int(a.get_gid().split("-")[1]): a
        for a in figure.axes
        if a.get_gid() and a.get_gid().startswith("panel-")
    }


def test_the_montage_figure_has_a_panel_per_map_in_order_one_colorbar_and_frames(space, truth_maps):
    maps = np.vstack([truth_maps[:5], made_noise(space.mask.mask)["white"]])
    order = [3, 0, 5, 1, 4, 2]
    flagged = [False] * 5 + [True]
    titles = [f"map {i}" for i in range(6)]
    label = "test weight (a.u.)"
    figure = montage_figure(
        space, maps, titles, columns=4, order=order, flagged=flagged, label=label
    )
    try:
        found = panels(figure)
        assert sorted(found) == list(range(6))
        # Panels run left to right, top to bottom, in the order given.
        places = {
            i: (-round(a.get_position().y0, 3), a.get_position().x0) for i, a in found.items()
        }
        assert sorted(places, key=places.get) == order
        assert [found[i].get_title() for i in range(6)] == titles
        assert found[5].title.get_color() == FLAG_COLOUR and found[0].title.get_color() == "black"
        frames = [a.get_gid() for a in figure.artists if (a.get_gid() or "").startswith("flag-")]
        assert frames == ["flag-5"]
        bars = [a for a in figure.axes if a.get_gid() == "colorbar"]
        assert len(bars) == 1 and bars[0].get_ylabel() == label
        low, high = bars[0].get_ylim()
        assert low == pytest.approx(-high) and high == pytest.approx(np.abs(maps).max())
        # nilearn's orientation and cut labels, one set per panel: L, R and "z=<peak z>".
        texts = [t.get_text() for a in figure.axes for t in a.texts]
        assert texts.count("L") == 6 and texts.count("R") == 6
        peaks_z = {f"z={space.mask.coordinates()[np.argmax(m)][2]:.0f}" for m in maps}
        assert peaks_z <= set(texts)
    finally:
        plt.close(figure)


def test_pictures_are_byte_deterministic_and_carry_no_software_or_date(space, truth_maps, tmp_path):
    maps = np.vstack([truth_maps[:3], made_noise(space.mask.mask)["white"]])
    for name in ("a", "b"):
        montage(space, maps, tmp_path / f"{name}.png", flagged=[False] * 3 + [True], label="w")
        component_pngs(space, maps[:2], tmp_path / name, label="w")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    for i in range(2):
        png = f"component_{i:02d}.png"
        assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
    with Image.open(tmp_path / "a.png") as image:
        assert not {"Software", "Creation Time", "date:create"} & set(image.info)
        pixels = np.asarray(image.convert("RGB"))
    # The flagged map's red frame is drawn: pixels of the flag colour, in the last panel.
    red = np.array([int(FLAG_COLOUR[k : k + 2], 16) for k in (1, 3, 5)])
    hits = np.argwhere(np.abs(pixels.astype(int) - red).sum(axis=2) < 30)
    assert len(hits) > 200
    assert hits[:, 1].min() > pixels.shape[1] * 0.5  # the 4th of 4 columns, right half


def test_the_report_flags_the_maps_that_match_no_network(networks, truth_maps, tmp_path):
    # Ten maps of seven networks: the three extra ones fit noise, and the report says so.
    ica = CanICA(n_components=10, memory_budget="256MiB", n_init=2).fit(networks.shards)
    outcome = learn_report(ica, tmp_path / "out", truth=networks.truth, n_jobs=1)
    figures = json.loads((tmp_path / "out" / "results.json").read_text())
    assert figures["values"] == "ICA weight (unit-norm map, a.u.)"
    flags = figures["flags"]["maps"]
    # Independently of the report: each map's best |r| with a true network.
    a = ica.components_ - ica.components_.mean(axis=1, keepdims=True)
    b = truth_maps - truth_maps.mean(axis=1, keepdims=True)
    best = np.abs((a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))).max(
        axis=1
    )
    expected = [i for i in range(10) if best[i] < MATCH_MIN]
    assert len(expected) == 3
    assert [f["component"] for f in flags if f["reasons"]] == expected
    assert len({f["truth"] for f in flags if f["truth"]}) == 7
    # Panels in decreasing explained variance (the fit's order), flagged ones framed.
    ev = np.asarray(figures["explained_variance"])
    assert np.all(np.diff(ev) <= 0)
    page = outcome["report"].read_text()
    assert "3 of 10 maps flagged" in page and "matches no true network (closest" in page
    assert page.count('<span class="flag">matches no true network') == 3
    with Image.open(tmp_path / "out" / "montage.png") as image:
        assert image.size[0] > 1000 and "Software" not in image.info


def test_surface_maps_get_the_same_montage_and_the_spread_criterion(tmp_path):
    from nishard.learn.spaces import SurfaceSpace

    space = SurfaceSpace("left", 10242)  # fsaverage5: drawn on nilearn's packaged mesh
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 10242))
    patch = np.zeros(10242)
    patch[:300] = 1.0  # a few hundred vertices: sparse, as a network map is
    maps = np.vstack([patch, noise]) / np.linalg.norm(np.vstack([patch, noise]), axis=1)[:, None]
    flags = flag_maps(maps)  # no grid: the spread criterion alone
    assert [f.flagged for f in flags] == [False, True, True]
    assert all(f.neighbour_correlation is None for f in flags)
    figure = montage_figure(
        space, maps, order=[1, 0, 2], flagged=[f.flagged for f in flags], label="lbl"
    )
    try:
        assert sorted(panels(figure)) == [0, 1, 2]
        bars = [a for a in figure.axes if a.get_gid() == "colorbar"]
        assert len(bars) == 1 and bars[0].get_ylabel() == "lbl"
        frames = sorted(a.get_gid() for a in figure.artists if (a.get_gid() or "")[:5] == "flag-")
        assert frames == ["flag-1", "flag-2"]
    finally:
        plt.close(figure)
