"""A real S3-compatible server on loopback for the object-storage tests: SeaweedFS
(`weed mini`: master, volume, filer and S3 gateway in one process), built from the
Go module proxy at a pinned version like the control plane (controlplane/seaweedfs/
holds the wrapper go.mod/go.sum), cached outside the repository:

    s3 = S3Server(Path("/tmp/s3"))
    s3.start()                      # returns once the S3 port answers
    s3.endpoint                     # http://127.0.0.1:PORT
    s3.env(s3.ADMIN)                # AWS_* variables for an identity
    s3.stop()

Identities (s3.json): ADMIN may do everything, READER may only read and list,
WRITER may only write (not even read), nothing else is known (a wrong key is rejected). `Proxy` sits in front of it for
the tests that count the bytes fetched or need the server to answer 503 SlowDown.

`MotoServer` is a second, independent implementation with the same interface:
moto's standalone server (`moto[server]`, a pinned dev dependency, pure Python),
started on loopback in a few seconds, so that no behaviour of kstream depends on
one server's leniency. It accepts any credentials (`identities` is False): the
tests of rejected credentials and missing permissions run on SeaweedFS only.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.controlplane import free_port, go_build, spawn_logged
from tests.controlplane.versions import CACHE_ROOT

SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
# the pseudo-version the Go module proxy serves (no tagged release of the module path)
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
BIN_DIR = CACHE_ROOT / "s3server" / f"seaweedfs-{SEAWEEDFS_VERSION}"
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class Identity:
    name: str
    access_key: str
    secret_key: str


ADMIN = Identity("admin", "KSTREAMADMINKEY00001", "kstream-admin-secret-0000000000000000001")
READER = Identity("reader", "KSTREAMREADERKEY0001", "kstream-reader-secret-000000000000000001")
WRITER = Identity("writer", "KSTREAMWRITERKEY0001", "kstream-writer-secret-000000000000000001")


class S3ServerError(RuntimeError):
    pass


def binary() -> Path:
    return BIN_DIR / "weed"


def build(verbose: bool = True) -> Path:
    """Build `weed` once; later calls reuse the cached binary."""
    out = binary()
    if out.is_file() and os.access(out, os.X_OK):
        return out
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    pkg = f"{SEAWEEDFS_MODULE}/weed"
    go_build(out, pkg, "seaweedfs", SEAWEEDFS_VERSION, "-s -w", verbose, S3ServerError)
    return out


def s3_config() -> dict[str, object]:
    def ident(i: Identity, actions: list[str]) -> dict[str, object]:
        return {
            "name": i.name,
            "credentials": [{"accessKey": i.access_key, "secretKey": i.secret_key}],
            "actions": actions,
        }

    return {
        "identities": [
            ident(ADMIN, ["Admin", "Read", "Write", "List", "Tagging"]),
            ident(READER, ["Read", "List"]),
            ident(WRITER, ["Write"]),
        ]
    }


@dataclass
class S3Server:
    dir: Path
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    name = "seaweedfs"
    identities = True  # rejects unknown keys, enforces each identity's actions

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, who: Identity = ADMIN, endpoint: str | None = None) -> dict[str, str]:
        """The environment a kstream subprocess needs to reach the server as `who`
        (and nothing from the user's own AWS configuration)."""
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": who.access_key,
            "AWS_SECRET_ACCESS_KEY": who.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self) -> None:
        weed = build()
        self.dir = self.dir.resolve()
        for sub in ("data", "logs"):
            d = self.dir / sub
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        cfg = self.dir / "s3.json"
        cfg.write_text(json.dumps(s3_config(), indent=2))
        self.port = free_port()
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
        self._ports = [self.port, *ports.values(), *grpc.values()]
        args = [
            str(weed),
            "mini",
            f"-dir={self.dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.max=0",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={cfg}",
            "-webdav=false",
            "-admin.ui=false",
        ]
        self._proc = spawn_logged(args, self.dir / "logs" / "weed.log", self.dir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise S3ServerError(
                    f"{self.name} exited ({self._proc.returncode}); see {self.dir}/logs/"
                )
            try:
                # an anonymous request: the server is up once it answers at all
                with urllib.request.urlopen(self.endpoint + "/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise S3ServerError(f"{self.name} did not answer within {READY_TIMEOUT:.0f}s: {last}")

    def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        # the local sockets weed makes in /tmp, named by port
        for port in getattr(self, "_ports", []):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


class MotoServer(S3Server):
    """moto's standalone server (`python -m moto.server`) on loopback."""

    name = "moto"
    identities = False  # any key is accepted, every action allowed

    def start(self) -> None:
        self.dir = self.dir.resolve()
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._ports = []
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = spawn_logged(args, self.dir / "logs" / "moto.log", self.dir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise


SERVERS: dict[str, type[S3Server]] = {"seaweedfs": S3Server, "moto": MotoServer}


# --------------------------------------------------------------------------- proxy


@dataclass
class Request:
    method: str
    path: str
    range: str
    status: int
    body_bytes: int  # bytes of the response body sent to the client
    headers: dict[str, str] = field(default_factory=dict)  # the request's, names lowercased


def asks_for_checksums(headers: object) -> bool:
    """Whether a request carries botocore's flexible checksums (botocore >= 1.36 with
    `when_supported`): a CRC header or trailer, or asks for one in the response."""
    names = {k.lower(): v for k, v in headers.items()}  # type: ignore[attr-defined]
    return (
        any(k.startswith("x-amz-checksum-") for k in names)
        or "x-amz-sdk-checksum-algorithm" in names
        or "x-amz-trailer" in names
        or "x-amz-checksum-mode" in names
        or "aws-chunked" in names.get("content-encoding", "")
    )


class Proxy:
    """A plain HTTP proxy in front of the server, on loopback: it records each
    request (method, path, Range, status, response body bytes) and can answer
    the next N requests with 503 SlowDown itself, as a throttling S3 would.
    Headers (Host included) pass unchanged, so signatures stay valid."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[Request] = []
        self.throttle = 0  # the next N requests get 503 SlowDown
        self.throttle_puts = 0  # the next N PUT requests (objects, parts) get 503 SlowDown
        # as the S3-compatible stores that know no flexible checksums: a request with
        # x-amz-checksum-*, x-amz-sdk-checksum-algorithm or an aws-chunked body is
        # refused (400 InvalidArgument) rather than stored unverified
        self.refuse_checksums = True
        # while `hold` is set, requests that send a part wait until it is cleared;
        # `held` is set when one arrives
        self.hold = threading.Event()
        self.release = threading.Event()
        self.held = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.hold.is_set() and "partNumber=" in self.path:
                    proxy.held.set()
                    proxy.release.wait(120)
                with proxy.lock:
                    throttled = proxy.throttle > 0
                    if throttled:
                        proxy.throttle -= 1
                    elif self.command == "PUT" and proxy.throttle_puts > 0:
                        throttled = True
                        proxy.throttle_puts -= 1
                if proxy.refuse_checksums and asks_for_checksums(self.headers):
                    payload = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument'
                        b"</Code><Message>x-amz-checksum is not supported</Message></Error>"
                    )
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    proxy._record(self.command, self.path, self.headers, 400, len(payload))
                    return
                if throttled:
                    payload = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    proxy._record(self.command, self.path, self.headers, 503, len(payload))
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    conn.putheader(k, v)
                conn.endheaders(body)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() in ("transfer-encoding", "connection", "content-length"):
                        continue
                    self.send_header(k, v)
                length = r.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()
                proxy._record(
                    self.command, self.path, self.headers, r.status,
                    0 if self.command == "HEAD" else len(data),
                )  # fmt: skip

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _record(self, method: str, path: str, headers: object, status: int, n: int) -> None:
        rng = headers.get("Range") or ""  # type: ignore[attr-defined]
        sent = {k.lower(): v for k, v in headers.items()}  # type: ignore[attr-defined]
        with self.lock:
            self.requests.append(Request(method, path, rng, status, n, sent))

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.throttle = 0
            self.throttle_puts = 0
            self.refuse_checksums = True
        self.hold.clear()
        self.held.clear()
        self.release.set()
        self.release = threading.Event()

    def fetched(self) -> int:
        """Response body bytes of every GET so far."""
        with self.lock:
            return sum(r.body_bytes for r in self.requests if r.method == "GET")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
