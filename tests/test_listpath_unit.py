"""The LIST path over real HTTP/1.1 (a loopback server that pages like
kube-apiserver: chunked, about one HTTP chunk per item): the pages of one
LIST share one connection, and the body is read in 64 KB reads. No cluster."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kstream.cluster.client import Client, ConnectSettings, read_chunks
from kstream.cluster.pager import _typed
from kstream.cluster.stream import Reader, StreamOptions, Unit
from kstream.listpage import BATCH, HAS_API_VERSION, HAS_KIND
from kstream.resources import Resource
from tests.fakes import FakeSink

V = frozenset({"list", "watch"})
CM = Resource("", "v1", "configmaps", "ConfigMap", True, V, "configmap", ("cm",))
ITEMS = [
    {"metadata": {"name": f"cm-{k:03d}", "namespace": "ns"}, "data": {"k": "v" * (k * 37 % 900)}}
    for k in range(23)
]


class Pages(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[tuple[str, int]]  # set on the class by the fixture

    def do_GET(self) -> None:
        if self.client_address not in self.connections:
            self.connections.append(self.client_address)
        q = parse_qs(urlsplit(self.path).query)
        if urlsplit(self.path).path == "/blob":
            self._send([b"x" * 100] * 1000)
            return
        limit = int(q["limit"][0])
        start = int(q.get("continue", ["0"])[0])
        page = ITEMS[start : start + limit]
        more = start + limit < len(ITEMS)
        md = {"resourceVersion": "9", **({"continue": str(start + limit)} if more else {})}
        head = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":'
        chunks = [head + json.dumps(md).encode() + b',"items":[']
        for k, it in enumerate(page):
            chunks.append((b"," if k else b"") + json.dumps(it, separators=(",", ":")).encode())
        chunks.append(b"]}")
        self._send(chunks)

    def _send(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for c in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: Any) -> None:
        pass


def loopback_client(port: int, tmp_path: Path) -> Client:
    """kstream's own Client (its pool and open()) for the plain-HTTP server."""
    kc = tmp_path / "config"
    kc.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "loopback", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "loopback",
            }
        )
    )
    return Client(ConnectSettings(kubeconfig=str(kc)))


@pytest.fixture
def server() -> Iterator[tuple[int, list[tuple[str, int]]]]:
    connections: list[tuple[str, int]] = []
    handler = type("H", (Pages,), {"connections": connections})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], connections
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_pages_of_a_list_share_one_connection(
    server: tuple[int, list[tuple[str, int]]], tmp_path: Path
) -> None:
    port, connections = server
    client = loopback_client(port, tmp_path)
    reader = Reader(client, StreamOptions(method="list", page_size=5), threading.Event())
    unit, sink = Unit(CM, None, 0), FakeSink()
    reader.read(unit, sink, lambda u: None)
    assert unit.status == "complete" and unit.resource_version == "9"
    want = [{"kind": "ConfigMap", "apiVersion": "v1", **it} for it in ITEMS]
    assert [json.loads(o) for o in sink.objects] == want
    assert len(connections) == 1  # five pages; a connection each before


def test_read_chunks_fill_reads_whole_batches(
    server: tuple[int, list[tuple[str, int]]], tmp_path: Path
) -> None:
    port, _ = server
    t = loopback_client(port, tmp_path)
    sizes = [len(c) for c in read_chunks(t.open("/blob"), t.host, BATCH, fill=True)]
    assert sizes == [BATCH, 100_000 - BATCH]
    # without fill: as the chunks arrive (at most one HTTP chunk a read)
    sizes = [len(c) for c in read_chunks(t.open("/blob"), t.host, BATCH)]
    assert sum(sizes) == 100_000 and max(sizes) <= 100 * 2


@pytest.mark.parametrize(
    ("item", "flags", "want"),
    [
        (
            b'{"metadata":{"name":"a"}}',
            0,
            b'{"kind":"K","apiVersion":"v1","metadata":{"name":"a"}}',
        ),
        (b'{"kind":"K","metadata":{}}', HAS_KIND, b'{"apiVersion":"v1","kind":"K","metadata":{}}'),
        (b'{"apiVersion":"v1","a":1}', HAS_API_VERSION, b'{"kind":"K","apiVersion":"v1","a":1}'),
        (b"{}", 0, b'{"kind":"K","apiVersion":"v1"}'),
        (b"{ }", 0, b'{"kind":"K","apiVersion":"v1"}'),
        (b'{ \t"a": 1 }', 0, b'{"kind":"K","apiVersion":"v1","a": 1 }'),
        (b'{\n  "a": [1, 2]\n}', 0, b'{"kind":"K","apiVersion":"v1","a":[1,2]}'),
    ],
)
def test_typed_puts_kind_and_api_version_first(item: bytes, flags: int, want: bytes) -> None:
    heads = {
        0: b'{"kind":"K","apiVersion":"v1"',
        HAS_KIND: b'{"apiVersion":"v1"',
        HAS_API_VERSION: b'{"kind":"K"',
    }
    assert _typed(item, flags, heads, Unit(CM, None, 0)) == want
