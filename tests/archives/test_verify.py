"""verify: every flipped byte is caught, by the checksum and, where the format checks
itself, by decoding too; missing, truncated and stray files; the command's exit codes."""

import hashlib
import json
import os
import shutil
import struct
import tarfile
from importlib.util import find_spec

import crc32c
import numpy as np
import pytest

import nishard as ns
from nishard.archives import HDF5, TFRecord, WebDataset, Zarr, protobuf
from nishard.archives.decoders import DECODERS, parse_example, register_decoder
from nishard.archives.manifest import seal
from nishard.archives.verify import verify
from nishard.cli import main
from nishard.errors import NishardError
from tests.helpers import TINY_RES

FORMATS = [WebDataset(), TFRecord()]
FORMATS += [HDF5()] if find_spec("h5py") else []
FORMATS += [Zarr()] if find_spec("zarr") else []
EXTENSIONS = {fmt.name: fmt.extension for fmt in FORMATS}


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    """Four records of two subjects (the others dropped), two shards per format."""
    records = ns.locate(
        tiny,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        variables=ns.tables.participants(["age", "sex", "diagnosis", "site"]),
        filters=[ns.filters.complete(), ns.filters.entities(include={"subject": ["01", "02"]})],
    )
    out = tmp_path_factory.mktemp("verify")
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize()])
    manifest = ns.write(
        records, plan, out, formats=FORMATS, shards=ns.shards.by_count(2), progress=False
    )
    assert manifest["records"]["written"] == 4
    return out


@pytest.fixture
def shards(built, tmp_path):
    """A private copy of the build (hard links: :func:`_rewrite` breaks them first)."""
    return shutil.copytree(built, tmp_path / "shards", copy_function=os.link)


def _rewrite(path, data):
    path.unlink()  # a hard link shared with the module's build
    path.write_bytes(data)


def _flip(folder, name, position, *, hide=False):
    """Invert one byte of a shard; with ``hide``, give the manifest its new size and sha256,
    so that only decoding can tell."""
    path = folder / name
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    _rewrite(path, bytes(data))
    if hide:
        _match_manifest(folder, name)


def _match_manifest(folder, name):
    """The manifest forged to match the shard: its size, sha256 and samples' CRC-32C."""
    data = (folder / name).read_bytes()

    def match(shard):
        shard.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        if "crc32c" in shard:
            ranges = zip(shard["offsets"], shard["sizes"], strict=True)
            shard["crc32c"] = [crc32c.crc32c(data[o : o + n]) for o, n in ranges]

    _edit_manifest(folder, lambda m: [match(s) for s in m["shards"] if s["name"] == name])


