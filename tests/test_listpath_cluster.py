"""The LIST path's fast item cutter on kube-apiserver's own pages: items whose
nested lists hold objects that start like items do (a StatefulSet's
volumeClaimTemplates: `},{"metadata":`; custom resources holding
`{"apiVersion":..,"kind":..}` objects) come out byte for byte as the
watch-list path writes them, page after page, and the fast path does cut them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kstream.cluster.client import Client, ConnectSettings, read_chunks
from kstream.cluster.stream import Reader, StreamOptions, Unit
from kstream.listpage import PageReader
from kstream.resources import Resource
from tests.conftest import Cluster
from tests.fakes import FakeSink
from tests.seed import CRD_GROUP, namespace

pytestmark = pytest.mark.cluster

NS = "listpath-t"
V = frozenset({"list", "watch"})
STS = Resource("apps", "v1", "statefulsets", "StatefulSet", True, V, "statefulset", ("sts",))
WIDGETS = Resource(CRD_GROUP, "v1", "widgets", "Widget", True, V, "widget", ("wd",))
API = f"{CRD_GROUP}/v1"
TRICKY = [
    '},{"metadata":{"name":"x"}}',
    '},{"apiVersion":"' + API + '","kind":"Widget","metadata":{}}',
    "C:\\dir\\",
    '\\"},{"metadata":',
    "é ☃ <&>",
]


def statefulset(k: int) -> tuple[str, dict[str, Any]]:
    name = f"sts-{k}"
    claims = [
        {
            "metadata": {"name": f"data{j}", "annotations": {"note": TRICKY[(k + j) % 5]}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{j + 1}Gi"}},
            },
        }
        for j in range(3)
    ]
    return f"/apis/apps/v1/namespaces/{NS}/statefulsets", {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "annotations": {"t": TRICKY[k % 5]}},
        "spec": {
            "serviceName": name,
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
            },
            "volumeClaimTemplates": claims,
        },
    }


def widget(k: int) -> tuple[str, dict[str, Any]]:
    lookalikes = [
        {"apiVersion": API, "kind": "Widget", "metadata": {"name": f"inner-{j}"}} for j in range(3)
    ]
    return f"/apis/{API}/namespaces/{NS}/widgets", {
        "apiVersion": API,
        "kind": "Widget",
        "metadata": {"name": f"w-{k}", "namespace": NS},
        "spec": {"refs": lookalikes, "note": TRICKY[k % 5], "n": k, "ratio": 0.5 + k},
    }


@pytest.fixture(scope="module")
def seeded(cluster: Cluster) -> Iterator[Cluster]:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    objs = [statefulset(k) for k in range(7)] + [widget(k) for k in range(9)]
    for path, obj in objs:
        api.create(path, obj, exist_ok=True)
    try:
        yield cluster
    finally:
        for path, obj in objs:
            api.call("DELETE", f"{path}/{obj['metadata']['name']}")
        api.call("DELETE", f"/api/v1/namespaces/{NS}")


def read(client: Client, r: Resource, method: str) -> list[bytes]:
    reader = Reader(client, StreamOptions(method=method, page_size=4), threading.Event())  # type: ignore[arg-type]
    unit, sink = Unit(r, NS, 0), FakeSink()
    reader.read(unit, sink, lambda u: None)
    assert unit.status == "complete", unit.error
    assert unit.method == method
    return sink.objects


@pytest.mark.compat
@pytest.mark.parametrize("r", [STS, WIDGETS], ids=["statefulsets", "widgets"])
def test_list_pages_give_the_watch_list_bytes(seeded: Cluster, r: Resource) -> None:
    client = Client(ConnectSettings(kubeconfig=str(seeded.kubeconfig)))
    listed = read(client, r, "list")
    watched = read(client, r, "watch-list")
    assert len(listed) == (7 if r is STS else 9)

    def name(o: bytes) -> str:
        return str(json.loads(o)["metadata"]["name"])

    assert sorted(listed, key=name) == sorted(watched, key=name)


@pytest.mark.compat
@pytest.mark.parametrize("r", [STS, WIDGETS], ids=["statefulsets", "widgets"])
def test_the_fast_path_cuts_the_servers_items(seeded: Cluster, r: Resource) -> None:
    client = Client(ConnectSettings(kubeconfig=str(seeded.kubeconfig)))
    resp = client.open(r.path(NS), [("limit", "500")])
    page = PageReader()
    items = []
    for chunk in read_chunks(resp, client.host):
        items += page.feed(chunk)
    items += page.close()
    assert len(items) == (7 if r is STS else 9)
    # the first item teaches the layout, the fast path cuts all the others
    assert page.fast_items == len(items) - 1
