"""`nishard index` says what it did: the stage and filters used, the drops counted by
reason, and a non-zero exit when it found runs but dropped every one."""

import re

import pytest

from nishard.cli import main
from nishard.records import RecordTable
from tests.helpers import TINY_RES, bold_files


def _index(root, out, *extra):
    return main(["index", str(root), "--res", TINY_RES, "-o", str(out), *extra])


def test_help_states_the_default_stages_and_the_filter(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["index", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    assert "fmriprep: bold,mask,confounds; bids: bold; hcp: bold,mask,movement" in text
    assert "Filters: complete (a record needs every staged file and a repetition time)" in text
    assert (
        "every one is dropped, the table is still written and the command exits with status 2"
        in text
    )


def test_the_summary_states_the_stage_and_filters_used(tiny, tmp_path, capsys):
    assert _index(tiny, tmp_path / "a.parquet") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "stage: bold, mask, confounds (fmriprep default; --stage to change)"
    assert lines[1].startswith("filters: complete (")
    assert _index(tiny, tmp_path / "b.parquet", "--stage", "bold,mask") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "stage: bold, mask"  # as given: no default to name


def test_drops_are_counted_by_reason(tiny_copy, tmp_path, capsys):
    runs = [b.name.split("_space-")[0] for b in bold_files(tiny_copy)]
    for run in runs[:3]:
        next(tiny_copy.glob(f"sub-*/**/func/{run}_desc-confounds_timeseries.tsv")).unlink()
    for run in runs[2:4]:
        next(tiny_copy.glob(f"sub-*/**/func/{run}_*desc-brain_mask.nii.gz")).unlink()
    assert _index(tiny_copy, tmp_path / "r.parquet") == 0
    out = capsys.readouterr().out
    assert f"{len(runs) - 4} records from" in out
    assert "dropped 4 records:\n" in out
    groups = re.findall(r"^  (\d+) x (.+?): (.+)$", out, flags=re.M)
    assert [(n, reason) for n, reason, _ in groups] == [
        ("2", "no confounds file"),  # the most frequent first
        ("1", "no mask file; no confounds file"),
        ("1", "no mask file"),
    ]
    assert groups[0][2] == f"{runs[0]}, {runs[1]}"
    assert sum(int(n) for n, _, _ in groups) == 4


def test_many_drops_of_one_reason_name_a_few_and_count_the_rest(tiny_copy, tmp_path, capsys):
    for confounds in tiny_copy.glob("sub-*/**/func/*_desc-confounds_timeseries.tsv"):
        confounds.unlink()
    runs = [b.name.split("_space-")[0] for b in bold_files(tiny_copy)]
    out = tmp_path / "records.parquet"
    assert _index(tiny_copy, out) == 2
    captured = capsys.readouterr()
    shown = f"{runs[0]}, {runs[1]}, {runs[2]} and {len(runs) - 3} more"
    assert f"  {len(runs)} x no confounds file: {shown}\n" in captured.out
    # Every run found was dropped: an error, with the reasons counted and a way out.
    assert captured.err.splitlines() == [
        f"nishard: error: all {len(runs)} runs found were dropped:",
        f"  {len(runs)} x no confounds file",
        "to index them without confounds: --stage bold,mask",
        f"the table, with each run's reason, is in {out}",
    ]
    table = RecordTable.from_parquet(out)  # still written, and readable
    assert len(table) == 0 and sorted(table.dropped["record"]) == runs
    assert _index(tiny_copy, tmp_path / "kept.parquet", "--stage", "bold,mask") == 0
    assert len(RecordTable.from_parquet(tmp_path / "kept.parquet")) == len(runs)


def test_no_stage_is_suggested_when_each_staged_kind_is_missing_somewhere(
    tiny_copy, tmp_path, capsys
):
    # Half the runs lack their BOLD, the others their confounds: leaving out either kind
    # would keep only half, so no stage is suggested.
    bolds = bold_files(tiny_copy)
    for i, bold in enumerate(bolds):
        run = bold.name.split("_space-")[0]
        if i % 2:
            bold.unlink()
        else:
            next(bold.parent.glob(f"{run}_desc-confounds_timeseries.tsv")).unlink()
    assert _index(tiny_copy, tmp_path / "r.parquet", "--stage", "bold,confounds") == 2
    err = capsys.readouterr().err
    assert f"all {len(bolds)} runs found were dropped:" in err
    assert f"  {len(bolds) // 2} x no confounds file\n" in err
    assert f"  {len(bolds) // 2} x no bold file" in err
    assert "--stage" not in err
