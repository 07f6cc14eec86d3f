"""kstream dump against the real control plane: what it writes equals what the
server holds (kubectl is the reference), through watch-list and through LIST."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kstream.store.snapshot import open_snapshot
from tests.conftest import KUBECTL, Cluster, kstream, kubectl_json
from tests.controlplane.versions import KUBE_VERSION
from tests.seed import CRD_GROUP, configmap, deployment, grant, namespace, secret, widget

pytestmark = pytest.mark.cluster

NS = "dump-t"
MANY = [f"dump-many-{i:02d}" for i in range(12)]
BIG = 900 * 1024


@pytest.fixture(scope="module")
def seeded(cluster: Cluster) -> Cluster:
    api = cluster.api
    api.create(*namespace(NS, {"purpose": "dump-test"}), exist_ok=True)
    objs = [
        configmap(NS, "small", 300, labels={"app": "web"}),
        configmap(NS, "medium", 8000, labels={"app": "db"}),
        configmap(NS, "big", BIG, labels={"app": "web"}),
        secret(NS, "creds", {"password": "hunter2", "token": "t0k3n-value"}),
        deployment(NS, "frontend"),
        widget(NS, "w1", "red"),
        widget(NS, "w2", "green"),
    ]
    for path, obj in objs:
        api.create(path, obj, exist_ok=True)
    for ns in MANY:
        api.create(*namespace(ns), exist_ok=True)
        api.create(*configmap(ns, "cm", 500), exist_ok=True)
    # a Secret created with kubectl apply: its value is also in last-applied-configuration
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "applied", "namespace": NS},
        "stringData": {"apikey": "sup3r-s3cret-applied"},
    }
    subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"],
        input=json.dumps(manifest).encode(),
        check=True,
        capture_output=True,
    )
    return cluster


def ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}


def kubectl_items(kc: Path, resource: str, *args: str) -> list[dict[str, Any]]:
    items = kubectl_json(kc, "get", resource, "--show-managed-fields", *args)["items"]
    return items


def test_dump_equals_server_per_resource(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "snap.ndjson"
    r = kstream("dump", "-o", str(out), "--secrets", "include", kubeconfig=seeded.kubeconfig)
    assert r.code == 0, r.err
    dumped = by_key(ndjson(out))
    kc = seeded.kubeconfig
    for resource, scope in [
        ("configmaps", ["-A"]),
        ("secrets", ["-A"]),
        ("deployments.apps", ["-A"]),
        (f"widgets.{CRD_GROUP}", ["-A"]),
        ("namespaces", []),
        ("clusterroles", []),
        ("customresourcedefinitions", []),
    ]:
        want = kubectl_items(kc, resource, *scope)
        assert want, resource
        for obj in want:
            key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            assert dumped.get(key) == obj, f"{resource} {key} differs from kubectl"
    big = dumped[("ConfigMap", NS, "big")]
    assert len(big["data"]["payload"]) >= BIG - 62
    for ns in MANY:
        assert ("ConfigMap", ns, "cm") in dumped
    assert not any(k[0] == "Event" for k in dumped), "events are excluded by default"
    assert "excluded by default: events" in r.err


def test_objects_are_the_bytes_the_server_sent(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "cm.ndjson"
    r = kstream("dump", "-r", "cm", "-n", NS, "-o", str(out), kubeconfig=seeded.kubeconfig)
    assert r.code == 0, r.err
    # the same objects, as the server encodes them in a watch-list stream
    status, body = seeded.cp.request(
        f"/api/v1/namespaces/{NS}/configmaps?watch=1&sendInitialEvents=true"
        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=10",
        timeout=60,
    )
    assert status == 200
    prefix = b'{"type":"ADDED","object":'
    server = [line[len(prefix) : -1] for line in body.splitlines() if line.startswith(prefix)]
    assert out.read_bytes() == b"".join(o + b"\n" for o in server)
    assert b"\\u003csmall\\u003e \\u0026 co" in out.read_bytes()  # Go's HTML escaping kept


def test_secrets_redacted_by_default(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "s.ndjson.zst"
    r = kstream("dump", "-r", "secrets", "-n", NS, "-o", str(out), kubeconfig=seeded.kubeconfig)
    assert r.code == 0, r.err
    raw = subprocess.run(["zstdcat", str(out)], capture_output=True, check=True).stdout
    for value in (b"hunter2", b"t0k3n-value", b"sup3r-s3cret-applied"):
        assert value not in raw
        assert base64.b64encode(value) not in raw
    objs = by_key([json.loads(x) for x in raw.splitlines()])
    creds = objs[("Secret", NS, "creds")]
    import hashlib

    assert creds["data"]["password"] == "sha256:" + hashlib.sha256(b"hunter2").hexdigest()
    applied = objs[("Secret", NS, "applied")]
    last = json.loads(
        applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["stringData"]["apikey"].startswith("sha256:")
    assert applied["data"]["apikey"] == last["stringData"]["apikey"]  # same value, same digest


def test_secrets_exclude_and_hmac(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "x.ndjson"
    r = kstream(
        "dump", "-n", NS, "--secrets", "exclude", "-o", str(out), kubeconfig=seeded.kubeconfig
    )
    assert r.code == 0, r.err
    assert not any(o["kind"] == "Secret" for o in ndjson(out))
    key = tmp_path / "key"
    key.write_text("k3y\n")
    out2 = tmp_path / "h.ndjson"
    r = kstream(
        "dump",
        "-r",
        "secret",
        "-n",
        NS,
        "--secret-key-file",
        str(key),
        "-o",
        str(out2),
        kubeconfig=seeded.kubeconfig,
    )
    assert r.code == 0, r.err
    import hashlib
    import hmac

    creds = by_key(ndjson(out2))[("Secret", NS, "creds")]
    assert (
        creds["data"]["password"]
        == "hmac-sha256:" + hmac.new(b"k3y", b"hunter2", hashlib.sha256).hexdigest()
    )


def test_list_fallback_gives_identical_objects(
    seeded: Cluster, cluster_no_watchlist: Cluster, tmp_path: Path
) -> None:
    # forced LIST on the watch-list server: same objects
    a, b = tmp_path / "wl.zst", tmp_path / "list.zst"
    kc = seeded.kubeconfig
    assert kstream("dump", "-n", NS, "-o", str(a), kubeconfig=kc).code == 0
    r = kstream("dump", "-n", NS, "--method", "list", "-o", str(b), kubeconfig=kc)
    assert r.code == 0, r.err
    sa, sb = open_snapshot(str(a)), open_snapshot(str(b))
    assert {e.method for e in sa.entries} == {"watch-list"}
    assert {e.method for e in sb.entries} == {"list"}
    la = [json.loads(x) for x in sa.lines()]
    lb = [json.loads(x) for x in sb.lines()]
    assert la == lb
    # byte-identical too for these objects (the LIST path re-encodes like the server)
    assert b"".join(sa.lines()) == b"".join(sb.lines())
    # a server with WatchList off: automatic fallback, objects equal kubectl's
    out = tmp_path / "nowl.ndjson"
    r = kstream(
        "dump",
        "-n",
        "demo-0",
        "--secrets",
        "include",
        "-o",
        str(out),
        kubeconfig=cluster_no_watchlist.kubeconfig,
    )
    assert r.code == 0, r.err
    dumped = by_key(ndjson(out))
    for res in ("configmaps", "secrets", "deployments", f"widgets.{CRD_GROUP}"):
        for obj in kubectl_items(cluster_no_watchlist.kubeconfig, res, "-n", "demo-0"):
            key = (obj["kind"], "demo-0", obj["metadata"]["name"])
            assert dumped[key] == obj


def test_manifest_records_watch_list_fallback(
    cluster_no_watchlist: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "m.zst"
    r = kstream(
        "dump", "-r", "configmaps", "-o", str(out), kubeconfig=cluster_no_watchlist.kubeconfig
    )
    assert r.code == 0, r.err
    (e,) = open_snapshot(str(out)).entries
    assert e.method == "list"
    assert "watch-list refused" in (e.fallback or "")
    assert e.fallbackCode == "watch-list off"
    assert e.resourceVersion


def test_selectors_and_namespaces(seeded: Cluster, tmp_path: Path) -> None:
    kc = seeded.kubeconfig
    r = kstream("dump", "-o", "-", "-r", "cm", "-n", NS, "-l", "app=web", kubeconfig=kc)
    assert r.code == 0, r.err
    names = sorted(json.loads(x)["metadata"]["name"] for x in r.out.splitlines())
    assert names == ["big", "small"]
    r = kstream(
        "dump",
        "-o",
        "-",
        "-r",
        "cm",
        "--field-selector",
        "metadata.name=medium",
        "-q",
        kubeconfig=kc,
    )
    assert [json.loads(x)["metadata"]["namespace"] for x in r.out.splitlines()] == [NS]
    r = kstream("dump", "-o", "-", "-r", "configmaps", "-n", f"{MANY[0]},{MANY[1]}", kubeconfig=kc)
    assert sorted(json.loads(x)["metadata"]["namespace"] for x in r.out.splitlines()) == MANY[:2]
    # with -n, cluster-scoped resources are left out unless named
    r = kstream("dump", "-o", "-", "-n", NS, kubeconfig=kc)
    kinds = {json.loads(x)["kind"] for x in r.out.splitlines()}
    assert "Namespace" not in kinds and "ClusterRole" not in kinds
    assert {"ConfigMap", "Secret", "Deployment", "Widget"} <= kinds


def test_archive_round_trip_and_layout(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "a.ndjson.zst"
    r = kstream("dump", "-n", NS, "-o", str(out), kubeconfig=seeded.kubeconfig)
    assert r.code == 0, r.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    snap = open_snapshot(str(out))
    assert snap.complete and snap.manifest is not None
    m = snap.manifest
    assert m.status == "complete"
    assert m.server_version == KUBE_VERSION
    assert m.server_url is not None and m.server_url.startswith("https://127.0.0.1:")
    # zstdcat sees exactly the objects, in the manifest's order
    plain = subprocess.run(["zstdcat", str(out)], capture_output=True, check=True).stdout
    assert plain == b"".join(line + b"\n" for line in snap.lines())
    total = sum(e.objects for e in snap.entries)
    assert total == len(plain.splitlines())
    # one resource read on its own
    cm = next(e for e in snap.entries if e.resource == "configmaps")
    # (no controller-manager runs, so no kube-root-ca.crt ConfigMap)
    assert cm.objects == 3 and cm.status == "complete" and cm.method == "watch-list"
    assert sorted(json.loads(x)["metadata"]["name"] for x in snap.lines(cm)) == [
        "big",
        "medium",
        "small",
    ]
    # a directory dump holds the same objects, one file per resource + manifest
    d = tmp_path / "dir"
    r = kstream("dump", "-n", NS, "-o", f"{d}/", kubeconfig=seeded.kubeconfig)
    assert r.code == 0, r.err
    ds = open_snapshot(str(d))
    assert (d / "manifest.json").exists()
    assert b"".join(ds.lines()) == b"".join(snap.lines())


def test_truncated_archive_detected(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "t.ndjson.zst"
    assert kstream("dump", "-n", NS, "-o", str(out), kubeconfig=seeded.kubeconfig).code == 0
    data = out.read_bytes()
    cut = tmp_path / "cut.ndjson.zst"
    cut.write_bytes(data[: len(data) // 2])
    from kstream.errors import SnapshotError

    with pytest.raises(SnapshotError, match="truncated"):
        open_snapshot(str(cut))
    # zstd itself notices too
    assert subprocess.run(["zstd", "-t", str(cut)], capture_output=True).returncode != 0


def test_existing_output_needs_force(seeded: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "keep.ndjson"
    out.write_text("precious\n")
    r = kstream("dump", "-r", "cm", "-n", NS, "-o", str(out), kubeconfig=seeded.kubeconfig)
    assert r.code == 7
    assert out.read_text() == "precious\n"
    assert r.err.count("\n") == 1 and "use --force" in r.err
    r = kstream(
        "dump", "-r", "cm", "-n", NS, "-o", str(out), "--force", kubeconfig=seeded.kubeconfig
    )
    assert r.code == 0
    assert len(ndjson(out)) >= 3
    assert not [p for p in os.listdir(tmp_path) if "kstream-tmp" in p]


def test_limited_identity_gets_partial_dump(seeded: Cluster, tmp_path: Path) -> None:
    user = "dump-limited"
    kc = seeded.cp.add_user(user)
    grant(seeded.api, user, ["configmaps"], ["list", "watch"], namespace=NS)
    grant(seeded.api, user, ["secrets"], ["list"], namespace=NS)  # list but not watch
    out = tmp_path / "p.zst"
    r = kstream("dump", "-n", NS, "-r", "cm,secrets,deployments", "-o", str(out), kubeconfig=kc)
    assert r.code == 3, r.err
    snap = open_snapshot(str(out))
    st = {e.resource: e for e in snap.entries}
    assert st["configmaps"].status == "complete" and st["configmaps"].method == "watch-list"
    assert st["secrets"].status == "complete" and st["secrets"].method == "list"
    assert st["deployments"].status == "forbidden"
    assert snap.manifest is not None and snap.manifest.status == "partial"


def test_bad_input_one_line(seeded: Cluster, tmp_path: Path) -> None:
    kc = seeded.kubeconfig
    r = kstream("dump", "-r", "nosuchthing", "-o", "-", kubeconfig=kc)
    assert r.code == 2 and r.err.strip().count("\n") == 0 and "nosuchthing" in r.err
    r = kstream("dump", "-o", "-", "--context", "nope", kubeconfig=kc)
    assert r.code == 4 and 'context "nope" not found' in r.err
    r = kstream("dump", "-o", str(tmp_path / "no" / "such" / "dir" / "x.zst"), kubeconfig=kc)
    assert r.code == 7 and "does not exist" in r.err
    r = kstream("dump", "-o", "-", kubeconfig=tmp_path / "missing-kubeconfig")
    assert r.code == 4 and "kubeconfig not found" in r.err
    assert "Traceback" not in r.err


def test_forced_watch_list_never_falls_back(cluster_no_watchlist: Cluster, tmp_path: Path) -> None:
    """--method watch-list on a server without watch-list (issue 17.9): each
    resource fails with the reason, nothing is read by LIST (before: it fell
    back silently and the dump said complete)."""
    kc = cluster_no_watchlist.kubeconfig
    out = tmp_path / "w.zst"
    sel = ("-n", "demo-0", "-r", "configmaps,secrets")
    r = kstream("dump", *sel, "--method", "watch-list", "-o", str(out), kubeconfig=kc,
                env={"CI": "true"})  # fmt: skip
    assert r.code == 3, r.err
    snap = open_snapshot(str(out))
    assert snap.manifest is not None and snap.manifest.status == "partial"
    assert sorted(e.resource for e in snap.manifest.resources) == ["configmaps", "secrets"]
    for e in snap.manifest.resources:
        assert (e.status, e.method, e.objects) == ("failed", "watch-list", 0), e
        assert e.error and e.error.startswith("--method watch-list: watch-list off: "), e.error
    assert r.err.count("status=failed") == 2 and "method=list" not in r.err, r.err
    # auto reads the same resources by LIST
    r = kstream("dump", "-q", *sel, "-o", str(tmp_path / "a.zst"), kubeconfig=kc)
    assert r.code == 0, r.err
    assert {e.method for e in open_snapshot(str(tmp_path / "a.zst")).entries} == {"list"}
