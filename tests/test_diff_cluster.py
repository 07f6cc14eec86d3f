"""kstream diff against the real control plane: golden changes between two dumps,
identical snapshots, formats mixed, --live, watch-list vs LIST."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster, kstream
from tests.seed import CRD_GROUP, Api, configmap, namespace, secret, wait_for_resource, widget

pytestmark = pytest.mark.cluster

NS = "diff-golden"
CM = f"/api/v1/namespaces/{NS}/configmaps"
SEC = f"/api/v1/namespaces/{NS}/secrets"
WD = f"/apis/{CRD_GROUP}/v1/namespaces/{NS}/widgets"


def sha(v: str) -> str:
    return "sha256:" + hashlib.sha256(v.encode()).hexdigest()


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def records(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def dump(cluster: Cluster, out: Path, *args: str) -> None:
    r = kstream("dump", "-q", "-o", str(out), *args, kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err


def recreate(api: Api, base: str, name: str, obj: tuple[str, dict[str, Any]]) -> None:
    api.call("DELETE", f"{base}/{name}")
    api.create(*obj)


@pytest.fixture(scope="module")
def golden(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dump NS, change it in known ways, dump it again (three formats)."""
    api = cluster.api
    d = tmp_path_factory.mktemp("diff-golden")
    api.create(*namespace(NS), exist_ok=True)
    for name in ("cm-keep", "cm-modify", "cm-delete", "cm-recreate"):
        api.create(*configmap(NS, name, size=100))
    for name in ("sec-keep", "sec-modify", "sec-delete"):
        api.create(*secret(NS, name, {"password": f"old-{name}"}))
    for name, color in (("w-keep", "red"), ("w-modify", "red"), ("w-recreate", "blue")):
        api.create(*widget(NS, name, color=color))
    dump(cluster, d / "old.ndjson.zst", "-n", NS)

    api.call(
        "PATCH",
        f"{CM}/cm-modify",
        {"data": {"note": "changed"}, "metadata": {"labels": {"tier": "x"}}},
    )
    api.call("DELETE", f"{CM}/cm-delete")
    recreate(api, CM, "cm-recreate", configmap(NS, "cm-recreate", size=100))
    api.create(*configmap(NS, "cm-new", size=10))
    api.call("PATCH", f"{SEC}/sec-modify", {"data": {"password": b64("new-secret-value")}})
    api.call("DELETE", f"{SEC}/sec-delete")
    api.create(*secret(NS, "sec-new", {"password": "fresh"}))
    api.call("PATCH", f"{WD}/w-modify", {"spec": {"color": "green", "size": 4}})
    recreate(api, WD, "w-recreate", widget(NS, "w-recreate", color="blue"))
    api.create(*widget(NS, "w-new"))

    dump(cluster, d / "new.ndjson.zst", "-n", NS)
    (d / "new-dir").mkdir()  # an existing directory: a directory snapshot (a bare name is refused)
    dump(cluster, d / "new-dir", "-n", NS)
    dump(cluster, d / "new.ndjson", "-n", NS)
    return {
        "old": d / "old.ndjson.zst",
        "new": d / "new.ndjson.zst",
        "dir": d / "new-dir",
        "ndjson": d / "new.ndjson",
    }


EXPECTED = {
    ("modified", "ConfigMap", "cm-modify"),
    ("removed", "ConfigMap", "cm-delete"),
    ("recreated", "ConfigMap", "cm-recreate"),
    ("added", "ConfigMap", "cm-new"),
    ("modified", "Secret", "sec-modify"),
    ("removed", "Secret", "sec-delete"),
    ("added", "Secret", "sec-new"),
    ("modified", "Widget", "w-modify"),
    ("recreated", "Widget", "w-recreate"),
    ("added", "Widget", "w-new"),
}


