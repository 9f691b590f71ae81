"""The storage interface: a local folder's range reads, atomic publication, listing and
stat, and what ``storage_for`` takes and refuses."""

import json
import os
import threading

import pytest

from nishard.archives import manifest
from nishard.archives import storage as storage_module
from nishard.archives.storage import LocalStorage, Stat, Storage, storage_for
from nishard.errors import MissingFileError, NishardError, StorageError

DATA = bytes(range(256)) * 40  # 10,240 bytes, every offset's byte distinct mod 256


@pytest.fixture
def storage(tmp_path):
    (tmp_path / "b.tar").write_bytes(DATA)
    (tmp_path / "a.tar").write_bytes(b"first")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.bin").write_bytes(b"inner")
    return LocalStorage(tmp_path)


def test_local_storage_is_a_storage(storage):
    assert isinstance(storage, Storage)
    assert storage.url == str(storage.folder)
    assert storage.join("a.tar") == str(storage.folder / "a.tar")


@pytest.mark.parametrize(
    ("start", "length"), [(0, 10), (1, 1), (255, 513), (10_000, 240), (4096, 0)]
)
def test_range_reads_are_the_bytes_at_their_offset(storage, start, length):
    assert storage.read_range("b.tar", start, length) == DATA[start : start + length]


def test_range_reads_stop_at_the_end_of_the_file(storage):
    assert storage.read_range("b.tar", len(DATA) - 5, 100) == DATA[-5:]
    assert storage.read_range("b.tar", len(DATA) + 10, 100) == b""


def test_range_reads_refuse_negative_ranges(storage):
    with pytest.raises(ValueError, match="-1"):
        storage.read_range("b.tar", -1, 4)


