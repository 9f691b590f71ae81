"""A dataset in an S3 bucket, located over the bucket's listing and mirrored into a cache.

OpenNeuro publishes every dataset in a public bucket (``s3://openneuro.org/ds000001``),
and labs keep fMRIPrep derivatives in theirs. This source lists the objects under the
prefix (``ListObjectsV2``: one request per 1,000 keys), and hands that listing to the url
source (:class:`~.url.Url`), which mirrors the tree into a cache with placeholders, the
small files the scan reads downloaded, and later downloads exactly the staged files of the
records kept, each checked against its listed size and renamed into place whole.

Files are downloaded over the store's HTTP(S) endpoint, path-style
(``<endpoint>/<bucket>/<key>``), without signing: the bucket must allow anonymous reads, as
OpenNeuro's does. A private bucket: sync or mount it and locate the local folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...errors import SpecError
from .base import EAGER
from .options import _check_folder, _patterns, _to_dict
from .url import Url

#: Where a bucket is when neither the source nor the environment names an endpoint.
AWS = "https://s3.amazonaws.com"
_S3_URL = re.compile(r"s3://(?P<bucket>[^/]+)/?(?P<prefix>.*)")


@dataclass(frozen=True)
class S3:
    """Files under ``s3://bucket/prefix``, listed by the store and mirrored into a cache.

    Parameters
    ----------
    endpoint_url : str, optional
        The store's endpoint; default ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, else
        AWS (``https://s3.amazonaws.com``).
    cache : str, optional
        The folder to mirror into; default ``$NISHARD_CACHE/url/<host>/<bucket>/<prefix>``.
    eager, timeout, retries, jobs
        As the url source's (:class:`~.url.Url`).

    Examples
    --------
    ``source: {name: s3}`` in a spec's input section with ``path:
    s3://openneuro.org/ds000102``, or ``locate("s3://bucket/derivatives/fmriprep",
    source=S3(endpoint_url="http://host:8333"))``.
    """

    endpoint_url: str | None = None
    cache: str | None = None
    eager: tuple[str, ...] = field(default=EAGER)
    timeout: float = 60.0
    retries: int = 3
    jobs: int = 8

    name: ClassVar[str] = "s3"

    def __post_init__(self) -> None:
        object.__setattr__(self, "eager", _patterns(self.eager))
        _check_folder("cache", self.cache)

    def to_dict(self) -> dict:
        return _to_dict(self)

    def prepare(self, root: str | Path) -> Path:
        """List the objects under ``root`` (``s3://bucket/prefix``) and mirror them.

        Raises
        ------
        SpecError
            When the root is no ``s3://`` URL, boto3 is missing, the bucket cannot be
            listed (named, with the store's answer) or holds nothing under the prefix.
        """
        match = _S3_URL.fullmatch(str(root))
        if match is None:
            raise SpecError(f"the s3 source needs an s3://bucket/prefix root, got {root!r}")
        bucket, prefix = match.group("bucket"), match.group("prefix").strip("/")
        endpoint = self._endpoint()
        sizes = _list(bucket, prefix, endpoint)
        if not sizes:
            raise SpecError(f"{root}: no object under this prefix at {endpoint}")
        lines = ("path\tsize\tsha256", *(f"{key}\t{size}\t" for key, size in sorted(sizes.items())))
        base = f"{endpoint}/{bucket}/{prefix}/" if prefix else f"{endpoint}/{bucket}/"
        return self._url(lines).prepare(base)

    def fetch(self, paths: Sequence[str]) -> dict[str, str]:
        """Download the staged ``paths`` (see :meth:`Url.fetch`); the reason of each that
        fails."""
        return self._url(("path",)).fetch(paths)

    def _endpoint(self) -> str:
        endpoint = (
            self.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or AWS
        )
        return endpoint.rstrip("/")

    def _url(self, listing: tuple[str, ...]) -> Url:
        return Url(listing=listing, cache=self.cache, eager=self.eager, timeout=self.timeout,
                   retries=self.retries, jobs=self.jobs)  # fmt: skip


def _list(bucket: str, prefix: str, endpoint: str) -> dict[str, int]:
    """The size of every object under ``prefix``, by its key relative to the prefix;
    requests signed when credentials are found, else anonymous (public buckets)."""
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as err:
        raise SpecError("the s3 source needs boto3: pip install 'nishard[s3]'") from err
    session = boto3.session.Session()
    config = Config(signature_version=UNSIGNED) if session.get_credentials() is None else None
    client = session.client("s3", endpoint_url=endpoint, config=config)
    where = f"{prefix}/" if prefix else ""
    sizes: dict[str, int] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=where):
            for item in page.get("Contents", ()):
                key = item["Key"][len(where) :]
                if key and not key.endswith("/"):  # (folder markers)
                    sizes[key] = int(item["Size"])
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        raise SpecError(f"s3://{bucket}/{prefix}: {endpoint} refused the listing ({code})") from err
    except BotoCoreError as err:
        raise SpecError(f"s3://{bucket}/{prefix}: cannot list at {endpoint} ({err})") from err
    return sizes
