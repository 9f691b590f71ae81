"""Reading is safe: a manifest naming files outside its folder, and tar members whose
names would leave a folder, are refused by the stream and by verify, naming what they are."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile

import crc32c
import pytest

import nishard as ns
from nishard.archives.decoders import DecodeError, unsafe_member
from nishard.archives.manifest import seal
from nishard.archives.storage import LocalStorage, check_name
from nishard.archives.verify import verify
from nishard.errors import StorageError


@pytest.fixture
def copy(shards, tmp_path):
    """A private copy of the stream's shard folder (hard links; rewritten files unlinked)."""
    return shutil.copytree(shards, tmp_path / "shards", copy_function=os.link)


def _edit_manifest(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.unlink()
    path.write_text(json.dumps(seal(manifest)))  # a forger who reseals it


def _first_tar(folder, split="train"):
    manifest = json.loads((folder / "manifest.json").read_text())
    shards = manifest["shards"]
    return next(s for s in shards if s["format"] == "webdataset" and s["split"] == split)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.tar", "a/../../b.tar", "", "C:x.tar"])
def test_names_that_leave_the_folder_are_refused(name, tmp_path):
    with pytest.raises(StorageError, match="expected a file name inside it"):
        check_name(name)
    with pytest.raises(StorageError, match=f"in {tmp_path}"):
        LocalStorage(tmp_path).read_bytes(name)
    assert check_name("sub/train-000000.tar") == "sub/train-000000.tar"


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.tar"])
def test_a_manifest_naming_a_file_outside_is_refused_by_the_stream(copy, name):
    (copy.parent / "outside.tar").write_bytes(b"not yours")
    shard = _first_tar(copy)["name"]
    _edit_manifest(copy, lambda m: [s.update(name=name) for s in m["shards"] if s["name"] == shard])
    with pytest.raises(StorageError, match=f"'{name}' in {copy}"):
        list(ns.stream.open(copy, "train").arrays())
    report = verify(copy, progress=False)
    assert any(p.expected == "a shard file name" for p in report.problems)


def _renamed_tar(data: bytes, old: str, new: str) -> bytes:
    """The tar with members of sample ``old`` renamed ``new`` (same length: same offsets)."""
    assert len(old) == len(new)
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data)) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src:
            content = src.extractfile(member).read()
            if member.name.startswith(old + "."):
                member.name = new + member.name[len(old) :]
            dst.addfile(member, io.BytesIO(content))
    written = out.getvalue()
    return written + bytes(len(data) - len(written)) if len(written) < len(data) else written


@pytest.mark.parametrize("prefix", ["../", "/tm"])
def test_a_tar_member_named_outside_is_refused_by_reader_and_verify(copy, prefix):
    entry = _first_tar(copy)
    path = copy / entry["name"]
    old = entry["keys"][0]
    new = prefix + old[len(prefix) :]
    data = _renamed_tar(path.read_bytes(), old, new)
    path.unlink()
    path.write_bytes(data)

    def forge(manifest):  # the manifest made to match the file, keys and all
        for shard in manifest["shards"]:
            if shard["name"] == entry["name"]:
                shard.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
                shard["keys"][0] = new
                ranges = zip(shard["offsets"], shard["sizes"], strict=True)
                shard["crc32c"] = [crc32c.crc32c(data[o : o + n]) for o, n in ranges]

    _edit_manifest(copy, forge)
    (problem,) = verify(copy, progress=False).problems
    assert problem.shard == entry["name"]
    assert problem.expected == "member names inside the archive (relative, without '..')"
    assert problem.found.startswith(f"'{new}.")
    with pytest.raises(DecodeError, match="member names inside the archive"):
        list(ns.stream.open(copy, "train").arrays())


def test_unsafe_member_names():
    assert unsafe_member("/abs.json") and unsafe_member("../x.json")
    assert unsafe_member("a/../../x.json")
    assert not unsafe_member("sub-01_task-rest.bold.npy") and not unsafe_member("dir/key.json")
    assert not unsafe_member("key..json")  # dots inside a part are not a parent folder
