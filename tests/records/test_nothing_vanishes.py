"""Every run a schema finds is a record or a dropped one with its reason (issue [2/6]):
located = kept + dropped, a bad sidecar is named, a TR says where it came from."""

from __future__ import annotations

import json
import math
import os

import pytest

import nishard as ns
from nishard.records import metadata
from tests.records import layouts

MNI = layouts.MNI
FUNC = "sub-01/ses-01/func/sub-01_ses-01_task-rest_run-01"
BOLD = f"{FUNC}_{MNI}_res-2_desc-preproc_bold.nii.gz"


def _fmriprep(root, **options):
    return ns.locate(root, schema=ns.schemas.fmriprep(res=2), **options)


def _counted(records) -> int:
    return len(records) + len(records.dropped)


def _reason(records, record: str) -> str:
    dropped = records.dropped.set_index("record")["reason"]
    return dropped[record]


@pytest.fixture
def fmriprep(tmp_path):
    layouts.fmriprep_current(tmp_path)
    for ses in ("01", "02"):  # real images, so a TR can come from the header too
        func = FUNC.replace("ses-01", f"ses-{ses}")
        layouts.small_nifti(tmp_path / f"{func}_{MNI}_res-2_desc-preproc_bold.nii.gz", 2.0)
    return tmp_path


def test_a_run_whose_bold_file_is_missing_is_dropped_and_counted(fmriprep):
    everything = _fmriprep(fmriprep)
    (fmriprep / BOLD).unlink()  # its mask, confounds and sidecar stay
    records = _fmriprep(fmriprep)
    assert _counted(records) == _counted(everything) == 2
    assert _reason(records, "sub-01_ses-01_task-rest_run-01") == (
        "no bold file (desc-preproc_bold in space MNI152NLin2009cAsym res-2: found in "
        "MNI152NLin2009cAsym res-1, MNI152NLin6Asym res-2)"
    )
    # The BOLD in no space at all: said so.
    for other in fmriprep.glob(f"{FUNC}_*desc-preproc_bold.nii.gz"):
        other.unlink()
    gone = _fmriprep(fmriprep)
    assert _reason(gone, "sub-01_ses-01_task-rest_run-01").startswith(
        "no bold file (desc-preproc_bold in space MNI152NLin2009cAsym res-2: not in any space)"
    )


def test_a_run_with_only_its_bold_staged_is_counted_by_its_confounds(fmriprep):
    (fmriprep / BOLD).unlink()
    records = _fmriprep(fmriprep, stage=["bold"])
    assert list(records.frame.index) == ["sub-01_ses-02_task-rest_run-01"]
    assert _reason(records, "sub-01_ses-01_task-rest_run-01").startswith("no bold file (")


def test_a_directory_in_the_bold_files_place_is_dropped_saying_so(fmriprep):
    (fmriprep / BOLD).unlink()
    (fmriprep / BOLD).mkdir()
    (fmriprep / BOLD / "stray.txt").write_text("x")
    records = _fmriprep(fmriprep)
    assert _counted(records) == 2 and len(records) == 1
    assert _reason(records, "sub-01_ses-01_task-rest_run-01") == (
        f"{fmriprep.absolute()}/{BOLD} is a directory, expected a file"
    )


def test_a_directory_in_place_of_an_hcp_bold_file_is_dropped_saying_so(tmp_path):
    layouts.hcp(tmp_path)
    run = tmp_path / "100307/MNINonLinear/Results/rfMRI_REST1_LR/rfMRI_REST1_LR.nii.gz"
    run.unlink()
    run.mkdir()
    records = ns.locate(tmp_path, schema=ns.schemas.hcp())
    assert _counted(records) == 8 and len(records) == 7
    assert _reason(records, "sub-100307_ses-1_task-rest_dir-LR") == (
        f"{run} is a directory, expected a file"
    )


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ('{"RepetitionTime": 2.0,', "found malformed JSON (Expecting property name"),
        ("", "found an empty file"),
        (" \r\n\t", "found an empty file"),
        ('{"RepetitionTime": 2.0} {}', "found malformed JSON (Extra data"),
        ("\ufeff{}", "found malformed JSON (Unexpected UTF-8 BOM"),
        ("[2.0]", "found a list"),
        ('{"RepetitionTime": "2.0s"}', "RepetitionTime must be a positive number of seconds, "
         "found '2.0s' (BIDS gives seconds as a bare number)"),
        ('{"RepetitionTime": true}', "RepetitionTime must be a positive number of seconds, "
         "found True"),
        ('{"RepetitionTime": -1}', "RepetitionTime must be a positive number of seconds, "
         "found -1"),
    ],
)  # fmt: skip
def test_a_broken_sidecar_drops_its_run_naming_file_key_and_value(fmriprep, content, found):
    # The header says 2.0 s too: a broken sidecar must not fall back to it silently.
    sidecar = fmriprep / f"{FUNC}_{MNI}_res-2_desc-preproc_bold.json"
    sidecar.write_text(content)
    records = _fmriprep(fmriprep)
    assert list(records.frame.index) == ["sub-01_ses-02_task-rest_run-01"]
    reason = _reason(records, "sub-01_ses-01_task-rest_run-01")
    assert reason.startswith(f"{sidecar.absolute()}: expected") or reason.startswith(
        f"{sidecar.absolute()}: RepetitionTime"
    )
    assert found in reason


