"""The report: maps as NIfTI, PNGs, figures and one HTML page; the ``nishard learn`` command."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from nishard.cli import main
from nishard.learn import CanICA, DictLearning
from nishard.learn.report import canica_report, learn_report


def test_canica_report_writes_maps_pictures_and_the_page(networks, tmp_path, monkeypatch):
    ica = CanICA(n_components=8, memory_budget="256MiB", n_init=2).fit(networks.shards)

    def refit(*args, **kwargs):
        raise AssertionError("the report fitted the estimator again")

    # The report reads the fitted estimator: neither fit nor a pass over the shards.
    monkeypatch.setattr(CanICA, "fit", refit)
    monkeypatch.setattr(CanICA, "_fit", refit)
    monkeypatch.setattr("nishard.learn.source.Shards.arrays", refit)
    outcome = canica_report(ica, tmp_path / "out", truth=networks.truth)
    out = tmp_path / "out"
    assert outcome["report"] == out / "report.html" and outcome["estimator"] is ica
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
        "manifest sha256 " + ica.shards_[str(networks.shards)]["manifest_sha256"],
    ):
        assert text in page, text
    # The method gives the same figures (no plots: quicker).
    again = ica.report(tmp_path / "again", plots=False)
    assert again["results"]["explained_variance"] == figures["explained_variance"]
    assert again["results"]["fit_time_s"] == figures["fit_time_s"]


def test_a_report_needs_a_fitted_estimator(tmp_path):
    with pytest.raises(NotFittedError):
        learn_report(DictLearning(), tmp_path / "out")
    with pytest.raises(NotFittedError):
        CanICA().report(tmp_path / "out")
    with pytest.raises(TypeError, match=r"reports a fitted CanICA.*CanICA\(\.\.\.\)\.fit"):
        canica_report("shards/", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_learn_command(networks, tmp_path, capsys):
    code = main(
        [
            "learn",
            "dictlearning",
            str(networks.shards),
            "--n-components",
            "6",
            "--memory-budget",
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
    figures = json.loads((tmp_path / "dl" / "results.json").read_text())
    assert figures["method"] == "dictlearning" and figures["memory"]["budget"] == 128 * 2**20
    assert figures["parameters"]["memory_budget"] == "128MiB"
    learned = figures["dictionary_learning"]  # the early stop ended it within the first pass
    assert learned["stopped_early"] and 0 < learned["passes"] < 1
    html = (tmp_path / "dl" / "report.html").read_text()
    assert f"{learned['mini_batches']} mini-batches of 20 voxels" in html
    assert "ended by the early stop" in html
    code = main(["learn", "canica", str(networks.shards), "--key", "nope", "-o", str(tmp_path)])
    assert code == 1 and "no key 'nope'" in capsys.readouterr().err


def test_map_titles_name_the_variance_and_the_true_network():
    from nishard.learn.report import map_titles

    match = {"pairs": [{"component": 1, "name": "visual", "correlation": 0.954}]}
    titles = map_titles(np.array([0.042, 0.031]), match, 2)
    assert titles == ["0: 4.2% of variance", "1: 3.1% of variance\nvisual (r 0.95)"]
    assert map_titles(None, None, 2) == ["0", "1"]


def test_pictures_drawn_in_workers_land_in_a_relative_out(networks, tmp_path, monkeypatch):
    from joblib import Parallel, delayed

    ica = CanICA(n_components=2, n_init=1, score=False, n_jobs=2).fit(networks.shards)
    (tmp_path / "before").mkdir()
    monkeypatch.chdir(tmp_path / "before")
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))  # a pool started here, reused
    (tmp_path / "now").mkdir()
    monkeypatch.chdir(tmp_path / "now")
    (tmp_path / "before" / "maps" / "components").mkdir(parents=True)  # where they went
    outcome = ica.report("maps")
    pngs = sorted(p.name for p in (tmp_path / "now" / "maps" / "components").glob("*.png"))
    assert pngs == ["component_00.png", "component_01.png"]
    assert not any((tmp_path / "before" / "maps").rglob("*.png"))
    assert outcome["report"] == tmp_path / "now" / "maps" / "report.html"
