"""A build written to S3 (issue [4/6], item 1): built locally, published to a real
SeaweedFS bucket with the manifest last, verified and streamed back equal to a local
build; a rerun uploads only what is missing; credentials appear nowhere."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

import nishard as ns
from nishard.archives.storage import storage_for
from nishard.archives.verify import verify
from tests.helpers import TINY_RES, write_spec
from tests.seaweedfs import ENVIRONMENT, seaweedfs

BUCKET = "nishard-out"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as url:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


def _build(spec, cache) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "NISHARD_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "nishard", "build", str(spec)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip


def test_a_build_to_s3_verifies_and_streams_as_the_local_build(endpoint, tiny, tmp_path):
    url = f"s3://{BUCKET}/tiny"
    (tmp_path / "s3").mkdir()
    (tmp_path / "local").mkdir()
    remote_spec = write_spec(tmp_path / "s3", tiny, output={"path": url,
                             "shards": {"max_samples": 3}})  # fmt: skip
    local_spec = write_spec(tmp_path / "local", tiny, output={"path": "shards",
                            "shards": {"max_samples": 3}})  # fmt: skip
    done = _build(remote_spec, tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "published to s3://nishard-out/tiny:" in done.stderr
    assert ns.build(local_spec, progress=False)["records"]["written"] > 0
    local = tmp_path / "local" / "shards"

    storage = storage_for(url)
    local_files = sorted(p.name for p in local.iterdir() if p.is_file())
    assert storage.list() == local_files  # no journal, no staging files: the build alone
    assert f"{len(local_files)} files uploaded, 0 already there" in done.stderr
    for name in local_files:
        if name != "manifest.json":
            assert storage.read_bytes(name) == (local / name).read_bytes(), name
            size, sha256 = storage.checksum(name)
            assert size == (local / name).stat().st_size and len(sha256) == 64
    remote_manifest = json.loads(storage.read_bytes("manifest.json"))
    assert remote_manifest["spec"]["output"]["path"] == url  # as the user wrote it
    assert verify(url, progress=False).ok
    remote_keys = [b["__key__"] for b in ns.stream.open(url, cache=tmp_path / "c").arrays()]
    assert remote_keys == [b["__key__"] for b in ns.stream.open(local).arrays()]
    # Credentials are nowhere: not in the manifest, the output, or the cache's names.
    secret = ENVIRONMENT["AWS_SECRET_ACCESS_KEY"]
    texts = [json.dumps(remote_manifest), done.stdout, done.stderr,
             *(str(p) for p in (tmp_path / "cache").rglob("*"))]  # fmt: skip
    assert not any(secret in text or ENVIRONMENT["AWS_ACCESS_KEY_ID"] in text for text in texts)

    # A rerun finds every object there: it uploads the manifest alone.
    again = _build(remote_spec, tmp_path / "cache")
    assert f"{len(local_files) - 1} already there" in again.stderr, again.stderr[-2000:]
    # An object lost (or never finished): the rerun puts it back, and only it.
    lost = next(n for n in local_files if n.endswith(".tar"))
    storage.remove(lost)
    third = _build(remote_spec, tmp_path / "cache")
    assert "2 files uploaded" in third.stderr and storage.stat(lost) is not None
    assert verify(url, progress=False).ok


def test_an_http_or_unknown_output_is_refused_by_name(tiny, tmp_path):
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES))
    plan = ns.assemble([ns.t.Mask()])
    with pytest.raises(ns.SpecError, match="https://host/x: shards are written to local"):
        ns.write(records, plan, "https://host/x", progress=False)
    with pytest.raises(ns.errors.StorageError, match="gs://bucket/x"):
        ns.write(records, plan, "gs://bucket/x", progress=False)


def test_shard_tasks_upload_their_own_groups(endpoint, tiny, tmp_path):
    url = f"s3://{BUCKET}/tasks"
    (tmp_path / "s3").mkdir()
    spec = write_spec(tmp_path / "s3", tiny, output={"path": url, "shards": {"max_samples": 3}},
                      execution={"executor": "tasks", "jobs": 2})  # fmt: skip
    done = _build(spec, tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    # Each task uploaded its group's shard: the coordinator found the 4 shards there and
    # uploaded only the side files (statistics, wids index, dataset card, build report)
    # and the manifest (last).
    assert "5 files uploaded, 4 already there" in done.stderr, done.stderr[-2000:]
    storage = storage_for(url)
    assert [n for n in storage.list() if n.endswith(".tar")] == [
        f"all-00000{i}.tar" for i in range(4)
    ]
    assert verify(url, progress=False).ok


def test_an_s3_output_given_on_the_command_line_is_the_bucket(endpoint, tiny, tmp_path,
                                                              monkeypatch):  # fmt: skip
    from nishard.cli import main

    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, tiny, output={"path": "shards", "shards": {"max_samples": 6}})
    url = f"s3://{BUCKET}/override"
    assert main(["build", str(spec), "--output", url, "-q"]) == 0
    assert storage_for(url).stat("manifest.json") is not None
    assert json.loads(storage_for(url).read_bytes("manifest.json"))["spec"]["output"]["path"] == url
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "shards").exists()
