from nishard.records.entities import parse_bids_name, record_id


def test_entities_are_parsed_by_name_not_position():
    name = "sub-01_ses-02_task-rest_acq-mb_run-3_space-MNI_res-2_desc-preproc_bold.nii.gz"
    bids = parse_bids_name(name)
    assert bids.entities == {
        "sub": "01", "ses": "02", "task": "rest", "acq": "mb", "run": "3",
        "space": "MNI", "res": "2", "desc": "preproc",
    }  # fmt: skip
    assert bids.suffix == "bold"
    assert bids.extension == ".nii.gz"
    # Optional entities absent: the same code finds task and run where they are.
    short = parse_bids_name("sub-10_task-balloonanalogrisktask_desc-confounds_timeseries.tsv")
    assert short.get("task") == "balloonanalogrisktask"
    assert short.get("run") is None
    assert short.suffix == "timeseries"


def test_non_bids_names_are_refused():
    assert parse_bids_name("README.md") is None
    assert parse_bids_name("task-rest_bold.nii.gz") is None  # no subject
    assert parse_bids_name("sub-01_sub-02_bold.nii.gz") is None  # repeated entity
    assert parse_bids_name("sub-01_task-re.st_bold.nii.gz") is None  # dot inside a label


def test_record_id_keeps_run_entities_in_bids_order_and_has_no_dots():
    bids = parse_bids_name(
        "sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    )
    assert record_id(dict(reversed(bids.entities.items()))) == "sub-01_task-rest_run-1"
