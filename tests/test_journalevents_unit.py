"""count --events and log on journals written by tests/journalmaker.py (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kstream.journal.events import manager_of
from tests.conftest import kstream, one_line
from tests.journalmaker import Journal, ev, obj, write_base

CM = "v1/configmaps"
DEP = "apps/v1/deployments"


def t(s: int) -> str:
    return f"2026-11-29T14:00:{s:02d}.000000Z"


def mf(*entries: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "manager": m,
            "operation": "Update",
            "apiVersion": "v1",
            "time": tm,
            "fieldsType": "FieldsV1",
        }
        for m, tm in entries
    ]


def cm(name: str, rv: str, manager: str, ns: str = "shop", **data: str) -> dict[str, Any]:
    o = obj(CM, name, ns, rv, data=dict(data))
    o["metadata"]["managedFields"] = mf(
        ("kubectl-create", "2026-11-29T13:00:00Z"),
        (manager, f"2026-11-29T14:00:{int(rv) % 60:02d}Z"),
    )
    return o


def dep(name: str, rv: str, replicas: int, image: str, manager: str = "kubectl") -> dict[str, Any]:
    o = obj(
        DEP,
        name,
        "shop",
        rv,
        spec={"replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}},
        status={"replicas": replicas},
    )
    o["metadata"]["generation"] = int(rv)
    o["metadata"]["managedFields"] = mf((manager, "2026-11-29T14:00:00Z"))
    return o


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    j = Journal(tmp_path / "J")
    write_base(
        j.base,
        {
            CM: [cm("a", "10", "kubectl", k="0"), cm("b", "11", "kubectl", k="0")],
            DEP: [dep("web", "12", 1, "nginx:1")],
        },
    )
    j.segment(
        1,
        [
            [
                ev(t(1), "MODIFIED", CM, cm("a", "20", "hammer", k="1")),
                ev(t(2), "MODIFIED", CM, cm("a", "21", "hammer", k="2")),
                ev(t(3), "MODIFIED", CM, cm("a", "22", "hammer", k="3")),
                ev(t(3), "BOOKMARK", CM, rv="22"),
            ],
            [
                ev(t(4), "MODIFIED", DEP, dep("web", "23", 3, "nginx:2")),
                ev(t(5), "ADDED", CM, cm("c", "24", "helm", ns="other", k="x")),
                ev(t(6), "DELETED", CM, cm("b", "25", "kubectl")),
            ],
        ],
    )
    return j.root


def test_manager_is_newest_managed_fields_entry() -> None:
    o = {
        "metadata": {
            "managedFields": mf(("b", "2026-01-02T00:00:00Z"), ("a", "2026-01-01T00:00:00Z"))
        }
    }
    assert manager_of(o) == "b"
    assert manager_of({"metadata": {}}) == "(unknown)"


def test_count_events_by_manager(journal: Path) -> None:
    r = kstream("count", f"{journal}/", "--events", "--by", "manager", "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    rows = {
        x["manager"]: (x["events"], x["added"], x["modified"], x["deleted"]) for x in doc["rows"]
    }
    assert rows == {"hammer": (3, 0, 3, 0), "kubectl": (2, 0, 1, 1), "helm": (1, 1, 0, 0)}
    assert doc["rows"][0]["manager"] == "hammer"  # biggest first
    assert doc["total"]["events"] == 6


def test_count_events_window_and_groups(journal: Path) -> None:
    r = kstream(
        "count", str(journal), "--events", "--by", "namespace,kind",
        "--since", "2026-11-29T14:00:02Z", "--until", "2026-11-29T14:00:05Z", "-o", "ndjson",
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = [json.loads(x) for x in r.out.splitlines()]
    got = {(x["namespace"], x["kind"]): x["events"] for x in rows}
    assert got == {("shop", "ConfigMap"): 1, ("shop", "Deployment"): 1, ("other", "ConfigMap"): 1}
    r = kstream("count", str(journal), "--events", "-r", "deploy", "-o", "json")
    doc = json.loads(r.out)
    assert [(x["group"], x["resource"], x["events"]) for x in doc["rows"]] == [
        ("apps", "deployments", 1)
    ]
    r = kstream("count", str(journal), "--events", "-n", "other", "-o", "json")
    assert json.loads(r.out)["total"]["events"] == 1


def test_count_events_table(journal: Path) -> None:
    r = kstream("count", str(journal), "--events")
    assert r.code == 0, r.err
    lines = r.text.splitlines()
    assert "events of journal" in lines[0]
    first = lines[2].split()
    assert first[:5] == ["configmaps", "5", "1", "3", "1"]
    assert "█" in lines[2]


def test_count_events_usage(journal: Path, tmp_path: Path) -> None:
    one_line(kstream("count", str(journal), "--events", "--by", "label:x"), 2, "--by")
    one_line(kstream("count", str(journal), "--since", "5m"), 2, "--events")
    one_line(kstream("count", str(journal), "--events", "--since", "soon"), 2, "soon")
    one_line(kstream("count", f"{journal}/@{t(3)}", "--events"), 2, "--since/--until")
    one_line(kstream("count", str(tmp_path), "--events"), 2, "not one")
    one_line(kstream("count", str(journal), "--by", "manager"), 2, "--events")


@pytest.mark.parametrize("command", ["count", "log"])
def test_window_that_ends_before_it_begins_refused(journal: Path, command: str) -> None:
    """--since after --until matched nothing, silently, with exit 0."""
    extra = ["--events"] if command == "count" else []
    r = kstream(command, str(journal), *extra, "--since", t(3), "--until", t(1))
    one_line(r, 2, "is after --until")


def test_log_fields(journal: Path) -> None:
    r = kstream("log", str(journal), "-o", "ndjson")
    assert r.code == 0, r.err
    recs = [json.loads(x) for x in r.out.splitlines()]
    assert [(x["type"], x["name"]) for x in recs] == [
        ("MODIFIED", "a"),
        ("MODIFIED", "a"),
        ("MODIFIED", "a"),
        ("MODIFIED", "web"),
        ("ADDED", "c"),
        ("DELETED", "b"),
    ]
    assert recs[0]["fields"] == [{"path": "data.k", "old": "0", "new": "1"}]
    assert recs[1]["fields"] == [{"path": "data.k", "old": "1", "new": "2"}]
    assert recs[0]["manager"] == "hammer"
    # generation, resourceVersion, managedFields: noise; status is shown
    assert [f["path"] for f in recs[3]["fields"]] == [
        "spec.replicas",
        "spec.template.spec.containers.0.image",
        "status.replicas",
    ]
    assert "fields" not in recs[4] and "fields" not in recs[5]


def test_log_filters_and_window(journal: Path) -> None:
    r = kstream("log", str(journal), "-r", "cm", "a", "--since", "2026-11-29T14:00:01Z")
    assert r.code == 0, r.err
    lines = r.text.splitlines()
    assert len(lines) == 2
    assert "MODIFIED" in lines[0] and "shop/a" in lines[0] and "by hammer" in lines[0]
    assert 'data.k: "1" → "2"' in lines[0]  # against the state before the window
    r = kstream("log", str(journal), "-r", "deployments.apps", "-o", "json")
    doc = json.loads(r.out)
    assert doc["kind"] == "kstream-log" and [e["name"] for e in doc["events"]] == ["web"]
    r = kstream("log", str(journal), "nothing-by-this-name", "-o", "json")
    assert r.code == 0 and json.loads(r.out)["events"] == []


def test_log_corrupted_segment_exit_6(journal: Path) -> None:
    p = journal / "segments" / "000001.events.zst"
    data = bytearray(p.read_bytes())
    data[60] ^= 0xFF
    p.write_bytes(bytes(data))
    r = kstream("log", str(journal))
    assert r.code == 6, r.err
    assert "000001.events.zst" in r.err


def test_namespace_filter_and_cluster_scoped(tmp_path: Path) -> None:
    """As count on a snapshot: -n leaves cluster-scoped objects out unless -r names them."""
    ns = "v1/namespaces"
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [], ns: []})
    j.segment(
        1,
        [
            [
                ev(t(1), "ADDED", ns, obj(ns, "shop", "", "5")),
                ev(t(2), "ADDED", CM, cm("x", "6", "k")),
            ]
        ],
    )
    r = kstream("count", str(j.root), "--events", "-n", "shop", "-o", "json")
    assert [x["resource"] for x in json.loads(r.out)["rows"]] == ["configmaps"]
    r = kstream("count", str(j.root), "--events", "-n", "shop", "-r", "ns,cm", "-o", "json")
    assert sorted(x["resource"] for x in json.loads(r.out)["rows"]) == ["configmaps", "namespaces"]


def test_log_help_imports_little(tmp_path: Path) -> None:
    """`kstream log --help` loads neither the other commands nor the readers."""
    from tests.test_startup import COMMANDS, heavy, imports

    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"), "PWD": str(tmp_path)}
    mods, out = imports("log", "--help", env=env)
    assert "Usage: kstream log" in out
    others = ("kstream.cli.dump", "kstream.cli.count", "kstream.cli.diff", "kstream.journal.reader")
    assert heavy(mods, (*COMMANDS, *others)) == []


def test_log_label_selector_shows_objects_entering_and_leaving(tmp_path: Path) -> None:
    """`log -l app=x` left out the event that took an object out of the
    selection (its label changed: a watch with -l says DELETED), and showed
    one entering it with no earlier state, though the journal has it."""

    def labelled(name: str, rv: str, app: str, **data: str) -> dict[str, Any]:
        o = cm(name, rv, "kubectl-label", **data)
        o["metadata"]["labels"] = {"app": app}
        return o

    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [labelled("a", "10", "x", k="0"), labelled("b", "11", "y", k="0")]})
    j.segment(
        1,
        [
            [
                ev(t(1), "MODIFIED", CM, labelled("a", "20", "y", k="0")),  # a leaves app=x
                ev(t(2), "MODIFIED", CM, labelled("a", "21", "y", k="1")),  # not app=x
                ev(t(3), "MODIFIED", CM, labelled("b", "22", "x", k="0")),  # b enters app=x
            ]
        ],
    )
    r = kstream("log", str(j.root), "-l", "app=x", "-o", "ndjson")
    assert r.code == 0, r.err
    recs = [json.loads(x) for x in r.out.splitlines()]
    assert [(x["name"], x["resourceVersion"]) for x in recs] == [("a", "20"), ("b", "22")]
    for rec, old, new in zip(recs, ("x", "y"), ("y", "x"), strict=True):
        assert {"path": "metadata.labels.app", "old": old, "new": new} in rec["fields"]


def test_log_object_gone_in_a_resync_has_no_earlier_state(tmp_path: Path) -> None:
    """An object deleted while its resource's position had expired (410) is
    not in the resync: it is gone from then on. log kept its old state, so
    one created again under that name was shown as a change of the old one."""
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10", "kubectl", k="0"), cm("b", "11", "kubectl", k="0")]})
    j.segment(
        1,
        [
            [
                ev(t(1), "RESYNC", CM, rv="30"),
                ev(t(1), "SYNC", CM, cm("a", "10", "kubectl", k="0"), rv="30"),
                ev(t(1), "SYNCED", CM, rv="30"),
                ev(t(2), "ADDED", CM, cm("b", "31", "helm", k="new")),
                ev(t(3), "MODIFIED", CM, cm("a", "32", "hammer", k="1")),
            ]
        ],
    )
    r = kstream("log", str(j.root), "-o", "ndjson")
    assert r.code == 0, r.err
    recs = {x["name"]: x for x in map(json.loads, r.out.splitlines())}
    assert recs["b"]["type"] == "ADDED" and "fields" not in recs["b"]  # created, not a change
    assert {"path": "data.k", "old": "0", "new": "1"} in recs["a"]["fields"]  # a stays


def test_event_filter_field_selector_on_metadata_only() -> None:
    """A journal's events are filtered on metadata.name / metadata.namespace
    (=, ==, !=); any other field is refused with exit 2, saying so."""
    from kstream.errors import UsageError
    from kstream.journal.events import EventFilter
    from kstream.selector import Scope

    f = EventFilter(Scope(field_selector="metadata.namespace==a,metadata.name!=x"))
    assert f.narrows
    assert f.object_ok({"namespace": "a", "name": "y"})
    assert not f.object_ok({"namespace": "a", "name": "x"})
    assert not f.object_ok({"namespace": "b", "name": "y"})
    assert not EventFilter(Scope()).narrows
    with pytest.raises(UsageError) as e:
        EventFilter(Scope(field_selector="status.phase=Running"))
    assert e.value.message == (
        "--field-selector: a journal can only be filtered on "
        "metadata.name and metadata.namespace, not status.phase"
    )
