"""RecordTable.from_parquet reads back every table that locate() and `nishard index` write."""

import pandas as pd
import pytest

import nishard as ns
from nishard.datasets import generate
from nishard.records import RecordTable
from tests.helpers import TINY_RES

VARIABLES = ["age", "sex", "diagnosis", "site"]


def _locate(root, **kwargs):
    return ns.locate(
        root,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(VARIABLES),
        **kwargs,
    )


def _round_trip(table: RecordTable, path) -> RecordTable:
    table.to_parquet(path)
    back = RecordTable.from_parquet(path)
    pd.testing.assert_frame_equal(back.frame, table.frame)
    pd.testing.assert_frame_equal(back.dropped, table.dropped)
    assert (back.files, back.root, back.level) == (table.files, table.root, table.level)
    assert (back.variables, back.spec) == (table.variables, table.spec)
    assert (back.unparsed, back.unmatched) == (table.unparsed, table.unmatched)
    assert [r.metadata for r in back] == [r.metadata for r in table]
    assert [r.files for r in back] == [r.files for r in table]
    return back


@pytest.fixture(scope="module")
def one_subject(tmp_path_factory):
    root = tmp_path_factory.mktemp("one") / "fmriprep"
    generate(root, "tiny", seed=0, subjects=1, sessions=2, runs=2, timepoints=20)
    return root


@pytest.mark.parametrize("level", ["run", "session", "subject"])
def test_one_subject_round_trips_at_every_level(one_subject, tmp_path, level):
    # One subject: every text variable has one value, a categorical of one category (it
    # raised "'Categorical' ... does not support operation 'any'" on reading back).
    table = _locate(one_subject, level=level)
    assert len(table) == {"run": 4, "session": 2, "subject": 1}[level]
    assert table.frame["diagnosis"].nunique() == 1
    if level == "run":  # pivoting to coarser levels makes it plain text
        assert table.frame["diagnosis"].dtype == "category"
    back = _round_trip(table, tmp_path / "records.parquet")
    if level != "run":  # the runs of a coarser record come back as lists of paths
        assert all(isinstance(r.files["bold"], list) for r in back)


@pytest.mark.parametrize("level", ["run", "session", "subject"])
def test_many_subjects_round_trip_at_every_level(tiny, tmp_path, level):
    back = _round_trip(_locate(tiny, level=level), tmp_path / "records.parquet")
    assert back.frame["site"].nunique() > 1


@pytest.mark.parametrize("level", ["run", "subject"])
def test_a_table_whose_records_were_all_dropped_round_trips(one_subject, tmp_path, level):
    # The run level needs no copy of the dataset: a stage kind that no run has leaves
    # every record to Complete, which drops it.
    table = _locate(one_subject, stage=["bold", "boldref"], level=level)
    assert len(table) == 0 and len(table.dropped) == 4
    back = _round_trip(table, tmp_path / "records.parquet")
    assert len(back) == 0 and list(back) == []
    assert set(back.dropped["reason"]) == set(table.dropped["reason"])
