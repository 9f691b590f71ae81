"""The build report: written by every build, listed and verified, deterministic, complete."""

from __future__ import annotations

import base64
import hashlib
import io
import re

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from nishard.archives.verify import verify
from nishard.cli import main
from nishard.report import REPORT, render
from nishard.report.figures import carpet_pixels, png_gray
from nishard.report.page import _leakage, chosen_records
from tests.report.conftest import build

SECTIONS = ("summary", "qc", "carpets", "splits", "excluded", "shards", "provenance")


def _page(out) -> str:
    return (out / REPORT).read_text(encoding="utf-8")


def test_every_build_writes_the_report_its_manifest_lists_and_verify_checks(built, tmp_path):
    (out, manifest), _ = built
    entry = manifest["documents"]["report"]
    data = (out / REPORT).read_bytes()
    assert entry == {"file": REPORT, "sha256": hashlib.sha256(data).hexdigest()}
    assert verify(out, progress=False).ok
    # `nishard report` draws the same page from the finished build.
    again = tmp_path / "again.html"
    assert main(["report", str(out), "-o", str(again), "--quiet"]) == 0
    assert again.read_bytes() == data
    # A changed page is a problem verify names.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in out.iterdir():
        if path.is_file():
            (damaged / path.name).write_bytes(path.read_bytes())
    (damaged / REPORT).write_text(data.decode() + "<!-- edited -->")
    problems = verify(damaged, progress=False).problems
    assert [p.shard for p in problems] == [REPORT]


def test_the_page_has_every_section_and_no_absolute_path_nor_date(built):
    (out, _), _ = built
    page = _page(out)
    for key in SECTIONS:
        assert f'<section id="{key}">' in page, key
    assert str(out.parent) not in page and "/tmp/" not in page
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", page)  # no date
    assert "(this folder)" in page  # the output path


def test_a_build_of_the_same_inputs_elsewhere_gives_the_same_page(built, tmp_path):
    (out, manifest), broken = built
    data = broken.parents[3]
    assert (data / "dataset_description.json").is_file()
    other, again = build(data, tmp_path / "elsewhere")
    assert again["qc"] == manifest["qc"]
    assert (other / REPORT).read_bytes() == (out / REPORT).read_bytes()


def test_the_page_shows_records_splits_exclusions_and_shards(built):
    (out, manifest), broken = built
    page = _page(out)
    # Every written record's QC row, with its figures.
    for record, figures in manifest["qc"].items():
        assert f"<code>{record}</code>" in page
        assert set(figures) == {"censored", "fd_max", "fd_mean", "tsnr", "volumes"}
    assert len(manifest["qc"]) == manifest["records"]["written"] == 9
    # The splits, their subjects apart.
    assert "No subject sits in two splits: 5 subjects" in page
    for name in ("train", "test"):
        assert f"<th>{name}</th>" in page
    # The quarantined record with its file (relative) and the dropped ones with why.
    [entry] = manifest["quarantine"]
    assert entry["record"] in page and broken.name in page
    assert manifest["records"]["dropped"] == 2
    assert "<td>not age &gt;= 30</td><td class=n>2</td>" in page  # by reason
    for entry in manifest["dropped"]:  # and each one
        assert f"<td>{entry['record']}</td><td>not age &gt;= 30</td>" in page
    # Shards and checksums of both formats.
    for shard in manifest["shards"]:
        assert f"<code>{shard['name']}</code>" in page and shard["sha256"] in page
    assert {s["format"] for s in manifest["shards"]} == {"webdataset", "tfrecord"}
    # Provenance: the versions and the spec's transforms.
    assert manifest["versions"]["numpy"] in page and "scrubbing" in page


def test_the_carpets_are_the_chosen_samples_as_written(built):
    """The thumbnails: the worst and the median record by FD, read back from the shards."""
    (out, manifest), _ = built
    page = _page(out)
    qc = manifest["qc"]
    picks = chosen_records(qc)
    ranked = sorted(qc, key=lambda r: (qc[r]["fd_mean"], r))  # ties by id
    assert [r for r, _ in picks] == [ranked[-1], ranked[(len(ranked) - 1) // 2]]
    urls = [str(out / s["name"]) for s in manifest["shards"] if s["format"] == "webdataset"]
    bold = {s["__key__"]: s["bold.npy"] for s in wds.WebDataset(urls, shardshuffle=False).decode()}
    images = re.findall(r'alt="carpet of ([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [r for r, _ in images] == [r for r, _ in picks]
    for record, encoded in images:
        png = base64.b64decode(encoded)
        expected = carpet_pixels(bold[record])
        assert png == png_gray(expected)
        shown = np.asarray(Image.open(io.BytesIO(png)))  # a PNG any decoder reads
        np.testing.assert_array_equal(shown, expected)
        assert shown.shape == (min(160, bold[record].shape[1]), bold[record].shape[0])
        assert shown.std() > 10  # not a flat picture


def test_a_subject_in_two_splits_is_reported():
    members = {"sub-01_run-1": "train", "sub-01_run-2": "test", "sub-02_run-1": "test"}
    text = _leakage(members)
    assert "class=bad" in text and "1 subjects sit in more than one split" in text
    assert "sub-01: test, train" in text
    assert "class=ok" in _leakage({"sub-01_run-1": "train", "sub-02_run-1": "test"})


def test_a_manifest_without_qc_or_shards_still_renders():
    page = render({"format_version": 2, "records": {"located": 0}, "spec": {}})
    for key in SECTIONS:
        assert f'<section id="{key}">' in page
    assert "No QC figures" in page


@pytest.mark.parametrize("path", ["/home/someone/data/ds/sub-01_bold.nii.gz"])
def test_absolute_paths_in_reasons_are_shortened(path):
    page = render({"quarantine": [{"record": "r", "file": path, "expected": "x",
                                   "found": f"cannot read {path}"}]})  # fmt: skip
    assert "/home/someone" not in page and ".../ds/sub-01_bold.nii.gz" in page
