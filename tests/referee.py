"""Who says what the server holds: kubectl, or the server's own raw answers.

The differential tests compare kstream with `kubectl get`/`kubectl api-resources`.
kubectl supports servers one minor version either side of its own (the version
skew policy); against a server further away (kubectl 1.37 against 1.34 or 1.35,
in the compatibility matrix) it is no fit referee, and these helpers read the
server's raw answers instead: discovery as client-go's ServerPreferredResources
reads it, and every page of a LIST, each item given the kind and apiVersion that
kubectl adds to it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import urllib.parse
from typing import Any

from tests.controlplane import ControlPlane
from tests.controlplane.versions import kube_minor


@functools.cache
def kubectl_minor(kubectl: str) -> int:
    p = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    )
    return int(json.loads(p.stdout)["clientVersion"]["minor"].rstrip("+"))


def kubectl_fits(cp: ControlPlane, kubectl: str) -> bool:
    """kubectl is within the version skew policy of the server (±1 minor)."""
    return abs(kubectl_minor(kubectl) - kube_minor(cp.kube_version)) <= 1


def get_json(cp: ControlPlane, path: str, query: dict[str, str] | None = None) -> Any:
    q = "?" + urllib.parse.urlencode(query) if query else ""
    status, body = cp.request(path + q, timeout=120)
    assert status == 200, (path, status, body[:500])
    return json.loads(body)


def preferred_resources(cp: ControlPlane, verbs: tuple[str, ...] = ()) -> set[tuple[str, str, str]]:
    """(group, version, resource) as `kubectl api-resources [--verbs=...]` lists
    them (client-go's ServerPreferredResources, from legacy discovery): for each
    group, the preferred version's resources, and a resource no preferred
    version serves in the first version that serves it."""
    groups: list[tuple[str, list[str], str]] = [("", list(get_json(cp, "/api")["versions"]), "v1")]
    for g in get_json(cp, "/apis")["groups"]:
        groups.append(
            (g["name"], [v["version"] for v in g["versions"]], g["preferredVersion"]["version"])
        )
    chosen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for group, versions, preferred in groups:
        for version in versions:
            gv = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            for r in get_json(cp, gv)["resources"]:
                if "/" in r["name"]:
                    continue
                gr = (group, r["name"])
                if gr in chosen and version != preferred:
                    continue
                chosen[gr] = (version, r)
    return {
        (group, version, name)
        for (group, name), (version, r) in chosen.items()
        if set(verbs) <= set(r.get("verbs") or ())
    }


def names(resources: set[tuple[str, str, str]]) -> set[str]:
    """As `kubectl api-resources -o name` prints them."""
    return {f"{r}.{g}" if g else r for g, _, r in resources}


def list_items(
    cp: ControlPlane,
    group: str,
    version: str,
    resource: str,
    namespace: str = "",
    managed_fields: bool = True,
) -> list[dict[str, Any]]:
    """Every item of a LIST (all namespaces unless `namespace`), read page by page,
    as `kubectl get -o json [--show-managed-fields]` gives them."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"
    items: list[dict[str, Any]] = []
    cont = ""
    while True:
        q = {"limit": "500", **({"continue": cont} if cont else {})}
        doc = get_json(cp, path, q)
        kind = doc["kind"].removesuffix("List")
        for o in doc["items"]:
            o.setdefault("apiVersion", doc["apiVersion"])
            o.setdefault("kind", kind)
            if not managed_fields:
                o["metadata"].pop("managedFields", None)
            items.append(o)
        cont = doc["metadata"].get("continue", "")
        if not cont:
            return items
