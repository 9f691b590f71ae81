"""Two S3 stores at once (issue [4/6], item 1): a folder's own ``storage_options`` (its
endpoint) for a build, a stream, verify and inspect, beside the store the environment
names; the same bucket and prefix on both stay apart, in the stores and in the caches."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

import nishard as ns
from nishard import stream
from nishard.cli import main
from nishard.errors import SpecError
from tests.helpers import write_spec
from tests.seaweedfs import seaweedfs_server

URL = "s3://same/tiny"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two servers; the environment (AWS_ENDPOINT_URL) names the second."""
    root = tmp_path_factory.mktemp("stores")
    with seaweedfs_server(root / "a") as a, seaweedfs_server(root / "b") as b:
        for server in (a, b):
            boto3.client("s3", endpoint_url=server.endpoint).create_bucket(Bucket="same")
        yield a.endpoint, b.endpoint


def _objects(endpoint: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="same")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _samples(**options) -> dict[str, np.ndarray]:
    items = stream.open(URL, "all", **options).keys("bold").arrays()
    return {item["__key__"]: item["bold"] for item in items}


def test_a_folder_with_its_own_endpoint_beside_the_environments(
    stores, tiny, tmp_path, monkeypatch, capsys
):
    a, b = stores
    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / "cache"))
    for name, limit, options in (("a", 3, {"endpoint_url": a}), ("b", 6, None)):
        output = {"path": URL, "shards": {"max_samples": limit}}
        if options:
            output["storage_options"] = options
        (tmp_path / name).mkdir()
        manifest = ns.build(write_spec(tmp_path / name, tiny, output=output), progress=False)
        assert manifest["records"]["written"] == 12
    # Store a got the spec with its own endpoint (4 shards), store b the other (2 shards).
    tars = [f"tiny/all-00000{i}.tar" for i in range(4)]
    assert [k for k in _objects(a) if k.endswith(".tar")] == tars
    assert [k for k in _objects(b) if k.endswith(".tar")] == tars[:2]
    from_a = _samples(storage_options={"endpoint_url": a})
    from_b = _samples()
    assert sorted(from_a) == sorted(from_b) and len(from_a) == 12
    for key, bold in from_a.items():  # the same samples, from shards cut differently
        np.testing.assert_array_equal(bold, from_b[key])
    assert not (tmp_path / "cache" / "shards").exists()  # streamed through memory
    # Through the default cache folder: one per store, though the URL is the same.
    cached_a = _samples(storage_options={"endpoint_url": a}, cache_limit="1GB")
    cached_b = _samples(cache_limit="1GB")
    assert sorted(cached_a) == sorted(cached_b) == sorted(from_a)
    caches = sorted(p.name for p in (tmp_path / "cache" / "shards").iterdir())
    assert len(caches) == 2
    assert main(["verify", URL, "--endpoint-url", a, "--no-progress"]) == 0
    assert "4 shards" in capsys.readouterr().out
    assert main(["inspect", URL, "--endpoint-url", a, "--json"]) == 0
    assert '"shards": 4' in capsys.readouterr().out


def test_storage_options_are_checked_where_they_are_written(tiny, tmp_path):
    spec = write_spec(tmp_path, tiny, output={"path": URL, "storage_options": {"endpoint": "x"}})
    unknown = r"'endpoint' in output.storage_options \(did you mean 'endpoint_url'"
    with pytest.raises(SpecError, match=unknown):
        ns.load_spec(spec)
    spec = write_spec(tmp_path, tiny, output={"path": "shards",
                                              "storage_options": {"profile": "lab"}})  # fmt: skip
    with pytest.raises(SpecError, match="storage_options are for an s3:// path"):
        ns.load_spec(spec)
