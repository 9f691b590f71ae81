import json

import nibabel as nib
import pandas as pd
import pytest

import nishard as ns
from nishard.datasets import generate
from nishard.records import RecordTable
from tests.helpers import TINY_RES, bold_files


def _locate(root, **kwargs):
    kwargs.setdefault("schema", ns.schemas.fmriprep(res=TINY_RES))
    kwargs.setdefault("variables", ns.tables.participants(["age", "sex", "diagnosis", "site"]))
    return ns.locate(root, **kwargs)


def test_finds_every_run_with_its_files_tr_and_variables(tiny):
    records = _locate(tiny)
    bolds = bold_files(tiny)
    assert len(records) == len(bolds) > 0
    participants = pd.read_csv(tiny / "participants.tsv", sep="\t")
    for record in records:
        bold = record.files["bold"]
        assert record.id in bold and bold.endswith("_desc-preproc_bold.nii.gz")
        assert record.files["mask"].endswith("_desc-brain_mask.nii.gz")
        assert record.files["confounds"].endswith("_desc-confounds_timeseries.tsv")
        sidecar = json.loads(open(bold.replace(".nii.gz", ".json")).read())
        assert record.metadata["t_r"] == sidecar["RepetitionTime"]
        row = participants.set_index("participant_id").loc[f"sub-{record.metadata['subject']}"]
        assert record.metadata["diagnosis"] == row["diagnosis"]
        assert record.metadata["age"] == pytest.approx(row["age"])
    assert list(records.frame.index) == sorted(records.frame.index)
    assert records.frame["age"].dtype.kind == "f"  # numeric column typed as numbers


def test_sessions_are_a_column_only_where_the_dataset_has_them(tiny, tmp_path):
    with_sessions = _locate(tiny)
    assert with_sessions.frame["session"].notna().all()
    assert "from 6 subjects, 12 sessions" in with_sessions.summary()  # per subject, not labels
    generate(tmp_path / "flat", "tiny", seed=0, subjects=2, sessions=0, runs=2, timepoints=40)
    flat = _locate(tmp_path / "flat")
    assert "session" not in flat.frame
    assert list(flat.frame["run"]) == ["1", "2", "1", "2"]
    assert "session" not in next(iter(flat)).metadata


def test_entity_columns_come_first_whichever_runs_have_them(tiny_copy):
    # The first run (by record id) loses its run entity; the others keep theirs: the
    # run column is still among the entities, before the timing, and empty for it.
    first = bold_files(tiny_copy)[0]
    stem = first.name.split("_space-")[0]
    assert stem.endswith("_run-1")
    for path in first.parent.glob(f"{stem}_*"):
        path.rename(path.with_name(path.name.replace("_run-1_", "_")))
    frame = _locate(tiny_copy).frame
    assert list(frame.columns[:6]) == ["subject", "session", "task", "run", "t_r", "t_r_source"]
    assert frame["run"].isna().tolist() == [True] + [False] * (len(frame) - 1)
    assert frame.index[0] == stem.removesuffix("_run-1")


def test_a_variable_named_like_a_record_column_is_refused(tiny_copy):
    table = (tiny_copy / "participants.tsv").read_text().splitlines()
    table = [line + ("\trun" if i == 0 else "\t1") for i, line in enumerate(table)]
    (tiny_copy / "participants.tsv").write_text("\n".join(table) + "\n")
    with pytest.raises(ns.SpecError, match=r"participants.tsv: columns \['run'\] clash"):
        _locate(tiny_copy, variables=ns.tables.participants())


def test_tr_falls_back_to_the_header_when_the_sidecar_is_missing(tiny_copy):
    bold = bold_files(tiny_copy)[0]
    expected = float(nib.load(bold).header.get_zooms()[3])
    bold.with_name(bold.name.replace(".nii.gz", ".json")).unlink()
    records = _locate(tiny_copy)
    assert records.frame["t_r"].iloc[0] == pytest.approx(expected)


def test_incomplete_records_are_dropped_with_a_reason(tiny_copy):
    masks = sorted(tiny_copy.glob("sub-*/**/func/*_desc-brain_mask.nii.gz"))
    masks[0].unlink()
    records = _locate(tiny_copy)
    assert len(records) == len(bold_files(tiny_copy)) - 1
    assert list(records.dropped["reason"]) == ["no mask file"]
    assert records.dropped["record"].iloc[0] in masks[0].name
    assert "dropped 1 records" in records.summary()


def test_missing_variable_values_are_kept_unless_asked(tiny_copy):
    table = pd.read_csv(tiny_copy / "participants.tsv", sep="\t", dtype=str)
    table.loc[0, "age"] = "n/a"
    table.to_csv(tiny_copy / "participants.tsv", sep="\t", index=False)
    kept = _locate(tiny_copy)
    assert kept.frame["age"].isna().sum() > 0
    strict = _locate(tiny_copy, filters=[ns.filters.complete(variables=True)])
    assert len(strict) < len(kept)
    assert set(strict.dropped["reason"]) == {"no value for age"}


def test_a_missing_root_or_unknown_column_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(ns.SpecError, match=r"input folder not found: .*nowhere"):
        _locate(tmp_path / "nowhere")
    with pytest.raises(ns.SpecError, match="no column \\['handedness'\\]"):
        _locate(tiny, variables=ns.tables.participants(["handedness"]))
    # A space the dataset lacks: every run is counted, dropped with where its BOLD is.
    other = _locate(tiny, schema=ns.schemas.fmriprep(space="fsLR"))
    assert len(other) == 0 and len(other.dropped) == len(_locate(tiny))
    assert set(other.dropped["reason"]) == {
        f"no bold file (desc-preproc_bold in space fsLR: found in MNI152NLin2009cAsym "
        f"res-{TINY_RES}); no mask file"
    }


def test_parquet_round_trip_keeps_everything(tiny_copy, tmp_path):
    next(tiny_copy.glob("sub-*/**/func/*_desc-confounds_timeseries.tsv")).unlink()
    records = _locate(tiny_copy)
    records.to_parquet(tmp_path / "records.parquet")
    again = RecordTable.from_parquet(tmp_path / "records.parquet")
    pd.testing.assert_frame_equal(again.frame, records.frame)
    assert again.files == records.files and again.variables == records.variables
    assert again.spec == records.spec
    pd.testing.assert_frame_equal(again.dropped, records.dropped)
    assert [r.id for r in again] == [r.id for r in records]
