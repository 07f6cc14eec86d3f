"""kstream serve against the pinned kubectl, on a snapshot taken from the real
control plane with `kstream dump`; where kubectl prints the same thing for the
real server, the outputs are compared (differential)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kstream.store.snapshot import open_snapshot
from tests import referee
from tests.conftest import KUBECTL, VENV_BIN, Cluster, kstream
from tests.controlplane.versions import kube_minor
from tests.seed import CRD_GROUP, configmap, crd, deployment, namespace, secret, wait_for_resource

pytestmark = pytest.mark.cluster

NS = "serve-t"
GROUP = "serve.kstream.dev"
GADGETS = f"/apis/{GROUP}/v1/namespaces/{NS}/gadgets"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def gadget_crd() -> dict[str, Any]:
    """A CRD with printer columns of each type (one wide, one leading nowhere)."""
    doc = crd(GROUP, "gadgets", "Gadget", short_names=("gd",))
    doc["spec"]["names"]["categories"] = ["all"]
    doc["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "First", "type": "string", "jsonPath": ".spec.parts[0].name"},
        {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
        {"name": "On", "type": "boolean", "jsonPath": ".spec.on", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return doc


def workloads() -> list[tuple[str, dict[str, Any]]]:
    """One object of each kind with its own printer (no controllers run here:
    they keep the status they were created with, which is what is printed)."""
    labels = {"app": "w"}
    pod_spec = {"containers": [{"name": "c", "image": "nginx:1.27"}]}
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    job_template = {"spec": {**pod_spec, "restartPolicy": "Never"}}

    def obj(
        path: str, kind: str, name: str, api: str = "v1", **rest: Any
    ) -> tuple[str, dict[str, Any]]:
        md = {"name": name, "labels": labels}
        return path, {"apiVersion": api, "kind": kind, "metadata": md, **rest}

    core, apps, batch = (
        f"/api/v1/namespaces/{NS}",
        f"/apis/apps/v1/namespaces/{NS}",
        f"/apis/batch/v1/namespaces/{NS}",
    )
    sel = {"matchLabels": labels}
    return [
        obj(f"{core}/serviceaccounts", "ServiceAccount", "default"),  # pods need one
        obj(f"{core}/pods", "Pod", "pod-1", spec={**pod_spec, "nodeName": "node-a"}),
        obj(f"{core}/services", "Service", "svc", spec={"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}),
        obj(f"{core}/services", "Service", "ext", spec={"type": "ExternalName", "externalName": "example.com"}),
        obj(f"{core}/serviceaccounts", "ServiceAccount", "sa"),
        obj(f"{core}/persistentvolumeclaims", "PersistentVolumeClaim", "pvc",
            spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        obj(f"{apps}/replicasets", "ReplicaSet", "rs", "apps/v1", spec={"replicas": 2, "selector": sel, "template": template}),
        obj(f"{apps}/statefulsets", "StatefulSet", "sts", "apps/v1",
            spec={"replicas": 1, "selector": sel, "template": template, "serviceName": "svc"}),
        obj(f"{apps}/daemonsets", "DaemonSet", "ds", "apps/v1", spec={"selector": sel, "template": template}),
        obj(f"{batch}/jobs", "Job", "job", "batch/v1", spec={"template": job_template}),
        obj(f"{batch}/cronjobs", "CronJob", "cj", "batch/v1",
            spec={"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_template}}}),
        obj(f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses", "Ingress", "ing", "networking.k8s.io/v1",
            spec={"rules": [{"host": "a.example.com"}]}),
    ]  # fmt: skip


def gadget(name: str, size: int) -> dict[str, Any]:
    spec = {"color": "red", "size": size, "on": size > 1, "parts": [{"name": f"p{size}"}]}
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": spec}


N_CM = 120  # more than two pages of --chunk-size=50


@dataclass
class Served:
    snap: Path
    kubeconfig: Path
    proc: subprocess.Popen[bytes]
    banner: str
    objects: dict[str, list[dict[str, Any]]]  # "resource.group" -> the snapshot's objects

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert p.returncode == 0, p.stderr
        return p


def real_kubectl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(snap: Path, kubeconfig: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`kstream serve` in the background; returns when it has printed its banner."""
    args = ["serve", str(snap), "--port", "0", "--kubeconfig-out", str(kubeconfig)]
    proc = subprocess.Popen(
        [str(VENV_BIN / "kstream"), *args, "--bookmark-interval", "0.3", *extra],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines = []
    for raw in proc.stderr:
        lines.append(raw.decode())
        if "Ctrl-C" in lines[-1]:
            break
    else:
        proc.wait()
        pytest.fail(f"kstream serve ended: {''.join(lines)}")
    return proc, "".join(lines)


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode()


@pytest.fixture(scope="module")
def served(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    api = cluster.api
    d = tmp_path_factory.mktemp("serve")
    api.create(*namespace(NS), exist_ok=True)
    for i in range(N_CM):
        api.create(*configmap(NS, f"cm-{i:03d}", size=50, labels={"tier": "ab"[i % 2]}))
    api.create(*deployment(NS, "web"))
    api.create(*secret(NS, "creds", {"password": "hunter2"}))
    for path, obj in workloads():
        api.create(path, obj)
    api.create(CRDS, gadget_crd())
    wait_for_resource(api, GADGETS)
    for i in (1, 2):
        api.create(GADGETS, gadget(f"g{i}", i))
    snap = d / "snap.zst"
    r = kstream("dump", "-q", "-o", str(snap), kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    s = open_snapshot(str(snap))
    objects: dict[str, list[dict[str, Any]]] = {}
    for e in s.entries:
        objects.setdefault(e.name, []).extend(json.loads(x) for x in s.lines(e))
    proc, banner = start(snap, d / "kubeconfig")
    try:
        yield Served(snap, d / "kubeconfig", proc, banner, objects)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for i in range(N_CM):
            api.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps/cm-{i:03d}", ok=(200, 404))
        api.call("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/web", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}/secrets/creds", ok=(200, 404))
        for path, obj in workloads():
            api.call("DELETE", f"{path}/{obj['metadata']['name']}", ok=(200, 404))
        for i in (1, 2):
            api.call("DELETE", f"{GADGETS}/g{i}", ok=(200, 404))
        api.call("DELETE", f"{CRDS}/gadgets.{GROUP}", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 404))


def key(o: dict[str, Any]) -> tuple[str, str]:
    md = o["metadata"]
    return (md.get("namespace", ""), md["name"])


def test_banner_and_kubeconfig(served: Served) -> None:
    assert f"KUBECONFIG={served.kubeconfig} kubectl get pods -A" in served.banner
    assert f"KUBECONFIG={served.kubeconfig} k9s" in served.banner
    kc = json.loads(served.kubeconfig.read_text())
    assert kc["current-context"] == "kstream-snap.zst"
    token = kc["users"][0]["user"]["token"]
    assert token not in served.banner  # never printed
    assert served.kubeconfig.stat().st_mode & 0o077 == 0


@pytest.mark.compat
def test_get_json_of_each_kind_equals_the_snapshot(served: Served) -> None:
    assert len(served.objects) >= 5
    for name, objs in served.objects.items():
        p = served.kubectl("get", name, "-A", "-o", "json", "--show-managed-fields")
        got = json.loads(p.stdout)["items"]
        assert sorted(got, key=key) == sorted(objs, key=key), name


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
TIMES = ("Age", "Duration", "Last Schedule", "Last Seen", "Created At")
PATHS = {
    "pods": "/api/v1/namespaces/{ns}/pods", "services": "/api/v1/namespaces/{ns}/services",
    "serviceaccounts": "/api/v1/namespaces/{ns}/serviceaccounts",
    "persistentvolumeclaims": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps", "cm": "/api/v1/namespaces/{ns}/configmaps",
    "secrets": "/api/v1/namespaces/{ns}/secrets", "ns": "/api/v1/namespaces/{ns}",
    "replicasets": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "statefulsets": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "daemonsets": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
    "deploy": "/apis/apps/v1/namespaces/{ns}/deployments",
    "jobs": "/apis/batch/v1/namespaces/{ns}/jobs", "cronjobs": "/apis/batch/v1/namespaces/{ns}/cronjobs",
    "ingresses": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "widgets": f"/apis/{CRD_GROUP}/v1/widgets",
}  # fmt: skip


def raw_table(served: Served | None, cluster: Cluster, path: str) -> list[list[str]]:
    """The Table the server (`served` None) or kstream serve answers for `path`:
    header and cells as text, times left out. The referee where kubectl is out of
    the version skew policy of the real server (tests/referee.py)."""
    if served is None:
        url, token, ctx = cluster.cp.url, cluster.cp.admin_token, cluster.cp.ssl_context()
    else:
        kc = json.loads(served.kubeconfig.read_text())
        c = kc["clusters"][0]["cluster"]
        url, token = c["server"], kc["users"][0]["user"]["token"]
        ctx = ssl.create_default_context(
            cadata=base64.b64decode(c["certificate-authority-data"]).decode()
        )
    req = urllib.request.Request(
        url + path, headers={"Authorization": f"Bearer {token}", "Accept": TABLE}
    )
    with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:
        doc = json.loads(resp.read())
    assert doc["kind"] == "Table", doc
    cols = [c["name"] for c in doc["columnDefinitions"]]
    keep = [i for i, n in enumerate(cols) if n not in TIMES]
    rows = [[cols[i] for i in keep]]
    rows += [[str(row["cells"][i]) for i in keep] for row in doc["rows"]]
    return rows


def kubectl_fits(cluster: Cluster) -> bool:
    return referee.kubectl_fits(cluster.cp, KUBECTL)


@pytest.mark.compat
def test_table_columns_match_the_real_server(served: Served, cluster: Cluster) -> None:
    """`kubectl get` prints the same header and names as on the real server."""
    if not kubectl_fits(cluster):
        for kind in ("cm", "deploy", "secrets", "ns", "widgets"):
            path = PATHS[kind].format(ns=NS)
            assert raw_table(served, cluster, path) == raw_table(None, cluster, path), kind
    for args in (
        ["cm", "-n", NS],
        ["deploy", "-n", NS],
        ["deploy", "-n", NS, "-o", "wide"],
        ["secrets", "-n", NS],
        ["ns", NS],
        ["widgets", "-A"],
    ):
        mine = served.kubectl("get", *args).stdout.splitlines()
        if not kubectl_fits(cluster):
            assert len(mine) > 1, args  # kubectl reads the snapshot; the Tables were compared
            continue
        real = real_kubectl(cluster, "get", *args).stdout.splitlines()
        assert mine[0].split() == real[0].split(), args
        assert [ln.split()[0] for ln in mine[1:]] == [ln.split()[0] for ln in real[1:]], args
    rows = served.kubectl("get", "cm", "-n", NS).stdout.splitlines()
    assert len(rows) == 1 + N_CM
    assert rows[1].split()[:2] == ["cm-000", "2"]  # NAME DATA


def test_custom_resources_print_their_crds_columns(served: Served, cluster: Cluster) -> None:
    """Printer columns, short names and categories come from the snapshot's CRD."""

    def without_age(out: str) -> list[list[str]]:
        rows = [ln.split() for ln in out.splitlines()]
        # counted from the end: the empty MISSING cell before it is no word
        age = rows[0].index("AGE") - len(rows[0])
        return [r[:age] + r[age + 1 :] if age < -1 else r[:age] for r in rows]

    # group-qualified: other test modules' CRDs in the shared cluster may serve
    # "gadgets" too, and an ambiguous name is resolved by discovery order
    for args in (
        [f"gadgets.{GROUP}", "-n", NS],
        ["gd", "-n", NS, "-o", "wide"],
        ["all", "-n", NS],
    ):
        mine = served.kubectl("get", *args).stdout
        real = real_kubectl(cluster, "get", *args).stdout
        if args[0] == "all":  # deployments and gadgets, each its own table
            assert "gadget." + GROUP + "/g1" in mine and "gadget." + GROUP + "/g1" in real
            continue
        assert without_age(mine) == without_age(real), (mine, real)
        assert "p2" in mine


KINDS = ("pods", "services", "serviceaccounts", "persistentvolumeclaims", "replicasets",
         "statefulsets", "daemonsets", "jobs", "cronjobs", "ingresses", "deployments",
         "configmaps", "secrets")  # fmt: skip


@pytest.mark.compat
@pytest.mark.parametrize("kind", KINDS)
def test_printers_match_the_real_server(served: Served, cluster: Cluster, kind: str) -> None:
    """`kubectl get KIND -o wide`: every column but AGE (and the job's
    DURATION, a time too) as the real server prints it."""

    def cells(out: str) -> list[list[str]]:
        lines = out.splitlines()
        head = lines[0]
        # the columns' start offsets, from the header (cells may be blank or hold spaces)
        starts = [i for i, ch in enumerate(head) if ch != " " and (i == 0 or head[i - 1] == " ")]
        names = head.split()
        keep = [k for k, n in enumerate(names) if n not in ("AGE", "DURATION", "LAST")]
        rows = []
        for ln in lines:
            cut = [ln[a:b].strip() for a, b in zip(starts, [*starts[1:], len(ln) + 1], strict=True)]
            rows.append([cut[k] for k in keep])
        return rows

    mine = served.kubectl("get", kind, "-n", NS, "-o", "wide").stdout
    if not kubectl_fits(cluster):
        path = PATHS[kind].format(ns=NS)
        real = raw_table(None, cluster, path)
        if kind == "serviceaccounts" and kube_minor(cluster.cp.kube_version) <= 34:
            # up to 1.34 the server prints how many secrets a ServiceAccount lists;
            # 1.35 dropped the column, and kstream serve prints 1.35's columns
            # (docs/compatibility.md)
            assert real[0] == ["Name", "Secrets"], real
            real = [row[:1] for row in real]
        assert raw_table(served, cluster, path) == real, kind
        assert len(cells(mine)) > 1, mine
        return
    real = real_kubectl(cluster, "get", kind, "-n", NS, "-o", "wide").stdout
    assert cells(mine) == cells(real), (mine, real)


def test_describe_like_the_real_server(served: Served, cluster: Cluster) -> None:
    for what in (["cm", "cm-007"], ["deploy", "web"]):
        mine = served.kubectl("describe", "-n", NS, *what)
        real = real_kubectl(cluster, "describe", "-n", NS, *what)
        assert mine.stderr == "" and real.returncode == 0
        assert mine.stdout == real.stdout, what


def test_api_resources_lists_what_the_snapshot_holds(served: Served) -> None:
    # and what its dump found but left out by default (events), listed empty
    manifest = open_snapshot(str(served.snap)).manifest
    assert manifest is not None
    assert manifest.excluded_by_default == ("events",)
    left_out = ["events", "events.events.k8s.io"]  # the same objects under two groups
    out = served.kubectl("api-resources", "-o", "name").stdout.split()
    assert sorted(out) == sorted([*served.objects, *left_out])


def test_events_left_out_list_empty_like_the_real_server(served: Served, cluster: Cluster) -> None:
    """`kubectl get events` against a default dump: "No resources found", exit 0,
    as the real server says for a namespace without events."""
    for what in ("events", "events.events.k8s.io", "ev"):
        args = ("get", what, "-n", "kstream-no-events")
        mine = served.kubectl(*args, check=False)
        real = real_kubectl(cluster, *args)
        assert (mine.returncode, mine.stdout, mine.stderr) == (
            real.returncode,
            real.stdout,
            real.stderr,
        ), what
        assert mine.returncode == 0 and "No resources found" in mine.stderr


def test_short_names_like_the_real_server(served: Served, cluster: Cluster) -> None:
    """Every served resource has the short names the real server gives it."""

    def short_names(run: Any, path: str) -> dict[str, list[str]]:
        p = run("get", "--raw", path)
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout)["resources"]
        return {r["name"]: r.get("shortNames") or [] for r in res if "/" not in r["name"]}

    def mine(*args: str) -> subprocess.CompletedProcess[str]:
        return served.kubectl(*args, check=False)

    def real(*args: str) -> subprocess.CompletedProcess[str]:
        return real_kubectl(cluster, *args)

    groups = json.loads(mine("get", "--raw", "/apis").stdout)["groups"]
    paths = ["/api/v1"] + [f"/apis/{g['preferredVersion']['groupVersion']}" for g in groups]
    for path in paths:
        served_names = short_names(mine, path)
        real_names = short_names(real, path)
        assert served_names == {n: real_names[n] for n in served_names}, path


def test_selectors_and_pagination(served: Served) -> None:
    names = [f"configmap/cm-{i:03d}" for i in range(N_CM)]
    got = served.kubectl("get", "cm", "-n", NS, "-l", "tier=a", "-o", "name").stdout.split()
    assert got == names[0::2]
    got = served.kubectl(
        "get", "cm", "-A", "--field-selector", "metadata.name=cm-007",
        "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
    ).stdout.split()  # fmt: skip
    # other test modules may hold a cm-007 in the shared cluster too
    want = sorted(
        f"{o['metadata']['namespace']}/cm-007"
        for o in served.objects["configmaps"]
        if o["metadata"]["name"] == "cm-007"
    )
    assert f"{NS}/cm-007" in want
    assert got == want
    got = served.kubectl(
        "get", "cm", "-A", "--field-selector", f"metadata.namespace={NS},metadata.name!=cm-000",
        "-o", "name",
    ).stdout.split()  # fmt: skip
    assert got == names[1:]
    everything = sorted(served.objects["configmaps"], key=key)
    p = served.kubectl(
        "get", "cm", "-A", "--chunk-size=50", "-o", "json", "-v=6", "--show-managed-fields"
    )
    assert json.loads(p.stdout)["items"] == everything
    # the responses logged (not kubectl's "client-side throttling" lines, which name URLs too)
    pages = [
        ln
        for ln in p.stderr.splitlines()
        if '"Response"' in ln and "/configmaps?" in ln and "limit=50" in ln
    ]
    assert len(pages) == -(-len(everything) // 50)
    assert sum("continue=" in ln for ln in pages) == len(pages) - 1
    # a label selector across pages: kubectl follows continue until the end
    p = served.kubectl("get", "cm", "-n", NS, "-l", "tier=b", "--chunk-size=7", "-o", "name")
    assert p.stdout.split() == names[1::2]


def test_field_selectors_on_absent_fields_like_the_real_server(
    served: Served, cluster: Cluster
) -> None:
    """Fields the objects leave out (hostNetwork, a job's succeeded count) match
    the server's zero values; a label the server does not know is refused."""
    for resource, selector in [
        ("pods", "spec.hostNetwork=false"),
        ("pods", "spec.hostNetwork=true"),
        ("jobs", "status.successful=0"),
        ("replicasets", "status.replicas=0"),
        ("services", "spec.type=ExternalName"),
        ("services", "spec.type!=ExternalName"),
    ]:
        args = ("get", resource, "-n", NS, "--field-selector", selector, "-o", "name")
        mine, real = served.kubectl(*args, check=False), real_kubectl(cluster, *args)
        assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout), selector


def test_not_found_like_the_real_server(served: Served, cluster: Cluster) -> None:
    for args in (["cm", "-n", NS, "nope"], ["deploy", "-n", NS, "nope"], ["nosuchthings"]):
        mine = served.kubectl("get", *args, check=False)
        real = real_kubectl(cluster, "get", *args)
        assert (mine.returncode, mine.stderr) == (real.returncode, real.stderr), args


def test_writes_are_refused(served: Served, tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: new, namespace: {NS}}}\n")
    p = served.kubectl("apply", "-f", str(f), check=False)
    assert p.returncode == 1
    assert "Error from server (MethodNotAllowed)" in p.stderr
    assert "read-only snapshot" in p.stderr
    p = served.kubectl("delete", "cm", "-n", NS, "cm-001", check=False)
    assert p.returncode == 1 and "read-only snapshot" in p.stderr
    assert served.kubectl("get", "cm", "-n", NS, "cm-001", "-o", "name").stdout.strip()


