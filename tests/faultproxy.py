"""A fault-injecting HTTPS proxy between kstream and kube-apiserver, on loopback.

It terminates TLS with a certificate issued by the control plane's own CA (so
kstream keeps verifying), forwards each request to the real kube-apiserver over
TLS (the client's Authorization header passes through), and re-chunks the
response so it can cut, stall or rewrite it on the way back:

    with FaultProxy(cp) as px:
        px.add(Fault("cut", match="/configmaps", times=3, after_bytes=5000))
        kstream("dump", "-o", out, kubeconfig=px.kubeconfig(tmp / "kc"))
        assert px.injected["cut"] == 3

Every wait is bounded; every connection is closed after one request (the
response says `Connection: close`); the proxy listens on 127.0.0.1 only.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.controlplane import ControlPlane

APF_BODY = b"Too many requests, please try again later.\n"
END_MARKER = b"k8s.io/initial-events-end"

# What a fault does to a matching request:
#   status       answer `status` with `body`/`headers` instead of forwarding
#   cut          forward, then close the socket after `after_bytes` of the body
#                (mid-chunk, no terminating chunk)
#   stall        forward `after_bytes` of the body, then send nothing more
#                (until the client goes away or `stall_for` seconds pass)
#   drop_marker  forward the stream without the end-of-initial-events bookmark
#                (and hold the stream open, as a server would)
#   error_event  forward `after_lines` event lines, then an ERROR event with a
#                Status (`event_code`: 410 Expired by default), then end the stream cleanly
#   slow         forward, sleeping `delay` seconds between body chunks of
#                `chunk` bytes
#   gzip         forward with `Content-Encoding: gzip`, each event line its own gzip
#                member in a chunk of its own (as kube-apiserver 1.37 answers a
#                watch that accepts gzip, WatchListCompression); with `after_lines`,
#                only the first half of the member after that many events is sent,
#                then the body ends cleanly (a gzip stream cut mid-member)
ACTIONS = ("status", "cut", "stall", "drop_marker", "error_event", "slow", "gzip")


@dataclass
class Fault:
    action: str
    match: str | Callable[[str, str, dict[str, list[str]]], bool] = ""
    times: int = 1  # how many requests it applies to (-1: all)
    skip: int = 0  # let this many matching requests pass untouched first
    status: int = 503
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after_bytes: int = 0
    after_lines: int = 0
    event_code: int = 410  # error_event: 410 Expired, or e.g. 500 (etcd without progress notify)
    stall_for: float = 120.0
    delay: float = 0.05
    chunk: int = 4096
    watch_only: bool | None = None  # True: only watch requests; False: only non-watch

    def matches(self, method: str, path: str, query: dict[str, list[str]]) -> bool:
        is_watch = query.get("watch", [""])[0] in ("1", "true")
        if self.watch_only is True and not is_watch:
            return False
        if self.watch_only is False and is_watch:
            return False
        if callable(self.match):
            return self.match(method, path, query)
        return self.match in path


@dataclass
class Record:
    """One request as the proxy saw it."""

    t: float
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(default_factory=dict)  # the request's, names lower-cased
    action: str = ""  # the fault applied, "" when forwarded untouched
    status: int = 0
    body_bytes: int = 0
    active: bool = True  # still sending
    marker: bool = False  # the end-of-initial-events marker went through

    @property
    def watch(self) -> bool:
        return self.query.get("watch", [""])[0] in ("1", "true")


def make_server_cert(cp: ControlPlane, d: Path) -> tuple[Path, Path]:
    """A serving certificate for 127.0.0.1 signed by the control plane's CA."""
    d.mkdir(parents=True, exist_ok=True)
    key, csr, crt, ext = d / "proxy.key", d / "proxy.csr", d / "proxy.crt", d / "proxy.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    run = [
        ["openssl", "genrsa", "-out", str(key), "2048"],
        ["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=kstream-fault-proxy", "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(cp.ca_file), "-CAkey",
         str(cp.certs / "ca.key"), "-CAcreateserial", "-CAserial", str(d / "ca.srl"),
         "-days", "2", "-extfile", str(ext), "-out", str(crt)],
    ]  # fmt: skip
    for cmd in run:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return crt, key


