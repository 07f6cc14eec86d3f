"""Create objects in a control plane quickly (raw API calls, keep-alive, threads).

Used by the test suite, `make demo` and `make bench`.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from tests.controlplane import ControlPlane

CRD_GROUP = "demo.kstream.dev"


class Api:
    """A tiny client for seeding: one keep-alive connection per thread."""

    def __init__(self, cp: ControlPlane, token: str | None = None) -> None:
        u = urlparse(cp.url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 443
        self.ctx = cp.ssl_context()
        self.token = token or cp.admin_token
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            self._local.conn = c
        return c

    def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = (
                "application/merge-patch+json" if method == "PATCH" else "application/json"
            )
        for attempt in range(5):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status in (429, 500, 503, 504) and attempt < 4:
                time.sleep(0.5 * (attempt + 1))
                continue
            if resp.status not in ok:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {raw[:300]!r}")
            return json.loads(raw) if raw else None
        raise RuntimeError(f"{method} {path}: no answer")

    def create(self, path: str, obj: dict[str, Any], exist_ok: bool = False) -> Any:
        return self.call("POST", path, obj, ok=(200, 201, 409) if exist_ok else (200, 201))

    def create_many(self, items: Iterable[tuple[str, dict[str, Any]]], threads: int = 8) -> int:
        q: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=threads * 4)
        errors: list[BaseException] = []
        done = [0]
        lock = threading.Lock()

        def work() -> None:
            while True:
                item = q.get()
                if item is None:
                    return
                try:
                    self.create(item[0], item[1], exist_ok=True)
                    with lock:
                        done[0] += 1
                except BaseException as e:
                    errors.append(e)

        ts = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
        for t in ts:
            t.start()
        for it in items:
            if errors:
                break
            q.put(it)
        for _ in ts:
            q.put(None)
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        return done[0]


# ------------------------------------------------------------------ object factories


def namespace(name: str, labels: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    return "/api/v1/namespaces", {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }


def configmap(
    ns: str, name: str, size: int = 200, labels: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    payload = ("x" * 61 + "\n") * (size // 62) + "y" * (size % 62)
    return f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "data": {"payload": payload, "note": f"<{name}> & co"},
    }


def secret(
    ns: str, name: str, values: dict[str, str] | None = None, size: int = 0
) -> tuple[str, dict[str, Any]]:
    vals = dict(values or {"password": f"pw-{name}"})
    if size:
        vals["blob"] = "s" * size
    return f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in vals.items()},
    }


def deployment(
    ns: str, name: str, replicas: int = 2, image: str = "nginx:1.27"
) -> tuple[str, dict[str, Any]]:
    return f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


PRESERVE = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def crd(
    group: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    versions: tuple[tuple[str, bool], ...] = (("v1", True),),
    short_names: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A CustomResourceDefinition whose objects may hold anything, served at
    `versions` ((name, storage) in the order given)."""
    names: dict[str, Any] = {"plural": plural, "singular": kind.lower(), "kind": kind}
    if short_names:
        names["shortNames"] = list(short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced" if namespaced else "Cluster",
            "names": names,
            "versions": [
                {"name": v, "served": True, "storage": st, "schema": PRESERVE} for v, st in versions
            ],
        },
    }


def widget_crd() -> tuple[str, dict[str, Any]]:
    return "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(
        CRD_GROUP, "widgets", "Widget", short_names=("wd",)
    )


def widget(ns: str, name: str, color: str = "blue", size: int = 3) -> tuple[str, dict[str, Any]]:
    return f"/apis/{CRD_GROUP}/v1/namespaces/{ns}/widgets", {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"color": color, "size": size, "ratio": 0.5},
    }


def wait_for_resource(api: Api, path: str, timeout: float = 30) -> None:
    """Wait until a freshly created CRD serves its resource."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.call("GET", path)
            return
        except RuntimeError:
            time.sleep(0.2)
    raise RuntimeError(f"{path} not served after {timeout}s")


def demo_objects(namespaces: int = 3, per_ns: int = 5) -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(namespaces):
        ns = f"demo-{i}"
        for j in range(per_ns):
            yield configmap(
                ns, f"config-{j}", size=200 + 300 * j, labels={"tier": "web" if j % 2 else "db"}
            )
            yield secret(ns, f"secret-{j}")
        yield deployment(ns, "web")
        yield deployment(ns, "api", replicas=3)
        for j in range(3):
            yield widget(ns, f"widget-{j}", color=["red", "green", "blue"][j])


def seed_demo(cp: ControlPlane, namespaces: int = 3, per_ns: int = 5) -> Api:
    """A realistic small cluster: namespaces, ConfigMaps, Secrets, Deployments,
    a CRD and its custom resources."""
    api = Api(cp)
    for i in range(namespaces):
        api.create(*namespace(f"demo-{i}", {"team": "a" if i % 2 else "b"}), exist_ok=True)
    api.create(*widget_crd(), exist_ok=True)
    wait_for_resource(api, f"/apis/{CRD_GROUP}/v1/widgets")
    api.create_many(demo_objects(namespaces, per_ns), threads=4)
    return api


def grant(
    api: Api,
    user: str,
    resources: list[str],
    verbs: list[str],
    namespace: str | None = None,
    group: str = "",
    name: str | None = None,
) -> None:
    """Give a user verbs on resources (a Role in a namespace, else a ClusterRole).
    Explicit rules: the aggregated view/edit roles need a controller-manager."""
    name = name or f"{user}-{'-'.join(verbs)}-{'-'.join(resources)}"[:60]
    rule = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    subject = {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    if namespace:
        api.create(
            f"{rbac}/namespaces/{namespace}/roles",
            {"metadata": {"name": name}, "rules": [rule]},
            exist_ok=True,
        )
        api.create(
            f"{rbac}/namespaces/{namespace}/rolebindings",
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [subject],
            },
            exist_ok=True,
        )
    else:
        api.create(
            f"{rbac}/clusterroles", {"metadata": {"name": name}, "rules": [rule]}, exist_ok=True
        )
        api.create(
            f"{rbac}/clusterrolebindings",
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [subject],
            },
            exist_ok=True,
        )
    time.sleep(1.0)  # the RBAC authorizer reads through an informer cache
