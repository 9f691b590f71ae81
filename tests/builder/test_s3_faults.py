"""Builds written to S3 when things go wrong (issue [4/6], item 6), on a real SeaweedFS
server: killed mid-upload and restarted, the rerun completes and counts no partial
object as done; an object is skipped only with the local file's size and sha256;
a missing bucket and refused credentials are one error naming them; credentials appear
in no manifest, output, log, staging or cache file."""

from __future__ import annotations

import json
import logging

import boto3
import pytest

import nishard as ns
from nishard.archives import storage as storage_module
from nishard.archives.manifest import MANIFEST, read_manifest
from nishard.archives.storage import S3Storage
from nishard.builder.remote import build_files, upload_build
from nishard.cli import main
from nishard.errors import StorageError
from tests.helpers import write_spec
from tests.seaweedfs import seaweedfs_server

BUCKET = "nishard-faults"
MULTIPART = 8 << 20  # boto3's default threshold: larger files go in parts

#: Key pair the server accepts besides the tests' own, made to be found if it leaks.
LEAK_KEY, LEAK_SECRET = "NISHARDLEAKKEY0042", "nishard-leak-secret-3f9c2a71"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """SeaweedFS accepting the tests' key pair and the leak test's only."""
    folder = tmp_path_factory.mktemp("seaweedfs")
    with seaweedfs_server(folder, identities={LEAK_KEY: LEAK_SECRET}) as running:
        boto3.client("s3", endpoint_url=running.endpoint).create_bucket(Bucket=BUCKET)
        yield running


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    """A local build of voxel-level samples in shards of 5 (8.8 MB: uploaded in parts)."""
    base = tmp_path_factory.mktemp("built")
    spec = write_spec(base, tiny, output={"path": "shards", "shards": {"max_samples": 5}})
    ns.build(spec, progress=False)
    return base / "shards"


def _files(folder) -> list[str]:
    """The files an upload publishes, in its order: the manifest last."""
    return [*build_files(folder, read_manifest(folder)), MANIFEST]


def _assert_published(storage: S3Storage, folder) -> None:
    assert storage.list() == sorted(_files(folder))
    for name in _files(folder):
        assert storage.read_bytes(name) == (folder / name).read_bytes(), name


