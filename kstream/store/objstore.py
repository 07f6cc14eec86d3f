"""Object storage (Amazon S3 and S3-compatible servers): the one module that talks
to it. `s3://BUCKET/KEY` names an object; botocore is imported on first use only,
so no command that does not touch object storage pays for it.

Configuration is botocore's, as every AWS tool reads it: the endpoint from
`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (or the shared config file), the region
from `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile, and the standard credential
chain (environment, shared credentials and config files with `AWS_PROFILE`, web
identity as on EKS with IRSA, container and instance metadata). With a custom
endpoint (MinIO, SeaweedFS, Ceph ...) buckets are addressed by path.

Writing: `MultipartUpload` is a write-only stream that sends parts while the
archive is produced, at most `IN_FLIGHT` parts at a time; parts grow with the data
(`part_size()`), so 10,000 parts hold far more than S3's 5 TB object limit. The
object appears only when the upload is completed; `abort()` leaves neither an
object nor an open upload.

Reading: `RemoteObject` (HEAD once), its `reader()` is a seekable file whose small
reads are ranged GETs of a few KB (the archive's header, footer and manifest), and
`stream(start, end)` one streamed GET of a byte range (a unit's data).

Every botocore error is translated here, once, into kstream's errors
(`translate()`): unknown bucket or key, rejected credentials, no permission,
endpoint unreachable, throttling that outlasted the retries.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import deque
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Literal

from kstream.dataclass import dataclass
from kstream.errors import (
    AlreadyExists,
    ConfigError,
    ConnectionFailed,
    KstreamError,
    OutputError,
    SnapshotError,
)

SCHEME = "s3://"
MIB = 1024 * 1024
# S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), 10,000 parts
MIN_PART = 5 * MIB
MAX_PART = 5 * 1024 * MIB
MAX_PARTS = 10_000
# The first part size, doubled every PARTS_PER_STEP parts: 8 MiB x 1,000 parts
# holds 8 GB, the next thousand 16 GB more, ... 10,000 parts reach S3's 5 TB.
FIRST_PART = 8 * MIB
PARTS_PER_STEP = 1000
# parts being sent at once; with the one being filled, memory stays under
# (IN_FLIGHT + 1) x the part size
IN_FLIGHT = 2
# Tests only: a smaller first part (bytes), so that a small archive takes several
# parts. Real S3 refuses parts under 5 MiB (but the last) when the upload completes.
PART_SIZE_ENV = "KSTREAM_S3_PART_SIZE"
# small reads fetch at least this much (the header, footer and manifest of an
# archive take a few requests of a few KB)
READ_BLOCK = 4096
RETRIES = 5  # attempts for each request (botocore's "standard" mode: backoff, jitter)

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

Op = Literal["read", "write"]


def is_url(path: str) -> bool:
    return path[:5].lower() == SCHEME


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        """The bucket's top or KEY/: a place for a directory snapshot, not an object."""
        return not self.key or self.key.endswith("/")

    def as_prefix(self) -> Location:
        """The prefix KEY names (KEY/), or this one."""
        return self if self.is_prefix else Location(self.bucket, self.key + "/")

    def child(self, name: str) -> Location:
        return Location(self.bucket, self.as_prefix().key + name)


