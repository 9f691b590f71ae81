"""Edge cases and bad input of locate: each gets the right records or an error naming it."""

import re

import pandas as pd
import pytest

import nishard as ns
from nishard.cli import main
from tests.records import layouts

MNI = layouts.MNI


def _bids(root, **kwargs):
    kwargs.setdefault("schema", ns.schemas.bids())
    kwargs.setdefault("filters", [])
    return ns.locate(root, **kwargs)


def test_subject_level_summary_with_sessions_and_natural_run_order(tmp_path):
    layouts.touch(tmp_path, *(f"sub-01/ses-1/func/sub-01_ses-1_task-rest_run-{r}_bold.nii.gz"
                              for r in (1, 2, 10)))  # fmt: skip
    layouts.write_json(tmp_path / "task-rest_bold.json", {"RepetitionTime": 2})
    records = _bids(tmp_path, level="subject")
    assert records["sub-01"].metadata["runs"] == [
        "sub-01_ses-1_task-rest_run-1", "sub-01_ses-1_task-rest_run-2",
        "sub-01_ses-1_task-rest_run-10",
    ]  # fmt: skip
    assert "files: bold (3 found)" in records.summary()
    everything_dropped = _bids(tmp_path, level="subject", filters=[ns.filters.where("t_r > 5")])
    assert len(everything_dropped) == 0 and len(everything_dropped.dropped) == 3


def test_two_sidecars_at_one_level_drop_the_run_naming_both(tmp_path):
    layouts.touch(tmp_path, "sub-01/func/sub-01_task-rest_acq-mb_bold.nii.gz")
    layouts.touch(tmp_path, "sub-01/func/sub-01_task-rest_bold.nii.gz")
    layouts.write_json(tmp_path / "task-rest_bold.json", {"RepetitionTime": 2})
    layouts.write_json(tmp_path / "acq-mb_bold.json", {"RepetitionTime": 3})
    records = _bids(tmp_path)
    # The ambiguous run is dropped with the reason; the other run goes on.
    assert list(records.frame.index) == ["sub-01_task-rest"]
    (reason,) = records.dropped["reason"]
    assert records.dropped["record"].tolist() == ["sub-01_task-rest_acq-mb"]
    assert re.search(r"2 sidecars apply .*acq-mb_bold.json and .*task-rest", reason)


def test_inheritance_ignores_sidecars_with_other_entities_or_in_sibling_folders(tmp_path):
    layouts.touch(tmp_path, "sub-01/func/sub-01_task-rest_bold.nii.gz")
    layouts.write_json(tmp_path / "task-rest_bold.json", {"RepetitionTime": 2})
    layouts.write_json(tmp_path / "task-rest_acq-mb_bold.json", {"RepetitionTime": 9})
    layouts.write_json(tmp_path / "sub-02/sub-02_task-rest_bold.json", {"RepetitionTime": 9})
    assert _bids(tmp_path).frame["t_r"].tolist() == [2.0]


def test_fmriprep_mask_fallback_keeps_resolution_and_prefers_the_session(tmp_path):
    run = f"sub-01/ses-1/func/sub-01_ses-1_task-rest_{MNI}_res-2_desc-preproc_bold.nii.gz"
    layouts.touch(tmp_path, run,
                  f"sub-01/anat/sub-01_{MNI}_res-1_desc-brain_mask.nii.gz",
                  f"sub-01/anat/sub-01_{MNI}_res-2_desc-brain_mask.nii.gz",
                  f"sub-01/ses-1/anat/sub-01_ses-1_{MNI}_res-2_desc-brain_mask.nii.gz")  # fmt: skip
    records = ns.locate(tmp_path, schema=ns.schemas.fmriprep(), stage=["bold", "mask"],
                        filters=[])  # fmt: skip
    assert (
        records.frame["mask"].iloc[0].endswith(f"sub-01_ses-1_{MNI}_res-2_desc-brain_mask.nii.gz")
    )


def test_hcp_7t_numbered_tasks_and_stray_files(tmp_path):
    results = tmp_path / "100307" / "MNINonLinear" / "Results"
    for run in ("rfMRI_REST1_7T_PA", "tfMRI_RETBAR1_AP", "tfMRI_RETBAR2_AP", "tfMRI_EMOTION_LR"):
        layouts.small_nifti(results / run / f"{run}.nii.gz", t_r=1.0)
    layouts.touch(results, "tfMRI_WM_LR")  # a file where a run folder would be
    records = ns.locate(tmp_path, schema=ns.schemas.hcp(), stage=["bold"])
    assert list(records.frame.index) == [
        "sub-100307_ses-1_task-rest_acq-7T_dir-PA",
        "sub-100307_task-emotion_dir-LR",
        "sub-100307_task-retbar_dir-AP_run-1",
        "sub-100307_task-retbar_dir-AP_run-2",
    ]
    assert records.frame.loc["sub-100307_task-retbar_dir-AP_run-2", "run"] == "2"
    assert records.unparsed == ("100307/MNINonLinear/Results/tfMRI_WM_LR",)