class FaultProxy:
    def __init__(
        self, cp: ControlPlane, workdir: Path, cert: tuple[Path, Path] | None = None
    ) -> None:
        self.cp = cp
        self.workdir = workdir
        u = urlparse(cp.url)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 443)
        self.cert = cert or make_server_cert(cp, workdir / "proxy-certs")
        self.faults: list[Fault] = []
        self._seen: Counter[int] = Counter()  # matching requests per fault (by id)
        self._applied: Counter[int] = Counter()
        self.injected: Counter[str] = Counter()
        self.log: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock: socket.socket | None = None
        self._upstreams: set[http.client.HTTPSConnection] = set()
        self.port = 0

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        self._server_ctx = ctx
        self._client_ctx = self.cp.ssl_context()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            ups = list(self._upstreams)
        for up in ups:  # wake threads blocked reading an open watch
            try:
                if up.sock is not None:
                    up.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(5)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path, token: str | None = None, **cluster_extra: Any) -> Path:
        """A kubeconfig that reaches the server through this proxy (admin token
        unless another is given)."""
        import base64

        cluster: dict[str, Any] = {
            "server": self.url,
            "certificate-authority-data": base64.b64encode(self.cp.ca_file.read_bytes()).decode(),
        }
        cluster.update(cluster_extra)
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "faults", "cluster": cluster}],
            "users": [{"name": "faults", "user": {"token": token or self.cp.admin_token}}],
            "contexts": [{"name": "faults", "context": {"cluster": "faults", "user": "faults"}}],
            "current-context": "faults",
        }
        path.write_text(json.dumps(cfg))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------ faults
    def add(self, fault: Fault) -> Fault:
        assert fault.action in ACTIONS, fault.action
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _pick(self, method: str, path: str, query: dict[str, list[str]]) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if not f.matches(method, path, query):
                    continue
                k = id(f)
                self._seen[k] += 1
                if self._seen[k] <= f.skip:
                    continue
                if f.times >= 0 and self._applied[k] >= f.times:
                    continue
                self._applied[k] += 1
                self.injected[f.action] += 1
                return f
        return None

    def requests(self, pred: Callable[[Record], bool] = lambda r: True) -> list[Record]:
        with self._lock:
            return [r for r in self.log if pred(r)]

    def wait_for(self, pred: Callable[[Record], bool], timeout: float = 60) -> Record:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests(pred)
            if found:
                return found[0]
            time.sleep(0.05)
        raise TimeoutError("the proxy saw no such request")

    # ------------------------------------------------------------ serving
    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(30)
        try:
            conn = self._server_ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        try:
            self._one(conn)
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _one(self, conn: ssl.SSLSocket) -> None:
        rf = conn.makefile("rb")
        line = rf.readline(65536)
        if not line:
            return
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        for _ in range(200):
            h = rf.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip()] = v.strip()
        body = b""
        n = int(headers.get("Content-Length", "0") or 0)
        if n:
            body = rf.read(n)
        u = urlparse(target)
        query = parse_qs(u.query, keep_blank_values=True)
        rec = Record(
            time.monotonic(), method, u.path, query, {k.lower(): v for k, v in headers.items()}
        )
        with self._lock:
            self.log.append(rec)
        fault = self._pick(method, u.path, query)
        rec.action = fault.action if fault else ""
        try:
            if fault is not None and fault.action == "status":
                self._answer(conn, rec, fault.status, fault.headers, fault.body)
                return
            self._forward(conn, rec, method, target, headers, body, fault)
        finally:
            rec.active = False

    def _answer(
        self, conn: ssl.SSLSocket, rec: Record, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        rec.status = status
        reason = http.client.responses.get(status, "Error")
        hs = {
            "Content-Type": "text/plain; charset=utf-8",
            **headers,
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in hs.items())
            + "\r\n"
        )
        conn.sendall(head.encode("latin-1") + body)

    def _forward(
        self,
        conn: ssl.SSLSocket,
        rec: Record,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        fault: Fault | None,
    ) -> None:
        up = http.client.HTTPSConnection(*self.upstream, context=self._client_ctx, timeout=60)
        with self._lock:
            self._upstreams.add(up)
        try:
            fwd = {
                k: v
                for k, v in headers.items()
                if k.lower() not in ("host", "connection", "accept-encoding", "content-length")
            }
            fwd["Accept-Encoding"] = "identity"
            try:
                up.request(method, target, body=body or None, headers=fwd)
                resp = up.getresponse()
            except (OSError, http.client.HTTPException):
                self._answer(conn, rec, 502, {}, b"upstream unreachable\n")
                return
            rec.status = resp.status
            hs = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in ("transfer-encoding", "content-length", "connection")
            ]
            hs += [("Transfer-Encoding", "chunked"), ("Connection", "close")]
            if fault is not None and fault.action == "gzip" and resp.status < 300:
                hs.append(("Content-Encoding", "gzip"))
            head = (
                f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in hs)
                + "\r\n"
            )
            conn.sendall(head.encode("latin-1"))
            self._pump(conn, rec, resp, fault if resp.status < 300 else None)
        finally:
            with self._lock:
                self._upstreams.discard(up)
            up.close()

    def _pump(
        self, conn: ssl.SSLSocket, rec: Record, resp: http.client.HTTPResponse, fault: Fault | None
    ) -> None:
        action = fault.action if fault else ""
        sent = 0
        lines = 0
        pending = b""  # for line-based actions: an incomplete line held back

        tail = b""  # the end of what was sent, for a marker split between reads

        def send(data: bytes) -> None:
            nonlocal sent, tail
            if data:
                conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                sent += len(data)
                if END_MARKER in tail + data:
                    rec.marker = True
                tail = (tail + data)[-len(END_MARKER) :]
                rec.body_bytes = sent

        def hold(seconds: float) -> None:
            # send nothing more; give up when the client closes or time runs out
            conn.settimeout(0.2)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not self._stop.is_set():
                try:
                    if conn.recv(1) == b"":
                        return
                except (TimeoutError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    return

        read = fault.chunk if fault and action == "slow" else 65536
        while not self._stop.is_set():
            data = resp.read1(read)
            if not data:
                break
            if action == "cut" and fault and sent + len(data) >= fault.after_bytes:
                part = data[: max(0, fault.after_bytes - sent)]
                if part:
                    # a chunk that announces more than it carries: cut mid-chunk
                    conn.sendall(b"%x\r\n%s" % (len(data), part))
                    rec.body_bytes = sent + len(part)
                conn.shutdown(socket.SHUT_RDWR)
                return
            if action == "stall" and fault and sent + len(data) >= fault.after_bytes:
                send(data[: max(0, fault.after_bytes - sent)])
                hold(fault.stall_for)
                return
            if action == "gzip" and fault:
                pending += data
                *whole, pending = pending.split(b"\n")
                for ln in whole:
                    member = gzip.compress(ln + b"\n", mtime=0)
                    if fault.after_lines and lines >= fault.after_lines:
                        send(member[: len(member) // 2])
                        conn.sendall(b"0\r\n\r\n")
                        return
                    send(member)
                    rec.marker = rec.marker or END_MARKER in ln
                    lines += 1
                continue
            if action in ("drop_marker", "error_event") and fault:
                pending += data
                *whole, pending = pending.split(b"\n")
                out = []
                for ln in whole:
                    if action == "drop_marker" and END_MARKER in ln:
                        send(b"".join(x + b"\n" for x in out))
                        hold(fault.stall_for)
                        return
                    if action == "error_event" and lines >= fault.after_lines:
                        send(b"".join(x + b"\n" for x in out))
                        send(_error_event(fault.event_code))
                        conn.sendall(b"0\r\n\r\n")
                        return
                    out.append(ln)
                    lines += 1
                send(b"".join(x + b"\n" for x in out))
                continue
            send(data)
            if action == "slow" and fault:
                time.sleep(fault.delay)
        if action == "gzip" and pending:
            pending = gzip.compress(pending, mtime=0)
        send(pending)
        conn.sendall(b"0\r\n\r\n")


def _error_event(code: int = 410) -> bytes:
    if code == 410:
        message, reason = "too old resource version: 1 (2)", "Expired"
    else:
        message, reason = "etcdserver: no progress notification support", "InternalError"
    status = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }  # fmt: skip
    return json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")).encode() + b"\n"


def expired_list_status() -> bytes:
    """The server's answer to a LIST with an expired continue token."""
    return json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {"continue": "bm90LWNvbnNpc3RlbnQ="},
        "status": "Failure", "reason": "Expired", "code": 410,
        "message": "The provided continue parameter is too old to display a consistent list result. "
                   "You can start a new list without the continue parameter, or use the continue "
                   "token in this response to retrieve the remainder of the results.",
    }).encode()  # fmt: skip


def random_offsets(n: int, size: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    return [rnd.randrange(1, max(2, size)) for _ in range(n)]


def tally(
    test: str,
    faults: int = 0,
    runs: int = 0,
    objects: int = 0,
    lost: int = 0,
    duplicates: int = 0,
    bad_inputs: int = 0,
) -> None:
    """Append one test's figures to $KSTREAM_RELIABILITY_LOG (JSON lines), when
    set; docs/reliability.md sums them."""
    import os

    path = os.environ.get("KSTREAM_RELIABILITY_LOG")
    if not path:
        return
    rec = {"test": test, "faults": faults, "runs": runs, "objects": objects, "lost": lost,
           "duplicates": duplicates, "bad_inputs": bad_inputs}  # fmt: skip
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