def test_sidecars_with_the_same_bytes_are_each_named_and_each_read(fmriprep):
    """A study's sidecars repeat their bytes, whose timing is worked out once; a broken
    one is still said with its own file's name, and an edited one read anew."""
    sidecars = [
        fmriprep / f"{FUNC.replace('ses-01', ses)}_{MNI}_res-2_desc-preproc_bold.json"
        for ses in ("ses-01", "ses-02")
    ]
    for sidecar in sidecars:
        sidecar.write_text('{"RepetitionTime": "2.0s"}')
    records = _fmriprep(fmriprep)
    assert len(records) == 0
    for sidecar in sidecars:
        record = sidecar.name.split(f"_{MNI}")[0]
        assert _reason(records, record).startswith(f"{sidecar.absolute()}: RepetitionTime")
    for sidecar, t_r in zip(sidecars, ("0.8", "1.5"), strict=True):
        sidecar.write_text(f'{{"RepetitionTime": {t_r}}}')
    assert _fmriprep(fmriprep).frame["t_r"].tolist() == [0.8, 1.5]
    sidecars[0].write_text('{"RepetitionTime": 1.5}')
    assert _fmriprep(fmriprep).frame["t_r"].tolist() == [1.5, 1.5]


def test_a_sidecar_longer_than_one_read_is_read_whole(fmriprep):
    """Sidecars are read in one call when they fit its buffer (64 KiB); a longer one (a
    multiband run's SliceTiming, a scanner's whole protocol) is read to its end."""
    sidecar = fmriprep / f"{FUNC}_{MNI}_res-2_desc-preproc_bold.json"
    protocol = {f"Field{i:05d}": "x" * 40 for i in range(2_000)}
    sidecar.write_text(json.dumps({**protocol, "RepetitionTime": 0.8}))
    assert sidecar.stat().st_size > 1 << 16
    metadata._timing_of.cache_clear()
    frame = _fmriprep(fmriprep).frame
    assert frame.loc["sub-01_ses-01_task-rest_run-01", "t_r"] == 0.8
    # Worked out, not kept: only the other run's short sidecar is in the timings' cache.
    assert metadata._timing_of.cache_info().currsize == 1


def test_each_record_says_where_its_tr_came_from(fmriprep):
    sidecar = fmriprep / f"{FUNC}_{MNI}_res-2_desc-preproc_bold.json"
    sidecar.unlink()  # ses-01: from the header; ses-02: from its sidecar
    frame = _fmriprep(fmriprep).frame
    assert frame["t_r"].tolist() == [2.0, 2.0]
    assert frame["t_r_source"].tolist() == ["header", "sidecar"]


def test_an_unfetched_bold_is_indexed_and_its_tr_left_for_the_worker(fmriprep):
    """A DataLad clone before `get`: the image is a broken symlink, its sidecar has no TR."""
    sidecar = fmriprep / f"{FUNC}_{MNI}_res-2_desc-preproc_bold.json"
    sidecar.write_text("{}")
    (fmriprep / BOLD).unlink()
    os.symlink("../../../.git/annex/objects/XX/SHA256E-s1--0.nii.gz", fmriprep / BOLD)
    records = _fmriprep(fmriprep)
    assert len(records) == 2  # not dropped because the file is not there yet
    row = records.frame.loc["sub-01_ses-01_task-rest_run-01"]
    assert math.isnan(row["t_r"]) and row["t_r_source"] == "pending"


def test_a_readable_image_without_a_tr_is_dropped_at_index_time(tmp_path):
    layouts.small_nifti(tmp_path / "sub-01/func/sub-01_task-rest_bold.nii.gz", 0.0)
    records = ns.locate(tmp_path, schema=ns.schemas.bids())
    assert len(records) == 0
    assert _reason(records, "sub-01_task-rest") == "no RepetitionTime in sidecar or header"


