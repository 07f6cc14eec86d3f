"""kstream serve's HTTPS side: the sources named on the command line (`parse_sources`:
`SOURCE` or `NAME=SOURCE`, one kubeconfig context each), the throwaway TLS (`make_tls`,
the `openssl` command), the kubeconfig it writes, the request handler that turns HTTP
into `Api.handle()` calls (one `Api` per source, told apart by the path prefix of each
context's server URL), and the threading server (`make_server`), on loopback with a
bearer token.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kstream.dataclass import dataclass
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


# a context name given as NAME=SOURCE: what a shell, kubectl's --context and k9s's
# context list take without quoting (EKS-style ARNs with `/` are left to plain sources)
CONTEXT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._@:+-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True)
class Source:
    """One source to serve and the kubeconfig context it is served as."""

    context: str
    path: str
    named: bool  # given as NAME=SOURCE


def parse_sources(args: list[str]) -> list[Source]:
    """`SOURCE` (context `kstream-<name of the source>`, `context_name()`) or
    `NAME=SOURCE` (context NAME). An argument is NAME=SOURCE when the text before
    its first `=` has no `/`: a file whose name holds `=` is named `./a=b.zst`.
    A bad name, a context named twice or `-` given twice: UsageError (exit 2)."""
    out: list[Source] = []
    for arg in args:
        name, eq, path = arg.partition("=")
        if eq and "/" not in name:
            if not CONTEXT_NAME.fullmatch(name):
                what = f"context name {name!r}" if name else "an empty context name"
                raise UsageError(
                    f"{arg}: {what}: use letters, digits and . _ - @ : + (first and last a "
                    "letter or digit), as NAME=SOURCE; a file whose name holds '=': ./" + arg
                )
            if not path:
                raise UsageError(f"{arg}: no source after '=' (NAME=SOURCE)")
            out.append(Source(name, path, True))
        else:
            out.append(Source(context_name(arg), arg, False))
    seen: dict[str, Source] = {}
    for src in out:
        if src.context in seen:
            hint = "" if src.named and seen[src.context].named else "; name them: NAME=SOURCE"
            raise UsageError(
                f"context {src.context!r} named twice ({seen[src.context].path}, {src.path}){hint}"
            )
        seen[src.context] = src
    if sum(src.path == "-" for src in out) > 1:
        raise UsageError("- (stdin) can be served once only")
    return out


def kubeconfig(name: str, server: str, ca_pem: bytes, token: str) -> dict[str, Any]:
    return kubeconfig_of([(name, server)], ca_pem, token)


def kubeconfig_of(contexts: list[tuple[str, str]], ca_pem: bytes, token: str) -> dict[str, Any]:
    """A kubeconfig with a cluster, a user and a context per (name, server URL),
    all named after the context; the first is the current context."""
    ca = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": url, "certificate-authority-data": ca}}
            for n, url in contexts
        ],
        "users": [{"name": n, "user": {"token": token}} for n, _ in contexts],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n, _ in contexts],
        "current-context": contexts[0][0],
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
    api: Api  # the first source's: requests without a known path prefix go to it
    token: str
    routes: dict[str, Api]  # each context's path (`new_prefix()`) -> its source's Api

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
        api, path = self.route(u.path)
        req = Request(self.command, path, q, self.headers.get("Accept", ""), body)
        self._send(api.handle(req))

    def route(self, path: str) -> tuple[Api, str]:
        """The source a request is for (by its first path segment, the prefix of
        its context's server URL), and the path without that prefix."""
        head, _, rest = path[1:].partition("/")
        api = self.routes.get("/" + head)
        if api is None:
            return self.api, path
        return api, "/" + rest

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


def make_server(routes: dict[str, Api], token: str, tls: Tls, port: int) -> ThreadingHTTPServer:
    """One HTTPS listener for every source: `routes` maps each context's path
    prefix to its source's Api (the first one also answers requests without one)."""
    import ssl

    first = next(iter(routes.values()))
    handler = type("Handler", (_Handler,), {"api": first, "token": token, "routes": routes})
    try:
        server = _Server(("127.0.0.1", port), handler)
    except OSError as e:
        raise ServeError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    for api in routes.values():
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
