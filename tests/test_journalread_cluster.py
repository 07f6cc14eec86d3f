"""Reading a journal whose objects are real server objects: the base is a real
dump; the events are what a watch from the base's resourceVersion returns (the
bytes the server sent), as `dump --follow` records them. The state at an instant
must equal an ordinary dump taken at that instant."""

from __future__ import annotations

import http.client
import json
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kstream.journal.format import Event, format_time, parse_time, unit_resource
from kstream.journal.reader import _open_lines, _open_segment
from tests.conftest import Cluster, kstream
from tests.journalmaker import segment_bytes
from tests.seed import CRD_GROUP, Api, configmap, namespace, widget

NS = "jread"
CM = f"/api/v1/namespaces/{NS}/configmaps"
WD = f"/apis/{CRD_GROUP}/v1/namespaces/{NS}/widgets"
SELECT = ("-n", NS, "-r", "configmaps,widgets")

pytestmark = pytest.mark.cluster


def dump(cluster: Cluster, out: Path) -> dict[str, Any]:
    r = kstream("dump", *SELECT, "-o", str(out), "-q", kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    from kstream.store.snapshot import open_snapshot

    m = open_snapshot(str(out)).manifest
    assert m is not None
    return m.to_json()


def watch_events(api: Api, path: str, rv: str) -> list[tuple[str, bytes]]:
    """(type, object bytes as sent) of every event after rv (the server replays
    them from its watch cache, then the watch times out)."""
    conn = http.client.HTTPSConnection(api.host, api.port, context=api.ctx, timeout=30)
    conn.request(
        "GET",
        f"{path}?watch=1&resourceVersion={rv}&timeoutSeconds=2",
        headers={"Authorization": f"Bearer {api.token}", "Accept": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    body = resp.read()
    conn.close()
    out = []
    for line in body.splitlines():
        head, sep, rest = line.partition(b',"object":')
        assert sep and rest.endswith(b"}"), line[:200]
        out.append((json.loads(head + b"}")["type"], rest[:-1]))
    return out


def rv_of(raw: bytes) -> int:
    return int(json.loads(raw)["metadata"]["resourceVersion"])


@dataclass
class Recorded:
    journal: Path
    d1: Path
    d2: Path
    t1: str
    t2: str


@pytest.fixture(scope="module")
def recorded(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Any:
    api = cluster.api
    tmp = tmp_path_factory.mktemp("jread")
    api.create(*namespace(NS), exist_ok=True)
    for i in range(4):
        api.create(*configmap(NS, f"cm-{i}", size=100))
    api.create(*widget(NS, "w-0"))
    j = tmp / "J"
    (j / "segments").mkdir(parents=True)
    base = dump(cluster, j / "base.ndjson.zst")
    (j / "journal.json").write_text(
        json.dumps({"format": "kstream-journal", "version": 1, "created": base["started"]})
    )
    # batch A, then a dump at T1
    api.call("PATCH", f"{CM}/cm-0", {"data": {"k": "a"}})
    api.call("DELETE", f"{CM}/cm-1")
    api.create(*configmap(NS, "cm-new", size=10))
    api.call("PATCH", f"{WD}/w-0", {"spec": {"color": "red"}})
    d1_path = tmp / "d1.ndjson.zst"
    d1 = dump(cluster, d1_path)
    # batch B, then a dump at T2
    api.call("PATCH", f"{CM}/cm-0", {"data": {"k": "b"}})
    api.call("PATCH", f"{CM}/cm-new", {"metadata": {"labels": {"x": "y"}}})
    api.call("DELETE", f"{WD}/w-0")
    api.create(*widget(NS, "w-1", color="green"))
    api.call("DELETE", f"{CM}/cm-2")
    d2_path = tmp / "d2.ndjson.zst"
    dump(cluster, d2_path)
    # the events, as a follow from the base's resourceVersion receives them
    start = parse_time(base["finished"])
    t1 = format_time(start + timedelta(seconds=10))
    t2 = format_time(start + timedelta(seconds=20))
    before: list[Event] = []
    after: list[Event] = []
    for e in base["resources"]:
        unit = unit_resource(e["group"], e["version"], e["resource"])
        path = WD if e["resource"] == "widgets" else CM
        r1 = {x["resource"]: int(x["resourceVersion"]) for x in d1["resources"]}[e["resource"]]
        for typ, raw in watch_events(api, path, e["resourceVersion"]):
            rv = rv_of(raw)
            ev = Event("", typ, unit, e["namespace"] or "", str(rv), raw)
            (before if rv <= r1 else after).append(ev)
    for events, at in ((before, start), (after, parse_time(t1))):
        events.sort(key=lambda ev: int(ev.rv))  # arrival order
        for i, ev in enumerate(events):
            ev.time = format_time(at + timedelta(seconds=1, microseconds=i))
    assert len(before) == 4 and len(after) == 5, (before, after)
    # a sealed segment, then the open one a crash left (whole frames)
    (j / "segments" / "000001.events.zst").write_bytes(
        segment_bytes(1, [before[:2], before[2:]]).data
    )
    (j / "segments" / "000002.events.zst").write_bytes(
        segment_bytes(2, [after[:3], after[3:]], sealed=False).data
    )
    yield Recorded(j, d1_path, d2_path, t1, t2)
    for name in ("cm-0", "cm-3", "cm-new"):
        api.call("DELETE", f"{CM}/{name}", ok=(200, 404))
    api.call("DELETE", f"{WD}/w-1", ok=(200, 404))
    api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 202, 404))


def _count(*args: str) -> set[tuple[str, int, int]]:
    """The rows and total of `count -o json`: (resource, objects, bytes)."""
    r = kstream("count", *args, "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    rows = {(x["resource"], x["objects"], x["bytes"]) for x in doc["rows"]}
    return rows | {("total", doc["total"]["objects"], doc["total"]["bytes"])}


def test_count_at_instants_equals_dumps(recorded: Recorded) -> None:
    j = recorded.journal
    assert _count(f"{j}/@{recorded.t1}") == _count(str(recorded.d1))
    assert _count(f"{j}/@{recorded.t2}") == _count(str(recorded.d2))
    assert _count(f"{j}/") == _count(str(recorded.d2))


def test_state_equals_dump_object_by_object(recorded: Recorded) -> None:
    j = recorded.journal
    for at, d in ((recorded.t1, recorded.d1), (recorded.t2, recorded.d2)):
        r = kstream("diff", f"{j}/@{at}", str(d), "--include-status")
        assert r.code == 0, (at, r.out, r.err)


def test_diff_between_instants_equals_diff_of_dumps(recorded: Recorded) -> None:
    j = recorded.journal
    a = kstream("diff", f"{j}/@{recorded.t1}", f"{j}/@{recorded.t2}", "-o", "ndjson")
    b = kstream("diff", str(recorded.d1), str(recorded.d2), "-o", "ndjson")
    assert (a.code, b.code) == (1, 1), (a.err, b.err)
    changes = sorted(a.out.splitlines())
    assert changes == sorted(b.out.splitlines())
    got = sorted((c["change"], c["name"]) for c in map(json.loads, changes))
    assert got == [
        ("added", "w-1"),
        ("modified", "cm-0"),
        ("modified", "cm-new"),
        ("removed", "cm-2"),
        ("removed", "w-0"),
    ]


def test_diff_latest_against_live(recorded: Recorded, cluster: Cluster) -> None:
    r = kstream("diff", f"{recorded.journal}/", "--live", kubeconfig=cluster.kubeconfig)
    assert r.code == 0, (r.out, r.err)
    r = kstream(
        "diff", f"{recorded.journal}/@{recorded.t2}", "--live", kubeconfig=cluster.kubeconfig
    )
    assert r.code == 0, (r.out, r.err)
    # the state at T1 is behind the cluster: the changes after T1 show
    r = kstream(
        "diff",
        f"{recorded.journal}/@{recorded.t1}",
        "--live",
        "-o",
        "ndjson",
        kubeconfig=cluster.kubeconfig,
    )
    assert r.code == 1, r.err
    assert len(r.out.splitlines()) == 5


def test_events_and_log_of_real_objects(recorded: Recorded) -> None:
    j = recorded.journal
    r = kstream("count", str(j), "--events", "--by", "manager", "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["total"] == {"rows": 1, "events": 9, "added": 2, "modified": 4, "deleted": 3}
    # the seeding client is the manager of every write (the Python Api's user agent)
    assert len(doc["rows"]) == 1 and doc["rows"][0]["manager"] != "(unknown)"
    r = kstream("log", str(j), "-r", "cm", "cm-0", "-o", "ndjson")
    recs = [json.loads(x) for x in r.out.splitlines()]
    assert [(x["type"], x["fields"]) for x in recs] == [
        ("MODIFIED", [{"path": "data.k", "new": "a"}]),
        ("MODIFIED", [{"path": "data.k", "old": "a", "new": "b"}]),
    ]


def test_crash_tail_and_corruption(recorded: Recorded, tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(recorded.journal, cut)
    seg = cut / "segments" / "000002.events.zst"
    data = seg.read_bytes()
    # the open segment's second (last) frame cut in the middle, as by kill -9
    notes: list[str] = []
    first = list(_open_lines(_open_segment(seg, 2), notes))
    assert len(first) == 5 and notes == []  # whole: both frames
    frame2 = segment_bytes(2, [[Event.decode(x) for x in first[:3]]], sealed=False).data
    assert data.startswith(frame2)
    seg.write_bytes(data[: len(frame2) + (len(data) - len(frame2)) // 2])
    t_last_whole = Event.decode(first[2]).time
    r = kstream("diff", f"{cut}/", f"{recorded.journal}/@{t_last_whole}", "--include-status")
    assert r.code == 0, (r.out, r.err)
    assert "000002.events.zst is open" in r.err
    r = kstream("diff", f"{cut}/", f"{recorded.journal}/", "-o", "ndjson")
    assert r.code == 1  # the cut frame's events are not in the state
    # a corrupted sealed segment: exit 6, named
    s1 = cut / "segments" / "000001.events.zst"
    b = bytearray(s1.read_bytes())
    fr = segment_bytes(1, [[]]).frames[0]  # where the first frame begins
    b[fr.offset + 20] ^= 0x55
    s1.write_bytes(bytes(b))
    r = kstream("count", f"{cut}/@{recorded.t1}")
    assert r.code == 6, r.err
    assert "000001.events.zst" in r.err and len(r.err.strip().splitlines()) == 1
