"""Errors name what the user wrote (issue 15, item 10): a subject listed twice as written,
the shard option at fault, and a close match for an enumerated value as for a key."""

import re

import pytest

import nishard as ns
from nishard.builder.output import Output
from nishard.records import Participants, Table
from nishard.registry import did_you_mean, not_one_of
from tests.helpers import TINY_RES


def test_a_subject_listed_twice_is_named_as_written_with_its_lines(tmp_path):
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tage\nsub-01\t30\nsub-02\t41\n03\t25\n02\t41\nsub-03\t26\n"
    )
    with pytest.raises(ns.SpecError) as error:
        Participants().load(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'participants.tsv'}: listed more than once: "
        "02 as 'sub-02' on line 3 and '02' on line 5; 03 as '03' on line 4 and 'sub-03' on line 6"
    )


def test_a_subject_and_session_listed_twice_are_named_as_written(tmp_path):
    (tmp_path / "scores.csv").write_text(
        "subject,visit,score\nsub-01,ses-1,3\nsub-01,ses-2,4\n01,1,5\n"
    )
    with pytest.raises(ns.SpecError) as error:
        Table("scores.csv", subject="subject", session="visit").load(tmp_path)
    assert str(error.value).endswith(
        "scores.csv: listed more than once: "
        "01-1 as ('sub-01', 'ses-1') on line 2 and ('01', '1') on line 4"
    )


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ({"max_bytes": "512XB"}, "output.shards.max_bytes: a size like 512MB or 1GiB, got '512XB'"),
        ({"max_bytes": 0}, "output.shards.max_bytes: a positive size in bytes, got 0"),
        ({"max_samples": 0}, "output.shards: max_samples must be a positive integer, got 0"),
        ({"max_samples": None, "max_bytes": None}, "output.shards: a shard limit"),
        (
            {"max_byte": "1GB"},
            "unknown key 'max_byte' in output.shards (did you mean 'max_bytes'?)",
        ),
        (16, "output.shards must be a mapping of max_samples and max_bytes"),
    ],
)
def test_a_wrong_shard_limit_names_its_key(shards, message):
    with pytest.raises(ns.SpecError, match=re.escape(message)):
        Output.from_dict({"path": "s", "shards": shards})


def _spec(**changes) -> dict:
    spec = {"input": {"path": "data"}, "transforms": [], "output": {"path": "s"}}
    for section, value in changes.items():
        spec[section] = {**spec.get(section, {}), **value} if isinstance(value, dict) else value
    return spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input": {"level": "sesion"}},
         "input.level one of run, session, subject; got 'sesion' (did you mean 'session'?)"),
        ({"transforms": [{"standardize": {"method": "zscor"}}]},
         "transforms[0].standardize: method one of zscore_sample, zscore, psc; got 'zscor' "
         "(did you mean 'zscore'?)"),
        ({"transforms": [{"connectivity": {"kind": "corelation"}}]},
         "transforms[0].connectivity: kind one of correlation, partial correlation, covariance, "
         "partial_correlation; got 'corelation' (did you mean 'correlation'?)"),
        ({"transforms": [{"connectivity": {"estimator": "ledoit"}}]},
         "estimator one of ledoit_wolf, empirical; got 'ledoit' (did you mean 'ledoit_wolf'?)"),
        ({"transforms": [{"cast": {"dtype": "float23"}}]},
         "transforms[0].cast: dtype one of float32, float16, bfloat16; got 'float23' "
         "(did you mean 'float32'?)"),
        # Names of registered primitives: the same suggestion, as before.
        ({"execution": {"executor": "locl"}},
         "unknown execution.executor 'locl' (did you mean 'local'?)"),
        ({"output": {"formats": ["webdatset"]}},
         "unknown output.formats[0] 'webdatset' (did you mean 'webdataset'?)"),
        ({"output": {"split": {"name": "stratifed"}}},
         "unknown output.split 'stratifed' (did you mean 'stratified'?)"),
        ({"input": {"schema": "fmriprpe"}},
         "unknown input.schema 'fmriprpe' (did you mean 'fmriprep'?)"),
    ],
)  # fmt: skip
def test_an_enumerated_value_gets_a_close_match(changes, message):
    with pytest.raises(ns.SpecError, match=re.escape(message)):
        ns.parse_spec(_spec(**changes))


def test_an_atlas_option_value_gets_a_close_match(tmp_path):
    atlas = tmp_path / "atlas.nii.gz"
    atlas.touch()  # the file is checked first; its content only when a record is loaded
    spec = _spec(transforms=[{"parcellate": {"atlas": str(atlas), "missing": "dorp"}}])
    message = "missing one of drop, zero; got 'dorp' (did you mean 'drop'?)"
    with pytest.raises(ns.SpecError, match=re.escape(message)):
        ns.parse_spec(spec)


def test_the_python_api_says_the_same(tiny):
    with pytest.raises(ns.SpecError, match=re.escape("got 'subjet' (did you mean 'subject'?)")):
        ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES), level="subjet")


def test_no_suggestion_when_nothing_is_close():
    assert did_you_mean("xyz", ["simple", "scrubbing"]) == ""
    assert not_one_of("filter", "xyz", ["fft", "cosine"], " or None") == (
        "filter one of fft, cosine or None; got 'xyz'"
    )
    assert not_one_of("filter", 3, ["fft", "cosine"]) == "filter one of fft, cosine; got 3"


@pytest.mark.parametrize(
    ("options", "suggested"),
    [
        ({"confounds": "simpel"}, "simple"),
        ({"confounds": {"strategy": "simple", "motion": "ful"}}, "full"),
        ({"filter": "butterwort"}, "butterworth"),
    ],
)
def test_clean_options_get_a_close_match(options, suggested):
    with pytest.raises(ns.SpecError, match=re.escape(f"(did you mean '{suggested}'?)")):
        ns.parse_spec(_spec(transforms=[{"clean": options}]))
