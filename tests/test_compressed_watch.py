"""Compressed watch bodies (WatchListCompression, on by default in kube-apiserver
1.37): to a watch that accepts gzip, the server sends one gzip member per event.
kstream never asks for that (`Accept-Encoding: identity` on every request), and
a server that compresses anyway is decoded exactly, or refused, never read as a
stream cut short without a word."""

from __future__ import annotations

import gzip
import json
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, kstream
from tests.controlplane.versions import kube_minor
from tests.faultproxy import Fault, FaultProxy
from tests.seed import configmap, namespace

pytestmark = pytest.mark.cluster

NS = "gzip-watch"
N_CM = 60

WATCHLIST = (
    f"/api/v1/namespaces/{NS}/configmaps?watch=1&sendInitialEvents=true"
    "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=3"
)


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Iterator[Cluster]:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    api.create_many(configmap(NS, f"cm-{i:03d}", size=700) for i in range(N_CM))
    yield cluster


def is_watch_list(method: str, path: str, query: dict[str, list[str]]) -> bool:
    return (
        path.endswith(f"/namespaces/{NS}/configmaps")
        and query.get("sendInitialEvents", [""])[0] == "true"
    )


def dump(kc: Path, out: Path) -> tuple[int, str, bytes]:
    r = kstream("dump", "-n", NS, "-r", "configmaps", "-o", str(out), "-q", kubeconfig=kc)
    return r.code, r.err, out.read_bytes() if out.exists() else b""


def members(body: bytes) -> list[bytes]:
    """The gzip members of `body`, each decompressed on its own."""
    out = []
    while body:
        d = zlib.decompressobj(wbits=31)
        out.append(d.decompress(body))
        assert d.eof, "a gzip member cut short"
        body = d.unused_data
    return out


@pytest.mark.compat
def test_the_server_compresses_a_watch_that_accepts_gzip(objects: Cluster) -> None:
    """What kstream guards against, on the real server: from 1.37 a watch-list
    that accepts gzip comes back gzipped, in several gzip members (1.37.2 sent two
    for these 61 events: one per batch of events it flushes), each member whole
    event lines; asked for identity, it comes back plain."""
    cp = objects.cp

    def get(encoding: str) -> tuple[str, bytes]:
        req = urllib.request.Request(
            cp.url + WATCHLIST,
            headers={"Authorization": f"Bearer {cp.admin_token}", "Accept-Encoding": encoding},
        )
        with urllib.request.urlopen(req, context=cp.ssl_context(), timeout=60) as resp:
            return resp.headers.get("Content-Encoding", ""), resp.read()

    enc, body = get("identity")
    assert enc == ""
    plain = body.splitlines(keepends=True)
    assert len(plain) >= N_CM + 1
    enc, body = get("gzip")
    if kube_minor(cp.kube_version) < 37:  # no WatchListCompression: never compressed
        assert enc == "" and body.startswith(b'{"type":"ADDED"')
        return
    assert enc == "gzip"
    parts = members(body)
    assert all(m.endswith(b"\n") for m in parts)  # a member ends on a whole event
    events = b"".join(parts).splitlines(keepends=True)
    assert len(events) >= N_CM + 1
    # the same objects as the plain stream (bookmarks after the end marker may differ)
    added = [json.loads(e)["object"]["metadata"]["name"] for e in events[:N_CM]]
    assert added == [json.loads(e)["object"]["metadata"]["name"] for e in plain[:N_CM]]


def test_watch_requests_ask_for_identity(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every request kstream sends, watches first, says `Accept-Encoding: identity`."""
    code, err, _ = dump(proxy.kubeconfig(tmp_path / "kc"), tmp_path / "a.ndjson")
    assert code == 0, err
    watches = proxy.requests(lambda r: r.watch)
    assert watches, "no watch went through the proxy"
    assert all(r.headers.get("accept-encoding") == "identity" for r in proxy.requests())


def test_gzip_member_per_event_is_decoded_exactly(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A server that gzips the watch-list anyway, one member per event: kstream
    writes the very bytes of an uncompressed read."""
    code, err, want = dump(objects.kubeconfig, tmp_path / "direct.ndjson")
    assert code == 0, err
    assert len(want.splitlines()) == N_CM
    proxy.add(Fault("gzip", match=is_watch_list, times=-1))
    code, err, got = dump(proxy.kubeconfig(tmp_path / "kc"), tmp_path / "gz.ndjson")
    assert code == 0, err
    assert proxy.injected["gzip"] >= 1
    assert got == want


@pytest.mark.parametrize("times", [1, -1], ids=["once", "always"])
@pytest.mark.parametrize("after", [1, N_CM // 2, N_CM])
def test_gzip_cut_mid_member_is_never_a_silent_cut(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path, after: int, times: int
) -> None:
    """The gzip stream ends cleanly (HTTP-wise) inside a member, after `after`
    whole events (at N_CM: inside the end bookmark), once or on every watch-list:
    the stream has no end marker, so kstream starts it again (and after three
    such streams reads with LIST), and writes the very bytes of an uncompressed
    read; never fewer objects with exit 0."""
    code, err, want = dump(objects.kubeconfig, tmp_path / "direct.ndjson")
    assert code == 0, err
    proxy.add(Fault("gzip", match=is_watch_list, times=times, after_lines=after))
    code, err, got = dump(proxy.kubeconfig(tmp_path / "kc"), tmp_path / "cut.ndjson")
    assert code == 0, err
    assert got == want
    reads = [r for r in proxy.requests() if r.path.endswith(f"/namespaces/{NS}/configmaps")]
    cut = [r for r in reads if r.action == "gzip"]
    if times == 1:
        assert len(cut) == 1 and len(reads) == 2 and reads[1].watch
    else:  # every watch-list cut: LIST it is
        assert len(cut) >= 2 and not reads[-1].watch and reads[-1].action == ""


def test_gzip_helpers_agree() -> None:
    """The test's own decoder: two members, each a line."""
    body = gzip.compress(b'{"a":1}\n', mtime=0) + gzip.compress(b'{"b":2}\n', mtime=0)
    assert members(body) == [b'{"a":1}\n', b'{"b":2}\n']
