"""Confound selection equals nilearn's load_confounds(_strategy) on real and synthetic files.

The real files are the fMRIPrep confounds nilearn ships (``nilearn/interfaces/fmriprep/data``):
fMRIPrep 21 (``test-v21``, 3 non-steady-state volumes, high motion), fMRIPrep 1.4 (``test``,
1 non-steady-state volume, 126 aCompCor components in 3 masks) and the same without the
non-steady-state column. nilearn's loader finds a confounds file from the BOLD file's name
only (it never opens the image), so each is copied under fMRIPrep's names next to an empty
``sub-01_task-rest_desc-preproc_bold.nii.gz``.

Tolerance: max abs difference <= 1e-10 on the regressors (in practice 0: the same sums);
columns (names and order) and sample masks must be identical.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces import fmriprep as nilearn_fmriprep
from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

from nishard.transforms.confounds import (
    PRESETS,
    ConfoundStrategy,
    columns,
    compcor,
    get_strategy,
    p24,
    p36,
    patterns,
    read_confounds,
    scrubbing,
    select_confounds,
    simple,
)

TOL = 1e-10  # max abs difference of the regressors against nilearn's
DATA = Path(nilearn_fmriprep.__file__).parent / "data"
#: Packaged file set -> (confounds TSV, JSON sidecar, fMRIPrep's suffix for that version).
V21, V14 = "test-v21_desc-confounds_timeseries", "test_desc-confounds_regressors"
FILES = {
    "v21": (V21, V21, "timeseries"),
    "v14": (V14, V14, "regressors"),
    "no_nss": ("no_nonsteady_desc-confounds_regressors", V14, "regressors"),
}
BOLD_NAME = "sub-01_task-rest_desc-preproc_bold.nii.gz"


@dataclasses.dataclass(frozen=True)
class Run:
    bold: Path  # the (empty) image file nilearn's loader takes
    tsv: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    out = {}
    for key, (tsv, sidecar, suffix) in FILES.items():
        folder = tmp_path_factory.mktemp(key)
        target = folder / f"sub-01_task-rest_desc-confounds_{suffix}.tsv"
        shutil.copy(DATA / f"{tsv}.tsv", target)
        shutil.copy(DATA / f"{sidecar}.json", target.with_suffix(".json"))
        (folder / BOLD_NAME).touch()
        out[key] = Run(folder / BOLD_NAME, target)
    return out


def nilearn_preset(bold: Path, name: str, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "parameters not needed", all-censored warnings
        return load_confounds_strategy(str(bold), denoise_strategy=name, **options)


def nilearn_custom(bold: Path, strategy: ConfoundStrategy):
    """nilearn's load_confounds with the components and options of ``strategy``."""
    groups = [g for g in ("motion", "wm_csf", "global_signal") if getattr(strategy, g)]
    components = [*groups, *(["high_pass"] if strategy.high_pass else [])]
    options = {g: getattr(strategy, g) for g in groups}
    if strategy.compcor:
        components.append("compcor")
        options |= {"compcor": strategy.compcor, "n_compcor": strategy.n_compcor}
    if strategy.scrub is not None:
        components.append("scrub")
        options |= {
            "scrub": strategy.scrub,
            "fd_threshold": strategy.fd_threshold,
            "std_dvars_threshold": strategy.std_dvars_threshold,
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_confounds(str(bold), strategy=components, demean=strategy.demean, **options)


def ours(run: Run, strategy):
    table, metadata = read_confounds(run.tsv)
    return select_confounds(table, metadata, strategy, n_volumes=len(table))


def assert_same(result, expected) -> None:
    values, names, sample_mask = result
    frame, expected_mask = expected
    assert names == list(frame.columns)
    assert values.dtype == np.float64 and values.shape == frame.shape
    if values.size:
        assert np.abs(values - frame.to_numpy(dtype=np.float64)).max() <= TOL
    if expected_mask is None:
        assert sample_mask is None
    else:
        assert sample_mask is not None and sample_mask.dtype == np.int64
        np.testing.assert_array_equal(sample_mask, expected_mask)


# -------------------------------------------------------------------------------------------
# Parity on nilearn's packaged fMRIPrep files
# -------------------------------------------------------------------------------------------

CASES = [
    (key, name)
    for key in FILES
    for name in ("simple", "scrubbing", "compcor")
    if (key, name) != ("v21", "scrubbing")  # every volume censored: test below
]


@pytest.mark.parametrize(("key", "name"), CASES)
def test_presets_equal_nilearn(runs, key, name):
    run = runs[key]
    expected = nilearn_preset(run.bold, name)
    assert_same(ours(run, name), expected)
    assert_same(ours(run, PRESETS[name]()), expected)


def test_sample_mask_follows_non_steady_state_columns(runs):
    # v21: 3 non-steady-state volumes; v14: 1; no_nss: none and no scrubbing hit -> None.
    assert ours(runs["v21"], "simple")[2].tolist() == list(range(3, 30))
    assert ours(runs["v14"], "scrubbing")[2].tolist() == list(range(1, 30))
    assert ours(runs["no_nss"], "scrubbing")[2] is None


def test_first_row_na_takes_the_second_rows_value(runs):
    table, _ = read_confounds(runs["no_nss"].tsv)
    assert np.isnan(table.loc[0, "trans_x_derivative1"])
    values, names, _ = select_confounds(table, None, simple(demean=False))
    j = names.index("trans_x_derivative1")
    assert values[0, j] == values[1, j] == table.loc[1, "trans_x_derivative1"]


def test_scrubbing_when_everything_is_censored(runs):
    # fMRIPrep 21 file: FD and std_dvars above 0.5 / 1.5 nearly everywhere; the segment rule
    # censors the rest. nilearn warns and returns an empty mask; nishard refuses the run.
    _, expected_mask = nilearn_preset(runs["v21"].bold, "scrubbing")
    assert expected_mask.size == 0
    with pytest.raises(ValueError, match="all 30 volumes are censored"):
        ours(runs["v21"], "scrubbing")


SCRUB_OPTIONS = [
    ("v21", {"fd_threshold": 2.0, "std_dvars_threshold": 3.0}),  # 6 more in short segments
    ("v21", {"fd_threshold": 2.0, "std_dvars_threshold": 3.0, "scrub": 0}),
    ("v14", {"fd_threshold": 0.15, "std_dvars_threshold": 1.2, "scrub": 3}),
    ("no_nss", {"fd_threshold": 0.14, "std_dvars_threshold": 1.3}),
    ("no_nss", {"fd_threshold": 0.1, "std_dvars_threshold": 5.0, "scrub": 4}),
]


@pytest.mark.parametrize(("key", "options"), SCRUB_OPTIONS)
def test_scrubbing_options_equal_nilearn(runs, key, options):
    run = runs[key]
    expected = nilearn_preset(run.bold, "scrubbing", **options)
    assert 0 < len(expected[1]) < 30  # something censored, something kept
    assert_same(ours(run, scrubbing(**options)), expected)


def test_minimum_segment_length_censors_short_segments(runs):
    table, _ = read_confounds(runs["v21"].tsv)
    over = np.flatnonzero((table.framewise_displacement > 2) | (table.std_dvars > 3)).tolist()
    without_rule = ours(runs["v21"], scrubbing(fd_threshold=2.0, std_dvars_threshold=3.0, scrub=0))
    with_rule = ours(runs["v21"], scrubbing(fd_threshold=2.0, std_dvars_threshold=3.0))
    kept0, kept5 = set(without_rule[2]), set(with_rule[2])
    assert kept0 == set(range(3, 30)) - set(over)
    assert kept5 < kept0 and len(kept0 - kept5) == 6
    # What the rule removed are runs of kept volumes shorter than 5.
    for frame in kept0 - kept5:
        run = {frame}
        for step in (-1, 1):
            f = frame + step
            while f in kept0:
                run.add(f)
                f += step
        assert len(run) < 5


def test_24p_and_36p_equal_nilearn(runs):
    for run in runs.values():
        result = ours(run, p24())
        assert len(result[1]) == 24
        assert_same(result, nilearn_custom(run.bold, p24()))
        result = ours(run, p36())
        assert len(result[1]) == 36
        assert_same(result, nilearn_custom(run.bold, p36()))
        assert_same(ours(run, "36P"), nilearn_custom(run.bold, p36()))


CUSTOM = [
    ConfoundStrategy(motion="derivatives", wm_csf="power2", global_signal="basic", demean=False),
    ConfoundStrategy(motion="power2", global_signal="full", high_pass=True),
    ConfoundStrategy(compcor="temporal_anat_separated", n_compcor=2, high_pass=True),
    ConfoundStrategy(compcor="anat_separated", high_pass=True, motion="basic"),
    ConfoundStrategy(compcor="temporal", n_compcor=1, high_pass=True, demean=False),
    ConfoundStrategy(compcor="temporal_anat_combined", n_compcor=3, high_pass=True),
    ConfoundStrategy(wm_csf="basic", scrub=2, fd_threshold=0.12, std_dvars_threshold=9.0),
    ConfoundStrategy(motion="full", scrub=0, fd_threshold=0.14, std_dvars_threshold=1.2),
]


@pytest.mark.parametrize("key", list(FILES))
@pytest.mark.parametrize("strategy", CUSTOM, ids=lambda s: repr(s)[17:80])
def test_custom_components_equal_nilearn(runs, key, strategy):
    run = runs[key]
    if key == "v21" and strategy.scrub is not None:
        strategy = dataclasses.replace(strategy, fd_threshold=3.0, std_dvars_threshold=3.0)
    assert_same(ours(run, strategy), nilearn_custom(run.bold, strategy))


def test_columns_and_patterns_equal_the_components_they_name(runs):
    run = runs["v14"]
    assert_same(
        ours(run, columns(["white_matter", "csf"])),
        nilearn_custom(run.bold, ConfoundStrategy(wm_csf="basic")),
    )
    assert_same(
        ours(run, patterns([r"^(trans|rot)_[xyz]$", r"^cosine\d+$"])),
        nilearn_custom(run.bold, ConfoundStrategy(motion="basic", high_pass=True)),
    )
    # Mixed with components: each column once, sorted as nilearn sorts.
    assert_same(
        ours(run, simple(columns=("csf", "global_signal"), patterns=(r"^trans_x$",))),
        nilearn_preset(run.bold, "simple", global_signal="basic"),
    )


def test_outlier_columns_taken_by_name_censor(runs):
    table, _ = read_confounds(runs["v21"].tsv)
    values, names, mask = select_confounds(table, None, columns(["csf", "motion_outlier05"]))
    assert names == ["csf"]
    frame = int(np.argmax(table["motion_outlier05"].to_numpy()))
    assert mask.tolist() == [t for t in range(30) if t not in (0, 1, 2, frame)]
    assert abs(values[mask].mean()) < 1e-9


def test_select_confounds_is_pure(runs):
    table, metadata = read_confounds(runs["v21"].tsv)
    before = table.copy()
    select_confounds(table, metadata, compcor())
    pd.testing.assert_frame_equal(table, before)


# -------------------------------------------------------------------------------------------
# The synthetic dataset
# -------------------------------------------------------------------------------------------


def test_synthetic_runs_equal_nilearn_and_scrubbing_finds_the_spikes(tiny):
    truth = pd.read_csv(tiny / "truth" / "runs.tsv", sep="\t")
    for row in truth.itertuples():
        bold = tiny / row.bold
        table, metadata = read_confounds(
            bold.parent / f"{row.run_id}_desc-confounds_timeseries.tsv"
        )
        n_volumes = nib.load(bold).shape[3]
        for name in ("simple", "scrubbing", "compcor"):
            assert_same(
                select_confounds(table, metadata, name, n_volumes), nilearn_preset(bold, name)
            )
        for strategy in (p24(), p36()):
            assert_same(
                select_confounds(table, metadata, strategy, n_volumes),
                nilearn_custom(bold, strategy),
            )
        spikes = {int(f) for f in str(row.spike_frames).split(";")}
        _, _, mask = select_confounds(table, metadata, "scrubbing", n_volumes)
        censored = set(range(n_volumes)) - set(mask.tolist())
        # Each spike displaces one frame: FD is high there and on the frame after it.
        assert censored == spikes | {f + 1 for f in spikes}, row.run_id


# -------------------------------------------------------------------------------------------
# Bad input
# -------------------------------------------------------------------------------------------


def test_missing_column_is_named(runs):
    table, metadata = read_confounds(runs["v21"].tsv)
    with pytest.raises(ValueError, match=r"strategy 'simple'.*'white_matter' \(wm_csf='basic'\)"):
        select_confounds(table.drop(columns="white_matter"), metadata, "simple")
    broken = table.drop(columns=["rot_z_power2", "trans_y"])
    with pytest.raises(ValueError, match=r"'trans_y', 'rot_z_power2' \(motion='full'\)"):
        select_confounds(broken, metadata, "36P")
    with pytest.raises(ValueError, match=r"'framewise_displacement' \(scrub\)"):
        select_confounds(table.drop(columns="framewise_displacement"), metadata, "scrubbing")
    with pytest.raises(ValueError, match=r"'a_comp_cor_04' \(compcor='anat_combined'\)"):
        select_confounds(table.drop(columns="a_comp_cor_04"), metadata, "compcor")
    with pytest.raises(ValueError, match=r"'heart_rate' \(columns\)"):
        select_confounds(table, metadata, columns(["csf", "heart_rate"]))
    with pytest.raises(ValueError, match=r"'\^aroma' matches no column"):
        select_confounds(table, metadata, patterns(["^aroma"]))


def test_row_count_must_equal_the_volumes(runs):
    table, metadata = read_confounds(runs["v14"].tsv)
    with pytest.raises(ValueError, match="confounds table has 30 rows, the BOLD run has 31"):
        select_confounds(table, metadata, "simple", n_volumes=31)
    with pytest.raises(ValueError, match="has 29 rows, the BOLD run has 30"):
        select_confounds(table.iloc[:-1], metadata, "simple", n_volumes=30)


def test_compcor_needs_metadata(runs):
    table, _ = read_confounds(runs["v14"].tsv)
    with pytest.raises(ValueError, match="needs the confounds JSON metadata"):
        select_confounds(table, None, "compcor")
    with pytest.raises(ValueError, match="lists no such CompCor component"):
        select_confounds(table, {"csf": {"Method": "Mean"}}, "compcor")


def test_na_left_in_kept_volumes_is_refused(runs):
    table, _ = read_confounds(runs["no_nss"].tsv)
    table.loc[7, "csf"] = np.nan
    with pytest.raises(ValueError, match="'csf' have n/a in kept volumes"):
        select_confounds(table, None, "simple")


def test_strategy_options_are_checked():
    with pytest.raises(ValueError, match="motion one of"):
        ConfoundStrategy(motion="quadratic")
    with pytest.raises(ValueError, match="compcor needs high_pass"):
        ConfoundStrategy(compcor="anat_combined")
    with pytest.raises(ValueError, match="n_compcor"):
        compcor(n_compcor=0)
    with pytest.raises(ValueError, match="scrub a minimum segment length"):
        scrubbing(scrub=-1)
    with pytest.raises(ValueError, match="no regular expression"):
        patterns(["(unclosed"])
    with pytest.raises(ValueError, match="a list of strings"):
        columns("csf")
    with pytest.raises(ValueError, match="confound strategy one of"):
        get_strategy("aroma")


def test_presets_and_registry():
    assert list(PRESETS) == ["simple", "scrubbing", "compcor", "24P", "36P"]
    assert get_strategy("p36") == get_strategy("36p") == p36()
    assert get_strategy("simple", global_signal="basic") == simple(global_signal="basic")
    assert get_strategy("custom", wm_csf="full") == ConfoundStrategy(wm_csf="full")
    assert ConfoundStrategy(motion="none").motion is None
    assert scrubbing() == ConfoundStrategy(
        name="scrubbing", high_pass=True, motion="full", wm_csf="full", scrub=5,
        fd_threshold=0.5, std_dvars_threshold=1.5,
    )  # fmt: skip
    assert columns(["a", "b"]).columns == ("a", "b")
    assert ConfoundStrategy(**p24().to_dict()) == p24()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p24().motion = "basic"