def test_regex_optional_groups_specific_shared_files_and_prefixed_labels(tmp_path):
    layouts.touch(tmp_path, "sub-01/rest1.nii.gz", "sub-01/ses-2/rest1.nii.gz",
                  "sub-01/brain.nii.gz", "sub-01/ses-2/brain.nii.gz",
                  "sub-01/notes.txt")  # fmt: skip
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\n")
    schema = ns.schemas.regex({
        "bold": r"(?P<subject>sub-\d+)/(?:(?P<session>ses-\d+)/)?rest(?P<run>\d)\.nii\.gz",
        "mask": r"(?P<subject>sub-\d+)/(?:(?P<session>ses-\d+)/)?brain\.nii\.gz",
    }, t_r=2.0)  # fmt: skip
    records = ns.locate(tmp_path, schema=schema, variables=ns.tables.participants())
    assert list(records.frame.index) == ["sub-01_run-1", "sub-01_ses-2_run-1"]
    masks = [p.removeprefix(str(tmp_path)) for p in records.frame["mask"]]
    assert masks == ["/sub-01/brain.nii.gz", "/sub-01/ses-2/brain.nii.gz"]
    assert records.frame["age"].tolist() == [30, 30]  # "sub-01" captured joins as "01"
    assert records.unparsed == ("sub-01/notes.txt",)


def test_regex_ids_that_would_collide_are_refused(tmp_path):
    layouts.touch(tmp_path, "a.b/rest.nii.gz", "a_b/rest.nii.gz")
    schema = ns.schemas.regex({"bold": r"(?P<subject>[^/]+)/rest\.nii\.gz"}, t_r=1.0)
    with pytest.raises(ns.SpecError, match=r"same record id sub-a-b"):
        ns.locate(tmp_path, schema=schema)


def test_entity_filters_compare_numbers_as_numbers_and_where_drops_missing(tmp_path):
    layouts.raw_bids(tmp_path)
    layouts.touch(tmp_path, "sub-03/func/sub-03_task-rest_run-01_bold.nii.gz")
    with open(tmp_path / "participants.tsv", "a") as handle:
        handle.write("sub-03\t30\tcontrol\n")
    records = _bids(tmp_path, variables=ns.tables.participants(),
                    filters=[ns.filters.entities(include={"run": [1], "age": [30]})])  # fmt: skip
    assert list(records.frame.index) == ["sub-01_task-rest_run-1", "sub-03_task-rest_run-01"]
    kept = _bids(tmp_path, variables=ns.tables.participants(),
                 filters=[ns.filters.where("age != 31")])  # fmt: skip
    reasons = dict(zip(kept.dropped["record"], kept.dropped["reason"], strict=True))
    assert reasons == {"sub-02_ses-a_task-rest": "missing age",
                       "sub-02_ses-b_task-rest": "missing age"}  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "EmptyDataError"),
        ("participant_id\tage\nsub-01\t30\t7\n", "does not match length of data"),
        ("participant_id\tage\n\t30\nsub-02\t40\n", "no subject in 'participant_id' on lines 2"),
        (b"participant_id\tage\nsub-\xff\t30\n", "UnicodeDecodeError"),
    ],
)
def test_a_broken_participants_table_is_an_error_naming_it(tmp_path, content, message):
    layouts.raw_bids(tmp_path)
    path = tmp_path / "participants.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ns.SpecError, match=f"participants.tsv.*{message}"):
        _bids(tmp_path, variables=ns.tables.participants())


def test_tables_from_dataframes_and_reserved_names(tmp_path):
    layouts.raw_bids(tmp_path)
    frame = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "score": ["n/a", "7"]})
    records = _bids(tmp_path, variables=ns.tables.table(frame, columns="score"))
    assert records.frame["score"].dtype.kind == "f"  # "n/a" is missing, not a category
    named = pd.DataFrame({"participant_id": ["01"], "record": ["x"]})
    with pytest.raises(ns.SpecError, match=r"columns \['record'\] clash"):
        _bids(tmp_path, variables=ns.tables.table(named))


def test_index_cli_refuses_bad_patterns(tmp_path, capsys):
    layouts.touch(tmp_path, "s1/rest.nii.gz")
    assert main(["index", str(tmp_path), "--schema", "regex", "--pattern", "rest"]) == 2
    assert main(["index", str(tmp_path), "--schema", "regex", "--pattern", "bold=(?P<s"]) == 2
    err = capsys.readouterr().err
    assert "needs --pattern COLUMN=REGEX" in err and "not a regular expression" in err


def test_two_runs_with_one_record_id_are_refused_naming_both_files(tmp_path):
    """A schema that finds two runs under one id (a user's pattern too loose) stops locate
    with the id and both files, rather than one run silently replacing the other."""
    from nishard.records.schemas.base import Run, Scan

    class Twice:
        name, default_stage, kinds = "twice", ("bold",), {"bold": ("bold",)}

        def scan(self, root):
            key, entities = "sub-01_task-rest", {"subject": "01"}
            return Scan(
                [Run(key, entities, {"bold": f"{root}/{name}"}) for name in ("a.nii", "b.nii")]
            )

        def to_dict(self):
            return {"name": self.name}

    with pytest.raises(ns.SpecError) as raised:
        ns.locate(tmp_path, schema=Twice())
    message = str(raised.value)
    assert "two runs share the record id sub-01_task-rest" in message
    assert f"{tmp_path}/a.nii and {tmp_path}/b.nii" in message