def _incomplete(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_multipart_uploads(Bucket=BUCKET, Prefix=f"{prefix}/")
    return [upload["Key"] for upload in listed.get("Uploads", [])]


class Killing:
    """A boto3 client whose upload of ``victim`` SIGKILLs the server once half its bytes
    have been sent."""

    def __init__(self, client, server, victim: str, size: int):
        self.client, self.server, self.victim, self.size = client, server, victim, size

    def __getattr__(self, name):
        return getattr(self.client, name)

    def upload_file(self, filename, bucket, key, ExtraArgs=None, Callback=None, Config=None):
        sent = 0

        def progress(count: int) -> None:
            nonlocal sent
            sent += count
            if key.endswith("/" + self.victim) and sent > self.size // 2:
                self.server.kill()

        return self.client.upload_file(filename, bucket, key, ExtraArgs=ExtraArgs,
                                       Callback=progress, Config=Config)  # fmt: skip


def test_a_server_killed_mid_upload_counts_no_partial_object(server, built, monkeypatch):
    storage = S3Storage(BUCKET, "killed")
    names = _files(built)
    large = [n for n in names if (built / n).stat().st_size > MULTIPART]
    assert len(large) >= 2, "the test needs two shards uploaded in parts"
    victim = large[1]
    real = storage_module._s3_client
    size = (built / victim).stat().st_size
    monkeypatch.setattr(storage_module, "_s3_client",
                        lambda *key: Killing(real(*key), server, victim, size))  # fmt: skip
    with pytest.raises(StorageError, match=f"s3://{BUCKET}/killed/{victim}: "):
        upload_build(built, storage)
    monkeypatch.undo()
    server.start()  # on the same data and ports

    done = names[: names.index(victim)]
    assert storage.list() == sorted(done)  # no object, whole or partial, for the victim
    assert _incomplete("killed") == [f"killed/{victim}"]  # its parts, unseen until aborted
    counts = upload_build(built, storage)
    assert counts == {"aborted": 1, "skipped": len(done), "uploaded": len(names) - len(done)}
    assert _incomplete("killed") == []
    _assert_published(storage, built)


def test_only_an_object_of_the_same_size_and_sha256_is_skipped(server, built):
    storage = S3Storage(BUCKET, "skip")
    assert upload_build(built, storage)["uploaded"] == len(_files(built))
    shards = [s["name"] for s in read_manifest(built)["shards"]]
    client = boto3.client("s3")
    data = (built / shards[0]).read_bytes()
    sha256 = storage.checksum(shards[0])[1]
    # Cut short with the right checksum, whole without one, the size with another's.
    client.put_object(Bucket=BUCKET, Key=f"skip/{shards[0]}", Body=data[: len(data) // 2],
                      Metadata={"sha256": sha256})  # fmt: skip
    client.put_object(Bucket=BUCKET, Key=f"skip/{shards[1]}",
                      Body=(built / shards[1]).read_bytes())  # fmt: skip
    client.put_object(Bucket=BUCKET, Key=f"skip/{shards[2]}", Body=bytes(len(data)),
                      Metadata={"sha256": "0" * 64})  # fmt: skip
    counts = upload_build(built, storage)
    assert counts["uploaded"] == 3 + 1  # the three, and the manifest always
    assert counts["skipped"] == len(_files(built)) - 4
    _assert_published(storage, built)


def _spec(tmp_path, tiny, url):
    return write_spec(tmp_path, tiny, output={"path": url, "shards": {"max_samples": 5}})


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("nishard: error: ")
    return err


def test_a_build_to_a_missing_bucket_is_one_error_naming_it(
    server, tiny, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / "cache"))
    spec = _spec(tmp_path, tiny, "s3://nishard-none/out")
    err = _one_line_error(["build", str(spec)], capsys)
    assert err.endswith(f"s3://nishard-none/out: no bucket 'nishard-none' at {server.endpoint}")
    assert "Traceback" not in capsys.readouterr().err
    # Asked before the build: nothing was computed or staged for a bucket that is not there.
    assert not (tmp_path / "cache" / "builds").exists()


@pytest.mark.parametrize("key, secret, why", [
    ("nishard-unknown", LEAK_SECRET, "InvalidAccessKeyId: the access key is not known there"),
    (LEAK_KEY, "nishard-wrong-secret",
     "SignatureDoesNotMatch: the secret key does not match the access key"),
])  # fmt: skip
def test_refused_credentials_are_one_error_naming_the_endpoint(
    server, built, monkeypatch, key, secret, why
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(StorageError) as caught:
        upload_build(built, S3Storage(BUCKET, "refused"))
    message = str(caught.value)
    assert message.startswith(f"s3://{BUCKET}/refused: {server.endpoint} refused the "
                              f"request ({why}); ")  # fmt: skip
    assert key not in message and secret not in message


def test_credentials_appear_in_no_manifest_output_log_or_cache(
    server, tiny, tmp_path, monkeypatch, capfd, caplog
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LEAK_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LEAK_SECRET)
    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG, logger="nishard")
    caplog.set_level(logging.INFO)
    url = f"s3://{BUCKET}/leak"
    spec = _spec(tmp_path, tiny, url)
    assert main(["build", str(spec)]) == 0  # with its progress output
    assert main(["verify", url]) == 0
    assert main(["inspect", url]) == 0
    samples = list(ns.stream.open(url, cache=tmp_path / "stream").keys("bold").arrays())
    assert len(samples) == read_manifest(url)["records"]["written"]
    out, err = capfd.readouterr()
    assert f"published to {url}" in err  # what was captured is the build's output

    storage = S3Storage(BUCKET, "leak")
    texts = {"stdout": out, "stderr": err, "log": caplog.text,
             "manifest": storage.read_bytes(MANIFEST).decode(),
             "spec": spec.read_text()}  # fmt: skip
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".tar" for p in files)  # the staging and stream caches are there
    for path in files:
        texts[str(path)] = str(path) + path.read_bytes().decode("latin-1")
    for secret in (LEAK_KEY, LEAK_SECRET):
        leaked = [where for where, text in texts.items() if secret in text]
        assert not leaked, f"{secret} found in {leaked}"
    assert json.loads(texts["manifest"])["spec"]["output"]["path"] == url
