"""The report: maps as NIfTI, PNGs, figures and one HTML page; the ``nishard learn`` command."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from nishard.cli import main
from nishard.learn.report import canica_report


def test_canica_report_writes_maps_pictures_and_the_page(networks, tmp_path):
    outcome = canica_report(
        networks.shards,
        n_components=8,
        out=tmp_path / "out",
        memory="256MiB",
        truth=networks.truth,
        n_init=2,
    )
    out = tmp_path / "out"
    assert outcome["report"] == out / "report.html"
    assert nib.load(out / "components.nii.gz").shape == (25, 30, 24, 8)
    assert len(list((out / "components").glob("component_*.png"))) == 8
    assert (out / "montage.png").stat().st_size > 10_000
    figures = json.loads((out / "results.json").read_text())
    assert figures["samples"] == 12 and len(figures["explained_variance"]) == 8
    assert figures["memory"]["budget"] == 256 * 2**20
    assert figures["truth_match"]["pairs"][0]["name"] == "default_mode"
    page = (out / "report.html").read_text()
    for text in (
        "Fit",
        "peak memory of the fit",
        "explained variance",
        "Ground truth",
        "Shards",
        "No record quarantined",
        "montage.png",
        "component_07.png",
        "12 written",
    ):
        assert text in page, text


def test_the_learn_command(networks, tmp_path, capsys):
    code = main(
        [
            "learn",
            "dictlearning",
            str(networks.shards),
            "--n-components",
            "6",
            "--memory",
            "128MiB",
            "--jobs",
            "2",
            "--no-plots",
            "-o",
            str(tmp_path / "dl"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "report" in printed and (tmp_path / "dl" / "report.html").is_file()
    code = main(["learn", "canica", str(networks.shards), "--key", "nope", "-o", str(tmp_path)])
    assert code == 1 and "no key 'nope'" in capsys.readouterr().err


def test_map_titles_name_the_variance_and_the_true_network():
    from nishard.learn.report import map_titles

    match = {"pairs": [{"component": 1, "name": "visual", "correlation": 0.954}]}
    titles = map_titles(np.array([0.042, 0.031]), match, 2)
    assert titles == ["0: 4.2% of variance", "1: 3.1% of variance\nvisual (r 0.95)"]
    assert map_titles(None, None, 2) == ["0", "1"]