def test_auth_can_i_reads_only(served: Served) -> None:
    """kubectl (and k9s) ask with a SelfSubjectAccessReview, sent as protobuf."""
    p = served.kubectl("auth", "can-i", "list", "configmaps", "-A", check=False)
    assert (p.returncode, p.stdout.strip()) == (0, "yes")
    p = served.kubectl("auth", "can-i", "watch", "deployments.apps", "-n", NS, check=False)
    assert (p.returncode, p.stdout.strip()) == (0, "yes")
    p = served.kubectl("auth", "can-i", "create", "configmaps", "-n", NS, check=False)
    assert p.returncode == 1 and p.stdout.startswith("no - this server is a read-only snapshot")


def test_secrets_stay_redacted(served: Served) -> None:
    p = served.kubectl("get", "secret", "-n", NS, "creds", "-o", "json", "--show-managed-fields")
    got = json.loads(p.stdout)
    value = got["data"]["password"]
    assert value == "sha256:" + hashlib.sha256(b"hunter2").hexdigest()
    assert got == next(o for o in served.objects["secrets"] if key(o) == (NS, "creds"))


def _open(served: Served, path: str) -> Any:
    kc = json.loads(served.kubeconfig.read_text())
    cluster = kc["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    req = urllib.request.Request(
        cluster["server"] + path,
        headers={"Authorization": f"Bearer {kc['users'][0]['user']['token']}"},
    )
    return urllib.request.urlopen(req, context=ctx, timeout=60)


