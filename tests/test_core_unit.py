"""Core pieces without a cluster: line splitting, list heads, encoding, name
matching, redaction, spools and archives, the stream state machine on canned
server answers (old-server interleaving, errors)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from kstream import paths
from kstream.cluster.stream import (
    LIST,
    WATCH_LIST,
    Reader,
    StreamOptions,
    Unit,
)
from kstream.errors import ApiError, SnapshotError, UnknownResourceError
from kstream.exitcodes import ExitCode
from kstream.jsonlines import go_json, iter_lines, line_key, object_key
from kstream.resources import Resource, match, select
from kstream.store.format import Entry
from kstream.store.snapshot import open_snapshot
from kstream.store.writers import ArchiveWriter, DirectoryWriter, NdjsonWriter
from kstream.transform import TransformOptions, make_transform, redact_secret
from tests.fakes import FakeTransport


def test_exit_codes_are_pinned() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "DIFFERENCES": 1, "USAGE": 2, "PARTIAL": 3, "CONFIG": 4, "CONNECTION": 5,
        "SNAPSHOT": 6, "OUTPUT": 7, "INTERNAL": 70, "INTERRUPTED": 130, "STDOUT_CLOSED": 141, "TERMINATED": 143,
    }  # fmt: skip


def test_iter_lines_any_length_and_cut_tail() -> None:
    big = b"x" * 3_000_000
    data = b'{"a":1}\n' + big + b"\n" + b'{"b":2}\n' + b'{"partial"'
    chunks = [data[i : i + 7777] for i in range(0, len(data), 7777)]
    lines = list(iter_lines(chunks))
    assert lines == [b'{"a":1}', big, b'{"b":2}']


def test_go_json_escapes_like_go() -> None:
    assert go_json({"a": "<x> & y", "b": "é\u2028", "c": [1, 2.5, None, True]}) == (
        b'{"a":"\\u003cx\\u003e \\u0026 y","b":"\xc3\xa9\\u2028","c":[1,2.5,null,true]}'
    )


RES = [
    Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}), "configmap", ("cm",)),
    Resource("", "v1", "events", "Event", True, frozenset({"list", "watch"}), "event", ("ev",)),
    Resource("", "v1", "namespaces", "Namespace", False, frozenset({"list", "watch"}), "namespace", ("ns",)),
    Resource("apps", "v1", "deployments", "Deployment", True, frozenset({"list", "watch"}), "deployment", ("deploy",)),
    Resource("events.k8s.io", "v1", "events", "Event", True, frozenset({"list", "watch"}), "event", ("ev",)),
    Resource("demo.kstream.dev", "v1", "widgets", "Widget", True, frozenset({"list", "watch"}), "widget", ("wd",)),
    Resource("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True, frozenset({"get", "list"}), "", ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("cm", "configmaps"),
        ("ConfigMap", "configmaps"),
        ("configmap", "configmaps"),
        ("deploy", "deployments.apps"),
        ("deployments.apps", "deployments.apps"),
        ("deployments.v1.apps", "deployments.apps"),
        ("events", "events"),
        ("events.events.k8s.io", "events.events.k8s.io"),
        ("wd", "widgets.demo.kstream.dev"),
    ],
)
def test_match_kubectl_names(name: str, want: str) -> None:
    (r,) = match(name, RES)
    assert r.name == want


def test_select_defaults_and_errors() -> None:
    sel = select(RES)
    names = [r.name for r in sel.resources]
    assert "events" not in names and "events.events.k8s.io" not in names
    assert [r.name for r in sel.excluded_by_default] == ["events"]
    assert "pods.metrics.k8s.io" not in names  # no watch
    assert select(RES, exclude=["deploy"]).resources == [
        r for r in sel.resources if r.resource != "deployments"
    ]
    assert [r.name for r in select(RES, include=["ev", "cm,cm"]).resources] == [
        "configmaps",
        "events",
    ]
    with pytest.raises(UnknownResourceError, match="nope"):
        select(RES, include=["nope"])
    assert not any(not r.namespaced for r in select(RES, namespaced_only=True).resources)


def test_paths() -> None:
    p = paths.parse('metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]')
    assert p == ("metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
    assert (
        paths.render(p)
        == 'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]'
    )
    obj = {"spec": {"containers": [{"image": "a", "name": "x"}, {"image": "b"}]}}
    paths.delete(obj, paths.parse("spec.containers.*.image"))
    assert obj == {"spec": {"containers": [{"name": "x"}, {}]}}
    assert paths.matches(("status", "phase"), ("status",))
    assert not paths.matches(("spec",), ("status",))


def test_redaction_covers_last_applied() -> None:
    import base64

    last = {
        "apiVersion": "v1",
        "kind": "Secret",
        "stringData": {"k": "plain"},
        "data": {"d": base64.b64encode(b"v").decode()},
    }
    obj = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(last)}
        },
        "data": {"k": base64.b64encode(b"plain").decode()},
    }
    redact_secret(obj, None)
    digest = "sha256:" + hashlib.sha256(b"plain").hexdigest()
    assert obj["data"]["k"] == digest
    inner = json.loads(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert inner["stringData"]["k"] == digest
    assert inner["data"]["d"] == "sha256:" + hashlib.sha256(b"v").hexdigest()
    assert "plain" not in json.dumps(obj).replace(digest, "")


def test_transform_passes_untouched_objects_through() -> None:
    cm = RES[0]
    assert make_transform(cm, TransformOptions()) is None
    secret = Resource("", "v1", "secrets", "Secret", True, frozenset({"list"}))
    t = make_transform(secret, TransformOptions())
    assert t is not None
    assert b"sha256:" in t(b'{"kind":"Secret","data":{"a":"Yg=="}}')
    assert make_transform(secret, TransformOptions(secrets="include")) is None


# ------------------------------------------------------------------ archives


def _write(writer: Any, units: list[tuple[str, list[bytes]]]) -> str:
    for i, (name, objs) in enumerate(units):
        sp = writer.new_spool(f"u{i}.ndjson", None)
        for o in objs:
            sp.write(o)
        e = Entry("", "v1", name, name.title(), True, None, "complete", "watch-list", "1",
                  sp.objects, sp.size, 0.1, 0, None, None, sp.sha.hexdigest())  # fmt: skip
        writer.append(e, sp)
    return str(
        writer.finish({"format": "kstream-archive", "version": 1, "status": "complete"}, False)
    )


OBJS = [
    ("configmaps", [b'{"a":%d}' % i for i in range(500)]),
    ("secrets", []),
    ("pods", [b'{"p":1}']),
]


def test_archive_round_trip_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "a.zst"
    _write(ArchiveWriter(str(path), False, 3, {}), OBJS)
    snap = open_snapshot(str(path))
    assert snap.complete and [e.objects for e in snap.entries] == [500, 0, 1]
    assert list(snap.lines(snap.entries[2])) == [b'{"p":1}']
    assert len(list(snap.lines())) == 501
    data = path.read_bytes()
    # truncated anywhere: refused
    for cut in (len(data) - 1, len(data) // 2, 30):
        (tmp_path / "t.zst").write_bytes(data[:cut])
        with pytest.raises(SnapshotError):
            s = open_snapshot(str(tmp_path / "t.zst"))
            list(s.lines())
    # a flipped byte inside the first resource's frame: refused
    e0 = snap.entries[0]
    assert e0.offset is not None
    bad = bytearray(data)
    bad[e0.offset + 20] ^= 0xFF
    (tmp_path / "f.zst").write_bytes(bytes(bad))
    with pytest.raises(SnapshotError):
        list(open_snapshot(str(tmp_path / "f.zst")).lines())
    # unknown format version
    hdr = json.dumps({"format": "kstream-archive", "version": 99}).encode()
    import struct

    (tmp_path / "v.zst").write_bytes(struct.pack("<II", 0x184D2A50, len(hdr)) + hdr)
    with pytest.raises(SnapshotError, match="version 99"):
        open_snapshot(str(tmp_path / "v.zst"))
    (tmp_path / "e.zst").write_bytes(b"")
    with pytest.raises(SnapshotError, match="empty"):
        open_snapshot(str(tmp_path / "e.zst"))
    (tmp_path / "n.zst").write_bytes(b"PK\x03\x04 not an archive")
    with pytest.raises(SnapshotError, match="not a kstream"):
        open_snapshot(str(tmp_path / "n.zst"))


def test_directory_and_ndjson_writers(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _write(DirectoryWriter(str(d), False), OBJS)
    assert len(list(open_snapshot(str(d)).lines())) == 501
    f = tmp_path / "x.ndjson"
    _write(NdjsonWriter(str(f), False), OBJS)
    assert f.read_bytes().count(b"\n") == 501
    assert oct(f.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in tmp_path.iterdir() if "kstream-tmp" in p.name]


def test_spool_fold_replaces_in_place(tmp_path: Path) -> None:
    w = ArchiveWriter(str(tmp_path / "f.zst"), False, 3, {})
    sp = w.new_spool("u", None)
    for n in ("a", "b", "c"):
        sp.write(
            json.dumps(
                {"metadata": {"namespace": "ns", "name": n}, "v": 1}, separators=(",", ":")
            ).encode()
        )
    sp.fold({
        ("ns", "b"): b'{"metadata":{"namespace":"ns","name":"b"},"v":2}',
        ("ns", "c"): None,
        ("ns", "d"): b'{"metadata":{"namespace":"ns","name":"d"},"v":1}',
    })  # fmt: skip
    sp.finish()
    import zstandard

    sp.file.seek(0)
    out = zstandard.ZstdDecompressor().stream_reader(sp.file, read_across_frames=True).read()
    names = [(json.loads(x)["metadata"]["name"], json.loads(x)["v"]) for x in out.splitlines()]
    assert names == [("a", 1), ("b", 2), ("d", 1)]
    assert sp.objects == 3
    w.abort()


# ------------------------------------------------------------------ the stream state machine


class ListSink:
    def __init__(self) -> None:
        self.objs: list[bytes] = []
        self.resets = 0

    def write(self, obj: bytes) -> None:
        self.objs.append(obj)

    def reset(self) -> None:
        self.objs.clear()
        self.resets += 1

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        out = []
        for o in self.objs:
            md = json.loads(o)["metadata"]
            k = (md.get("namespace", ""), md["name"])
            if k in overrides:
                v = overrides.pop(k)
                if v is not None:
                    out.append(v)
            else:
                out.append(o)
        out.extend(v for v in overrides.values() if v is not None)
        self.objs = out


def ev(t: str, name: str, v: int = 1) -> bytes:
    o = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "n"},
        "v": v,
    }
    return json.dumps({"type": t, "object": o}, separators=(",", ":")).encode() + b"\n"


END = b'{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"42","annotations":{"k8s.io/initial-events-end":"true"}}}}\n'
CM = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))


def read(answers: list[bytes | ApiError], **opts: Any) -> tuple[Unit, ListSink, FakeTransport]:
    client = FakeTransport(answers)
    reader = Reader(client, StreamOptions(backoff_base=0.001, **opts), threading.Event())
    unit, sink = Unit(CM), ListSink()
    reader.read(unit, sink, lambda u: None)
    return unit, sink, client


def names(sink: ListSink) -> list[tuple[str, int]]:
    return [(json.loads(o)["metadata"]["name"], json.loads(o)["v"]) for o in sink.objs]


def test_watch_list_folds_interleaved_events_of_old_servers() -> None:
    body = (
        ev("ADDED", "a")
        + ev("ADDED", "b")
        + ev("MODIFIED", "a", 2)
        + ev("ADDED", "c")
        + ev("DELETED", "b")
        + ev("ADDED", "d")
        + END
    )
    unit, sink, client = read([body])
    assert unit.status == "complete" and unit.method == WATCH_LIST and unit.resource_version == "42"
    assert names(sink) == [("a", 2), ("c", 1), ("d", 1)]
    q = client.requests[0]
    assert q["sendInitialEvents"] == "true" and q["resourceVersionMatch"] == "NotOlderThan"
    assert q["allowWatchBookmarks"] == "true" and q["resourceVersion"] == ""


def test_watch_list_ignores_plain_bookmarks_and_restarts_on_410() -> None:
    plain_bm = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"3"}}}\n'
    expired = b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}\n'
    unit, sink, _ = read(
        [ev("ADDED", "a") + expired, ev("ADDED", "a") + plain_bm + ev("ADDED", "b") + END]
    )
    assert unit.status == "complete" and unit.retries == 1
    assert names(sink) == [("a", 1), ("b", 1)]


def test_cut_streams_restart_then_fall_back_to_list() -> None:
    cut = ev("ADDED", "a")  # no end marker: the stream ends early
    page = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"a","namespace":"n"},"v":1}]}'
    unit, sink, _ = read([cut, cut, cut, page])
    assert unit.method == LIST and unit.status == "complete"
    assert "ended without the end marker" in unit.fallback_reason
    assert names(sink) == [("a", 1)]
    assert sink.objs[0].startswith(b'{"kind":"ConfigMap","apiVersion":"v1",')


def test_422_falls_back_and_list_pages_follow_continue() -> None:
    refused = ApiError(422, "watch-list refused", "Invalid", causes=("sendInitialEvents",))
    p1 = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"tok","remainingItemCount":1},"items":[{"metadata":{"name":"a","namespace":"n"},"v":1}]}'
    p2 = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"b","namespace":"n"},"v":1}]}'
    unit, sink, client = read([refused, p1, p2], page_size=1)
    assert unit.method == LIST and unit.resource_version == "9" and unit.estimate == 2
    assert names(sink) == [("a", 1), ("b", 1)]
    assert client.requests[1]["limit"] == "1" and client.requests[2]["continue"] == "tok"


def test_expired_continue_restarts_list_from_scratch() -> None:
    p1 = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"tok"},"items":[{"metadata":{"name":"a","namespace":"n"},"v":1}]}'
    gone = ApiError(410, "expired", "Expired")
    p_all = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"11"},"items":[{"metadata":{"name":"a","namespace":"n"},"v":1},{"metadata":{"name":"b","namespace":"n"},"v":1}]}'
    unit, sink, client = read([p1, gone, p_all], method="list")
    assert names(sink) == [("a", 1), ("b", 1)] and sink.resets == 1
    assert "continue" not in client.requests[2] and unit.resource_version == "11"


def test_429_then_success_and_forbidden_and_failure() -> None:
    busy = ApiError(429, "too many", retry_after=0.01)
    unit, sink, _ = read([busy, ev("ADDED", "a") + END])
    assert unit.status == "complete" and unit.retries == 1 and names(sink) == [("a", 1)]
    forbidden = ApiError(403, "forbidden")
    unit, _, _ = read([forbidden, forbidden])
    assert unit.status == "forbidden"
    down = ApiError(503, "unavailable")
    unit, _, _ = read([down, down, down], max_retries=2)
    assert unit.status == "failed" and unit.retries == 2


def test_cut_compressed_ndjson_is_refused(tmp_path: Path) -> None:
    import zstandard

    data = b"".join(b'{"a":%d}\n' % i for i in range(20000))
    z = zstandard.ZstdCompressor()
    blob = z.compress(data[:50000]) + z.compress(data[50000:])
    whole = tmp_path / "w.ndjson.zst"
    whole.write_bytes(blob)
    assert len(list(open_snapshot(str(whole)).lines())) == 20000
    for cut in (len(blob) - 1, len(blob) // 2, 20):
        part = tmp_path / f"c{cut}.ndjson.zst"
        part.write_bytes(blob[:cut])
        with pytest.raises(SnapshotError, match="cut short"):
            list(open_snapshot(str(part)).lines())


def test_namespace_field_selector_becomes_the_namespaced_path() -> None:
    """kube-apiserver 1.36 loses pages of a cluster-wide LIST filtered by
    metadata.namespace: the reader asks the namespaced path instead."""
    page = (
        b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[]}'
    )
    client = FakeTransport([page])
    opts = StreamOptions(method="list", field_selector="metadata.namespace=shop,metadata.name!=x")
    reader = Reader(client, opts, threading.Event())
    reader.read(Unit(CM), ListSink(), lambda u: None)
    assert client.paths == ["/api/v1/namespaces/shop/configmaps"]
    assert client.requests[0]["fieldSelector"] == "metadata.name!=x"


def test_list_reads_metadata_after_items_as_custom_resources_send_it() -> None:
    """Custom-resource LIST bodies sort their keys: metadata (and the continue
    token) comes after items. Every page must still be read."""
    p1 = b'{"apiVersion":"demo/v1","items":[{"apiVersion":"demo/v1","kind":"W","metadata":{"name":"a","namespace":"n"},"v":1}],"kind":"WList","metadata":{"continue":"tok","remainingItemCount":1,"resourceVersion":"9"}}'
    p2 = b'{"apiVersion":"demo/v1","items":[{"apiVersion":"demo/v1","kind":"W","metadata":{"name":"b","namespace":"n"},"v":1}],"kind":"WList","metadata":{"resourceVersion":"9"}}'
    unit, sink, client = read([p1, p2], method="list", page_size=1)
    assert unit.status == "complete" and unit.resource_version == "9"
    assert names(sink) == [("a", 1), ("b", 1)] and client.requests[1]["continue"] == "tok"
    # a custom resource keeps its own kind/apiVersion, byte for byte
    assert sink.objs[0] == p1[p1.index(b"[") + 1 : p1.index(b"]")]


def test_list_keeps_numbers_exactly_as_sent() -> None:
    big = b'{"metadata":{"name":"a","namespace":"n"},"v":1,"n":[12345678901234567000,18446744073709551616,1e300,1e-7,0.1,-0.0,9007199254740993]}'
    page = (
        b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":['
        + big
        + b"]}"
    )
    unit, sink, _ = read([page], method="list")
    assert unit.status == "complete" and unit.retries == 0
    assert sink.objs == [b'{"kind":"ConfigMap","apiVersion":"v1",' + big[1:]]


def test_list_body_cut_short_is_retried_and_said_so() -> None:
    page = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"a","namespace":"n"},"v":1},{"metadata":{"name":"b"'
    whole = page + b',"namespace":"n"},"v":1}]}'
    unit, sink, _ = read([page, whole], method="list")
    assert unit.status == "complete" and unit.retries == 1 and names(sink) == [("a", 1), ("b", 1)]
    unit, sink, _ = read([page, page], method="list", max_retries=1)
    assert unit.status == "failed" and "cut short" in unit.error and sink.objs == []
    bad = page.replace(b'"v":1}', b'"v":1}}', 1)
    unit, _, _ = read([bad], method="list", max_retries=0)
    assert unit.status == "failed" and "invalid JSON" in unit.error


def test_fallback_has_a_short_reason_and_the_full_text() -> None:
    refused = ApiError(422, "watch-list refused: " + "x" * 500, "Invalid")
    page = (
        b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[]}'
    )
    unit, _, _ = read([refused, page])
    assert unit.fallback == "watch-list off" and "x" * 500 in unit.fallback_reason
    said = 'configmaps is forbidden: User "u" cannot watch resource "configmaps"'
    unit, _, _ = read([ApiError(403, said, "Forbidden"), page])
    assert unit.fallback == "watch forbidden" and unit.status == "complete"
    assert said in unit.fallback_reason  # the server's words, for the manifest and --debug


def test_forced_watch_list_never_falls_back() -> None:
    refused = ApiError(422, "watch-list refused", "Invalid")
    unit, sink, client = read([refused], method="watch-list")
    assert unit.status == "failed" and unit.method == WATCH_LIST and len(client.requests) == 1
    assert "--method watch-list" in unit.error and "watch-list off" in unit.error
    unit, _, _ = read([ApiError(403, "forbidden")], method="watch-list")
    assert unit.status == "forbidden"
    cut = ev("ADDED", "a")
    unit, sink, client = read([cut, cut, cut], method="watch-list")
    assert unit.status == "failed" and "streams broke" in unit.error and sink.objs == []
    # a resource without the watch verb: failed at once, nothing asked
    client = FakeTransport([])
    reader = Reader(client, StreamOptions(method="watch-list"), threading.Event())
    unit = Unit(Resource("", "v1", "bindings", "Binding", True, frozenset({"list"})))
    reader.read(unit, ListSink(), lambda u: None)
    assert unit.status == "failed" and "no watch verb" in unit.error and client.requests == []


def test_manifest_json_round_trip_keeps_the_on_disk_layout() -> None:
    """The typed Manifest reads what dump writes and writes it back key for key,
    in the same order (archives digest the manifest's bytes)."""
    from kstream.store.format import Manifest

    on_disk: dict[str, Any] = {
        "format": "kstream-archive",
        "version": 1,
        "tool": "kstream 0.1.0",
        "status": "partial",
        "server": {"url": "https://127.0.0.1:6443", "version": "v1.36.3"},
        "context": "kind",
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:00:01+00:00",
        "duration": 1.5,
        "options": {
            "resources": ["cm"],
            "exclude": [],
            "namespaces": ["a"],
            "labelSelector": "app=web",
            "fieldSelector": "",
            "secrets": "redact",
            "secretDigest": "sha256",
            "strip": ["status"],
            "method": "auto",
        },
        "excludedByDefault": ["events"],
        "notWatchable": ["componentstatuses"],
        "discoveryFailures": [{"groupVersion": "x.example/v1", "error": "503"}],
        "notRead": [
            {
                "group": "",
                "version": "v1",
                "resource": "secrets",
                "kind": "Secret",
                "namespaced": True,
                "namespace": "a",
                "status": "failed",
                "method": "",
                "resourceVersion": "",
                "objects": 0,
                "bytes": 0,
                "duration": 0.0,
                "retries": 2,
                "error": "503",
                "sha256": "",
            }
        ],
        "resources": [],
    }
    m = Manifest.from_json(on_disk)
    assert m.status == "partial" and m.server_url == "https://127.0.0.1:6443"
    assert m.options is not None and m.options.label_selector == "app=web"
    assert [e.name for e in m.not_read] == ["secrets"]
    assert json.dumps(m.to_json()) == json.dumps(on_disk)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("cm", True),
        ("CM", True),
        ("configmap", True),
        ("configmaps", True),
        ("ConfigMap", True),
        ("configmaps.", True),
        ("configmaps.v1", True),
        ("configmaps.core", True),
        ("cm.v1", True),
        ("configmaps.apps", False),
        ("secrets", False),
        ("", False),
    ],
)
def test_one_name_table_for_snapshots(token: str, expected: bool) -> None:
    """count and diff name snapshot resources through the one table in
    kstream.resources: the live matcher and the per-resource test agree."""
    from kstream.resources import match, snapshot_resource

    cm = snapshot_resource("", "v1", "configmaps", "ConfigMap", True)
    assert cm.answers_to(token) is expected
    assert (match(token, [cm]) == [cm]) is expected