def parse(url: str) -> Location:
    """s3://BUCKET/KEY (KEY may be empty or end with / for a prefix)."""
    from kstream.errors import UsageError

    rest = url[len(SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UsageError(f"{url}: no bucket (s3://BUCKET/KEY)")
    return Location(bucket, key)


def part_size(n: int, first: int | None = None) -> int:
    """The size of part n (1-based)."""
    base = first if first is not None else first_part_size()
    return int(min(MAX_PART, base * 2 ** ((n - 1) // PARTS_PER_STEP)))


def first_part_size() -> int:
    raw = os.environ.get(PART_SIZE_ENV, "")
    if raw.strip():
        try:
            v = int(raw)
        except ValueError:
            v = 0
        if v > 0:
            return v
    return FIRST_PART


# =========================================================================== client

_client: Any = None
_client_lock = threading.Lock()


def client() -> Any:
    """One botocore S3 client for the process (thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            import botocore.session
            from botocore.config import Config

            session = botocore.session.get_session()
            custom = bool(
                os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL")
                or session.get_scoped_config().get("endpoint_url")
            )
            cfg = Config(
                retries={"mode": "standard", "max_attempts": RETRIES},
                connect_timeout=10,
                read_timeout=60,
                s3={"addressing_style": "path"} if custom else None,
                max_pool_connections=IN_FLIGHT + 4,
                **(checksum_settings(session.get_scoped_config()) if custom else {}),
            )
            try:
                _client = session.create_client("s3", config=cfg)
            except Exception as e:  # bad region/endpoint/profile in the configuration
                raise ConfigError(f"object storage: {_short(e)}") from None
        return _client


# botocore >= 1.36 computes a CRC checksum of every upload and asks for one with
# every download ("when_supported"), which several S3-compatible servers refuse
# (unknown x-amz-checksum-* headers, aws-chunked bodies). With a custom endpoint
# kstream asks for checksums only where the operation requires them, unless the
# user's configuration says otherwise (environment first, then the profile, as
# botocore reads them). Integrity does not rest on them: TCP, and the sha256 of
# each archive frame and directory file, checked on every read.
CHECKSUM_SETTINGS = {
    "request_checksum_calculation": "AWS_REQUEST_CHECKSUM_CALCULATION",
    "response_checksum_validation": "AWS_RESPONSE_CHECKSUM_VALIDATION",
}


def checksum_settings(profile: dict[str, Any]) -> dict[str, str]:
    """The botocore Config arguments for a custom endpoint: `when_required` for
    each checksum setting the environment and the profile leave unset."""
    return {
        name: "when_required"
        for name, env in CHECKSUM_SETTINGS.items()
        if not os.environ.get(env, "").strip() and not profile.get(name)
    }


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def translate(e: BaseException, op: Op, url: str) -> KstreamError:
    """A botocore error as kstream's error: one line, the exit code of the table."""
    from botocore import exceptions as bx

    if isinstance(e, KstreamError):
        return e
    bad_input = SnapshotError if op == "read" else OutputError
    if isinstance(e, bx.NoCredentialsError):
        return ConfigError(
            f"{url}: no credentials for object storage (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available)"
        )
    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {}) or {}
        code = str(err.get("Code") or "")
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in ("NoSuchBucket",):
            bucket = url[len(SCHEME) :].split("/", 1)[0]
            return bad_input(f"{url}: no such bucket: {bucket}")
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            return bad_input(f"{url}: no such object")
        if code in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "InvalidToken",
            "ExpiredToken",
            "TokenRefreshRequired",
            "InvalidClientTokenId",
        ):
            return ConfigError(f"{url}: object storage rejected the credentials ({code})")
        if code in ("AccessDenied", "Forbidden", "403", "AllAccessDisabled") or status == 403:
            what = "read" if op == "read" else "write"
            return bad_input(f"{url}: permission denied: these credentials may not {what} it")
        if code in ("SlowDown", "ServiceUnavailable", "Throttling", "RequestLimitExceeded") or (
            status in (429, 503)
        ):
            return ConnectionFailed(
                f"{url}: object storage kept throttling ({code or status}) after {RETRIES} attempts"
            )
        if (code == "PreconditionFailed" or status == 412) and op == "write":
            # the If-None-Match: * of a create-only upload (`MultipartUpload(create_only=True)`)
            return AlreadyExists(f"{url}: already exists (a create-only upload was refused)")
        if code == "PreconditionFailed" or status == 412:  # the If-Match of every read
            return bad_input(f"{url}: the object was replaced while it was read; read it again")
        msg = str(err.get("Message") or "") or code or f"HTTP {status}"
        if status >= 500:
            return ConnectionFailed(f"{url}: object storage failed: {msg}")
        return bad_input(f"{url}: {msg}")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return ConnectionFailed(f"{url}: cannot reach object storage: {_short(e)}")
    if isinstance(e, bx.ReadTimeoutError):
        return ConnectionFailed(f"{url}: object storage stopped answering (read timeout)")
    if isinstance(e, (bx.ConnectionError, bx.HTTPClientError)):
        return ConnectionFailed(f"{url}: connection to object storage failed: {_short(e)}")
    if isinstance(e, bx.NoRegionError):
        return ConfigError(f"{url}: no region for object storage (set AWS_REGION)")
    if isinstance(e, bx.BotoCoreError):
        return ConfigError(f"{url}: object storage: {_short(e)}")
    if isinstance(e, OSError):
        return ConnectionFailed(f"{url}: {e.strerror or _short(e)}")
    raise e


@contextlib.contextmanager
def _translated(op: Op, url: str) -> Iterator[None]:
    try:
        yield
    except KstreamError:
        raise
    except Exception as e:
        raise translate(e, op, url) from None


# =========================================================================== metadata


def head(loc: Location, op: Op = "read") -> dict[str, Any] | None:
    """The object's metadata, or None when there is none (the bucket exists)."""
    from botocore.exceptions import ClientError

    c = client()
    try:
        return dict(c.head_object(Bucket=loc.bucket, Key=loc.key))
    except ClientError as e:
        status = _status(e)
        if status in (400, 403):
            # an answer to HEAD has no body, so no error code: a GET of one byte
            # says which (wrong credentials, or no permission)
            try:
                c.get_object(Bucket=loc.bucket, Key=loc.key, Range="bytes=0-0")
            except Exception as e2:
                raise translate(e2, op, loc.url) from None
        if status != 404:
            raise translate(e, op, loc.url) from None
    except Exception as e:
        raise translate(e, op, loc.url) from None
    # a 404 to HEAD says nothing of the bucket: ask for the bucket itself
    try:
        c.head_bucket(Bucket=loc.bucket)
    except ClientError as e:
        if _status(e) == 404:
            bad_input = SnapshotError if op == "read" else OutputError
            raise bad_input(f"{loc.url}: no such bucket: {loc.bucket}") from None
        raise translate(e, op, loc.url) from None
    except Exception as e:
        raise translate(e, op, loc.url) from None
    return None


def _status(e: Any) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def exists(loc: Location, op: Op = "read") -> bool:
    return head(loc, op) is not None


def list_keys(loc: Location, op: Op = "read") -> list[str]:
    """Every key under the prefix `loc.key`."""
    c = client()
    keys: list[str] = []
    with _translated(op, loc.url):
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
            keys.extend(o["Key"] for o in page.get("Contents") or [])
    return keys


def list_objects(loc: Location, op: Op = "read") -> list[dict[str, Any]]:
    """Every object under the prefix `loc.key`: its Key, Size and ETag (as LIST
    gives them: no HEAD needed to read one)."""
    c = client()
    out: list[dict[str, Any]] = []
    with _translated(op, loc.url):
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
            out.extend(
                {"Key": o["Key"], "Size": o.get("Size"), "ETag": o.get("ETag")}
                for o in page.get("Contents") or []
            )
    return out


def delete(loc: Location) -> None:
    with _translated("write", loc.url):
        client().delete_object(Bucket=loc.bucket, Key=loc.key)


# what a bucket without an Object Lock configuration answers GetObjectLockConfiguration
# (AWS S3, moto: ObjectLockConfigurationNotFoundError; others say it as a 404), and
# what a server without Object Lock answers (it cannot have it enabled)
_NO_LOCK = (
    "ObjectLockConfigurationNotFoundError",
    "ObjectLockConfigurationNotFound",
    "NotImplemented",
)


def object_lock_enabled(loc: Location) -> bool | None:
    """Whether S3 Object Lock is enabled on `loc`'s bucket (GetObjectLockConfiguration
    says `Enabled`); False for a bucket without a configuration (the error it
    answers is that); None when these credentials may not ask (403); other
    errors translated."""
    from botocore.exceptions import ClientError

    url = f"{SCHEME}{loc.bucket}"
    try:
        got = client().get_object_lock_configuration(Bucket=loc.bucket)
    except ClientError as e:
        code = str((e.response.get("Error", {}) or {}).get("Code") or "")
        if code in _NO_LOCK or _status(e) == 501 or (_status(e) == 404 and code != "NoSuchBucket"):
            return False
        if code in ("AccessDenied", "Forbidden") or _status(e) == 403:
            return None
        raise translate(e, "write", url) from None
    except Exception as e:
        raise translate(e, "write", url) from None
    conf = got.get("ObjectLockConfiguration") or {}
    return str(conf.get("ObjectLockEnabled") or "") == "Enabled"


def put_bytes(loc: Location, data: bytes) -> None:
    with _translated("write", loc.url):
        client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data)


def put_file(
    loc: Location,
    f: IO[bytes],
    metadata: dict[str, str] | None = None,
    create_only: bool = False,
) -> None:
    """Upload a local file (from its current position) as one object; with
    `create_only`, AlreadyExists when the key exists (see MultipartUpload)."""
    up = MultipartUpload(loc, metadata=metadata, create_only=create_only)
    try:
        while True:
            chunk = f.read(MIB)
            if not chunk:
                break
            up.write(chunk)
        up.complete()
    except BaseException:
        up.abort()
        raise


def free_partial_name(loc: Location) -> Location:
    """KEY.partial, or KEY.partial2 ... when taken (as for files)."""
    from kstream.store.outputname import partial_name

    return Location(
        loc.bucket, partial_name(loc.key, lambda k: exists(Location(loc.bucket, k), "write"))
    )


# =========================================================================== writing


class MultipartUpload:
    """A write-only stream into one object: parts are sent on IN_FLIGHT threads
    while the caller goes on writing; `complete()` makes the object appear (one
    plain PUT when everything fit in the first part), `abort()` removes every
    part sent. `write()` blocks while IN_FLIGHT parts are on their way.

    `metadata` goes with the object (x-amz-meta-*). `create_only` sends
    `If-None-Match: *` with the PUT or the CompleteMultipartUpload: a server that
    supports conditional writes (AWS S3 since 2024, SeaweedFS, moto) refuses to
    replace an existing key (AlreadyExists); one that does not ignores it."""

    def __init__(
        self,
        loc: Location,
        first_part: int | None = None,
        metadata: dict[str, str] | None = None,
        create_only: bool = False,
    ) -> None:
        self.loc = loc
        self.extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        self.create_only = create_only
        self.first = first_part or first_part_size()
        self.buf = bytearray()
        self.pos = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.sent = 0  # parts handed to the threads
        self.pending: deque[Future[dict[str, Any]]] = deque()
        self.pool: ThreadPoolExecutor | None = None
        self.done = False

    def tell(self) -> int:
        return self.pos

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buf += data
        self.pos += len(data)
        size = part_size(self.sent + 1, self.first)
        while len(self.buf) >= size:
            chunk = bytes(self.buf[:size])
            del self.buf[:size]
            self._send(chunk)
            size = part_size(self.sent + 1, self.first)
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, chunk: bytes) -> None:
        c = client()
        if self.upload_id is None:
            with _translated("write", self.loc.url):
                r = c.create_multipart_upload(
                    Bucket=self.loc.bucket, Key=self.loc.key, **self.extra
                )
            self.upload_id = str(r["UploadId"])
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="kstream-upload")
        while len(self.pending) >= IN_FLIGHT:
            self._collect(self.pending.popleft())
        self.sent += 1
        if self.sent > MAX_PARTS:
            raise OutputError(f"{self.loc.url}: more than {MAX_PARTS} parts")
        assert self.pool is not None
        self.pending.append(self.pool.submit(self._upload_part, self.sent, chunk))

    def _upload_part(self, n: int, chunk: bytes) -> dict[str, Any]:
        with _translated("write", self.loc.url):
            r = client().upload_part(
                Bucket=self.loc.bucket,
                Key=self.loc.key,
                UploadId=self.upload_id,
                PartNumber=n,
                Body=chunk,
            )
        return {"PartNumber": n, "ETag": r["ETag"]}

    def _collect(self, fut: Future[dict[str, Any]]) -> None:
        self.parts.append(fut.result())

    def complete(self) -> None:
        """Send what is left and make the object appear under its key."""
        c = client()
        if self.upload_id is None:
            with _translated("write", self.loc.url):
                c.put_object(
                    Bucket=self.loc.bucket,
                    Key=self.loc.key,
                    Body=bytes(self.buf),
                    **self.extra,
                    **({"IfNoneMatch": "*"} if self.create_only else {}),
                )
            self.buf = bytearray()
            self.done = True
            return
        if self.buf:
            chunk, self.buf = bytes(self.buf), bytearray()
            self._send(chunk)
        while self.pending:
            self._collect(self.pending.popleft())
        parts = sorted(self.parts, key=lambda p: int(p["PartNumber"]))
        with _translated("write", self.loc.url):
            c.complete_multipart_upload(
                Bucket=self.loc.bucket,
                Key=self.loc.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
                **({"IfNoneMatch": "*"} if self.create_only else {}),
            )
        self.done = True
        self._shutdown()

    def abort(self) -> None:
        """Drop the upload: the parts in flight are waited for, then every part
        sent is removed with the upload (best effort: errors are not raised)."""
        if self.done:
            return
        self.done = True
        self.buf = bytearray()
        for fut in self.pending:
            fut.cancel()
        for fut in self.pending:
            with contextlib.suppress(BaseException):
                fut.result()
        self.pending.clear()
        self._shutdown()
        if self.upload_id is not None:
            with contextlib.suppress(Exception):
                client().abort_multipart_upload(
                    Bucket=self.loc.bucket, Key=self.loc.key, UploadId=self.upload_id
                )

    def _shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class Tee:
    """Writes go to a local file and to an upload; `tell()` is the upload's."""

    def __init__(self, local: IO[bytes], upload: MultipartUpload) -> None:
        self.local = local
        self.upload = upload

    def write(self, data: bytes) -> int:
        self.local.write(data)
        self.upload.write(data)
        return len(data)

    def tell(self) -> int:
        return self.upload.tell()


