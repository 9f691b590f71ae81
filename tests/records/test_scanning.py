"""The BIDS walk reuses what it learns of a kind of file for every subject: it must find
exactly what parsing and classifying every name finds, in the same order."""

import contextlib
import os
from pathlib import Path

import pandas as pd
import pytest

import nishard as ns
from nishard.records.entities import parse_bids_name, record_id
from nishard.records.files import walk
from nishard.records.schemas import scanning
from nishard.records.schemas.base import ELSEWHERE, claim, long_entities, subject_key
from nishard.records.schemas.scanning import scan_bids
from tests.records import layouts

MNI = "space-MNI152NLin2009cAsym"


def _every_name(root: Path, classify) -> dict:
    """What the walk finds when every name is parsed and classified on its own (the walk
    as it was before kinds were reused), as plain values."""
    root = root.absolute()
    runs: dict = {}
    names: dict = {}
    subject_files: dict = {}
    unparsed, jsons, folders, elsewhere = [], [], {}, {}
    for listed in walk(str(root), prefix="sub-", named_folders=True):
        relative = listed.rstrip("/")
        folder = listed != relative
        name = relative.rsplit("/", 1)[-1]
        if name.endswith(".json") and not folder:
            jsons.append(relative)
        if not relative.startswith("sub-") or "/" not in relative:
            continue
        bids = parse_bids_name(name)
        if bids is None:
            unparsed.append(listed)
            continue
        match = classify(bids, relative)
        if match is None:
            continue
        column, level = match
        path = f"{root}/{relative}"
        key = record_id(bids.entities)
        if column.startswith(ELSEWHERE):
            elsewhere.setdefault(key, {}).setdefault(column.removeprefix(ELSEWHERE), set()).add(
                level
            )
        elif folder:
            runs.setdefault(key, (long_entities(bids), {}))
            folders.setdefault(key, []).append(f"{path} is a directory, expected a file")
        elif level == "subject":
            place = subject_key(bids.entities.get("sub"), bids.get("ses"), bids.get("res"))
            where = "_".join(
                f"{k}-{v}" for k, v in zip(("sub", "ses", "res"), place, strict=True) if v
            )
            claim(subject_files.setdefault(place, {}), column, path, where)
        else:
            _, files = runs.setdefault(key, (long_entities(bids), {}))
            claim(files, column, path, key)
            names.setdefault(key, {})[column] = (bids, relative)
    return {
        "runs": {k: (list(e.items()), list(f.items())) for k, (e, f) in runs.items()},
        "names": _plain(names),
        "subject_files": {k: list(v.items()) for k, v in subject_files.items()},
        "unparsed": sorted(unparsed),
        "jsons": sorted(jsons),
        "folders": folders,
        "elsewhere": elsewhere,
    }


def _plain(names: dict) -> dict:
    """Parsed names as values whose order counts (a dict's equality ignores it)."""
    return {
        key: {
            column: (list(bids.entities.items()), bids.suffix, bids.extension, relative)
            for column, (bids, relative) in columns.items()
        }
        for key, columns in names.items()
    }


def _found(root: Path, classify) -> dict:
    found = scan_bids(root, classify, jsons=True)
    unlisted = scan_bids(root, classify)  # what a schema without inheritance asks for
    assert unlisted.jsons == []
    assert unlisted.runs == found.runs and unlisted.subject_files == found.subject_files
    names: dict = {}
    for key, run in found.runs.items():
        for column in run.files:
            parsed = found.parsed(key, column)
            if parsed is not None:
                names.setdefault(key, {})[column] = parsed
            want = None if parsed is None else parsed[0].get("res")
            assert found.entity(key, column, "res", absent="absent") == (
                "absent" if parsed is None else want
            )
    runs = found.runs.items()
    return {
        "runs": {k: (list(r.entities.items()), list(r.files.items())) for k, r in runs},
        "names": _plain(names),
        "subject_files": {k: list(v.items()) for k, v in found.subject_files.items()},
        "unparsed": sorted(found.unparsed),
        "jsons": sorted(found.jsons),
        "folders": found.folders,
        "elsewhere": found.elsewhere,
    }


def irregular(root: Path) -> None:
    """Many subjects of the same kinds of file, and every name the reuse must not
    mistake: entities in another order, names that do not start with their subject (or
    name another), legacy fMRIPrep names, names that are not BIDS, folders named like
    files, cohorts, sessions."""
    for subject in ("01", "02", "03", "10"):
        func = f"sub-{subject}/func/sub-{subject}_task-rest"
        layouts.touch(
            root,
            f"{func}_run-1_{MNI}_desc-preproc_bold.nii.gz",
            f"{func}_run-1_{MNI}_desc-brain_mask.nii.gz",
            f"{func}_run-1_desc-confounds_timeseries.tsv",
            f"{func}_run-1_space-T1w_desc-preproc_bold.nii.gz",
            f"{func}_run-1_bold.nii.gz",
            f"{func}_run-1_events.tsv",
            f"sub-{subject}/anat/sub-{subject}_{MNI}_desc-brain_mask.nii.gz",
            f"sub-{subject}/anat/sub-{subject}_{MNI}_res-2_desc-brain_mask.nii.gz",
            f"sub-{subject}/figures/sub-{subject}_task-rest_desc-carpetplot_bold.svg",
        )
        layouts.write_json(root / f"{func}_run-1_{MNI}_desc-preproc_bold.json", {})
    func = "sub-01/func/sub-01"
    layouts.touch(
        root,
        f"{func}_run-2_task-rest_{MNI}_desc-preproc_bold.nii.gz",  # entities reordered
        f"{func}_task-rest_run-2_desc-confounds_timeseries.tsv",
        f"{func}_task-rest_run-3_{MNI[6:].join(('bold_space-', '_preproc.nii.gz'))}",
        f"{func}_task-rest_run-3_bold_confounds.tsv",
        f"{func}_task-rest_run-4_space-MNIInfant+1_desc-preproc_bold.nii.gz",
        f"{func}_task-rest_run-4_space-MNIInfant_cohort-1_boldref.nii.gz",
        "sub-01/func/task-rest_sub-01_run-5_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        "sub-01/func/sub-02_task-rest_run-6_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        f"{func}_task-rest_sub-02_bold.nii.gz",  # two subjects: not BIDS
        f"{func}__bold.nii.gz",
        f"{func}_task-rest.nii.gz",
        "sub-01/func/sub-01.5_task-rest_bold.nii.gz",
        "sub-01/func/sub-01",
        "sub-01/func/notes.txt",
        "sub-01/sub-01_task-rest_run-7_bold.nii.gz",  # right under the subject's folder
        "sub-02/ses-1/func/sub-02_ses-1_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        "sub-02/ses-1/func/sub-02_ses-1_task-rest_bold.nii.gz",
        "sub-02/ses-1/anat/sub-02_ses-1_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
        "sub-03/ses-1/func/sub-03_ses-1_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        "sub-01.html",
    )
    os.makedirs(root / f"{func}_task-rest_run-8_{MNI}_desc-preproc_bold.nii.gz")
    os.makedirs(root / f"{func}_task-rest_run-8_bold.nii.gz")
    layouts.write_json(root / "task-rest_bold.json", {"RepetitionTime": 2.0})