def check_golden(recs: list[dict[str, Any]]) -> None:
    assert {(r["change"], r["kind"], r["name"]) for r in recs} == EXPECTED
    assert len(recs) == len(EXPECTED)
    assert all(r["namespace"] == NS for r in recs)
    by = {r["name"]: r for r in recs}
    fields = {
        n: {f["path"]: (f.get("old"), f.get("new")) for f in by[n]["fields"]}
        for n in ("cm-modify", "sec-modify", "w-modify")
    }
    assert fields["cm-modify"] == {
        "data.note": ("<cm-modify> & co", "changed"),
        "metadata.labels": (None, {"tier": "x"}),
    }
    assert fields["sec-modify"] == {
        "data.password": (sha("old-sec-modify"), sha("new-secret-value"))
    }
    assert fields["w-modify"] == {"spec.color": ("red", "green"), "spec.size": (3, 4)}
    assert by["w-recreate"]["group"] == CRD_GROUP and by["w-recreate"]["resource"] == "widgets"
    assert by["w-recreate"]["uid"]["old"] != by["w-recreate"]["uid"]["new"]
    # recreated with the same content: no field changes, listed all the same (17.6)
    assert by["cm-recreate"]["fields"] == [] and by["w-recreate"]["fields"] == []


def test_golden_changes_ndjson(golden: dict[str, Path]) -> None:
    r = kstream("diff", str(golden["old"]), str(golden["new"]), "-o", "ndjson")
    assert r.code == 1, r.err
    check_golden(records(r.out))
    assert b"new-secret-value" not in r.out and b64("new-secret-value").encode() not in r.out


def test_golden_changes_json_summary(golden: dict[str, Path]) -> None:
    r = kstream("diff", str(golden["old"]), str(golden["new"]), "-o", "json")
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    check_golden(doc["changes"])
    s = doc["summary"]
    assert s["configmaps"] == {
        "added": 1,
        "removed": 1,
        "modified": 1,
        "recreated": 1,
        "unchanged": 1,
    }
    assert s["secrets"] == {"added": 1, "removed": 1, "modified": 1, "recreated": 0, "unchanged": 1}
    assert s[f"widgets.{CRD_GROUP}"] == {
        "added": 1,
        "removed": 0,
        "modified": 1,
        "recreated": 1,
        "unchanged": 1,
    }
    assert doc["total"]["added"] == 3 and doc["skipped"] == []


def test_golden_text_and_stat(golden: dict[str, Path]) -> None:
    r = kstream("diff", str(golden["old"]), str(golden["new"]), "--color", "never")
    assert r.code == 1, r.err
    text = r.text
    assert f"~ configmaps {NS}/cm-modify" in text
    assert f"± widgets.{CRD_GROUP} {NS}/w-recreate" in text
    assert 'spec.color: "red" → "green"' in text
    assert "new-secret-value" not in text
    s = kstream("diff", str(golden["old"]), str(golden["new"]), "--stat", "--color", "never")
    assert s.code == 1
    assert "cm-modify" not in s.text and "configmaps" in s.text


def test_golden_through_dir_and_plain_ndjson(golden: dict[str, Path]) -> None:
    for other in ("dir", "ndjson"):
        r = kstream("diff", str(golden["old"]), str(golden[other]), "-o", "ndjson")
        assert r.code == 1, r.err
        check_golden(records(r.out))


def test_identical_snapshots_exit_0(golden: dict[str, Path]) -> None:
    for a, b in (("old", "old"), ("new", "dir"), ("new", "ndjson"), ("dir", "ndjson")):
        r = kstream("diff", str(golden[a]), str(golden[b]))
        assert r.code == 0, (a, b, r.err, r.text)
        assert r.out == b""


def test_filters_apply_to_both_sides(golden: dict[str, Path]) -> None:
    r = kstream("diff", str(golden["old"]), str(golden["new"]), "-o", "ndjson", "-r", "widgets")
    assert {x["kind"] for x in records(r.out)} == {"Widget"}
    r = kstream(
        "diff",
        str(golden["old"]),
        str(golden["new"]),
        "-o",
        "ndjson",
        "--exclude",
        "secrets,widget",
    )
    assert {x["kind"] for x in records(r.out)} == {"ConfigMap"}
    r = kstream("diff", str(golden["old"]), str(golden["new"]), "-n", "elsewhere")
    assert r.code == 0, r.err
    r = kstream("diff", str(golden["old"]), str(golden["new"]), "-r", "nosuchthing")
    assert r.code == 2 and "nosuchthing" in r.err


