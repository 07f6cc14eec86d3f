"""A test bucket on a real S3 server (tests/s3server: SeaweedFS or moto), shared by
the tests of journals in object storage: `serve_bucket()` starts a server with
the bucket (versioned or not) and stops it; `Bucket` is the ADMIN's botocore
client on it, what the tests ask of the bucket (`keys`, `versions`, `uploads`)
and `download()`, the keys under a prefix as the local journal directory they
name (the contract: the same names), for the local readers; `s3_env()` points
this process's own object storage (kstream.store.objstore) at the server.

    with serve_bucket(MotoServer(tmp), "kstream-journal") as bucket:
        j = bucket.download("rec/", tmp / "j")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.s3server import ADMIN, S3Server

DELETED = 100  # what `Bucket.versions` counts for a delete marker


def admin_client(server: S3Server) -> Any:
    """A botocore S3 client of the ADMIN identity, straight to `server`."""
    import botocore.session

    env = server.env(ADMIN)
    return botocore.session.Session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def download(client: Any, bucket: str, prefix: str, to: Path, new_only: bool = False) -> Path:
    """The keys under `prefix` (as they are now: deleted ones left out) as files
    under `to`, the prefix taken off their names. `new_only`: a file already
    there is not fetched again (a poll: every key is written once)."""
    to.mkdir(parents=True, exist_ok=True)
    for key in keys(client, bucket, prefix):
        path = to / key[len(prefix) :]
        if new_only and path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return to


def keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """The keys under `prefix` as they are now, sorted."""
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents") or []]
    return sorted(out)


class Bucket:
    def __init__(self, server: S3Server, name: str) -> None:
        self.server = server
        self.name = name
        self.env = server.env(ADMIN)
        self.client = admin_client(server)

    def keys(self, prefix: str) -> list[str]:
        return keys(self.client, self.name, prefix)

    def versions(self, prefix: str) -> dict[str, int]:
        """How many versions each key under `prefix` has, a delete marker
        counting `DELETED` (a key written once, then deleted: 101)."""
        out: dict[str, int] = {}
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.name, Prefix=prefix
        )
        for page in pages:
            for v in page.get("Versions") or []:
                out[v["Key"]] = out.get(v["Key"], 0) + 1
            for d in page.get("DeleteMarkers") or []:
                out[d["Key"]] = out.get(d["Key"], 0) + DELETED
        return out

    def uploads(self, prefix: str) -> list[str]:
        """The keys of the multipart uploads left open under `prefix`."""
        r = self.client.list_multipart_uploads(Bucket=self.name, Prefix=prefix)
        return [u["Key"] for u in r.get("Uploads") or []]

    def download(self, prefix: str, to: Path, new_only: bool = False) -> Path:
        """The prefix as a local journal directory (`download()`)."""
        return download(self.client, self.name, prefix, to, new_only)


@contextlib.contextmanager
def serve_bucket(server: S3Server, name: str, versioned: bool = True) -> Iterator[Bucket]:
    """`server` started with the bucket `name` (versioned unless told), stopped
    at the end."""
    server.start()
    try:
        b = Bucket(server, name)
        b.client.create_bucket(Bucket=name)
        if versioned:
            b.client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        yield b
    finally:
        server.stop()


@contextlib.contextmanager
def s3_env(env: dict[str, str]) -> Iterator[None]:
    """This process's object storage is the test server (`env`), then as before."""
    from kstream.store import objstore

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    objstore._client = None
    try:
        yield
    finally:
        objstore._client = None
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