# =========================================================================== reading


class RemoteObject:
    """One object, opened for reading (HEAD once): its size, ranged reads."""

    def __init__(self, loc: Location, meta: dict[str, Any]) -> None:
        self.loc = loc
        self.size = int(meta.get("ContentLength") or 0)
        self.etag = str(meta.get("ETag") or "")
        self.fetched = 0  # bytes received, for the curious and the tests

    @classmethod
    def open(cls, loc: Location) -> RemoteObject | None:
        meta = head(loc, "read")
        return None if meta is None else cls(loc, meta)

    def get(self, start: int, end: int) -> bytes:
        """Bytes [start, end) (fewer at the end of the object)."""
        end = min(end, self.size)
        if start >= end:
            return b""
        with _translated("read", self.loc.url):
            r = client().get_object(
                Bucket=self.loc.bucket,
                Key=self.loc.key,
                Range=f"bytes={start}-{end - 1}",
                IfMatch=self.etag,
            )
            data = bytes(r["Body"].read())
        self.fetched += len(data)
        return data

    def stream(self, start: int = 0, end: int | None = None) -> IO[bytes]:
        """Bytes [start, end) as one streamed GET (a file to read() from)."""
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return io.BytesIO(b"")
        kw: dict[str, Any] = {"Bucket": self.loc.bucket, "Key": self.loc.key}
        if start > 0 or end < self.size:
            kw["Range"] = f"bytes={start}-{end - 1}"
        if self.etag:
            kw["IfMatch"] = self.etag
        with _translated("read", self.loc.url):
            body = client().get_object(**kw)["Body"]
        return io.BufferedReader(_Body(body, self), 1024 * 1024)

    def reader(self) -> IO[bytes]:
        return io.BufferedReader(_RangeFile(self), READ_BLOCK)


