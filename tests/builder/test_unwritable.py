"""A folder the build cannot write (the node cache, the output folder, its resume journal)
stops the build with one line naming the folder and the system's reason, exit status 1,
no traceback, nothing written and no record quarantined (the records are not at fault),
the same under every executor.

Root writes whatever the mode bits say, so a folder is made unwritable here by a
read-only bind mount of itself (EROFS, as a read-only file system on a cluster refuses
root too; root only: CI runs as root), and the refusals by permission (EACCES) by builds
run as an unprivileged user (``setpriv``, see :func:`tests.helpers.as_nobody`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import nishard as ns
from nishard.builder.resume import FOLDER
from nishard.cli import main
from nishard.errors import UnwritableError
from nishard.workflow.cache import NodeCache
from nishard.workflow.executors import Local, Serial
from nishard.workflow.pydra import Pydra
from tests.helpers import AS_NOBODY, NOBODY, TINY_RES, as_nobody, nobody_runs_nishard, write_spec

ROOT_ONLY = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="a read-only bind mount needs root (CI runs as root)",
)

TRANSFORMS = [ns.t.Mask(), ns.t.Standardize(method="zscore_sample")]

#: ``nishard build`` options per executor: each must stop with the same one line.
OPTIONS = {
    "serial": [],
    "local": ["--executor", "local", "--jobs", "2"],
    "pydra": pytest.param(["--executor", "pydra", "--jobs", "2"], marks=pytest.mark.slow),
}

EXECUTORS = {
    "serial": Serial(),
    "local": Local(jobs=2),
    "pydra": pytest.param(Pydra(jobs=2, batch=4), marks=pytest.mark.slow),
}

#: How the command begins the line of a refused write, and the system's reason on a
#: read-only mount.
REFUSED = "nishard: error: cannot write"
READ_ONLY = "OSError: Read-only file system"


@pytest.fixture
def read_only():
    """``read_only(folder)``: the folder (made when missing) read-only for everyone, root
    too, until the test ends: a read-only bind mount of itself."""
    mounted: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        mounted.append(folder)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        return folder

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _error_line(capsys) -> str:
    """The one line the command printed to stderr besides its progress bar, checked to
    come with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("nishard:")]
    return line


def _build(tiny, out, **kwargs):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES))
    return ns.write(records, ns.assemble(TRANSFORMS), out, shards=ns.shards.by_count(3),
                    progress=False, **kwargs)  # fmt: skip


# ------------------------------------------------------------------------- the node cache


@ROOT_ONLY
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_a_read_only_node_cache_stops_every_executor_before_anything_is_written(
    tiny, tmp_path, read_only, capsys, options
):
    cache = read_only(tmp_path / "ro") / "cache"
    out = tmp_path / "shards"
    spec = write_spec(tmp_path, tiny, output={"path": str(out)})
    assert main(["build", str(spec), "--cache-dir", str(cache), *options]) == 1
    assert _error_line(capsys) == f"{REFUSED} the node cache {cache}: {READ_ONLY}"
    assert not out.exists()  # stopped before the output folder was made


@ROOT_ONLY
@pytest.mark.parametrize("executor", EXECUTORS.values(), ids=EXECUTORS.keys())
def test_a_node_cache_refusing_a_write_during_the_build_stops_it_quarantining_nothing(
    tiny, tmp_path, read_only, monkeypatch, executor
):
    # A store that takes the first check but refuses its workers' writes (made read-only
    # since, or a subfolder that is another user's): the workers meet the refusal, which
    # must stop the build, never quarantine the record under it.
    monkeypatch.setattr(NodeCache, "check_writable", lambda self: None)
    cache = NodeCache(read_only(tmp_path / "cache"))
    out = tmp_path / "shards"
    with pytest.raises(UnwritableError) as caught:
        _build(tiny, out, cache=cache, executor=executor)
    message = str(caught.value)
    assert message.startswith(f"cannot write the node cache {cache.folder} ({cache.folder}/")
    assert message.endswith(f"): {READ_ONLY}")
    assert not (out / "manifest.json").exists()
    assert not [name for name in _files(out) if name.endswith(".tmp")]


# ---------------------------------------------------------------------- the output folder


@ROOT_ONLY
def test_a_read_only_output_folder_stops_in_one_line_and_is_left_as_it_was(
    tiny, tmp_path, read_only, capsys
):
    out = tmp_path / "shards"
    spec = write_spec(tmp_path, tiny, output={"path": str(out), "shards": {"max_samples": 3}})
    assert main(["build", str(spec)]) == 0
    before = _files(out)
    read_only(out)
    capsys.readouterr()
    # Another shard size: the build would replace every shard, and the manifest first.
    spec = write_spec(tmp_path, tiny, output={"path": str(out), "shards": {"max_samples": 2}})
    assert main(["build", str(spec)]) == 1
    assert _error_line(capsys) == f"{REFUSED} the output folder {out}: {READ_ONLY}"
    assert _files(out) == before


@ROOT_ONLY
def test_an_output_folder_that_cannot_be_made_is_named(tiny, tmp_path, read_only, capsys):
    out = read_only(tmp_path / "ro") / "shards"
    spec = write_spec(tmp_path, tiny, output={"path": str(out)})
    assert main(["build", str(spec)]) == 1
    assert _error_line(capsys) == f"{REFUSED} the output folder {out}: {READ_ONLY}"


@ROOT_ONLY
def test_a_resume_folder_that_refuses_the_journal_stops_before_any_shard(
    tiny, tmp_path, read_only, capsys
):
    # An interrupted build's journal folder that this user cannot write (another user's
    # build, a read-only mount): the output folder itself takes files.
    out = tmp_path / "shards"
    home = read_only(out / FOLDER)
    spec = write_spec(tmp_path, tiny, output={"path": str(out)})
    assert main(["build", str(spec)]) == 1
    line = _error_line(capsys)
    assert line == (f"{REFUSED} the output folder {out} ({home}/journal.jsonl.tmp): {READ_ONLY}")
    assert _files(out) == {}  # no shard, no temporary


# ------------------------------------------------------------- refused by the permissions


@pytest.fixture(scope="module")
def nobody(tmp_path_factory) -> None:
    """Skip (saying why) when this system cannot run nishard as another user."""
    nobody_runs_nishard(tmp_path_factory.mktemp("probe"))


@pytest.mark.parametrize(
    "executor", [pytest.param(name, marks=AS_NOBODY) for name in ("serial", "pydra")]
)
@pytest.mark.parametrize("place", ["cache", "output"])
def test_a_folder_of_another_user_stops_the_build_in_one_line(
    nobody, tiny_copy, tmp_path, executor, place
):
    os.chmod(tmp_path, 0o755)
    theirs = tmp_path / "theirs"  # root's, mode 755: nobody may enter but not write
    theirs.mkdir()
    ours = tmp_path / "ours"
    ours.mkdir()
    os.chown(ours, NOBODY, NOBODY)
    out = (theirs if place == "output" else ours) / "shards"
    cache = (theirs if place == "cache" else ours) / "cache"
    spec = write_spec(tmp_path, tiny_copy, output={"path": str(out)},
                      execution={"executor": executor, "cache": str(cache)})  # fmt: skip

    done = as_nobody(["-m", "nishard", "build", str(spec)], tmp_path)

    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, done.stderr[-3000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("nishard:")]
    where = "the node cache" if place == "cache" else "the output folder"
    folder = cache if place == "cache" else out
    assert line == f"{REFUSED} {where} {folder}: PermissionError: Permission denied"
    assert list(theirs.iterdir()) == []
    assert not (ours / "shards").exists() or _files(ours / "shards") == {}