LAYOUTS = [layouts.fmriprep_current, layouts.fmriprep_old, layouts.raw_bids, irregular]
SCHEMAS = [
    ns.schemas.fmriprep(),
    ns.schemas.fmriprep(res="2"),
    ns.schemas.fmriprep(space="MNIInfant:cohort-1"),
    ns.schemas.fmriprep(task="rest", space="T1w"),
    ns.schemas.bids(),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: repr(s.to_dict()))
def test_the_walk_finds_what_parsing_every_name_finds(tmp_path, layout, schema):
    layout(tmp_path)
    try:
        expected = _every_name(tmp_path, schema.classify)
    except ValueError as err:  # two files for one place: the same error, naming the same
        with pytest.raises(ValueError) as raised:
            scan_bids(tmp_path, schema.classify)
        assert str(raised.value) == str(err)
        return
    assert _found(tmp_path, schema.classify) == expected


def test_irregular_names_are_in_the_comparison(tmp_path, monkeypatch):
    """The comparison above sees what it must: reordered entities, names parsed on their
    own, folders, files found elsewhere, folders placed by a plan made for another
    subject's (a check that the layout is what it says)."""
    irregular(tmp_path)
    followed = []
    follow = scanning._follow

    def counted(found, plan, *rest):
        followed.append(plan)
        follow(found, plan, *rest)

    monkeypatch.setattr(scanning, "_follow", counted)
    scan_bids(tmp_path, ns.schemas.fmriprep().classify)
    assert len(followed) > len({id(plan) for plan in followed})  # a plan reused
    for schema in SCHEMAS:
        assert _every_name(tmp_path, schema.classify)["runs"], schema
    found = _every_name(tmp_path, ns.schemas.fmriprep().classify)
    # Its two files name its entities in two orders: the first listed gives the run's.
    assert {k for k, _ in found["runs"]["sub-01_task-rest_run-2"][0]} == {"subject", "task", "run"}
    assert "sub-01_task-rest_run-5" in found["runs"]  # a name led by its task
    assert "sub-02_task-rest_run-6" in found["runs"]  # another subject's, in sub-01
    assert "sub-01_task-rest_run-8" in found["folders"]
    assert found["elsewhere"]["sub-01_task-rest_run-1"] == {"bold": {"T1w"}}
    assert "sub-01/func/sub-01_task-rest_sub-02_bold.nii.gz" in found["unparsed"]


def test_a_folder_alone_in_a_runs_place_is_dropped_saying_so(tmp_path):
    """A run whose only entry is a folder named like its BOLD file (no other file of it
    anywhere) is a record dropped with that reason (it used to raise a KeyError)."""
    layouts.touch(tmp_path, f"sub-01/func/sub-01_task-rest_{MNI}_desc-preproc_bold.nii.gz")
    folder = tmp_path / f"sub-01/func/sub-01_task-rest_run-2_{MNI}_desc-preproc_bold.nii.gz"
    folder.mkdir()
    records = ns.locate(tmp_path, stage=["bold"])
    assert list(records.frame.index) == ["sub-01_task-rest"]
    assert records.dropped.to_dict(orient="records") == [
        {
            "record": "sub-01_task-rest_run-2",
            "reason": f"{folder.absolute()} is a directory, expected a file",
        }
    ]


@pytest.mark.parametrize("schema", SCHEMAS[:1] + SCHEMAS[-1:], ids=lambda s: s.name)
def test_what_is_found_does_not_depend_on_the_order_folders_list_their_names(
    tmp_path, monkeypatch, schema
):
    """File systems (and copies of one dataset) list a folder's names in different
    orders; the walk sorts them, so the runs, their entities' order (from a run's first
    file: sub-01's run 2 names them in two orders) and the record table are the same."""
    irregular(tmp_path)
    forward = _found(tmp_path, schema.classify)
    table = ns.locate(tmp_path, schema=schema).frame
    listing = os.scandir

    @contextlib.contextmanager
    def backwards(path):
        with listing(path) as entries:
            yield list(entries)[::-1]

    monkeypatch.setattr(os, "scandir", backwards)
    assert _found(tmp_path, schema.classify) == forward
    pd.testing.assert_frame_equal(ns.locate(tmp_path, schema=schema).frame, table)
