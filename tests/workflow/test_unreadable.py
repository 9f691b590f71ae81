"""An unreadable input file is quarantined with its reason under every executor.

Root reads a mode-000 file, so the builds run as an unprivileged user (``setpriv``). That
user must reach the interpreter, the venv, the package and the test's folder; where a
directory on the way is closed to others (``/root`` holding a pyenv interpreter, pytest's
``/tmp/pytest-of-root``), the build runs in a mount namespace of its own in which that
directory is replaced by an open one holding only the entries needed, bind-mounted from
the real ones. Nothing outside the namespace changes, and the files keep their modes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nishard.errors import RecordError
from nishard.imageio.images import describe
from nishard.records.table import Record
from nishard.workflow import inputs
from tests.helpers import AS_NOBODY, NOBODY, nobody_runs_nishard, write_spec
from tests.helpers import as_nobody as _as_nobody

#: The transforms of test_executors: the BOLD, the mask and the confounds are all loaded.
TRANSFORMS = [
    {"mask": {}},
    {"clean": {"detrend": True, "standardize": "zscore_sample", "confounds": "simple"}},
]

#: Options of ``nishard build`` per executor; each must quarantine the same records with
#: the same reasons. Under a memory budget a record's headers are read before it is loaded
#: (the plan's fusion, each record's estimate): Pydra estimates in its first task.
EXECUTORS = {
    "serial": [],
    "local": ["--executor", "local", "--jobs", "2"],
    "pydra": ["--executor", "pydra", "--worker", "cf", "--jobs", "2"],
    "pydra-budget": ["--worker", "cf", "--jobs", "2", "--memory-budget", "1GiB"],
}


@pytest.fixture(scope="module")
def reachable(tmp_path_factory) -> None:
    """Skip (saying why) when this system cannot run a Python process as another user."""
    nobody_runs_nishard(tmp_path_factory.mktemp("probe"))


def _files(data: Path, kind: str) -> list[Path]:
    patterns = {
        "bold": "*_desc-preproc_bold.nii.gz",
        "mask": "*_desc-brain_mask.nii.gz",
        "confounds": "*_desc-confounds_timeseries.tsv",
    }
    return sorted(data.glob(f"sub-*/**/func/{patterns[kind]}"))


def _run(path: Path) -> str:
    """The run a file belongs to: its name before ``_space-`` or ``_desc-``."""
    return path.name.split("_space-")[0].split("_desc-")[0]


@pytest.mark.parametrize(
    "executor", [pytest.param(name, marks=AS_NOBODY) for name in EXECUTORS]
)  # fmt: skip
def test_an_unreadable_input_is_quarantined_naming_it(reachable, executor, tiny_copy, tmp_path):
    os.chmod(tmp_path, 0o755)
    # A different record for each kind: the BOLD (the largest, whose headers the plan's
    # fusion is sized on), the brain mask and the confounds table.
    bold = max(_files(tiny_copy, "bold"), key=lambda p: p.stat().st_size)
    mask = next(p for p in _files(tiny_copy, "mask") if _run(p) != _run(bold))
    confounds = next(p for p in _files(tiny_copy, "confounds")
                     if _run(p) not in (_run(bold), _run(mask)))  # fmt: skip
    unreadable = {"bold": bold, "mask": mask, "confounds": confounds}
    for path in unreadable.values():
        path.chmod(0o000)
    out = tmp_path / "shards"
    out.mkdir()
    os.chown(out, NOBODY, NOBODY)
    spec = write_spec(tmp_path, tiny_copy, transforms=TRANSFORMS,
                      output={"path": str(out), "shards": {"max_samples": 3}})  # fmt: skip

    done = _as_nobody(["-m", "nishard", "build", str(spec), *EXECUTORS[executor]], tmp_path)

    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]  # a build with quarantined records
    manifest = json.loads((out / "manifest.json").read_text())
    located = len(_files(tiny_copy, "bold"))
    # Indexing kept the three records (it must not read the files); building quarantined them.
    assert manifest["records"] == {"located": located, "dropped": 0,
                                   "quarantined": 3, "written": located - 3}  # fmt: skip
    reasons = {entry["file"]: entry for entry in manifest["quarantine"]}
    assert set(reasons) == {str(p.relative_to(tiny_copy)) for p in unreadable.values()}
    for path in unreadable.values():
        entry = reasons[str(path.relative_to(tiny_copy))]
        assert entry["record"] in path.name
        # What stopped the read, without the absolute path: the manifest keeps paths
        # relative to the dataset, so that builds in two places compare byte for byte.
        assert (entry["expected"], entry["found"]) == (
            "a readable file", "PermissionError: Permission denied (mode 0000, owner uid 0)"
        )  # fmt: skip
    keys = [key for shard in manifest["shards"] for key in shard["keys"]]
    assert len(keys) == located - 3
    assert not {entry["record"] for entry in manifest["quarantine"]} & set(keys)
    # The summary line, not a traceback, tells the user.
    assert "quarantined 3, dropped 0" in done.stdout


def test_a_read_refused_is_a_record_error_with_mode_and_owner_not_the_path(tmp_path,
                                                                         monkeypatch):  # fmt: skip
    # As root cannot be refused a read, the refusal is the OS's error, raised by the hash.
    bold = tmp_path / "sub-01_bold.nii.gz"
    bold.write_bytes(b"x")
    bold.chmod(0o000)
    record = Record("sub-01", {"bold": str(bold)}, {"t_r": 2.0})

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(inputs, "sha256_file", refused)
    with pytest.raises(RecordError) as caught:
        inputs.input_checksums(record, ("bold",))
    err = caught.value
    owner = os.getuid()
    assert (err.record, err.path, err.expected, err.found) == (
        "sub-01", str(bold), "a readable file",
        f"PermissionError: Permission denied (mode 0000, owner uid {owner})",
    )  # fmt: skip


def test_an_image_error_cites_an_os_error_without_its_path():
    refused = PermissionError(13, "Permission denied", "/data/sub-01_bold.nii.gz")
    assert describe(refused) == "PermissionError: Permission denied"
    assert describe(EOFError("Compressed file ended")) == "EOFError: Compressed file ended"
    assert describe(OSError("no file name")) == "OSError: no file name"


@AS_NOBODY[2]
@AS_NOBODY[1]
@AS_NOBODY[0]
def test_an_unlistable_folder_stops_the_index_naming_it(reachable, tiny_copy, tmp_path):
    """Its runs cannot be known, so they could be counted nowhere: an error, not a gap."""
    os.chmod(tmp_path, 0o755)
    func = _files(tiny_copy, "bold")[0].parent
    func.chmod(0o000)
    table = tmp_path / "home" / "records.parquet"
    done = _as_nobody(["-m", "nishard", "index", str(tiny_copy), "-o", str(table)], tmp_path)
    func.chmod(0o755)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode != 0 and not table.exists()
    assert (
        f"cannot list {func} (PermissionError: Permission denied): the runs in it would be missed"
    ) in done.stderr
