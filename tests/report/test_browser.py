"""The reports in a real browser (headless chromium): drawn, not blank, their sections shown."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from nishard.learn import CanICA
from nishard.report import REPORT
from tests.report.browser import pixel_spread, rendered_text, screenshot

#: A page of text on white has a grey-level spread of a few tens; a blank one about 0.
NOT_BLANK = 15.0


def test_the_build_report_renders_with_its_sections(built, chromium, tmp_path):
    (out, manifest), _ = built
    shot = screenshot(chromium, out / REPORT, tmp_path / "build.png")
    assert Image.open(shot).size == (1400, 2000)
    assert pixel_spread(shot) > NOT_BLANK
    # The first screen: the title, the summary and the QC histograms (blue bars, drawn
    # from the inline SVG) are there.
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    bars = (
        (abs(pixels[..., 0] - 0x44) < 8)
        & (abs(pixels[..., 1] - 0x77) < 8)
        & (abs(pixels[..., 2] - 0xAA) < 8)
    )
    assert bars.sum() > 500
    dom = rendered_text(chromium, out / REPORT)
    for heading in (
        "nishard build report",
        "Summary",
        "Quality per record",
        "Carpet plots",
        "Splits",
        "No subject sits in two splits",
        "Quarantined and dropped records",
        "Shards and checksums",
        "Provenance",
    ):
        assert heading in dom, heading
    assert dom.count("<img") == 2  # the two carpets
    assert manifest["quarantine"][0]["record"] in dom


def test_the_learners_report_renders_with_its_sections(built, chromium, tmp_path):
    (out, _), _ = built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (FastICA's convergence on 9 tiny runs)
        ica = CanICA(n_components=4, memory_budget="256MiB", n_init=1).fit(out)
    page = ica.report(tmp_path / "learned")["report"]
    shot = screenshot(chromium, page, tmp_path / "learn.png")
    assert pixel_spread(shot) > NOT_BLANK
    dom = rendered_text(chromium, page)
    for heading in ("Fit", "Components", "Shards", "explained variance"):
        assert heading in dom, heading
    assert "montage.png" in dom
