"""An input dataset in a bucket (issue [4/6], item 2): located over the bucket's listing
on a real SeaweedFS, its staged files fetched into a cache, built to the same samples as
the local folder; a missing bucket or an empty prefix is one error naming it."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest

import nishard as ns
from nishard.errors import SpecError
from nishard.records.sources import S3
from tests.helpers import TINY_RES, write_spec
from tests.seaweedfs import seaweedfs, upload

URL = "s3://inputs/derivatives/fmriprep"


@pytest.fixture(scope="module")
def bucket(tiny, tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="inputs")
        # Anonymous reads, as OpenNeuro's bucket allows them (SeaweedFS honours the policy).
        client.put_bucket_policy(Bucket="inputs", Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                           "Resource": ["arn:aws:s3:::inputs/*"]}],
        }))  # fmt: skip
        upload(tiny, URL)
        yield endpoint


def test_a_bucket_is_located_as_its_local_copy_and_fetches_only_what_is_staged(
    bucket, tiny, tmp_path
):
    schema = ns.schemas.fmriprep(res=TINY_RES)
    local = ns.locate(tiny, schema=schema)
    cache = tmp_path / "cache"
    remote = ns.locate(URL, schema=schema, source=S3(endpoint_url=bucket, cache=str(cache)))
    assert list(remote.frame.index) == list(local.frame.index)
    assert remote.frame["t_r"].tolist() == local.frame["t_r"].tolist()  # sidecars read
    for record in remote:  # every staged file fetched whole, equal to the original
        for path in record.files.values():
            name = path.removeprefix(str(cache) + "/")
            assert open(path, "rb").read() == (tiny / name).read_bytes(), name
    # What no record stages stays a placeholder: nothing more was downloaded.
    staged = {p for r in remote for p in r.files.values()}
    others = [p for p in cache.rglob("*.nii.gz") if str(p) not in staged]
    assert others and all(p.stat().st_size == 0 for p in others)


def test_a_spec_builds_a_bucket_to_the_samples_of_the_local_folder(bucket, tiny, tmp_path):
    for name, path, source in (("local", str(tiny), None),
                               ("s3", URL, {"name": "s3", "endpoint_url": bucket,
                                            "cache": str(tmp_path / "cache")})):  # fmt: skip
        (tmp_path / name).mkdir()
        spec = {"path": path, "schema": {"name": "fmriprep", "res": TINY_RES}}
        if source:
            spec["source"] = source
        ns.build(write_spec(tmp_path / name, tiny, input=spec), progress=False)
    read = {name: {s["__key__"]: s["bold"] for s in ns.stream.open(tmp_path / name / "shards",
                                                                    "all").arrays()}
            for name in ("local", "s3")}  # fmt: skip
    assert sorted(read["s3"]) == sorted(read["local"]) and len(read["s3"]) == 12
    for key, bold in read["s3"].items():
        np.testing.assert_array_equal(bold, read["local"][key])


def test_a_missing_bucket_or_an_empty_prefix_is_one_error_naming_it(bucket):
    with pytest.raises(SpecError, match=rf"s3://nowhere/x: {bucket} refused the listing"):
        S3(endpoint_url=bucket).prepare("s3://nowhere/x")
    with pytest.raises(SpecError, match=r"s3://inputs/nothing: no object under this prefix"):
        S3(endpoint_url=bucket).prepare("s3://inputs/nothing")
    with pytest.raises(SpecError, match="needs an s3://bucket/prefix root"):
        S3().prepare("/local/folder")
