"""kstream.cluster.httppool on loopback servers of this test (no cluster): bodies
streamed and decoded, keep-alive connections reused, a connection the server
dropped replaced, connect failures told from broken connections."""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from kstream.cluster.client import translate
from kstream.cluster.httppool import ConnectFailed, Pool, _Decoder
from kstream.errors import ConnectionFailed, TransportError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ports: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        Handler.ports.append(self.client_address[1])
        if self.path.startswith("/prefix/gzip"):
            body = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}\n')
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
        elif self.path.startswith("/prefix/close"):
            body = b"bye"
            self.send_response(200)
            self.send_header("Connection", "close")
        else:
            body = f"{self.path} {self.headers.get_all('X-Many')}".encode()
            self.send_response(200 if self.path != "/prefix/missing" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Handler.ports.clear()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/prefix"
    finally:
        srv.shutdown()
        srv.server_close()


def body(pool: Pool, target: str, headers: list[tuple[str, str]] | None = None) -> bytes:
    r = pool.get(target, headers or [], 5.0, 5.0)
    data = b""
    while chunk := r.read1(65536):
        data += chunk
    r.release_conn()
    return data


def test_prefix_headers_and_keep_alive(server: str) -> None:
    pool = Pool(server, None, maxsize=2)
    many = [("X-Many", "a"), ("X-Many", "b")]
    assert body(pool, "/api?x=1", many) == b"/prefix/api?x=1 ['a', 'b']"
    assert body(pool, "/apis") == b"/prefix/apis None"
    assert len(set(Handler.ports)) == 1  # the second request reused the connection
    r = pool.get("/missing", [], 5.0, 5.0)
    assert r.status == 404 and r.headers["content-length"] == r.headers["Content-Length"]
    r.release_conn()  # body unread: closed, not pooled
    assert body(pool, "/apis") == b"/prefix/apis None"
    assert len(set(Handler.ports)) == 2


def test_connection_close_and_dropped_connection(server: str) -> None:
    pool = Pool(server, None)
    assert body(pool, "/close") == b"bye"
    assert body(pool, "/one") == b"/prefix/one None"
    assert len(set(Handler.ports)) == 2  # "Connection: close" was not reused
    (idle,) = pool._idle
    assert idle.sock is not None
    idle.sock.shutdown(socket.SHUT_RD)  # as if the server had closed it: readable at EOF
    assert body(pool, "/two") == b"/prefix/two None"
    assert len(set(Handler.ports)) == 3


def test_gzip_members_decoded(server: str) -> None:
    pool = Pool(server, None)
    assert body(pool, "/gzip") == b'{"a":1}\n{"b":2}\n'
    r = pool.get("/gzip", [], 5.0, 5.0)
    assert r.read(4) + r.read() == b'{"a":1}\n{"b":2}\n'
    r.release_conn()


def test_decoder_pieces_deflate_and_trailing_bytes() -> None:
    data = gzip.compress(b"x" * 1000) + gzip.compress(b"y" * 10)
    d = _Decoder("gzip")
    assert (
        b"".join(d.decode(data[i : i + 7]) for i in range(0, len(data), 7))
        == b"x" * 1000 + b"y" * 10
    )
    d = _Decoder("gzip")
    assert d.decode(gzip.compress(b"z") + b"garbage") == b"z"
    with pytest.raises(zlib.error):
        _Decoder("gzip").decode(b"not gzip")
    assert _Decoder("deflate").decode(zlib.compress(b"w" * 50)) == b"w" * 50
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert _Decoder("deflate").decode(raw.compress(b"v" * 50) + raw.flush()) == b"v" * 50


def test_refused_and_broken_are_told_apart() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    host = f"http://127.0.0.1:{port}"
    with pytest.raises(ConnectFailed) as e:
        Pool(host, None).get("/api", [], 5.0, 5.0)
    err = translate(e.value, host)
    assert isinstance(err, ConnectionFailed)
    assert str(err) == f"cannot connect to {host}: connection refused or unreachable"

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()  # no answer at all

    t = threading.Thread(target=hang_up)
    t.start()
    with pytest.raises(Exception) as e2:
        Pool(url, None).get("/api", [], 5.0, 5.0)
    t.join()
    listener.close()
    broke = translate(e2.value, url)
    assert isinstance(broke, TransportError) and not isinstance(broke, ConnectionFailed)
    assert str(broke) == f"connection to {url} broke: RemoteDisconnected"
