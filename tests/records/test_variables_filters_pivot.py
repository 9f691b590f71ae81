"""Tables joined on subject and session, filters with reasons, pivots to coarser levels."""

import pandas as pd
import pytest

import nishard as ns
from nishard.records import RecordTable
from tests.records import layouts


@pytest.fixture
def raw(tmp_path):
    layouts.raw_bids(tmp_path)
    return tmp_path


def _locate(root, **kwargs):
    kwargs.setdefault("schema", ns.schemas.bids())
    kwargs.setdefault("stage", ["bold"])
    kwargs.setdefault("filters", [])
    return ns.locate(root, **kwargs)


def test_phenotype_by_session_and_a_dataframe_table(raw):
    (raw / "phenotype").mkdir()
    (raw / "phenotype" / "mood.tsv").write_text(
        "participant_id\tsession_id\tmood\nsub-02\tses-a\t3\nsub-02\tses-b\t5\n"
    )
    frame = pd.DataFrame({"id": ["01", "02"], "site": ["A", "B"]})
    records = _locate(
        raw,
        variables=[ns.tables.phenotype("mood"), ns.tables.table(frame, subject="id")],
    )
    assert records.frame["mood"].tolist()[3:] == [3, 5]  # joined on subject and session
    assert records.frame["mood"].iloc[:3].isna().all()  # sub-01 has no sessions, no row
    assert records.frame["site"].tolist() == ["A"] * 3 + ["B"] * 2
    assert records.variables == ("mood", "site")


def test_hcp_style_csv_with_numeric_subjects(tmp_path):
    layouts.hcp(tmp_path)
    (tmp_path / "unrestricted.csv").write_text("Subject,Gender,Age\n100307,F,26-30\n")
    records = ns.locate(
        tmp_path,
        schema=ns.schemas.hcp(),
        stage=["bold"],
        variables=ns.tables.table("unrestricted.csv", subject="Subject"),
    )
    assert records.frame.loc["sub-100307_task-wm_dir-RL", "Age"] == "26-30"
    assert records.unmatched == ("100408",)  # reported per subject, not silently NaN
    assert "no variables for 1 subjects: 100408" in records.summary()


def test_duplicated_subjects_are_named(raw):
    with open(raw / "participants.tsv", "a") as handle:
        handle.write("sub-02\t41\tpatient\n")
    with pytest.raises(ns.SpecError, match=r"participants\.tsv: listed more than once: 02"):
        _locate(raw, variables=ns.tables.participants())


def test_entity_and_query_filters_say_why(raw):
    records = _locate(
        raw,
        variables=ns.tables.participants(),
        filters=[
            ns.filters.entities(include={"task": ["rest"]}, exclude={"run": [2]}),
            ns.filters.where("age >= 18"),
        ],
    )
    assert list(records.frame.index) == ["sub-01_task-rest_run-1"]
    reasons = dict(zip(records.dropped["record"], records.dropped["reason"], strict=True))
    assert reasons == {
        "sub-01_task-nback": "task not in ['rest']",
        "sub-01_task-rest_run-2": "run excluded (2)",
        "sub-02_ses-a_task-rest": "missing age",
        "sub-02_ses-b_task-rest": "missing age",
    }
    with pytest.raises(ns.SpecError, match="filter where 'agee > 1'"):
        _locate(raw, variables=ns.tables.participants(), filters=[ns.filters.where("agee > 1")])


def test_pivot_to_subject_and_session(raw, tmp_path):
    by_subject = _locate(raw, variables=ns.tables.participants(), level="subject")
    assert list(by_subject.frame.index) == ["sub-01", "sub-02"]
    first = by_subject["sub-01"]
    assert first.metadata["runs"] == [
        "sub-01_task-nback",
        "sub-01_task-rest_run-1",
        "sub-01_task-rest_run-2",
    ]
    assert [p.rsplit("/", 1)[1] for p in first.files["bold"]] == [
        "sub-01_task-nback_bold.nii.gz",
        "sub-01_task-rest_run-1_bold.nii.gz",
        "sub-01_task-rest_run-2_bold.nii.gz",
    ]
    assert first.metadata["t_r"] == [1.5, 2.0, 3.0]
    assert first.metadata["group"] == "control"  # constant per subject: one value
    by_session = _locate(raw, level="session")
    with pytest.raises(ns.SpecError, match="needs a session column"):
        _locate_flat(tmp_path)
    assert list(by_session.frame.index)[-2:] == ["sub-02_ses-a", "sub-02_ses-b"]

    by_subject.to_parquet(tmp_path / "subjects.parquet")
    again = RecordTable.from_parquet(tmp_path / "subjects.parquet")
    pd.testing.assert_frame_equal(again.frame, by_subject.frame)
    assert again.level == "subject"
    with pytest.raises(ns.SpecError, match="records are at subject level"):
        ns.write(by_subject, ns.assemble([]), tmp_path / "out", progress=False)


def _locate_flat(tmp_path):
    flat = tmp_path / "flat"
    layouts.touch(flat, "sub-01/func/sub-01_task-rest_bold.nii.gz")
    return _locate(flat, level="session")


def test_a_pivot_lists_a_missing_value_as_none_and_keeps_a_missing_key_missing(raw):
    """sub-01 has no sessions: at subject level its runs' sessions are None in the list
    (never a float NaN among labels); at session level its key stays a missing label."""
    by_subject = _locate(raw, variables=ns.tables.participants(), level="subject").frame
    assert by_subject.loc["sub-01", "session"] == [None, None, None]
    assert by_subject.loc["sub-02", "session"] == ["a", "b"]
    by_session = _locate(raw, level="session").frame
    assert list(by_session.index) == ["sub-01", "sub-02_ses-a", "sub-02_ses-b"]
    assert pd.isna(by_session.loc["sub-01", "session"])
    assert by_session["session"].dtype == "str"
    assert by_session.loc["sub-01", "runs"] == [
        "sub-01_task-nback", "sub-01_task-rest_run-1", "sub-01_task-rest_run-2"
    ]  # fmt: skip