def _edit_manifest(folder, change, *, reseal=True):
    """Change the manifest; resealed (its content checksum written again), as a forger
    who knows the rule would, unless ``reseal`` is False."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    _rewrite(path, json.dumps(seal(manifest) if reseal else manifest).encode())


def _first(fmt):
    return f"all-000000{EXTENSIONS[fmt]}"


def _needs(fmt):
    if fmt not in EXTENSIONS:
        pytest.skip(f"{fmt} is not installed")


def test_a_fresh_build_verifies(built):
    report = verify(built, progress=False)
    assert report.ok, report.to_text()
    assert report.shards == 2 * len(FORMATS)
    assert report.samples == 4 * len(FORMATS)
    assert report.warnings == [] and report.notes == []
    assert report.to_text().startswith(f"verified {report.shards} shards, {report.samples} samples")


@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord", "hdf5", "zarr"])
@pytest.mark.parametrize("where", [0.0, 0.001, 0.3, 0.5, 0.9999, 1.0])
def test_one_flipped_byte_anywhere_fails_the_checksum(shards, fmt, where):
    _needs(fmt)
    name = _first(fmt)
    size = (shards / name).stat().st_size
    _flip(shards, name, min(int(where * size), size - 1))
    report = verify(shards, progress=False)
    assert not report.ok
    assert {p.shard for p in report.problems} == {name}  # the others are intact
    assert any(p.expected.startswith("sha256 ") for p in report.problems)


def _tar_members(path):
    with tarfile.open(path) as tar:
        return tar.getmembers()


def _tar_position(path, where):
    members = _tar_members(path)
    if where == "second header":
        return members[1].offset + 10  # inside the member name
    if where == "padding":  # after the data of a member that does not fill its last block
        member = next(m for m in members if m.size % 512)
        return member.offset_data + member.size + 1
    if where == "npy magic":
        return members[0].offset_data + 1
    if where == "npy header":
        return members[0].offset_data + 30  # inside the header's dict
    raise AssertionError(where)


def _tfrecord_position(path, where):
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    return {"length": 2, "length crc": 9, "data": 12 + length // 2, "data crc": 12 + length + 1}[
        where
    ]


@pytest.mark.parametrize(
    ("fmt", "where", "message"),
    [
        ("webdataset", 0, "ReadError: bad checksum"),  # the first member's header
        ("webdataset", "second header", "end-of-archive zero blocks"),
        ("webdataset", "padding", "zero padding after"),
        ("webdataset", "npy magic", "a .npy array"),
        ("webdataset", "npy header", "a .npy array"),
        ("webdataset", -1, "end-of-archive zero blocks"),
        ("tfrecord", "length", "length CRC-32C"),
        ("tfrecord", "length crc", "length CRC-32C"),
        ("tfrecord", "data", "data CRC-32C"),
        ("tfrecord", "data crc", "data CRC-32C"),
        ("hdf5", 0, "a readable hdf5 shard"),  # the superblock's signature
        ("zarr", 0.5, "to match its CRC-32"),  # array bytes, in the middle
        ("zarr", 35, "to match its CRC-32 and header"),  # the first entry's name
    ],
)
def test_decoding_catches_damage_a_matching_checksum_hides(shards, fmt, where, message):
    _needs(fmt)
    name = _first(fmt)
    path = shards / name
    size = path.stat().st_size
    if isinstance(where, str):
        position = (_tar_position if fmt == "webdataset" else _tfrecord_position)(path, where)
    else:
        position = int(where * size) if isinstance(where, float) else where % size
    _flip(shards, name, position, hide=True)
    report = verify(shards, progress=False)
    assert not report.ok
    assert all(p.shard == name for p in report.problems), report.to_text()
    assert not any("sha256" in p.expected for p in report.problems)
    assert any(message in f"{p.expected}, found {p.found}" for p in report.problems), (
        report.to_text()
    )


def test_a_tfrecord_damaged_in_its_data_names_the_sample(shards):
    name = _first("tfrecord")
    path = shards / name
    position = _tfrecord_position(path, "data crc")
    _flip(shards, name, position, hide=True)
    (problem,) = verify(shards, progress=False).problems
    first = json.loads((shards / "manifest.json").read_text())["shards"]
    keys = next(s["keys"] for s in first if s["name"] == name)
    assert problem.sample == keys[0]
    assert "record 0 at offset 0" in problem.expected


def test_array_bytes_of_a_tar_are_guarded_by_the_checksums_alone(shards):
    # .npy has no checksum of its own: with the manifest edited to match, a changed value
    # decodes, so the sha256 and the sample's CRC-32C in the manifest are what guard it.
    name = _first("webdataset")
    member = [m for m in _tar_members(shards / name) if m.name.endswith(".npy")][-1]
    _flip(shards, name, member.offset_data + member.size - 1)
    problems = verify(shards, progress=False).problems
    assert [p.expected[:7] for p in problems] == ["sha256 ", "CRC-32C"]
    keys = next(s["keys"] for s in _manifest(shards)["shards"] if s["name"] == name)
    assert problems[1].sample == member.name.split(".")[0] == keys[-1]  # pinned to its sample
    _match_manifest(shards, name)
    assert verify(shards, progress=False).ok


@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord"])
def test_each_changed_sample_is_named_by_its_crc32c(shards, fmt):
    name = _first(fmt)
    entry = next(s for s in _manifest(shards)["shards"] if s["name"] == name)
    for offset, size in zip(entry["offsets"], entry["sizes"], strict=True):
        _flip(shards, name, offset + size // 2)
    problems = verify(shards, progress=False).problems
    named = [p.sample for p in problems if p.expected.startswith("CRC-32C")]
    assert named == entry["keys"]


def test_a_manifest_edited_by_hand_fails_its_content_checksum(shards):
    _edit_manifest(shards, lambda m: m["records"].update(located=99), reseal=False)
    (problem,) = verify(shards, progress=False).problems
    assert problem.shard is None and problem.expected.startswith("content checksum sha256:")
    assert "edited or damaged" in str(problem) and problem.found.startswith("sha256:")


def test_a_version_1_manifest_is_verified_with_a_note(shards):
    def to_v1(manifest):
        del manifest["checksum"]
        manifest["format_version"] = 1
        for shard in manifest["shards"]:
            shard.pop("crc32c", None)

    _edit_manifest(shards, to_v1, reseal=False)
    report = verify(shards, progress=False)
    assert report.ok, report.to_text()
    assert report.notes == [
        "manifest.json: format version 1, without a content checksum; its shards are "
        "checked against what it lists"
    ]


@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord"])
def test_reordered_keys_and_moved_offsets_are_problems(shards, fmt):
    # Both pass a check of counts and of the set of keys, then break a reader that takes
    # the i-th key at the i-th offset: verify compares them sample by sample.
    name = _first(fmt)

    def swap(shard):
        shard["keys"] = shard["keys"][::-1]

    _edit_manifest(shards, lambda m: [swap(s) for s in m["shards"] if s["name"] == name])
    (problem,) = verify(shards, progress=False).problems
    entry = next(s for s in _manifest(shards)["shards"] if s["name"] == name)
    assert problem.shard == name and problem.sample == entry["keys"][1]
    assert problem.expected == f"sample 0 to be {entry['keys'][0]!r}"
    swap(entry)
    _edit_manifest(shards, lambda m: [swap(s) for s in m["shards"] if s["name"] == name])

    def move(shard):
        shard["offsets"][1] += 512

    _edit_manifest(shards, lambda m: [move(s) for s in m["shards"] if s["name"] == name])
    problems = verify(shards, progress=False).problems
    moved = [p for p in problems if p.expected.startswith("the sample at offset")]
    assert [(p.sample, p.expected, p.found) for p in moved] == [
        (entry["keys"][1], f"the sample at offset {entry['offsets'][1] + 512}",
         str(entry["offsets"][1]))
    ]  # fmt: skip


def test_a_changed_byte_in_the_manifests_inputs_is_caught(shards):
    def change(manifest):
        name = sorted(manifest["inputs"])[0]
        digest = manifest["inputs"][name]
        manifest["inputs"][name] = digest[:-1] + ("0" if digest[-1] != "0" else "1")

    _edit_manifest(shards, change, reseal=False)
    (problem,) = verify(shards, progress=False).problems
    assert problem.shard is None and problem.expected.startswith("content checksum")


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_a_missing_shard_is_a_problem(shards):
    name = _first("tfrecord")
    (shards / name).unlink()
    report = verify(shards, progress=False)
    assert [(p.shard, p.found) for p in report.problems] == [(name, "none: it is missing")]
    assert report.shards == 2 * len(FORMATS) - 1


@pytest.mark.parametrize("fmt", ["webdataset", "tfrecord", "hdf5", "zarr"])
def test_a_truncated_shard_fails_size_and_decoding(shards, fmt):
    _needs(fmt)
    name = _first(fmt)
    path = shards / name
    data = path.read_bytes()
    _rewrite(path, data[: len(data) // 2])
    problems = verify(shards, progress=False).problems
    assert (name, f"{len(data)} bytes", f"{len(data) // 2} bytes") in [
        (p.shard, p.expected, p.found) for p in problems
    ]
    decoding = [
        p for p in problems if not p.expected.endswith(" bytes") and "sha256" not in p.expected
    ]
    assert decoding and all(p.shard == name for p in decoding)


def test_a_tar_cut_at_a_member_boundary_lacks_its_end_blocks(shards):
    name = _first("webdataset")
    path = shards / name
    members = _tar_members(path)
    _rewrite(path, path.read_bytes()[: members[2].offset])  # the first sample, whole
    _match_manifest(shards, name)
    text = verify(shards, progress=False).to_text()
    assert "two zero blocks at the end of the archive, found the file ends" in text
    _rewrite(path, path.read_bytes() + bytes(1024))  # end blocks: now only a sample is short
    _match_manifest(shards, name)
    problems = verify(shards, progress=False).problems
    assert [(p.expected, p.found) for p in problems if p.sample is None] == [("2 samples", "1")]
    assert [(p.expected, p.found) for p in problems if p.sample] == [
        ("the sample the manifest lists", "none")
    ]


def test_a_tfrecord_cut_mid_record_is_truncated(shards):
    name = _first("tfrecord")
    path = shards / name
    _rewrite(path, path.read_bytes()[:-3])
    _match_manifest(shards, name)
    (problem,) = verify(shards, progress=False).problems
    assert problem.found.endswith("the file is truncated")


def test_stray_shards_and_partial_files_are_warnings(shards):
    shutil.copyfile(shards / _first("webdataset"), shards / "all-000009.tar")
    (shards / "all-000002.tfrecord.tmp").write_bytes(b"half")
    (shards / "notes.txt").write_text("mine")
    report = verify(shards, progress=False)
    assert report.ok
    assert report.warnings == [
        "all-000002.tfrecord.tmp: a partial file, left by a build that was stopped",
        "all-000009.tar: a shard the manifest does not list",
    ]
    assert "warning: all-000009.tar" in report.to_text()


def test_arrays_are_checked_against_the_manifest_keys(shards):
    def change(manifest):
        manifest["keys"]["bold"] = {"dtype": "float64", "shape": [None, 7]}
        manifest["keys"]["confounds"] = {"dtype": "float32", "shape": [3]}

    _edit_manifest(shards, change)
    problems = verify(shards, progress=False).problems
    samples = 4 * len(FORMATS)
    found = [(p.expected, p.found) for p in problems]
    assert found.count(("bold of dtype float64", "float32")) == samples
    assert sum(e == "bold of shape (*, 7)" for e, _ in found) == samples
    assert found.count(("product 'confounds'", "none")) == samples
    assert all(p.sample is not None for p in problems)


def test_sample_keys_and_counts_are_those_of_the_manifest(shards):
    edited = "hdf5" if "hdf5" in EXTENSIONS else "tfrecord"
    name = _first(edited)

    def change(manifest):
        shard = next(s for s in manifest["shards"] if s["name"] == name)
        shard["keys"][0] = "sub-99_task-rest_run-1"
        shard["samples"] = 3
        manifest["records"]["written"] = 5

    _edit_manifest(shards, change)
    problems = {
        (p.shard, p.sample, p.expected, p.found) for p in verify(shards, progress=False).problems
    }
    assert (name, None, "3 samples", "2") in problems
    assert (name, "sub-99_task-rest_run-1", "the sample the manifest lists", "none") in problems
    assert any(p[1] != "sub-99_task-rest_run-1" and p[3] == "another" for p in problems)
    for fmt in EXTENSIONS:  # the edited format's counts add up to 5 (and it has 4)
        totals = (None, None, f"5 samples (the records written) in {fmt} shards", "4")
        assert (totals in problems) == (fmt != edited)


def test_every_decoder_reads_back_the_same_arrays(built):
    manifest = json.loads((built / "manifest.json").read_text())
    read = {}
    for shard in manifest["shards"]:
        for sample in DECODERS[shard["format"]](built / shard["name"]):
            read.setdefault(sample.key, {})[shard["format"]] = sample
    assert len(read) == 4
    for samples in read.values():
        reference = samples["webdataset"]
        assert reference.arrays["bold"].shape == tuple(manifest["keys"]["bold"]["shape"])
        for sample in samples.values():
            np.testing.assert_array_equal(sample.arrays["bold"], reference.arrays["bold"])
            assert sample.meta["diagnosis"] == reference.meta["diagnosis"]


def test_a_format_without_decoder_is_checksummed_with_a_note(shards, monkeypatch):
    monkeypatch.delitem(DECODERS, "tfrecord")
    report = verify(shards, progress=False)
    assert report.ok
    assert report.notes == [
        f"all-00000{i}.tfrecord: no decoder for format 'tfrecord'; size and sha256 checked only"
        for i in range(2)
    ]
    _flip(shards, _first("tfrecord"), 100)
    assert not verify(shards, progress=False).ok


def test_a_registered_decoder_is_the_one_used(shards, monkeypatch):
    monkeypatch.setitem(DECODERS, "tfrecord", DECODERS["tfrecord"])
    with pytest.raises(ValueError, match="registered already"):
        register_decoder("tfrecord")(lambda path: iter(()))
    register_decoder("tfrecord", replace=True)(lambda path: iter(()))
    problems = verify(shards, progress=False).problems
    assert {(p.expected, p.found) for p in problems if p.sample is None} == {("2 samples", "0")}


def test_side_files_listed_with_a_checksum_are_checked(shards):
    index = shards / "all.wids.json"
    if index.exists():  # the build's own wids index, a hard link
        index.unlink()
    index.write_bytes(b'{"shardlist": []}')
    digest = hashlib.sha256(index.read_bytes()).hexdigest()
    _edit_manifest(
        shards, lambda m: m.update(indexes={"all": {"file": index.name, "sha256": digest}})
    )
    assert verify(shards, progress=False).ok
    index.write_bytes(index.read_bytes() + b" ")
    (problem,) = verify(shards, progress=False).problems
    assert (problem.shard, problem.expected) == (index.name, f"sha256 {digest}")
    index.unlink()
    (problem,) = verify(shards, progress=False).problems
    assert (problem.shard, problem.expected) == (index.name, "the indexes file of all")


def test_names_outside_the_folder_are_not_read(shards):
    _edit_manifest(shards, lambda m: m["shards"][0].update(name="../escape.tar"))
    problems = verify(shards, progress=False).problems
    assert problems[0].expected == "a shard file name" and problems[0].shard is None


def test_parse_example_reverses_the_writer():
    features = {
        "__key__": ("bytes", [b"sub-01"]),
        "a": ("int64", [0, -1, 2**63 - 1, -(2**63)]),
        "b": ("float", [1.5, -0.25]),
        "c": ("bytes", [b"", b"x" * 300]),
        "d": ("int64", []),
    }
    parsed = parse_example(protobuf.example(features))
    assert {k: (kind, [bytes(v) if kind == "bytes" else v for v in values])
            for k, (kind, values) in parsed.items()} == features  # fmt: skip
    with pytest.raises(ValueError, match="runs past the message"):
        parse_example(protobuf.example(features)[:-1])


def test_verify_command_exit_codes_and_output(shards, tmp_path, capsys):
    assert main(["verify", str(shards), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"verified {2 * len(FORMATS)} shards")

    name = _first("webdataset")
    _flip(shards, name, 600)
    assert main(["verify", str(shards), "--no-progress"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"problem: {name}: expected sha256 ")
    assert any(line.startswith(f"problem: {name} [") and ".npy array" in line for line in lines)
    assert any(line.startswith(f"problem: {name} [") and "CRC-32C" in line for line in lines)
    assert lines[-1].startswith("3 problems in ")
    assert "nishard: error: 3 problems" in captured.err

    assert main(["verify", str(tmp_path / "nowhere")]) == 1
    assert "no readable manifest.json" in capsys.readouterr().err


def test_verify_without_a_manifest_raises(tmp_path):
    with pytest.raises(NishardError, match=r"no readable manifest\.json"):
        verify(tmp_path, progress=False)