def test_hcp_before_its_files_are_fetched_indexes_every_run(tmp_path):
    """Empty placeholders and broken symlinks: the protocol TR, named, for all runs."""
    layouts.hcp(tmp_path)
    for image in tmp_path.glob("*/MNINonLinear/Results/*/*.nii.gz"):
        image.unlink()
        os.symlink("/nonexistent/annex/object", image)  # DataLad before `get`
    seven = "100307/MNINonLinear/Results/rfMRI_REST1_7T_PA"
    layouts.touch(tmp_path, f"{seven}/rfMRI_REST1_7T_PA.nii.gz", f"{seven}/Movement_Regressors.txt")
    records = ns.locate(tmp_path, schema=ns.schemas.hcp())
    assert len(records) == 9 and len(records.dropped) == 0
    assert set(records.frame["t_r_source"]) == {"protocol"}
    t_r = records.frame["t_r"]
    assert t_r["sub-100307_ses-1_task-rest_acq-7T_dir-PA"] == 1.0
    assert set(t_r.drop("sub-100307_ses-1_task-rest_acq-7T_dir-PA")) == {0.72}


def test_irregular_volume_timing_is_located_with_its_onsets(tmp_path):
    bold = "sub-01/func/sub-01_task-sparse_bold"
    layouts.touch(tmp_path, f"{bold}.nii.gz")
    layouts.write_json(tmp_path / f"{bold}.json", {"VolumeTiming": [0.0, 2.5, 6.0, 8.5]})
    records = ns.locate(tmp_path, schema=ns.schemas.bids())
    assert len(records) == 1
    row = records.frame.iloc[0]
    assert row["t_r_source"] == "volume_timing" and math.isnan(row["t_r"])
    assert list(row["volume_timing"]) == [0.0, 2.5, 6.0, 8.5]
    layouts.write_json(tmp_path / f"{bold}.json", {"VolumeTiming": [0.0, 2.5, 2.5]})
    broken = ns.locate(tmp_path, schema=ns.schemas.bids())
    assert "VolumeTiming must be a list of increasing onsets in seconds, found [0.0, 2.5, 2.5]" in (
        _reason(broken, "sub-01_task-sparse")
    )


def test_the_echoes_of_one_acquisition_share_a_key_and_stay_in_one_split(tmp_path):
    for subject in ("01", "02", "03", "04", "05", "06"):
        for echo, time in ((1, 0.0142), (2, 0.0385), (3, 0.0628)):
            bold = f"sub-{subject}/func/sub-{subject}_task-rest_echo-{echo}_bold"
            layouts.touch(tmp_path, f"{bold}.nii.gz")
            layouts.write_json(tmp_path / f"{bold}.json", {"RepetitionTime": 2, "EchoTime": time})
    records = ns.locate(tmp_path, schema=ns.schemas.bids())
    frame = records.frame
    assert len(frame) == 18
    first = frame.loc[["sub-01_task-rest_echo-1", "sub-01_task-rest_echo-3"]]
    assert first["acquisition_key"].tolist() == ["sub-01_task-rest", "sub-01_task-rest"]
    assert first["EchoTime"].tolist() == [0.0142, 0.0628]
    # Record-level splits (no group) still keep an acquisition's echoes together.
    split = ns.splits.random(fractions={"train": 0.5, "test": 0.5}, group=None, seed=3)
    assigned = split.assign(frame)
    assert (assigned.groupby(frame["acquisition_key"]).nunique() == 1).all()
    assert set(assigned) == {"train", "test"}


def test_index_metadata_adds_sidecar_fields_and_refuses_them_for_other_schemas(tmp_path):
    from nishard.cli import main
    from nishard.records import RecordTable

    for echo, time in ((1, 0.0142), (2, 0.0385)):
        bold = f"sub-01/func/sub-01_task-rest_echo-{echo}_bold"
        layouts.touch(tmp_path, f"{bold}.nii.gz")
        content = {"RepetitionTime": 2, "EchoTime": time, "FlipAngle": 70 + echo}
        layouts.write_json(tmp_path / f"{bold}.json", content)
    out = tmp_path / "records.parquet"
    argv = ["index", str(tmp_path), "--schema", "bids", "--metadata", "FlipAngle", "-o", str(out)]
    assert main(argv) == 0
    frame = RecordTable.from_parquet(out).frame
    assert frame["FlipAngle"].tolist() == [71, 72]
    assert frame["EchoTime"].tolist() == [0.0142, 0.0385]
    assert frame["acquisition_key"].tolist() == ["sub-01_task-rest"] * 2
    assert main(["index", str(tmp_path), "--metadata", "FlipAngle", "-o", str(out)]) == 2
