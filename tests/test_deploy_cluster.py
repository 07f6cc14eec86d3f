"""deploy/ on the real control plane: the server validates the Kustomization,
the ClusterRole is enough for a complete dump (as the ServiceAccount, with a
token from the TokenRequest API), a role without `watch` is recorded as such,
and the in-cluster configuration works with the files and environment of a pod."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
        for sa in ("kstream-nowatch", "kstream-exact"):
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
    # the same objects (leases, renewed by the API server every few seconds, aside)
    d = kstream("diff", str(tmp_path / "sa.ndjson.zst"), str(tmp_path / "admin.ndjson.zst"),
                "--exclude", "leases")  # fmt: skip
    assert d.code == 0, d.text[:2000]


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


# --------------------------------------------------------------------------- least privilege

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def subresources(api: Api) -> list[tuple[str, str, str, bool]]:
    """Every (group, resource, subresource, namespaced) the server serves, from its
    aggregated discovery (as the admin)."""
    out: set[tuple[str, str, str, bool]] = set()
    for path in ("/api", "/apis"):
        conn = http.client.HTTPSConnection(api.host, api.port, context=api.ctx, timeout=60)
        conn.request(
            "GET", path, headers={"Authorization": f"Bearer {api.token}", "Accept": AGGREGATED}
        )
        doc = json.loads(conn.getresponse().read())
        conn.close()
        for group in doc["items"]:
            for version in group["versions"]:
                for r in version["resources"]:
                    for sub in r.get("subresources") or []:
                        out.add((group["metadata"].get("name", ""), r["resource"],
                                 sub["subresource"], r["scope"] == "Namespaced"))  # fmt: skip
    return sorted(out)


def _status(api: Api, token: str, method: str, path: str) -> int:
    conn = http.client.HTTPSConnection(api.host, api.port, context=api.ctx, timeout=60)
    try:
        conn.request(method, path, body=b"" if method in ("POST", "PUT", "PATCH") else None,
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _can_i(kc: Path, verb: str, group: str, resource: str, sub: str, namespaced: bool) -> str:
    args = ["auth", "can-i", verb, f"{resource}.{group}" if group else resource,
            f"--subresource={sub}"]  # fmt: skip
    if namespaced:
        args += ["-n", "default"]
    r = _kubectl(kc, *args)
    assert r.returncode in (0, 1), r.stderr  # yes / no
    return r.stdout.strip()


@pytest.fixture(scope="module")
def sa_kubeconfig(applied: Api, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _token_kubeconfig(
        cluster, _token(applied, "kstream"), tmp_path_factory.mktemp("sa") / "sa.kubeconfig"
    )


def test_no_get_or_create_on_any_subresource(applied: Api, sa_kubeconfig: Path) -> None:
    """deploy/'s ServiceAccount: `kubectl auth can-i` says no to get and to create on
    every subresource discovery lists (pods/exec, pods/log, nodes/proxy, the status
    and scale of every kind, serviceaccounts/token ...). list and watch match "*"
    (RBAC matches subresources against it; README says what that means)."""
    subs = subresources(applied)
    names = {f"{r}/{s}" for _, r, s, _ in subs}
    assert {"pods/exec", "pods/log", "pods/attach", "pods/portforward", "pods/proxy",
            "nodes/proxy", "services/proxy", "serviceaccounts/token"} <= names  # fmt: skip
    jobs = [(verb, *s) for s in subs for verb in ("get", "create")]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda j: _can_i(sa_kubeconfig, *j), jobs))
    allowed = [j for j, a in zip(jobs, answers, strict=True) if a != "no"]
    assert allowed == [], allowed
    # what the wildcard does match: list and watch, which no subresource serves
    assert _can_i(sa_kubeconfig, "list", "", "pods", "log", True) == "yes"
    assert _can_i(sa_kubeconfig, "get", "", "pods", "", True) == "no"


PROXIES = ("/api/v1/nodes/{node}/proxy", "/api/v1/namespaces/default/pods/{pod}/proxy",
           "/api/v1/namespaces/default/services/kubernetes/proxy")  # fmt: skip


def test_every_proxy_request_is_refused(applied: Api, sa_kubeconfig: Path) -> None:
    """Each proxy subresource (nodes, pods, services), each HTTP method, with and
    without a path and a port: 403 for the ServiceAccount; the admin's same
    requests get past authorization (anything but 403), so the 403 is the role's.
    The list/watch forms of a subresource (which "*" matches) reach no handler."""
    token = _token(applied, "kstream")
    node, pod = "no-such-node", "no-such-pod"
    paths = []
    for p in PROXIES:
        base = p.format(node=node, pod=pod)
        paths += [base, base + "/", base + "/metrics", base + "/api/v1/pods?watch=true"]
    paths += [
        PROXIES[1].format(pod=pod + ":8080", node=""),
        PROXIES[0].format(node=node + ":10250"),
    ]
    methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    for path in paths:
        for method in methods:
            assert _status(applied, token, method, path) == 403, (method, path)
            assert _status(applied, applied.token, method, path) != 403, (method, path)
    # the other connect subresources and the logs
    for sub in ("exec", "attach", "portforward", "log"):
        path = f"/api/v1/namespaces/default/pods/{pod}/{sub}"
        for method in ("GET", "POST"):
            assert _status(applied, token, method, path) == 403, (method, path)
    # list/watch forms of subresources: authorised by the wildcard, served by nothing
    for path in (f"/api/v1/watch/nodes/{node}/proxy", f"/api/v1/watch/namespaces/default/pods/{pod}/log",
                 f"/api/v1/watch/namespaces/default/pods/{pod}/exec"):  # fmt: skip
        assert _status(applied, token, "GET", path) == 404, path


def _apply(kc: Path, yaml_text: str) -> None:
    r = subprocess.run([KUBECTL, "--kubeconfig", str(kc), "apply", "-f", "-"],
                       input=yaml_text, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "scope",
    [
        (),
        ("--exclude", "secrets"),
        ("-n", "demo-0,demo-1", "-r", "cm,secrets,deploy,widgets,namespaces"),
    ],
    ids=["everything", "no-secrets", "namespaces"],
)
def test_the_generated_role_is_enough(
    applied: Api, cluster: Cluster, tmp_path: Path, scope: tuple[str, ...]
) -> None:
    """`kstream rbac` for a scope, applied, bound to a new ServiceAccount: the dump
    of that scope as it is complete and equal to the admin's (leases, renewed by
    the API server every few seconds, left out of the comparison)."""
    name = "kstream-exact"
    applied.create(f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": name}},
                   exist_ok=True)  # fmt: skip
    role = kstream("rbac", *scope, "--name", name, "--service-account", f"{NS}/{name}",
                   kubeconfig=cluster.kubeconfig)  # fmt: skip
    assert role.code == 0, role.err
    assert '"get"' not in role.text or "-n" in scope
    _apply(cluster.kubeconfig, role.text)
    try:
        token = _token(applied, name)
        kc = _token_kubeconfig(cluster, token, tmp_path / "exact.kubeconfig")
        for p in PROXIES:  # no rule names a subresource
            assert _status(applied, token, "GET", p.format(node="n", pod="p")) == 403, p
        sa = kstream("dump", *scope, "-o", str(tmp_path / "sa.ndjson.zst"), kubeconfig=kc,
                     env={"CI": "true"})  # fmt: skip
        assert sa.code == 0, sa.err
        assert "warning" not in sa.err, sa.err
        admin = kstream("dump", *scope, "-o", str(tmp_path / "admin.ndjson.zst"),
                        kubeconfig=cluster.kubeconfig)  # fmt: skip
        assert admin.code == 0, admin.err
        m_sa, m_ad = _manifest(tmp_path / "sa.ndjson.zst"), _manifest(tmp_path / "admin.ndjson.zst")
        assert m_sa["status"] == "complete"
        rows = m_sa["resources"]
        assert [(e["group"], e["resource"], e["namespace"]) for e in rows] == [  # type: ignore[attr-defined]
            (e["group"], e["resource"], e["namespace"])
            for e in m_ad["resources"]  # type: ignore[attr-defined]
        ]
        assert all(e["status"] == "complete" and e["method"] == "watch-list" for e in rows)  # type: ignore[attr-defined]
        renewed = () if "-r" in scope else ("--exclude", "leases")
        d = kstream("diff", str(tmp_path / "sa.ndjson.zst"), str(tmp_path / "admin.ndjson.zst"),
                    *renewed)  # fmt: skip
        assert d.code == 0, d.text[:2000]
        if "-n" in scope:  # granted in those namespaces only, with get of the namespace itself

            def can(*args: str) -> str:
                return _kubectl(kc, "auth", "can-i", *args).stdout.strip()

            assert can("get", "namespaces/demo-0", "-n", "demo-0") == "yes"
            assert can("get", "namespaces/demo-2", "-n", "demo-2") == "no"
            assert can("get", "configmaps", "-n", "demo-0") == "no"
            assert can("list", "configmaps", "-n", "demo-0") == "yes"
            assert can("list", "configmaps", "-n", "demo-2") == "no"
            assert can("list", "namespaces") == "yes"  # named with -r: cluster-wide
        if "secrets" in scope and "--exclude" in scope:
            assert not [e for e in rows if e["resource"] == "secrets"]  # type: ignore[index]
            assert _kubectl(kc, "auth", "can-i", "list", "secrets", "-A").stdout.strip() == "no"
    finally:
        r = subprocess.run([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "delete", "-f", "-",
                            "--ignore-not-found"], input=role.text, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stderr
