"""kstream export on real control planes: the round trip. Seed the session's
control plane (cp1) with what a cluster holds (ConfigMaps, Secrets, a Deployment
with its ReplicaSet, Services, a Job, RBAC, a CRD served in two versions with
objects created through each, a cluster-scoped custom resource, and objects that
must not be applied back), dump it with --secrets include, export it, apply the
export to a fresh control plane (cp2) with the restore commands of docs/export.md
and the pinned kubectl, dump cp2 and diff the two snapshots: nothing differs but
the fields the servers set (SERVER_SET) and the objects export leaves out.

The control planes run kube-apiserver alone (no controller-manager): the
ReplicaSet is created by the test with its controller ownerReference, and on cp2
nothing recreates the objects left out.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KUBECTL, Cluster, kstream
from tests.controlplane import ControlPlane
from tests.seed import Api, crd, wait_for_resource

pytestmark = pytest.mark.cluster

SEL = "kstream-roundtrip=1"
LABELS = {"kstream-roundtrip": "1"}
GROUP = "rt.kstream.dev"
SHOP, OPS = "rt-shop", "rt-ops"
CRDS = "_cluster/customresourcedefinitions.apiextensions.k8s.io/"

# What the round trip's diff shows, and why (docs/export.md names the same):
# fields the new cluster's API server sets itself ...
SERVER_SET = {
    # allocated by the API server: export leaves them out, cp2 allocates its own
    ("services", SHOP, "web"): {"spec.clusterIP", "spec.clusterIPs.0"},
    ("services", SHOP, "nodeport"): {
        "spec.clusterIP",
        "spec.clusterIPs.0",
        "spec.ports.0.nodePort",
    },
    # a Job's selector and template labels are made from its uid
    ("jobs.batch", OPS, "once"): {
        'spec.selector.matchLabels["batch.kubernetes.io/controller-uid"]',
        'spec.template.metadata.labels["batch.kubernetes.io/controller-uid"]',
        "spec.template.metadata.labels.controller-uid",
    },
}
# ... and the objects export leaves out, which only a controller-manager makes.
# (`kubectl apply` without --server-side would also drop the null values of custom
# resources: client-side apply reads null as "remove this field".)
LEFT_OUT = {
    ("replicasets.apps", SHOP, "web-5d4f8"),
    ("secrets", SHOP, "builder-token"),
    ("configmaps", SHOP, "kube-root-ca.crt"),
    ("endpoints", SHOP, "web"),
}


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def meta(name: str, ns: str | None = None, **more: Any) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if ns:
        md["namespace"] = ns
    md.update(more)
    return md


def seed(api: Api) -> None:
    core, apps, rbac = "/api/v1", "/apis/apps/v1", "/apis/rbac.authorization.k8s.io/v1"
    for ns in (SHOP, OPS):
        api.create(f"{core}/namespaces", {"metadata": meta(ns) | {"labels": LABELS | {"team": ns}}})
    api.create(
        f"{core}/namespaces/{SHOP}/configmaps",
        {
            "metadata": meta("web-config"),
            "data": {
                "nginx.conf": "server {\n  listen 80;\n\troot /srv;\n}\n",
                "yes": "no",
                "port": "8080",
                "empty": "",
                "unicode": "caf\u00e9 \U0001f600 \u2028 end",
                "padded": "  leading spaces\nsecond line",
            },
            "binaryData": {"blob.bin": b64("\x00\x01binary")},
        },
    )
    api.create(
        f"{core}/namespaces/{SHOP}/configmaps",
        {"metadata": meta("kube-root-ca.crt"), "data": {"ca.crt": "PEM"}},
    )
    api.create(
        f"{core}/namespaces/{SHOP}/secrets",
        {"metadata": meta("db"), "type": "Opaque", "data": {"password": b64("s3cr3t\n")}},
    )
    api.create(
        f"{core}/namespaces/{OPS}/secrets",
        {
            "metadata": meta("tls"),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64("CERT"), "tls.key": b64("KEY")},
        },
    )
    api.create(f"{core}/namespaces/{SHOP}/serviceaccounts", {"metadata": meta("builder")})
    api.create(
        f"{core}/namespaces/{SHOP}/secrets",
        {
            "metadata": meta(
                "builder-token",
                annotations={"kubernetes.io/service-account.name": "builder"},
            ),
            "type": "kubernetes.io/service-account-token",
        },
    )
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
    }
    dep = api.create(
        f"{apps}/namespaces/{SHOP}/deployments",
        {
            "metadata": meta("web"),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
            },
        },
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "uid": dep["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    api.create(
        f"{apps}/namespaces/{SHOP}/replicasets",
        {
            "metadata": meta("web-5d4f8", ownerReferences=[owner]),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f8"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "5d4f8"}},
                    "spec": template["spec"],
                },
            },
        },
    )
    api.create(
        f"{core}/namespaces/{SHOP}/services",
        {"metadata": meta("web"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    )
    api.create(
        f"{core}/namespaces/{SHOP}/services",
        {
            "metadata": meta("headless"),
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    api.create(
        f"{core}/namespaces/{SHOP}/services",
        {
            "metadata": meta("nodeport"),
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 81}]},
        },
    )
    api.create(
        f"{core}/namespaces/{SHOP}/endpoints",
        {
            "metadata": meta(
                "web", labels=LABELS | {"endpoints.kubernetes.io/managed-by": "endpoint-controller"}
            ),
            "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}],
        },
    )
    api.create(
        f"/apis/batch/v1/namespaces/{OPS}/jobs",
        {
            "metadata": meta("once"),
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36"}],
                    }
                }
            },
        },
    )
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
    subject = {"kind": "ServiceAccount", "name": "builder", "namespace": SHOP}
    api.create(f"{rbac}/namespaces/{SHOP}/roles", {"metadata": meta("reader"), "rules": [rule]})
    api.create(
        f"{rbac}/namespaces/{SHOP}/rolebindings",
        {
            "metadata": meta("reader"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [subject],
        },
    )
    api.create(f"{rbac}/clusterroles", {"metadata": meta("rt-reader"), "rules": [rule]})
    api.create(
        f"{rbac}/clusterrolebindings",
        {
            "metadata": meta("rt-reader"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "rt-reader",
            },
            "subjects": [subject],
        },
    )
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    gadgets = crd(GROUP, "gadgets", "Gadget", versions=(("v1", True), ("v2", False)))
    gadgets["metadata"]["labels"] = dict(LABELS)
    api.create(crds, gadgets)
    things = crd(GROUP, "clusterthings", "ClusterThing", namespaced=False)
    things["metadata"]["labels"] = dict(LABELS)
    api.create(crds, things)
    wait_for_resource(api, f"/apis/{GROUP}/v2/gadgets")
    wait_for_resource(api, f"/apis/{GROUP}/v1/clusterthings")
    for version, name in (("v1", "g-one"), ("v2", "g-two")):
        api.create(
            f"/apis/{GROUP}/{version}/namespaces/{OPS}/gadgets",
            {
                "apiVersion": f"{GROUP}/{version}",
                "kind": "Gadget",
                "metadata": meta(name),
                "spec": {"size": 3, "ratio": 0.25, "tags": ["a", "on", "1"], "nested": {"x": None}},
            },
        )
    api.create(
        f"/apis/{GROUP}/v1/clusterthings",
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterThing",
            "metadata": meta("everywhere"),
            "spec": {"mode": "yes"},
        },
    )


def kubectl(kubeconfig: Path, *args: str) -> str:
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout


@pytest.fixture(scope="module")
def cp2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane-restore"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def trip(
    cluster: Cluster, cp2: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """cp1 seeded and dumped, exported, the export applied to cp2, cp2 dumped."""
    d = tmp_path_factory.mktemp("export-trip")
    seed(cluster.api)
    snap1, snap2, exp = d / "cp1.ndjson.zst", d / "cp2.ndjson.zst", d / "export"
    r = kstream(
        "dump", "-q", "--secrets", "include", "-o", str(snap1), kubeconfig=cluster.kubeconfig
    )
    assert r.code == 0, r.err
    exported = kstream("export", str(snap1), "-o", f"{exp}/", "-l", SEL)
    assert exported.code == 0, exported.err
    # the restore commands of docs/export.md
    kubectl(cp2.kubeconfig, "apply", "--server-side", "-R", "-f", str(exp / CRDS))
    kubectl(cp2.kubeconfig, "wait", "--for", "condition=Established", "-R", "-f", str(exp / CRDS))
    applied = kubectl(cp2.kubeconfig, "apply", "--server-side", "-R", "-f", f"{exp}/")
    r = kstream("dump", "-q", "--secrets", "include", "-o", str(snap2), kubeconfig=cp2.kubeconfig)
    assert r.code == 0, r.err
    return {
        "dir": d,
        "snap1": snap1,
        "snap2": snap2,
        "export": exp,
        "stderr": exported.err,
        "applied": applied,
    }


def changes(old: Path, new: Path, *args: str) -> list[dict[str, Any]]:
    r = kstream("diff", str(old), str(new), "-o", "ndjson", *args)
    assert r.code in (0, 1), r.err
    return [json.loads(line) for line in r.out.splitlines() if line.strip()]


def test_round_trip_differs_only_in_server_set_fields(trip: dict[str, Any]) -> None:
    seen_server_set: dict[tuple[str, str, str], set[str]] = {}
    removed: set[tuple[str, str, str]] = set()
    for c in changes(trip["snap1"], trip["snap2"], "-l", SEL):
        res = f"{c['resource']}.{c['group']}" if c["group"] else c["resource"]
        key = (res, c["namespace"] or "", c["name"])
        paths = {f["path"] for f in c.get("fields", [])}
        if c["change"] == "removed":
            removed.add(key)
            continue
        # another cluster: every object has another uid, hence "recreated"
        assert c["change"] in ("recreated", "modified"), c
        if paths:
            seen_server_set[key] = paths
    assert removed == LEFT_OUT
    for key, paths in seen_server_set.items():
        assert key in SERVER_SET, (key, paths)
        assert paths <= SERVER_SET[key], (key, paths)
    # the Job's uid-made fields always differ; the cluster IPs and node port
    # almost always (a new allocation may by chance be the same)
    assert seen_server_set[("jobs.batch", OPS, "once")] == SERVER_SET[("jobs.batch", OPS, "once")]


def test_round_trip_kept_the_values(trip: dict[str, Any], cp2: ControlPlane) -> None:
    cm = json.loads(kubectl(cp2.kubeconfig, "get", "cm", "-n", SHOP, "web-config", "-o", "json"))
    assert cm["data"]["nginx.conf"] == "server {\n  listen 80;\n\troot /srv;\n}\n"
    assert cm["data"]["unicode"] == "caf\u00e9 \U0001f600 \u2028 end"
    assert cm["data"]["padded"] == "  leading spaces\nsecond line"
    assert cm["data"]["yes"] == "no" and cm["data"]["port"] == "8080"
    sec = json.loads(kubectl(cp2.kubeconfig, "get", "secret", "-n", SHOP, "db", "-o", "json"))
    assert base64.b64decode(sec["data"]["password"]) == b"s3cr3t\n"
    g = json.loads(kubectl(cp2.kubeconfig, "get", f"gadgets.{GROUP}", "-n", OPS, "-o", "json"))
    assert sorted(i["metadata"]["name"] for i in g["items"]) == ["g-one", "g-two"]
    assert all(i["spec"]["ratio"] == 0.25 for i in g["items"])


def test_export_layout_and_summary(trip: dict[str, Any]) -> None:
    exp: Path = trip["export"]
    files = sorted(str(p.relative_to(exp)) for p in exp.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "kstream-export.index",
            f"{CRDS}clusterthings.{GROUP}.yaml",
            f"{CRDS}gadgets.{GROUP}.yaml",
            f"_cluster/clusterthings.{GROUP}/everywhere.yaml",
            "_cluster/clusterrolebindings.rbac.authorization.k8s.io/rt-reader.yaml",
            "_cluster/clusterroles.rbac.authorization.k8s.io/rt-reader.yaml",
            f"_cluster/namespaces/{OPS}.yaml",
            f"_cluster/namespaces/{SHOP}.yaml",
            f"{OPS}/gadgets.{GROUP}/g-one.yaml",
            f"{OPS}/gadgets.{GROUP}/g-two.yaml",
            f"{OPS}/jobs.batch/once.yaml",
            f"{OPS}/secrets/tls.yaml",
            f"{SHOP}/configmaps/web-config.yaml",
            f"{SHOP}/deployments.apps/web.yaml",
            f"{SHOP}/rolebindings.rbac.authorization.k8s.io/reader.yaml",
            f"{SHOP}/roles.rbac.authorization.k8s.io/reader.yaml",
            f"{SHOP}/secrets/db.yaml",
            f"{SHOP}/serviceaccounts/builder.yaml",
            f"{SHOP}/services/headless.yaml",
            f"{SHOP}/services/nodeport.yaml",
            f"{SHOP}/services/web.yaml",
        ]
    )
    index = (exp / "kstream-export.index").read_text().splitlines()
    assert index[0].startswith("# kstream export index")
    assert index[1:3] == sorted(
        [f"{CRDS}clusterthings.{GROUP}.yaml", f"{CRDS}gadgets.{GROUP}.yaml"]
    )
    assert index[3:5] == [f"_cluster/namespaces/{OPS}.yaml", f"_cluster/namespaces/{SHOP}.yaml"]
    svc = (exp / SHOP / "services" / "web.yaml").read_text()
    assert "clusterIP" not in svc and "uid" not in svc and "status" not in svc
    headless = (exp / SHOP / "services" / "headless.yaml").read_text()
    assert "clusterIP: None" in headless or 'clusterIP: "None"' in headless
    err = trip["stderr"]
    for reason in ("controller-owned", "ServiceAccount token", "kube-root-ca.crt", "Endpoints"):
        assert reason in err, err


def test_full_export_leaves_out_the_control_planes_own(trip: dict[str, Any]) -> None:
    out = trip["dir"] / "full"
    r = kstream("export", str(trip["snap2"]), "-o", f"{out}/")
    assert r.code == 0, r.err
    assert "made by the control plane" in r.err
    assert not (out / "_cluster" / "clusterroles.rbac.authorization.k8s.io" / "admin.yaml").exists()
    assert not (out / "default" / "services" / "kubernetes.yaml").exists()
    assert (out / "_cluster" / "clusterroles.rbac.authorization.k8s.io" / "rt-reader.yaml").exists()
    # applied with kubectl on cp2: kept, it has a kubectl field manager
    assert (out / SHOP / "configmaps" / "web-config.yaml").exists()