@pytest.mark.compat
def test_live(cluster: Cluster, golden: dict[str, Path]) -> None:
    r = kstream("diff", str(golden["new"]), "--live", kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err + r.text
    r = kstream("diff", str(golden["old"]), "--live", "-o", "ndjson", kubeconfig=cluster.kubeconfig)
    assert r.code == 1, r.err
    check_golden(records(r.out))
    r = kstream(
        "diff",
        str(golden["old"]),
        "--live-old",
        "-o",
        "ndjson",
        "-r",
        "cm",
        kubeconfig=cluster.kubeconfig,
    )
    assert r.code == 1, r.err
    assert {(x["change"], x["name"]) for x in records(r.out)} == {
        ("modified", "cm-modify"),
        ("added", "cm-delete"),
        ("recreated", "cm-recreate"),
        ("removed", "cm-new"),
    }


def _methods(path: Path) -> set[str]:
    from kstream.store.snapshot import open_snapshot

    return {e.method for e in open_snapshot(str(path)).entries if e.objects}


@pytest.mark.compat
@pytest.mark.parametrize("which", ["cluster", "cluster_no_watchlist"])
def test_watch_list_and_list_fallback_diff_identical(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    c: Cluster = request.getfixturevalue(which)
    a, b = tmp_path / "auto.ndjson.zst", tmp_path / "list.ndjson.zst"
    dump(c, a)
    dump(c, b, "--method", "list")
    if which == "cluster":
        assert _methods(a) == {"watch-list"}
    else:
        assert _methods(a) == {"list"}
    assert _methods(b) == {"list"}
    r = kstream("diff", str(a), str(b), "--color", "never")
    assert r.code == 0, r.err + r.text
    r = kstream("diff", str(a), str(b), "--include-status", "-o", "ndjson")
    assert r.code in (0, 1), r.err


def test_manifest_lists_resources_that_cannot_be_watched(golden: dict[str, Path]) -> None:
    from kstream.store.snapshot import open_snapshot

    manifest = open_snapshot(str(golden["old"])).manifest
    assert manifest is not None
    # componentstatuses: list and get, no watch; left out unless named with -r
    assert "componentstatuses" in manifest.not_watchable


def test_live_compares_only_what_the_snapshot_selected(
    cluster: Cluster, golden: dict[str, Path]
) -> None:
    """The snapshot was dumped with -n NS: reading NS and another namespace live
    must not report the other namespace's objects as added (issue 17.8)."""
    other = "diff-selection"
    cluster.api.create(*namespace(other), exist_ok=True)
    cluster.api.create(*configmap(other, "elsewhere", size=10), exist_ok=True)
    r = kstream(
        "diff",
        str(golden["new"]),
        "--live",
        "-n",
        f"{NS},{other}",
        "-o",
        "ndjson",
        kubeconfig=cluster.kubeconfig,
    )
    assert r.code == 0, r.err
    assert r.out == b""
    assert "dumped with different -n" in r.err
    assert f"outside {golden['new']}'s -n {NS}" in r.err
    # the same through a snapshot without a manifest: its selection is unknown,
    # this command line's applies
    r = kstream("diff", str(golden["ndjson"]), "--live", "-n", NS, kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    assert f"{golden['ndjson']} has no manifest, so what its dump selected is unknown" in r.err
    # without -n: every object of the file is in NS, so the cluster is read there
    # only (before: everything in the other namespaces and cluster-wide was "added")
    r = kstream(
        "diff", str(golden["ndjson"]), "--live", "-o", "ndjson", kubeconfig=cluster.kubeconfig
    )
    assert r.code == 0, r.err
    assert r.out == b""
    assert (
        f"{golden['ndjson']} has no manifest and all its objects are in namespace {NS}: "
        "reading the cluster there only (-n chooses)"
    ) in r.err


GADGETS = "diffver.kstream.dev"
GADGET_CRD = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{GADGETS}"


def _gadget_version(name: str, storage: bool) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {"name": name, "served": True, "storage": storage, "schema": schema}


def test_crd_preferred_version_change_is_no_content_change(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A CRD gains v2 as its storage and preferred version: its objects are read
    through v2 and differ only in apiVersion (issue 17.10)."""
    from kstream.store.snapshot import open_snapshot

    api, ns = cluster.api, "diff-versions"
    api.create(*namespace(ns), exist_ok=True)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GADGETS}"},
        "spec": {
            "group": GADGETS,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [_gadget_version("v1", True)],
        },
    }
    api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, exist_ok=True)
    wait_for_resource(api, f"/apis/{GADGETS}/v1/gadgets")
    for name, size in (("g1", 1), ("g2", 2)):
        api.create(
            f"/apis/{GADGETS}/v1/namespaces/{ns}/gadgets",
            {
                "apiVersion": f"{GADGETS}/v1",
                "kind": "Gadget",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"size": size},
            },
            exist_ok=True,
        )
    old = tmp_path / "v1.ndjson.zst"
    dump(cluster, old, "-n", ns, "-r", f"gadgets.{GADGETS}")
    current = api.call("GET", GADGET_CRD)
    current["spec"]["versions"] = [_gadget_version("v1", False), _gadget_version("v2", True)]
    api.call("PUT", GADGET_CRD, current)
    api.call("PATCH", f"/apis/{GADGETS}/v1/namespaces/{ns}/gadgets/g2", {"spec": {"size": 3}})
    new = tmp_path / "v2.ndjson.zst"
    deadline = time.monotonic() + 60  # until discovery prefers v2
    while True:
        dump(cluster, new, "-n", ns, "-r", f"gadgets.{GADGETS}", "--force")
        versions = {e.version for e in open_snapshot(str(new)).entries}
        if versions == {"v2"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert versions == {"v2"}
    r = kstream("diff", str(old), str(new), "-o", "ndjson")
    assert r.code == 1, r.err
    [rec] = records(r.out)  # g1 differs only in apiVersion: hidden
    assert (rec["change"], rec["name"], rec["version"]) == ("modified", "g2", "v2")
    assert {f["path"] for f in rec["fields"]} == {"apiVersion", "spec.size"}
    assert "1 object differs only in apiVersion, hidden" in r.err
    r = kstream("diff", str(old), str(new), "-o", "ndjson", "--show-api-version-changes")
    by = {x["name"]: x for x in records(r.out)}
    assert by["g1"]["fields"] == [
        {"path": "apiVersion", "old": f"{GADGETS}/v1", "new": f"{GADGETS}/v2"}
    ]


def test_kubectl_json_of_the_same_secrets_is_no_difference(
    cluster: Cluster, tmp_path: Path
) -> None:
    """README's workflow (issue 22.2): `kubectl get secrets,cm -o json` (raw values)
    against a dump of the same objects (sha256 digests, or HMAC under a key) is
    no difference, whichever side is old."""
    import subprocess

    from tests.conftest import KUBECTL

    ns = "diff-kubectl-secrets"
    api = cluster.api
    api.create(*namespace(ns), exist_ok=True)
    try:
        for name in ("a", "b"):
            api.create(*secret(ns, name, {"password": f"pw-{name}", "user": "admin"}))
        api.create(*configmap(ns, "c", size=10))
        key = tmp_path / "key"
        key.write_bytes(b"k" * 32)
        for extra in ((), ("--secret-key-file", str(key))):
            snap = tmp_path / f"snap{len(extra)}.ndjson.zst"
            dump(cluster, snap, "-n", ns, "-r", "secrets,configmaps", *extra)
            p = subprocess.run(
                [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "get", "secrets,configmaps",
                 "-n", ns, "-o", "json"],
                capture_output=True, check=True, timeout=120,
            )  # fmt: skip
            listed = tmp_path / "all.json"
            listed.write_bytes(p.stdout)
            assert b"cHctYQ==" in p.stdout  # the raw value of a's password
            for old, new in ((snap, listed), (listed, snap)):
                r = kstream("diff", str(old), str(new), *extra)
                assert (r.code, r.out) == (0, b""), r.err
    finally:
        api.call("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))
