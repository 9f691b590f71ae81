"""fMRIPrep 1.0-1.1's confounds (``_bold_confounds.tsv``, CamelCase columns) on real data.

No file of fMRIPrep 1.0-1.1 ships in a package, so the real derivative's confounds
(tests/realdata/layout.py: nilearn's fMRIPrep 21 and 1.4 tables) are written back the way
1.0-1.1 wrote them (its documentation, "Confounds", and ``init_bold_confs_wf``'s column
headings): only the columns it had (``CSF``, ``WhiteMatter``, ``GlobalSignal``, ``stdDVARS``,
``non-stdDVARS``, ``FramewiseDisplacement``, six ``tCompCorXX``, six ``aCompCorXX`` of the
combined mask, ``CosineXX``, ``NonSteadyStateOutlierXX``, ``X`` ... ``RotZ``), with the values
as the files give them (text), no expansions and no JSON. ``vx-wisestdDVARS``, which 1.0-1.1
also wrote, is in neither real table. The runs are laid out under 1.1's names
(``_bold_space-<space>_preproc``, ``_bold_space-<space>_brainmask``, ``_bold_confounds.tsv``).

nilearn refuses these tables ("We only support fmriprep outputs >= 1.2.0", tested below), so
the builds are compared with nilearn on the same tables renamed to today's naming: columns
renamed, each expansion fMRIPrep writes since 1.4 computed as its niworkflows does
(backward difference with ``n/a`` first, squares: :func:`expand`), and a JSON describing the
CompCor components (all retained, aCompCor's mask ``combined``). The expansions of the
fMRIPrep 21 table are fMRIPrep's own and are checked to equal :func:`expand`'s; those of
nilearn's 1.4 table are not the backward differences of its motion columns (up to 6e-4
apart: the test file was edited), so its renamed table takes :func:`expand`'s.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds_strategy

import nishard as ns
from nishard.transforms.confounds import (
    PRESETS,
    read_confounds,
    select_confounds,
    upgrade_confounds,
)
from tests.realdata.conftest import build, quarantined
from tests.realdata.layout import SPACE, TASK, RealRun
from tests.realdata.test_denoise import CASES, CLEAN, DEFAULTS, TOL, kept_volumes, masker, max_diff

#: fMRIPrep 1.0-1.1's names of today's columns (its docs and init_bold_confs_wf).
OLD_NAMES = {
    "csf": "CSF", "white_matter": "WhiteMatter", "global_signal": "GlobalSignal",
    "std_dvars": "stdDVARS", "dvars": "non-stdDVARS",
    "framewise_displacement": "FramewiseDisplacement",
    "trans_x": "X", "trans_y": "Y", "trans_z": "Z", "rot_x": "RotX", "rot_y": "RotY",
    "rot_z": "RotZ",
}  # fmt: skip
OLD_FAMILIES = {
    r"t_comp_cor_(\d+)": "tCompCor{}", r"a_comp_cor_(\d+)": "aCompCor{}",
    r"cosine(\d+)": "Cosine{}", r"non_steady_state_outlier(\d+)": "NonSteadyStateOutlier{}",
}  # fmt: skip
#: The signals fMRIPrep expands: (dd1(rps + wm + csf + gsr))^^2.
EXPANDED = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "white_matter", "csf",
            "global_signal")  # fmt: skip
EXPANSIONS = ("_derivative1", "_power2", "_derivative1_power2")


def old_columns(table: pd.DataFrame, metadata: dict) -> list[str]:
    """Today's names of the columns fMRIPrep 1.0-1.1 wrote, in its order."""

    def first_six(prefix: str, mask: str | None) -> list[str]:
        found = [c for c in metadata if re.fullmatch(rf"{prefix}_comp_cor_\d+", c)
                 and (mask is None or metadata[c].get("Mask") == mask)]  # fmt: skip
        return sorted(found)[:6]

    head = ["csf", "white_matter", "global_signal", "std_dvars", "dvars", "framewise_displacement"]
    numbered = [
        c for c in table.columns if re.fullmatch(r"(cosine|non_steady_state_outlier)\d+", c)
    ]
    motion = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    return [*head, *first_six("t", None), *first_six("a", "combined"), *numbered, *motion]


def old_name(column: str) -> str:
    if column in OLD_NAMES:
        return OLD_NAMES[column]
    for pattern, name in OLD_FAMILIES.items():
        if match := re.fullmatch(pattern, column):
            return name.format(match.group(1))
    raise KeyError(column)