def test_requests_without_the_kubeconfigs_path_are_served_too(served: Served) -> None:
    """docs/serve.md: the server URL has a path of its own for each run;
    requests without it are served too."""
    from urllib.parse import urlsplit

    kc = json.loads(served.kubeconfig.read_text())
    server = urlsplit(kc["clusters"][0]["cluster"]["server"])
    assert server.path.startswith("/kstream-")
    with _open(served, "/version") as resp:
        with_path = json.loads(resp.read())
    kc["clusters"][0]["cluster"]["server"] = f"{server.scheme}://{server.netloc}"
    bare = served.kubeconfig.with_name("bare.kubeconfig")
    bare.write_text(json.dumps(kc))
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(bare), "get", "--raw", "/version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == with_path


@pytest.mark.compat
def test_watch_list_sends_objects_then_the_end_bookmark_then_bookmarks(served: Served) -> None:
    path = (
        f"/api/v1/namespaces/{NS}/configmaps?watch=1&sendInitialEvents=true"
        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=2"
    )
    with _open(served, path) as resp:
        events = [json.loads(line) for line in resp]
    want = sorted((o for o in served.objects["configmaps"] if key(o)[0] == NS), key=key)
    n = len(want)
    assert [e["type"] for e in events[:n]] == ["ADDED"] * n
    assert [e["object"] for e in events[:n]] == want
    end = events[n]
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    rest = events[n + 1 :]
    assert rest, "no periodic bookmark within timeoutSeconds"
    assert all(e["type"] == "BOOKMARK" for e in rest)
    assert all("annotations" not in e["object"]["metadata"] for e in rest)


