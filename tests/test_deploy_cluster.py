"""deploy/ on the real control plane: the server validates the Kustomization,
the ClusterRole is enough for a complete dump (as the ServiceAccount, with a
token from the TokenRequest API), a role without `watch` is recorded as such,
and the in-cluster configuration works with the files and environment of a pod."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kstream.store.snapshot import open_snapshot
from tests.conftest import KUBECTL, REPO, Cluster, kstream
from tests.seed import Api, namespace

pytestmark = pytest.mark.cluster

DEPLOY = REPO / "deploy"
NS = "kstream"  # deploy/kustomization.yaml's namespace
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _kubectl(kc: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), *args], capture_output=True, text=True, timeout=120
    )


def _token(api: Api, sa: str) -> str:
    """A token for the ServiceAccount, from the TokenRequest API."""
    doc = api.call(
        "POST",
        f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    return str(doc["status"]["token"])


def _token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    doc = json.loads(cluster.kubeconfig.read_text())
    doc["users"][0]["user"] = {"token": token}
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def applied(cluster: Cluster) -> Iterator[Api]:
    """deploy/ applied for real (kubectl apply -k), then removed object by object
    (no namespace controller here: the namespace is finalized by hand)."""
    api = cluster.api
    r = _kubectl(cluster.kubeconfig, "apply", "-k", str(DEPLOY))
    assert r.returncode == 0, r.stderr
    try:
        yield api
    finally:
        _kubectl(cluster.kubeconfig, "delete", "-k", str(DEPLOY), "--wait=false")
        for sa in ("kstream-nowatch",):
            api.call("DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}", ok=(200, 404))
            api.call("DELETE", f"{RBAC}/clusterroles/{sa}", ok=(200, 404))
            api.call("DELETE", f"{RBAC}/clusterrolebindings/{sa}", ok=(200, 404))
        api.call(
            "PUT",
            f"/api/v1/namespaces/{NS}/finalize",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NS},
                "spec": {"finalizers": []},
            },
            ok=(200, 404, 409),
        )


def test_kustomization_validated_by_the_server(cluster: Cluster) -> None:
    """`kubectl apply --dry-run=server -k deploy/`: every object goes through the
    server's validation and admission, nothing is stored. A dry run creates no
    namespace, so the objects' namespace is made first (README's first step)."""
    cluster.api.create(*namespace(NS), exist_ok=True)
    r = _kubectl(cluster.kubeconfig, "apply", "--dry-run=server", "-k", str(DEPLOY))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(line.endswith("(server dry run)") for line in lines), r.stdout
    assert sorted(line.split()[0].split("/")[0] for line in lines) == [
        "clusterrole.rbac.authorization.k8s.io",
        "clusterrolebinding.rbac.authorization.k8s.io",
        "configmap",
        "cronjob.batch",
        "namespace",
        "serviceaccount",
    ], r.stdout
    # the dry run stored nothing
    got = cluster.api.call("GET", f"{RBAC}/clusterroles/kstream-reader", ok=(200, 404))
    assert got.get("kind") == "Status" and got.get("code") == 404, got


def _manifest(path: Path) -> dict[str, object]:
    snap = open_snapshot(str(path))
    assert snap.manifest is not None
    return snap.manifest.to_json()


def test_the_clusterrole_is_enough_for_a_complete_dump(
    applied: Api, cluster: Cluster, tmp_path: Path
) -> None:
    kc = _token_kubeconfig(cluster, _token(applied, "kstream"), tmp_path / "sa.kubeconfig")
    who = _kubectl(kc, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == (
        "system:serviceaccount:kstream:kstream"
    )
    r = kstream("dump", "-o", str(tmp_path / "sa.ndjson.zst"), kubeconfig=kc, env={"CI": "true"})
    assert r.code == 0, r.err
    admin = kstream("dump", "-o", str(tmp_path / "admin.ndjson.zst"), kubeconfig=cluster.kubeconfig)
    assert admin.code == 0, admin.err
    sa, ad = _manifest(tmp_path / "sa.ndjson.zst"), _manifest(tmp_path / "admin.ndjson.zst")
    assert sa["status"] == "complete"
    rows = {(e["group"], e["resource"]): e for e in sa["resources"]}  # type: ignore[attr-defined]
    assert set(rows) == {(e["group"], e["resource"]) for e in ad["resources"]}  # type: ignore[attr-defined]
    assert all(e["status"] == "complete" and e["method"] == "watch-list" for e in rows.values())
    assert rows[("", "secrets")]["objects"] > 0 and rows[("", "configmaps")]["objects"] > 0


def test_a_role_without_watch_is_recorded(applied: Api, cluster: Cluster, tmp_path: Path) -> None:
    """get/list without watch: every resource falls back to LIST, and the manifest
    says why (the ClusterRole of deploy/ keeps watch-list streams)."""
    name = "kstream-nowatch"
    applied.create(
        f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": name}}, exist_ok=True
    )
    applied.create(
        f"{RBAC}/clusterroles",
        {
            "metadata": {"name": name},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}],
        },
        exist_ok=True,
    )
    applied.create(
        f"{RBAC}/clusterrolebindings",
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NS}],
        },
        exist_ok=True,
    )
    kc = _token_kubeconfig(cluster, _token(applied, name), tmp_path / "nowatch.kubeconfig")
    out = tmp_path / "nowatch.ndjson.zst"
    r = kstream(
        "dump",
        "-o",
        str(out),
        "-r",
        "configmaps,secrets,namespaces",
        kubeconfig=kc,
        env={"CI": "true"},
    )
    assert r.code == 0, r.err
    entries = _manifest(out)["resources"]
    assert [(e["resource"], e["method"], e["fallbackCode"]) for e in entries] == [  # type: ignore[attr-defined]
        ("configmaps", "list", "watch forbidden"),
        ("namespaces", "list", "watch forbidden"),
        ("secrets", "list", "watch forbidden"),
    ]
    assert "watch forbidden" in r.err
    for e in entries:  # the server's own words are in the manifest
        assert f'cannot watch resource "{e["resource"]}"' in e["fallback"], e  # type: ignore[index]


def test_in_cluster_configuration(applied: Api, cluster: Cluster, tmp_path: Path) -> None:
    """What a pod has: no kubeconfig, KUBERNETES_SERVICE_HOST/PORT, and the token,
    CA and namespace files, here in a directory named by the test-only
    KSTREAM_SERVICEACCOUNT_DIR; the host is the real control plane's."""
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text(_token(applied, "kstream"))
    (mount / "ca.crt").write_bytes(cluster.cp.ca_file.read_bytes())
    (mount / "namespace").write_text(NS)
    u = urlparse(cluster.cp.url)
    pod = {
        "KUBECONFIG": "/nonexistent/kubeconfig",  # no kubeconfig file at all
        "HOME": str(tmp_path),
        "KUBERNETES_SERVICE_HOST": str(u.hostname),
        "KUBERNETES_SERVICE_PORT": str(u.port),
        "KSTREAM_SERVICEACCOUNT_DIR": str(mount),
        "CI": "true",
    }
    pod.update({k: "" for k in os.environ if k.lower().endswith("_proxy")})  # as in a pod
    out = str(tmp_path / "{context}" / "{cluster}.ndjson.zst")
    r = kstream("dump", "-o", out, env=pod)
    assert r.code == 0, r.err
    path = tmp_path / "in-cluster" / f"127.0.0.1:{u.port}.ndjson.zst"
    m = _manifest(path)
    assert m["status"] == "complete" and m["context"] == "in-cluster"
    assert m["server"]["url"] == cluster.cp.url  # type: ignore[index]
    c = kstream("count", "-r", "namespaces", "-o", "json", env=pod)
    assert c.code == 0, c.err
    assert json.loads(c.out)["total"]["objects"] >= 3
    # the same without the directory: the pod's standard path does not exist here
    del pod["KSTREAM_SERVICEACCOUNT_DIR"]
    r = kstream("count", "-r", "namespaces", env=pod)
    assert r.code == 4, r.err
    assert "Traceback" not in r.err
