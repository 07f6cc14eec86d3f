"""kstream serve's HTTPS side: the throwaway TLS (`make_tls`, the `openssl` command), the
kubeconfig it writes, the request handler that turns HTTP into `Api.handle()` calls,
and the threading server (`make_server`), on loopback with a bearer token.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kstream.errors import ServeError, SnapshotError, UsageError
from kstream.serve.api import MAX_BODY, Api, ApiStatus, Request, Response


@dataclass
class Tls:
    ca_pem: bytes
    cert_file: str
    key_file: str


def make_tls(directory: str) -> Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost,
    made with the `openssl` command (ECDSA P-256, valid for 30 days)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServeError(
            "kstream serve needs the openssl command to make its throwaway certificate; install it"
        )
    d = Path(directory)
    (d / "ca.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"
    steps = [
        ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ca_key)],
        ["req", "-new", "-key", str(ca_key), "-subj", "/CN=kstream-serve-ca", "-out", str(d / "ca.csr")],
        ["x509", "-req", "-in", str(d / "ca.csr"), "-signkey", str(ca_key), "-days", "30",
         "-extfile", str(d / "ca.ext"), "-out", str(ca_crt)],
        ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
        ["req", "-new", "-key", str(key), "-subj", "/CN=kstream-serve", "-out", str(csr)],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "30", "-extfile", str(d / "server.ext"), "-out", str(crt)],
    ]  # fmt: skip
    for args in steps:
        p = subprocess.run([openssl, *args], capture_output=True, text=True)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["failed"])[-1]
            raise ServeError(f"openssl {args[0]} failed: {last}")
    return Tls(ca_crt.read_bytes(), str(crt), str(key))


def context_name(path: str) -> str:
    """The kubeconfig context of a served snapshot: its file or directory name
    (`JOURNAL/@T`: `JOURNAL@T`)."""
    p = path.rstrip("/")
    if "://" in p:
        p = p.split("://", 1)[1]
    base = os.path.basename(p) or "snapshot"
    if base.startswith("@"):
        base = os.path.basename(os.path.dirname(p)) + base
    if base == "-":
        base = "stdin"
    return f"kstream-{base}"


def kubeconfig(name: str, server: str, ca_pem: bytes, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: str, doc: dict[str, Any], force: bool) -> None:
    """The kubeconfig as JSON (valid YAML), readable by its owner only."""
    from kstream.errors import OutputError

    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise OutputError(f"{path}: exists (use --force to overwrite)") from None
    except OSError as e:
        raise OutputError(f"{path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "kstream-serve"
    sys_version = ""
    api: Api
    token: str
    prefix: str = ""  # the kubeconfig's path (`new_prefix()`), taken off each request's

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: no access log on stderr

    def _serve(self) -> None:
        auth = self.headers.get("Authorization", "")
        length = int(self.headers.get("Content-Length") or 0)
        body = b""
        if 0 < length <= MAX_BODY:
            body = self.rfile.read(length)  # read even if refused: the connection stays usable
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            s = ApiStatus(401, "Unauthorized", "Unauthorized")
            self._send(self.api.status(s))
            return
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        path = u.path
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            path = path[len(self.prefix) :] or "/"
        req = Request(self.command, path, q, self.headers.get("Accept", ""), body)
        self._send(self.api.handle(req))

    def _send(self, resp: Response) -> None:
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Cache-Control", "no-cache, private")
        if resp.chunks is None:
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in resp.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        except SnapshotError:
            self.close_connection = True  # cut the stream: the client sees it incomplete

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-handshake or mid-stream


def make_server(api: Api, token: str, tls: Tls, port: int, prefix: str = "") -> ThreadingHTTPServer:
    import ssl

    handler = type("Handler", (_Handler,), {"api": api, "token": token, "prefix": prefix})
    try:
        server = _Server(("127.0.0.1", port), handler)
    except OSError as e:
        raise ServeError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    api.server_address = f"127.0.0.1:{server.server_address[1]}"
    return server


def new_prefix() -> str:
    """A path of its own for each run, in the kubeconfig's server URL: kubectl
    keeps discovery on disk for 6 hours by server URL (~/.kube/cache/discovery/
    HOST_PORT...), and would show another snapshot served earlier on the same
    port (resources it does not hold, a CRD's group of the other snapshot)."""
    import secrets

    return "/kstream-" + secrets.token_hex(6)


def new_token() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a port (0-65535; 0: any free port)")
