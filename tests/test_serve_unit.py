"""kstream serve's core without a cluster or HTTP: Api.handle() on small
snapshots (routing, discovery, LIST pages and selectors, watch-list, Status
answers), the LRU of indexes, Table cells, the kubeconfig's names."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from kstream.cluster.discovery import parse_aggregated, preferred_resources
from kstream.resources import Resource
from kstream.serve import api as s
from kstream.serve import catalog, server
from kstream.serve.table import human_duration, table
from kstream.store.snapshot import open_snapshot
from kstream.transform import TransformOptions, make_transform, redact_secret


def cm(ns: str, name: str, **labels: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": labels,
        },
        "data": {"a": "1"},
    }


def write(path: Path, objs: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs))
    return str(path)


@pytest.fixture
def api(tmp_path: Path) -> s.Api:
    objs = [cm("b", f"x{i}", tier="ab"[i % 2]) for i in range(9, -1, -1)]  # not in order
    objs += [cm("a", "y")]
    objs.append({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a"}})
    objs.append(
        {
            "kind": "Widget",
            "apiVersion": "demo.kstream.dev/v1",
            "metadata": {"name": "w", "namespace": "a"},
        }
    )
    snap = open_snapshot(write(tmp_path / "s.ndjson", objs))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return s.Api(catalog.open_catalog(snap, str(tmp)), "kstream-s", bookmark_interval=0.01)


def get(
    api: s.Api, path: str, accept: str = "application/json", method: str = "GET"
) -> tuple[int, Any]:
    from urllib.parse import parse_qsl, urlsplit

    u = urlsplit(path)
    resp = api.handle(
        s.Request(method, u.path, dict(parse_qsl(u.query, keep_blank_values=True)), accept)
    )
    body = resp.body if resp.chunks is None else b"".join(resp.chunks)
    if resp.chunks is not None and b'"type":' in body[:20]:
        return resp.code, [json.loads(x) for x in body.splitlines()]
    return resp.code, json.loads(body)


def names(doc: dict[str, Any]) -> list[str]:
    return [f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in doc["items"]]


def test_list_is_in_namespace_name_order_and_pages_follow(api: s.Api) -> None:
    code, doc = get(api, "/api/v1/configmaps")
    assert code == 200 and doc["kind"] == "ConfigMapList"
    want = ["a/y"] + [f"b/x{i}" for i in range(10)]
    assert names(doc) == want
    got, token, pages = [], "", 0
    while True:
        code, page = get(api, f"/api/v1/configmaps?limit=4&continue={token}")
        pages += 1
        got += names(page)
        token = page["metadata"].get("continue", "")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == len(want) - len(got)
    assert got == want and pages == 3


def test_namespace_label_and_field_selectors(api: s.Api) -> None:
    _, doc = get(api, "/api/v1/namespaces/b/configmaps?labelSelector=tier%3Db")
    assert names(doc) == [f"b/x{i}" for i in range(1, 10, 2)]
    _, doc = get(api, "/api/v1/configmaps?fieldSelector=metadata.name%3Dx3")
    assert names(doc) == ["b/x3"]
    _, doc = get(api, "/api/v1/configmaps?fieldSelector=metadata.namespace!%3Db")
    assert names(doc) == ["a/y"]
    # a selector across pages: each page holds at most `limit` matches
    got, token = [], ""
    while True:
        _, page = get(
            api, f"/api/v1/namespaces/b/configmaps?labelSelector=tier%3Da&limit=2&continue={token}"
        )
        assert len(page["items"]) <= 2 and "remainingItemCount" not in page["metadata"]
        got += names(page)
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert got == [f"b/x{i}" for i in range(0, 10, 2)]


def test_field_selectors_on_absent_fields_use_the_servers_zero_values(tmp_path: Path) -> None:
    """The real server's field sets hold Go zero values ("false", "0") for fields
    the JSON leaves out, and jobs' status.successful is the JSON's status.succeeded."""

    def obj(api_version: str, kind: str, name: str, **rest: Any) -> dict[str, Any]:
        md = {"name": name, **({} if kind == "Node" else {"namespace": "a"})}
        return {"apiVersion": api_version, "kind": kind, "metadata": md, **rest}

    objs = [
        obj("v1", "Node", "n1"),
        obj("v1", "Node", "n2", spec={"unschedulable": True}),
        obj("v1", "Pod", "p1", spec={}),
        obj("v1", "Pod", "p2", spec={"hostNetwork": True}),
        obj("batch/v1", "Job", "j0", status={}),
        obj("batch/v1", "Job", "j2", status={"succeeded": 2}),
        obj("apps/v1", "ReplicaSet", "rs", status={"replicas": 1}),
    ]
    snap = open_snapshot(write(tmp_path / "s.ndjson", objs))
    (tmp_path / "tmp").mkdir()
    api = s.Api(
        catalog.open_catalog(snap, str(tmp_path / "tmp")), "kstream-s", bookmark_interval=0.01
    )
    for path, want in [
        ("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse", ["/n1"]),
        ("/api/v1/nodes?fieldSelector=spec.unschedulable!%3Dfalse", ["/n2"]),
        ("/api/v1/pods?fieldSelector=spec.hostNetwork%3Dfalse", ["a/p1"]),
        ("/apis/batch/v1/jobs?fieldSelector=status.successful%3D0", ["a/j0"]),
        ("/apis/batch/v1/jobs?fieldSelector=status.successful%3D2", ["a/j2"]),
    ]:
        code, doc = get(api, path)
        assert (code, names(doc)) == (200, want), path
    # apps/v1 replicasets have no field label but metadata.*: the server's 400
    code, doc = get(api, "/apis/apps/v1/replicasets?fieldSelector=status.replicas%3D1")
    assert code == 400, doc


def test_field_selectors_of_services_and_events_k8s_io(tmp_path: Path) -> None:
    """The field labels the server supports for services (spec.type,
    spec.clusterIP) and events.k8s.io events (regarding.*, reason, type...)."""

    def svc(name: str, type_: str) -> dict[str, Any]:
        md = {"name": name, "namespace": "a"}
        return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": {"type": type_}}

    def event(name: str, kind: str, reason: str) -> dict[str, Any]:
        return {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "a"},
            "regarding": {"kind": kind, "name": "x"},
            "reason": reason,
            "reportingController": "kubelet",
            "type": "Normal",
        }

    objs = [svc("s1", "ClusterIP"), svc("s2", "LoadBalancer")]
    objs += [event("e1", "Pod", "Pulled"), event("e2", "Node", "Ready")]
    snap = open_snapshot(write(tmp_path / "s.ndjson", objs))
    (tmp_path / "tmp").mkdir()
    api = s.Api(
        catalog.open_catalog(snap, str(tmp_path / "tmp")), "kstream-s", bookmark_interval=0.01
    )
    ev = "/apis/events.k8s.io/v1/events?fieldSelector="
    for path, want in [
        ("/api/v1/services?fieldSelector=spec.type%3DLoadBalancer", ["a/s2"]),
        (ev + "regarding.kind%3DPod", ["a/e1"]),
        (ev + "reason%3DReady,type%3DNormal,reportingController%3Dkubelet", ["a/e2"]),
    ]:
        code, doc = get(api, path)
        assert (code, names(doc)) == (200, want), (path, doc)


def test_status_answers(api: s.Api) -> None:
    code, doc = get(api, "/api/v1/namespaces/b/configmaps/nope")
    assert (code, doc["reason"], doc["message"]) == (404, "NotFound", 'configmaps "nope" not found')
    code, doc = get(api, "/apis/demo.kstream.dev/v1/namespaces/a/widgets/nope")
    assert doc["message"] == 'widgets.demo.kstream.dev "nope" not found'
    code, doc = get(api, "/api/v1/pods")
    assert (code, doc["kind"], doc["reason"]) == (404, "Status", "NotFound")
    code, doc = get(api, "/api/v1/configmaps?fieldSelector=status.phase%3DX")
    assert (code, doc["message"]) == (400, "field label not supported: status.phase")
    code, doc = get(api, "/api/v1/configmaps?labelSelector=a%20in")
    assert code == 400
    code, doc = get(api, "/api/v1/configmaps?limit=1&continue=garbage")
    assert code == 400
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        code, doc = get(api, "/api/v1/namespaces/b/configmaps/x1", method=method)
        assert (code, doc["reason"]) == (405, "MethodNotAllowed")
        assert "read-only snapshot" in doc["message"]


def test_access_review(api: s.Api) -> None:
    def review(verb: str) -> dict[str, Any]:
        spec = {"resourceAttributes": {"verb": verb, "resource": "configmaps"}}
        body = json.dumps({"kind": "SelfSubjectAccessReview", "spec": spec}).encode()
        resp = api.handle(s.Request("POST", s.SSAR_PATH, {}, "application/json", body))
        assert resp.code == 201
        return json.loads(resp.body)["status"]

    assert review("list") == {"allowed": True}
    assert review("delete")["allowed"] is False
    # the protobuf kubectl sends: runtime.Unknown{raw: SSAR{spec: {resourceAttributes: {verb}}}}
    attrs = b"\x12\x04list"
    spec = b"\x0a" + bytes([len(attrs)]) + attrs
    ssar = b"\x12" + bytes([len(spec)]) + spec
    body = s.PROTOBUF_MAGIC + b"\x12" + bytes([len(ssar)]) + ssar
    resp = api.handle(s.Request("POST", s.SSAR_PATH, {}, "application/json", body))
    assert json.loads(resp.body)["status"] == {"allowed": True}
    assert s._review_attrs_pb(body) == {"verb": "list"}


def test_get_one_object_is_the_snapshot_line(api: s.Api, tmp_path: Path) -> None:
    resp = api.handle(s.Request("GET", "/api/v1/namespaces/b/configmaps/x4", {}))
    assert json.loads(resp.body) == cm("b", "x4", tier="a")
    code, doc = get(api, "/api/v1/namespaces/a")
    assert (code, doc["kind"]) == (200, "Namespace")


def test_discovery_reads_back_with_kstreams_own_parser(api: s.Api) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    resp = api.handle(s.Request("GET", "/api", {}, accept))
    assert resp.content_type == s.DISCOVERY_V2
    groups = parse_aggregated(json.loads(resp.body), [])
    groups += parse_aggregated(
        json.loads(api.handle(s.Request("GET", "/apis", {}, accept)).body), []
    )
    found, _ = preferred_resources(groups)
    assert {(r.group, r.resource, r.kind, r.namespaced) for r in found} == {
        ("", "configmaps", "ConfigMap", True),
        ("", "namespaces", "Namespace", False),
        ("demo.kstream.dev", "widgets", "Widget", True),
    }
    cms = next(r for r in found if r.resource == "configmaps")
    assert cms.short_names == ("cm",) and cms.verbs == frozenset({"get", "list", "watch"})
    _, legacy = get(api, "/apis")
    assert [g["name"] for g in legacy["groups"]] == ["demo.kstream.dev"]
    _, rl = get(api, "/apis/demo.kstream.dev/v1")
    assert [r["name"] for r in rl["resources"]] == ["widgets"]


def test_watch_list(api: s.Api) -> None:
    q = "watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
    code, events = get(api, f"/api/v1/namespaces/b/configmaps?{q}&timeoutSeconds=1")
    assert code == 200
    assert [e["type"] for e in events[:10]] == ["ADDED"] * 10
    assert [e["object"]["metadata"]["name"] for e in events[:10]] == [f"x{i}" for i in range(10)]
    assert events[10]["type"] == "BOOKMARK"
    assert events[10]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert events[11:] and {e["type"] for e in events[11:]} == {"BOOKMARK"}
    # sendInitialEvents needs resourceVersionMatch=NotOlderThan, as on the server
    code, _doc = get(api, "/api/v1/configmaps?watch=1&sendInitialEvents=true")
    assert code == 422
    # a watch from a resourceVersion: no objects, only bookmarks
    _, events = get(
        api,
        "/api/v1/configmaps?watch=1&resourceVersion=7&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    assert events and {e["type"] for e in events} == {"BOOKMARK"}


def test_watch_from_resource_version_0_sends_the_objects_first(api: s.Api) -> None:
    """docs/serve.md: from resourceVersion empty or 0, ADDED events first, as
    the server does (then bookmarks only, none of them the end bookmark)."""
    for rv in ("", "0"):
        _, events = get(
            api,
            f"/api/v1/namespaces/b/configmaps?watch=1&resourceVersion={rv}"
            "&allowWatchBookmarks=true&timeoutSeconds=1",
        )
        assert [e["type"] for e in events[:10]] == ["ADDED"] * 10
        assert [e["object"]["metadata"]["name"] for e in events[:10]] == [
            f"x{i}" for i in range(10)
        ]
        assert {e["type"] for e in events[10:]} <= {"BOOKMARK"}
        assert all("annotations" not in e["object"]["metadata"] for e in events[10:])


def test_node_wide_columns_like_the_servers_printer() -> None:
    """printNode: OS image, kernel and container runtime read "<unknown>" when the
    node's status does not say them; the kubelet version stays empty."""
    node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n"}}
    doc = table("Node", "", [node], 0.0, {})
    cells = dict(
        zip([c["name"] for c in doc["columnDefinitions"]], doc["rows"][0]["cells"], strict=True)
    )
    assert cells["Version"] == ""
    for name in ("OS-Image", "Kernel-Version", "Container-Runtime"):
        assert cells[name] == "<unknown>", name
    info = {"osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "cri-o://1"}
    doc = table("Node", "", [{**node, "status": {"nodeInfo": info}}], 0.0, {})
    assert doc["rows"][0]["cells"][-3:] == ["Debian", "6.1", "cri-o://1"]


def test_table(api: s.Api) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _code, doc = get(api, "/api/v1/namespaces/a/configmaps", accept)
    assert doc["kind"] == "Table"
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert doc["rows"][0]["cells"][:2] == ["y", 1]
    assert doc["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    _, doc = get(api, "/apis/demo.kstream.dev/v1/namespaces/a/widgets/w", accept)
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Age"]
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"ready": True, "restartCount": 2, "state": {"running": {}}},
                {
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    }
    row = table("Pod", "", [pod], 0.0, {})["rows"][0]["cells"]
    assert row[:4] == ["p", "1/2", "CrashLoopBackOff", "2"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (119, "119s"), (120, "2m"), (150, "2m30s"), (600, "10m"), (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"), (3 * 3600 + 1800, "3h30m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
        (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (729 * 86400, "729d"),
        (730 * 86400, "2y"), (740 * 86400, "2y10d"), (8 * 365 * 86400, "8y"), (-5, "<invalid>"),
    ],
)  # fmt: skip
def test_human_duration_like_apimachinery(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_the_cache_keeps_only_the_last_resources(api: s.Api) -> None:
    api.store.capacity = 1
    for path in (
        "/api/v1/configmaps",
        "/api/v1/namespaces",
        "/api/v1/configmaps",
        "/api/v1/configmaps",
    ):
        assert get(api, path)[0] == 200
    assert api.store.builds == 3 and len(api.store.cache) == 1


def test_plain_snapshot_resources(api: s.Api) -> None:
    by = {r.resource: r for r in api.catalog.resources}
    assert by["configmaps"].namespaced and not by["namespaces"].namespaced
    assert next(r.group for r in api.catalog.resources) == ""  # the core group first


def test_context_names() -> None:
    assert server.context_name("/x/snap.zst") == "kstream-snap.zst"
    assert server.context_name("/x/journal/@2026-01-01T14:03") == "kstream-journal@2026-01-01T14:03"
    assert server.context_name("dir/") == "kstream-dir"
    assert server.context_name("-") == "kstream-stdin"


def test_redacting_a_redacted_secret_keeps_its_digests() -> None:
    """A dump of a served redacted snapshot keeps the digests (diff --live sees no change)."""
    once = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "s", "namespace": "n"},
        "data": {"p": base64.b64encode(b"hunter2").decode()},
    }
    redact_secret(once, None)
    assert once["data"]["p"] == "sha256:" + hashlib.sha256(b"hunter2").hexdigest()
    twice = json.loads(json.dumps(once))
    redact_secret(twice, None)
    assert twice == once
    r = Resource("", "v1", "secrets", "Secret", True)
    transform = make_transform(r, TransformOptions())
    assert transform is not None
    line = json.dumps(once, separators=(",", ":")).encode()
    assert json.loads(transform(line)) == once


def test_filtered_lists_and_watches_send_the_snapshot_bytes(tmp_path: Path) -> None:
    """Objects are sent as the snapshot holds them, also when a selector made
    the server parse them (no re-encoding: `<` stays, 1.50 stays)."""
    line = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","namespace":"n","labels":{"k":"v"}},"data":{"x":"<&>"},"n":1.50}'
    (tmp_path / "s.ndjson").write_bytes(line + b"\n")
    api = s.Api(catalog.open_catalog(open_snapshot(str(tmp_path / "s.ndjson")), str(tmp_path)), "t")
    for path in (
        "/api/v1/configmaps?labelSelector=k%3Dv",
        "/api/v1/configmaps?labelSelector=k%3Dv&limit=5",
        "/api/v1/namespaces/n/configmaps?fieldSelector=metadata.name%3Dc",
        "/api/v1/configmaps?labelSelector=k%3Dv&watch=1&timeoutSeconds=1",
    ):
        u = urlsplit(path)
        resp = api.handle(s.Request("GET", u.path, dict(parse_qsl(u.query))))
        body = resp.body if resp.chunks is None else b"".join(resp.chunks)
        assert line in body, path


def _serve_cmd(*args: str) -> list[str]:
    import sys

    return [str(Path(sys.executable).parent / "kstream"), "serve", *args]


def test_refusals_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    """Bad input: one line, its exit code, no temporary directory left behind
    (a kubeconfig that cannot be written once hung the server: it waited for a
    serve loop that never started)."""
    import os
    import subprocess

    snap = write(tmp_path / "s.ndjson", [cm("a", "b")])
    (tmp_path / "exists").write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    for args, code, words in (
        ([snap, "--kubeconfig-out", str(tmp_path / "no" / "dir")], 7, "No such file or directory"),
        ([snap, "--kubeconfig-out", str(tmp_path / "exists")], 7, "exists (use --force"),
        ([snap, "--port", "70000"], 2, "--port"),
        ([str(tmp_path / "nope")], 6, "no such file"),
    ):
        p = subprocess.run(_serve_cmd(*args), capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == code, (args, p.stderr)
        assert len(p.stderr.splitlines()) == 1 and words in p.stderr, p.stderr
        assert list(tmp.iterdir()) == []
    assert (tmp_path / "exists").read_text() == ""


def test_sigterm_exits_0_and_removes_its_files(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    snap = write(tmp_path / "s.ndjson", [cm("a", "b")])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(_serve_cmd(snap), stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    banner = b""
    for line in proc.stderr:
        banner += line
        if b"Ctrl-C" in line:
            break
    assert b"(port " in banner and len(list(tmp.iterdir())) == 1
    kubeconfig = next(tmp.iterdir()) / "kubeconfig"
    assert json.loads(kubeconfig.read_text())["current-context"] == "kstream-s.ndjson"
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)  # a second one (timeout(1) sends two) changes nothing
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert list(tmp.iterdir()) == []
