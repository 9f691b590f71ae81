"""A full disk (the output folder, the node cache) stops a build with one line naming the
file and the place, leaves no temporary file, keeps what was finished, and the same build
run again once there is space resumes it to the same bytes. The full disk is a small
tmpfs mounted for the test (root only: CI runs as root)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import nishard as ns
from nishard.cli import main
from nishard.errors import DiskFullError
from nishard.workflow.cache import NodeCache
from nishard.workflow.executors import Local
from tests.helpers import TINY_RES, write_spec

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)"
)

TRANSFORMS = [ns.t.Mask(), ns.t.Standardize(method="zscore_sample")]


@pytest.fixture
def small(tmp_path):
    """A tmpfs of a size the test sets (``small.resize(bytes)``), unmounted after."""
    where = tmp_path / "small"
    where.mkdir()

    class Mount:
        path = where

        @staticmethod
        def resize(size: int) -> None:
            size = (size + 4095) // 4096 * 4096
            options = f"size={size}" if not os.path.ismount(where) else f"remount,size={size}"
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                           check=True)  # fmt: skip

    yield Mount
    if os.path.ismount(where):
        subprocess.run(["umount", str(where)], check=True)


def _build(tiny, out, **kwargs):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES))
    return ns.write(records, ns.assemble(TRANSFORMS), out, shards=ns.shards.by_count(2),
                    progress=False, **kwargs)  # fmt: skip


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _content(manifest):
    return {k: v for k, v in manifest.items() if k not in ("spec", "checksum")}


def test_a_full_output_folder_stops_cleanly_and_a_rerun_resumes(tiny, tmp_path, small):
    reference = _build(tiny, tmp_path / "reference")
    sizes = [shard["bytes"] for shard in reference["shards"]]
    small.resize(sum(sizes) // 2)  # room for about half the shards
    out = small.path / "shards"
    with pytest.raises(DiskFullError) as caught:
        _build(tiny, out)
    message = str(caught.value)
    assert message.startswith(f"no space left writing {out}/all-0000")
    assert ".tar.tmp (the output folder;" in message and "run the same build again" in message
    left = _files(out)
    assert not [name for name in left if name.endswith(".tmp")], left
    finished = [name for name in left if name.endswith(".tar")]
    assert finished and len(finished) < len(sizes)  # some shards kept, not all
    assert not (out / "manifest.json").exists()

    small.resize(4 * sum(sizes))
    manifest = _build(tiny, out)
    assert _content(manifest) == _content(reference)
    for shard in reference["shards"]:
        name = shard["name"]
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()
    assert not [name for name in _files(out) if name.endswith(".tmp")]


def test_the_command_says_it_in_one_line(tiny, tmp_path, small, capsys):
    small.resize(64 * 1024)
    spec = write_spec(tmp_path, tiny, output={"path": str(small.path / "shards"),
                                              "shards": {"max_samples": 2}})  # fmt: skip
    assert main(["build", str(spec)]) == 1
    err = capsys.readouterr().err  # the progress bar's lines, then the error's
    [line] = [line for line in err.splitlines() if "error" in line]
    assert line.startswith(f"nishard: error: no space left writing {small.path}/shards/")
    assert "Traceback" not in err


def test_a_full_node_cache_stops_the_build_naming_the_cache(tiny, tmp_path, small):
    small.resize(256 * 1024)
    cache = NodeCache(small.path / "nodes")
    out = tmp_path / "shards"
    with pytest.raises(DiskFullError, match=f"the node cache {cache.folder}"):
        _build(tiny, out, cache=cache, executor=Local(jobs=2))
    assert not [p for p in small.path.rglob("*.tmp")]
    assert not [name for name in _files(out) if name.endswith(".tmp")]
    small.resize(64 * 2**20)
    manifest = _build(tiny, out, cache=cache, executor=Local(jobs=2))
    assert manifest["records"]["written"] == json.loads(
        (out / "manifest.json").read_text())["records"]["written"] > 0  # fmt: skip