def expand(values: pd.DataFrame) -> pd.DataFrame:
    """niworkflows' temporal_derivatives (order 1) then exponential_terms (order 2)."""
    out = {}
    for base in values.columns:
        x = values[base].to_numpy(dtype=np.float64)
        d = np.full_like(x, np.nan)
        d[1:] = np.diff(x)
        out |= {
            f"{base}_derivative1": d,
            f"{base}_power2": x**2,
            f"{base}_derivative1_power2": d**2,
        }
    return pd.DataFrame(out, index=values.index)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A run under 1.1's names and the same run, its table renamed, under today's."""

    legacy: RealRun
    modern: RealRun
    renamed: pd.DataFrame  # the 1.1 table in today's naming, with expansions


def _copied(run, stem, bold: str, mask: str, confounds: str):
    """``run`` with its BOLD and mask copied to ``<stem><bold>`` and ``<stem><mask>``, and
    its confounds path ``<stem><confounds>`` (the caller writes that table)."""
    stem.parent.mkdir(parents=True)
    copy = dataclasses.replace(
        run,
        bold=stem.with_name(stem.name + bold),
        mask=stem.with_name(stem.name + mask),
        confounds=stem.with_name(stem.name + confounds),
    )
    shutil.copy(run.bold, copy.bold)
    shutil.copy(run.mask, copy.mask)
    return copy


@pytest.fixture(scope="module")
def pairs(real, tmp_path_factory) -> dict[str, Pair]:
    root = tmp_path_factory.mktemp("legacy")
    legacy_root, modern_root = root / "fmriprep-1.1", root / "renamed"
    out = {}
    for run in real.runs:
        text = pd.read_csv(run.confounds, sep="\t", dtype=str, keep_default_na=False)
        metadata = json.loads(run.confounds.with_suffix(".json").read_text())
        columns = old_columns(text, metadata)
        stem = f"sub-{run.subject}_task-{TASK}"
        old = legacy_root / f"sub-{run.subject}" / "func" / f"{stem}_bold"
        legacy = _copied(run, old, f"_space-{SPACE}_preproc.nii.gz",
                         f"_space-{SPACE}_brainmask.nii.gz", "_confounds.tsv")  # fmt: skip
        text[columns].rename(columns=old_name).to_csv(legacy.confounds, sep="\t", index=False)

        values = pd.read_csv(legacy.confounds, sep="\t", na_values=["n/a"])
        renamed = values.rename(columns={old_name(c): c for c in columns})
        renamed = pd.concat([renamed, expand(renamed[list(EXPANDED)])], axis=1)
        new = modern_root / f"sub-{run.subject}" / "func" / stem
        modern = _copied(run, new, f"_space-{SPACE}_desc-preproc_bold.nii.gz",
                         f"_space-{SPACE}_desc-brain_mask.nii.gz",
                         "_desc-confounds_timeseries.tsv")  # fmt: skip
        renamed.to_csv(modern.confounds, sep="\t", index=False, na_rep="n/a")
        described = {c: {"Method": "aCompCor", "Mask": "combined", "Retained": True}
                     for c in columns if c.startswith("a_comp_cor")}  # fmt: skip
        described |= {c: {"Method": "tCompCor", "Retained": True}
                      for c in columns if c.startswith("t_comp_cor")}  # fmt: skip
        modern.confounds.with_suffix(".json").write_text(json.dumps(described))
        out[run.subject] = Pair(legacy, modern, renamed)
    return out


@pytest.fixture(scope="module")
def legacy_records(pairs):
    root = next(iter(pairs.values())).legacy.bold.parents[2]
    return ns.locate(root, schema=ns.schemas.fmriprep(space=SPACE),
                     stage=["bold", "mask", "confounds"])  # fmt: skip


def test_the_old_tables_are_as_fmriprep_1_1_wrote_them(real, pairs):
    for subject, pair in pairs.items():
        header = pair.legacy.confounds.read_text().split("\n", 1)[0].split("\t")
        assert header[:6] == ["CSF", "WhiteMatter", "GlobalSignal", "stdDVARS", "non-stdDVARS",
                              "FramewiseDisplacement"]  # fmt: skip
        assert header[-6:] == ["X", "Y", "Z", "RotX", "RotY", "RotZ"]
        assert not any("_" in c for c in header), header  # CamelCase, no expansions
        assert not pair.legacy.confounds.with_suffix(".json").exists()
        nss = [c for c in header if c.startswith("NonSteadyStateOutlier")]
        assert len(nss) == {"01": 3, "02": 1, "03": 0}[subject]
    # fMRIPrep 21's expansions are the backward differences and squares expand() gives.
    v21 = pd.read_csv(real.run("01").confounds, sep="\t", na_values=["n/a"])
    mine = expand(v21[list(EXPANDED)])
    for column in mine.columns:
        np.testing.assert_allclose(mine[column], v21[column], rtol=1e-9, atol=1e-12,
                                   err_msg=column)  # fmt: skip


def test_nilearn_refuses_the_old_tables(pairs, tmp_path):
    # Under today's name (nilearn finds no _bold_confounds.tsv), it still refuses CamelCase.
    pair = pairs["02"]
    bold = tmp_path / pair.modern.bold.name
    shutil.copy(pair.modern.bold, bold)
    shutil.copy(pair.legacy.confounds, tmp_path / pair.modern.confounds.name)
    with pytest.raises(ValueError, match="camel case"):
        load_confounds_strategy(str(bold), denoise_strategy="simple")
    with pytest.raises(ValueError, match="Invalid file type"):
        load_confounds_strategy(str(pair.legacy.bold), denoise_strategy="simple")


def test_reading_an_old_table_gives_todays_table(pairs):
    for pair in pairs.values():
        table, metadata = read_confounds(pair.legacy.confounds)
        expected = pd.read_csv(pair.modern.confounds, sep="\t", na_values=["n/a"])
        pd.testing.assert_frame_equal(table[sorted(table.columns)],
                                      expected[sorted(expected.columns)])  # fmt: skip
        assert metadata == json.loads(pair.modern.confounds.with_suffix(".json").read_text())
        # Every preset selects the same regressors, values and volumes from both.
        for name in PRESETS:
            try:
                want = select_confounds(expected, metadata, name)
            except ValueError as err:  # scrubbing censors every volume of sub-01
                with pytest.raises(ValueError, match=re.escape(str(err))):
                    select_confounds(table, metadata, name)
                continue
            got = select_confounds(table, metadata, name)
            assert got[1] == want[1], name
            np.testing.assert_array_equal(got[0], want[0], err_msg=name)
            np.testing.assert_array_equal(got[2], want[2], err_msg=name)


def test_upgrade_leaves_todays_tables_and_refuses_a_clash(real):
    table, metadata = read_confounds(real.run("02").confounds)
    same, same_metadata = upgrade_confounds(table, metadata)
    assert same is table and same_metadata is metadata
    clash = pd.concat([table, table[["trans_x"]].rename(columns={"trans_x": "X"})], axis=1)
    with pytest.raises(ValueError, match=r"'X' -> 'trans_x'"):
        upgrade_confounds(clash, metadata)
    kept = upgrade_confounds(table[["trans_x"]].rename(columns={"trans_x": "X"})
                             .assign(**{"vx-wisestdDVARS": 1.0}))[0]  # fmt: skip
    assert "vx-wisestdDVARS" in kept.columns  # later releases dropped it: no name to give


def test_the_schema_locates_every_old_run_with_its_bold_confounds(pairs, legacy_records):
    assert [r.id for r in legacy_records] == [f"sub-{s}_task-{TASK}" for s in pairs]
    for subject, pair in pairs.items():
        record = legacy_records[f"sub-{subject}_task-{TASK}"]
        assert record.files == {"bold": str(pair.legacy.bold), "mask": str(pair.legacy.mask),
                                "confounds": str(pair.legacy.confounds)}  # fmt: skip
        assert abs(record.metadata["t_r"] - pair.legacy.t_r) < 1e-6  # the header's


def _compare(pairs, manifest, samples, case, options, tolerance):
    """Each written sample against nilearn on the renamed run (test_denoise's rules)."""
    stopped = quarantined(manifest)
    for pair in pairs.values():
        confounds, sample_mask = case.load(pair.modern.bold)
        record = pair.legacy.record
        if sample_mask is not None and sample_mask.size == 0:
            assert (
                f"all {pair.legacy.n_volumes} volumes are censored"
                in (stopped.pop(record)["found"])
            )
            continue
        kept = kept_volumes(pair.modern, sample_mask)
        dof = len(kept) - confounds.shape[1] - 2
        if options.get("standardize") and dof <= 0:  # as test_denoise checks it
            assert "no degree of freedom is left" in stopped.pop(record)["found"]
            continue
        sample = samples[record]
        np.testing.assert_array_equal(sample["volumes"], kept)
        if options.get("standardize") and dof < 3:
            continue  # z-scored round-off: test_denoise's float64 reference covers it
        expected = masker(pair.modern, **options).fit_transform(
            str(pair.modern.bold), confounds=confounds, sample_mask=sample_mask
        )
        assert max_diff(sample["bold"], expected) <= tolerance(pair), (record, case.confounds)
    assert not stopped, f"quarantined by nishard only: {stopped}"


@pytest.mark.parametrize("name", CASES)
def test_old_runs_build_as_nilearn_cleans_them_renamed(pairs, legacy_records, tmp_path, name):
    case = CASES[name]
    steps = [ns.t.Mask(), ns.t.Clean(confounds=case.confounds, **CLEAN)]
    manifest, samples = build(legacy_records, steps, tmp_path)
    _compare(pairs, manifest, samples, case, CLEAN, lambda pair: TOL)


@pytest.mark.parametrize("name", DEFAULTS)
def test_old_runs_at_the_presets_defaults_leave_nilearns_residual(
    pairs, legacy_records, tmp_path, name
):
    # The presets as they are: motion "full" and the wm/csf expansions are the columns
    # 1.1 did not write. Unstandardized, as test_denoise compares them.
    case, options = DEFAULTS[name], {**CLEAN, "standardize": None}
    steps = [ns.t.Mask(), ns.t.Clean(confounds=case.confounds, **options)]
    manifest, samples = build(legacy_records, steps, tmp_path)

    def scale(pair):
        signals = masker(pair.modern, standardize=None).fit_transform(str(pair.modern.bold))
        return 1e-6 * np.abs(signals).max()

    _compare(pairs, manifest, samples, case, options, scale)