class _Body(io.RawIOBase):
    def __init__(self, body: Any, obj: RemoteObject) -> None:
        self.body = body
        self.obj = obj

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        with _translated("read", self.obj.loc.url):
            data = bytes(self.body.read(None if n is None or n < 0 else n))
        self.obj.fetched += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.body.close()
        super().close()


class _RangeFile(io.RawIOBase):
    """A seekable file over ranged GETs. A read within READ_BLOCK of the end
    fetches the object's last READ_BLOCK bytes (an archive's or a segment's
    footer and, most often, its manifest: one GET for both), and the bytes of
    the last GET serve the reads that fall inside them."""

    def __init__(self, obj: RemoteObject) -> None:
        self.obj = obj
        self.pos = 0
        self.kept = (0, b"")  # (offset, bytes) of the last GET

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == os.SEEK_SET:
            self.pos = offset
        elif whence == os.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = self.obj.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:
        at, kept = self.kept
        if not (at <= self.pos and min(self.pos + len(b), self.obj.size) <= at + len(kept)):
            start, end = self.pos, self.pos + len(b)
            if end > self.obj.size - READ_BLOCK:  # near the end: the whole tail
                start, end = min(start, max(0, self.obj.size - READ_BLOCK)), self.obj.size
            self.kept = at, kept = start, self.obj.get(start, end)
        data = kept[self.pos - at : self.pos - at + len(b)]
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)