@pytest.mark.compat
def test_diff_live_against_the_served_snapshot_finds_nothing(served: Served) -> None:
    r = kstream("diff", str(served.snap), "--live", kubeconfig=served.kubeconfig)
    assert r.code == 0, (r.out, r.err)


def test_unauthenticated_is_refused(served: Served) -> None:
    kc = json.loads(served.kubeconfig.read_text())
    kc["users"][0]["user"]["token"] = "wrong"
    other = served.kubeconfig.with_name("wrong.kubeconfig")
    other.write_text(json.dumps(kc))
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(other), "get", "cm", "-n", NS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "Unauthorized" in p.stderr


def test_events_print_like_the_real_server(cluster: Cluster, tmp_path: Path) -> None:
    """Events (left out of dumps by default: dumped with -r events) print every
    column of the server's printer, -o wide too."""
    ns = "serve-events"
    api = cluster.api
    api.create(*namespace(ns), exist_ok=True)
    path = f"/api/v1/namespaces/{ns}/events"
    old = "2026-01-01T00:00:00Z"  # ages in days: the same on both sides
    events = [
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
         "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns, "fieldPath": "spec.containers{c}"},
         "reason": "Pulled", "message": " pulled \n", "type": "Normal", "count": 3,
         "source": {"component": "kubelet", "host": "node-a"},
         "firstTimestamp": old, "lastTimestamp": "2026-02-01T00:00:00Z"},
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2"},
         "involvedObject": {"kind": "Node", "namespace": ns},
         "reason": "Ready", "message": "m", "type": "Warning",
         "eventTime": "2026-01-02T00:00:00.000000Z", "action": "a",
         "reportingComponent": "ctl", "reportingInstance": "ctl-1"},
    ]  # fmt: skip
    try:
        for e in events:
            api.create(path, e)
        snap = tmp_path / "events.zst"
        r = kstream("dump", "-q", "-n", ns, "-r", "events,events.events.k8s.io",
                    "-o", str(snap), kubeconfig=cluster.kubeconfig)  # fmt: skip
        assert r.code == 0, r.err
        proc, _ = start(snap, tmp_path / "kubeconfig")
        try:
            for resource, wide in itertools.product(
                ("events", "events.events.k8s.io"), ((), ("-o", "wide"))
            ):
                args = ("get", resource, "-n", ns, *wide)
                mine = subprocess.run(
                    [KUBECTL, "--kubeconfig", str(tmp_path / "kubeconfig"), *args],
                    capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                assert mine.stdout == real_kubectl(cluster, *args).stdout, mine.stderr
        finally:
            stop(proc)
    finally:
        for e in events:
            api.call("DELETE", f"{path}/{e['metadata']['name']}", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))


def test_another_snapshot_on_the_same_port_is_discovered_afresh(tmp_path: Path) -> None:
    """kubectl keeps discovery on disk by server URL for hours: a second snapshot
    served on the port of the first must not be seen through the first's (its
    `all` would be the first's pods, which this one does not serve)."""
    from tests.controlplane import free_port

    def obj(kind: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "n"}}

    port, kubeconfig, cache = str(free_port()), tmp_path / "kubeconfig", tmp_path / "cache"
    for name, kind, want in (("a", "Pod", "pod/p"), ("b", "Service", "service/s")):
        snap = tmp_path / f"{name}.ndjson"
        snap.write_text(json.dumps(obj(kind, want.split("/")[1])) + "\n")
        proc, _ = start(snap, kubeconfig, "--port", port, "--force")
        try:
            p = subprocess.run(
                [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache),
                 "get", "all", "-A", "-o", "name"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        finally:
            stop(proc)
        assert (p.returncode, p.stdout.split()) == (0, [want]), p.stderr


@pytest.mark.compat
def test_sigterm_stops_with_exit_0(served: Served) -> None:
    """Last in the module: stops the server."""
    code, err = stop(served.proc)
    assert code == 0, err
    assert "Traceback" not in err
