"""kstream serve's discovery: /version, /api and /apis (legacy, and aggregated
discovery v2), each group version's APIResourceList; short names and categories
(kubectl's for built-ins, the snapshot's CRD for custom resources) and a custom
resource's printer columns."""

from __future__ import annotations

import threading
from typing import Any

from kstream import deepjson
from kstream.resources import SHORT_NAMES
from kstream.serve.catalog import Catalog, Served, Store
from kstream.serve.protocol import READ_VERBS, not_found

CATEGORIES_ALL = {
    ("", "pods"),
    ("", "services"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("autoscaling", "horizontalpodautoscalers"),
}


class Discovery:
    """What the snapshot serves, as discovery documents."""

    def __init__(self, catalog: Catalog, store: Store, listed_empty: list[Served]) -> None:
        self.catalog = catalog
        self.store = store
        # what discovery lists: the snapshot's resources, then those its dump
        # knew but did not read (events by default), served as empty lists
        self.resources = catalog.resources + [
            r for r in listed_empty if r.key not in catalog.by_gvr
        ]
        self.groups: dict[str, list[str]] = {g: list(vs) for g, vs in catalog.groups.items()}
        for r in self.resources:
            vs = self.groups.setdefault(r.group, [])
            if r.version not in vs:
                vs.append(r.version)
        self.crds: dict[tuple[str, str], dict[str, Any]] = {}
        self.crd_lock = threading.Lock()

    def version(self) -> dict[str, Any]:
        git = self.catalog.server_version or "v0.0.0-unknown"
        core = git.lstrip("v").split("-")[0].split("+")[0].split(".")
        major = core[0] if core else ""
        minor = core[1] if len(core) > 1 else ""
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "gitVersion": git,
            "gitCommit": "",
            "gitTreeState": "",
            "buildDate": "",
            "goVersion": "",
            "compiler": "",
            "platform": "",
        }

    def crd(self, r: Served) -> dict[str, Any]:
        """The snapshot's CustomResourceDefinition of a resource ({} if none)."""
        key = (r.group, r.resource)
        with self.crd_lock:
            if key in self.crds:
                return self.crds[key]
        found: dict[str, Any] = {}
        defs = self.catalog.by_gvr.get(("apiextensions.k8s.io", "v1", "customresourcedefinitions"))
        if defs is not None and "." in r.group:
            line = self.store.index(defs).find("", f"{r.resource}.{r.group}")
            doc = deepjson.loads(line) if line is not None else None
            found = doc if isinstance(doc, dict) else {}
        with self.crd_lock:
            self.crds[key] = found
        return found

    def names_of(self, r: Served) -> tuple[list[str], list[str]]:
        """Short names and categories: kubectl's for built-ins, the CRD's for
        custom resources."""
        short = list(SHORT_NAMES.get((r.group, r.resource), ()))
        categories = ["all"] if (r.group, r.resource) in CATEGORIES_ALL else []
        names = (self.crd(r).get("spec") or {}).get("names") or {}
        if isinstance(names, dict):
            short = short or [str(x) for x in names.get("shortNames") or []]
            categories = categories or [str(x) for x in names.get("categories") or []]
        return short, categories

    def printer_columns(self, r: Served) -> list[Any] | None:
        for v in (self.crd(r).get("spec") or {}).get("versions") or []:
            if isinstance(v, dict) and v.get("name") == r.version:
                return v.get("additionalPrinterColumns") or None
        return None

    def api_group(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.groups[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def discovery_v2(self, core: bool) -> dict[str, Any]:
        items = []
        for group, versions in self.groups.items():
            if (group == "") != core:
                continue
            vs = []
            for v in versions:
                rs = [r for r in self.resources if r.group == group and r.version == v]
                vs.append(
                    {
                        "version": v,
                        "resources": [v2_resource(r, *self.names_of(r)) for r in rs],
                        "freshness": "Current",
                    }
                )
            items.append({"metadata": {"name": group} if group else {}, "versions": vs})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        rs = [r for r in self.resources if r.group == group and r.version == version]
        if not rs:
            raise not_found()
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [legacy_resource(r, *self.names_of(r)) for r in rs],
        }


def v2_resource(r: Served, short: list[str], categories: list[str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "resource": r.resource,
        "responseKind": {"group": "", "version": "", "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.kind.lower(),
        "verbs": READ_VERBS,
    }
    if short:
        d["shortNames"] = short
    if categories:
        d["categories"] = categories
    return d


def legacy_resource(r: Served, short: list[str], categories: list[str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": r.resource,
        "singularName": r.kind.lower(),
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": READ_VERBS,
    }
    if short:
        d["shortNames"] = short
    if categories:
        d["categories"] = categories
    return d