def test_short_names_by_group_and_plural() -> None:
    from kstream.resources import guess_plural, snapshot_resource, split_api_version

    assert split_api_version("apps/v1") == ("apps", "v1")
    assert split_api_version("v1") == ("", "v1")
    dep = snapshot_resource("apps", "v1", guess_plural("Deployment"), "Deployment", True)
    assert dep.answers_to("deploy") and dep.answers_to("deploy.apps")
    assert dep.answers_to("deployments.v1.apps") and not dep.answers_to("deployments.v2.apps")
    # a custom resource that happens to share a built-in kind gets no short name
    own = snapshot_resource("example.com", "v1", "deployments", "Deployment", True)
    assert not own.answers_to("deploy") and own.answers_to("deployments.example.com")


@pytest.mark.parametrize("pretty", [True, False])
def test_a_small_json_list_is_a_json_list(tmp_path: Path, pretty: bool) -> None:
    """`kubectl get -o json` of a few objects (far under the 64 KiB the page reader
    gathers before parsing), or of none, is a JSON List, not NDJSON."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    for items in ([cm], []):
        doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}}
        path = tmp_path / "small.json"
        path.write_text(json.dumps(doc, indent=4 if pretty else None))
        snap = open_snapshot(str(path))
        assert snap.format == "json"
        assert [json.loads(x) for x in snap.lines()] == items


def test_object_key_of_any_document() -> None:
    """One (namespace, name) key for the spools (archive), serve's index and the
    watch fold: empty parts where the document does not say, also when it is
    not an object or its metadata is not one."""
    assert object_key({"metadata": {"namespace": "a", "name": "b"}}) == ("a", "b")
    assert object_key({"metadata": {"name": "n"}}) == ("", "n")
    assert line_key(b'{"metadata":{"namespace":"a","name":"b","labels":{}}}') == ("a", "b")
    for doc in (b"[1]", b'"x"', b'{"metadata":["a"]}', b'{"metadata":"a"}', b"{}"):
        assert line_key(doc) == ("", ""), doc