def test_range_reads_from_threads_do_not_interfere(storage):
    errors = []

    def read(offset):
        for _ in range(200):
            if storage.read_range("b.tar", offset, 300) != DATA[offset : offset + 300]:
                errors.append(offset)

    threads = [threading.Thread(target=read, args=(o,)) for o in (0, 1000, 5000, 9000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_sequential_and_whole_reads(storage):
    with storage.open("b.tar") as file:
        assert file.read(3) == DATA[:3]
        assert file.read(4) == DATA[3:7]
    assert storage.read_bytes("a.tar") == b"first"


def test_missing_files_name_the_file_and_the_storage(storage):
    for read in (
        lambda: storage.open("nope.tar"),
        lambda: storage.read_bytes("nope.tar"),
        lambda: storage.read_range("nope.tar", 0, 1),
    ):
        with pytest.raises(MissingFileError, match=r"nope\.tar") as caught:
            read()
        assert str(storage.folder) in str(caught.value)
        # Callers that caught FileNotFoundError before keep working.
        assert isinstance(caught.value, FileNotFoundError)
        assert isinstance(caught.value, NishardError)


def test_stat_gives_the_size_none_when_missing_and_refuses_a_folder(storage):
    assert storage.stat("b.tar") == Stat(size=len(DATA))
    assert storage.stat("nope.tar") is None
    assert storage.stat("a.tar/under") is None  # a file where a folder would be: missing
    with pytest.raises(StorageError, match="sub") as caught:
        storage.stat("sub")
    assert str(storage.folder / "sub") in str(caught.value)
    with pytest.raises(StorageError, match="folder"):
        storage.read_bytes("sub")


def test_list_is_sorted_and_lists_files_only(storage):
    (storage.folder / "c.tar.tmp").write_bytes(b"")
    assert storage.list() == ["a.tar", "b.tar", "c.tar.tmp"]
    assert storage.list("b") == ["b.tar"]
    assert storage.list("sub/") == ["sub/inner.bin"]
    assert storage.list("sub/in") == ["sub/inner.bin"]
    assert storage.list("zzz") == []
    assert LocalStorage(storage.folder / "absent").list() == []


def test_publish_is_a_rename_of_the_synced_file(storage, monkeypatch):
    temporary = storage.folder / "c.tar.tmp"
    temporary.write_bytes(DATA[::-1])
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(storage_module.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    storage.publish(temporary, "c.tar")
    assert not temporary.exists()
    assert (storage.folder / "c.tar").read_bytes() == DATA[::-1]
    assert len(synced) == 2  # the file, then the folder that names it
    assert storage.list("c") == ["c.tar"]


def test_publish_replaces_an_older_file_of_that_name(storage):
    temporary = storage.folder / "a.tar.tmp"
    temporary.write_bytes(b"second")
    storage.publish(temporary, "a.tar")
    assert storage.read_bytes("a.tar") == b"second"
    assert not temporary.exists()


def test_remove_removes_and_ignores_what_is_missing(storage):
    storage.remove("a.tar")
    assert storage.stat("a.tar") is None
    storage.remove("a.tar")  # no error the second time


def test_storage_for_a_folder_a_manifest_or_a_storage(tmp_path):
    (tmp_path / manifest.MANIFEST).write_text("{}")
    assert storage_for(tmp_path) == LocalStorage(tmp_path)
    assert storage_for(str(tmp_path)) == LocalStorage(tmp_path)
    assert storage_for(tmp_path / "manifest.json") == LocalStorage(tmp_path)
    assert storage_for(str(tmp_path / "manifest.json")) == LocalStorage(tmp_path)
    given = LocalStorage(tmp_path / "x")
    assert storage_for(given) is given
    # A folder named manifest.json is a folder.
    (tmp_path / "odd" / "manifest.json").mkdir(parents=True)
    assert storage_for(tmp_path / "odd" / "manifest.json").folder.name == "manifest.json"
    # The name it looks for is the manifest's.
    assert storage_module._MANIFEST == manifest.MANIFEST


def test_storage_for_gives_http_urls_an_http_storage():
    from nishard.archives.storage import HttpStorage

    assert storage_for("http://mirror.example/shards/") == HttpStorage(
        "http://mirror.example/shards"
    )
    assert storage_for("https://x.org/a/manifest.json").url == "https://x.org/a"
    with pytest.raises(StorageError, match=r"outside|'/'-separated"):
        HttpStorage("https://x.org/a").join("../etc/passwd")


@pytest.mark.parametrize("url", ["gs://bucket/shards", "GS://Bucket/x", "az://b/x"])
def test_storage_for_refuses_remote_urls_naming_them(url):
    with pytest.raises(StorageError, match="object storage") as caught:
        storage_for(url)
    assert url in str(caught.value)
    assert isinstance(caught.value, NishardError)


# -- the call sites ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    """Four records in tar shards of two samples."""
    import nishard as ns
    from tests.helpers import TINY_RES

    records = ns.locate(
        tiny,
        schema=ns.schemas.fmriprep(res=TINY_RES),
        filters=[ns.filters.complete(), ns.filters.entities(include={"subject": ["01", "02"]})],
    )
    out = tmp_path_factory.mktemp("storage")
    plan = ns.assemble([ns.t.Mask()])
    ns.write(records, plan, out, shards=ns.shards.by_count(2), progress=False)
    return out


def test_the_stream_reads_shards_through_the_storage(built):
    from nishard.stream.catalog import open_catalog
    from nishard.stream.reader import ShardReader

    listed = [s["name"] for s in json.loads((built / "manifest.json").read_text())["shards"]]
    for location in (built, str(built / "manifest.json"), LocalStorage(built)):
        catalog = open_catalog(location)
        assert catalog.storage == LocalStorage(built)
        assert catalog.folder == built
        assert [s.name for s in catalog.shards] == listed[: len(catalog.shards)]
        assert all(s.path == built / s.name for s in catalog.shards)
    reader = ShardReader(catalog)
    try:
        assert reader.locate(0, 0, None, False).key == catalog.shards[0].keys[0]
    finally:
        reader.close()


def test_verify_takes_the_manifest_path_and_a_folder_for_a_shard_is_missing(built, tmp_path):
    from nishard.archives.verify import verify

    report = verify(built / "manifest.json", progress=False)
    assert report.ok and report.folder == built and report.shards > 0
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in LocalStorage(built).list():
        (copy / name).write_bytes((built / name).read_bytes())
    first = LocalStorage(copy).list("all-")[0]
    (copy / first).unlink()
    (copy / first).mkdir()
    problems = [str(p) for p in verify(copy, progress=False).problems]
    assert f"{first}: expected the shard file, found none: it is missing" in problems


@pytest.mark.parametrize("entry", ["verify", "inspect", "open_catalog", "stream"])
def test_every_reader_refuses_a_remote_url_naming_it(entry):
    import nishard as ns
    from nishard.archives.inspect import inspect
    from nishard.archives.verify import verify
    from nishard.stream.catalog import open_catalog

    url = "gs://bucket/shards"  # s3:// and http(s):// are read: tests/stream/test_s3.py
    call = {
        "verify": lambda: verify(url, progress=False),
        "inspect": lambda: inspect(url),
        "open_catalog": lambda: open_catalog(url),
        "stream": lambda: ns.stream.open(url).arrays(),
    }[entry]
    with pytest.raises(StorageError, match="object storage") as caught:
        call()
    assert url in str(caught.value)


def test_s3_without_boto3_is_one_error_saying_what_to_install(monkeypatch):
    import sys

    from nishard.errors import StorageError

    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "botocore", None)
    with pytest.raises(StorageError, match=r"s3://b/p: s3:// folders need boto3: pip install"):
        storage_for("s3://b/p")
