"""Find every resource the server serves: aggregated discovery (two requests),
or per-group-version discovery on servers without it. A group version whose
discovery fails (an APIService whose backend is down) is reported, never fatal.

Which version of a resource is read follows kubectl (client-go's
`ServerPreferredResources`): within a group, versions are walked in the server's
priority order and a resource (group, plural) is taken from the first version that
serves it, the group's preferred version always winning. So a custom resource
served only at v1alpha1 next to others at v1 in the same group is read at
v1alpha1. The same resources in their other served versions are kept in
`Discovery.other_versions`, for `-r NAME.VERSION.GROUP`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any

from kstream.cluster.client import ApiTransport
from kstream.dataclass import dataclass
from kstream.errors import ApiError, AuthError, ConfigError, TransportError
from kstream.resources import Resource

AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
STALE = "discovery is stale (the API service is unavailable)"


@dataclass
class GroupFailure:
    group: str  # "group/version"
    error: str


@dataclass
class Discovery:
    # One per (group, resource), in the version kubectl prefers; group order, then
    # version priority order.
    resources: list[Resource] = field(default_factory=list)
    failures: list[GroupFailure] = field(default_factory=list)
    aggregated: bool = True
    # The same resources in every other version the server serves them at.
    other_versions: list[Resource] = field(default_factory=list)


@dataclass
class ApiGroup:
    """One API group as discovery describes it: its versions in priority order,
    the preferred one, and the resources of each version that could be read."""

    name: str
    versions: list[str] = field(default_factory=list)
    preferred: str = ""
    served: dict[str, list[Resource]] = field(default_factory=dict)


def preferred_resources(groups: Sequence[ApiGroup]) -> tuple[list[Resource], list[Resource]]:
    """(chosen, others): client-go's ServerPreferredResources rule. For each group,
    versions in order; a (group, resource) is taken from the first version serving
    it, and the group's preferred version overrides an earlier pick. Versions that
    were not read (failed, stale) are skipped."""
    chosen: dict[tuple[str, str], Resource] = {}
    for g in groups:
        for v in g.versions:
            for r in g.served.get(v, ()):
                key = (g.name, r.resource)
                if key in chosen and v != g.preferred:
                    continue
                chosen[key] = r
    picked = {id(r) for r in chosen.values()}
    taken = set(chosen.values())
    best: list[Resource] = []
    others: list[Resource] = []
    for g in groups:
        for v in g.versions:
            for r in g.served.get(v, ()):
                if id(r) in picked:
                    best.append(r)
                    picked.discard(id(r))
                elif r not in taken:
                    others.append(r)
                    taken.add(r)
    return best, others


def discover(client: ApiTransport) -> Discovery:
    try:
        return _discover(client)
    except ApiError as e:
        if e.status == 403:  # anonymous, or an identity without system:discovery
            raise ConfigError(f"these credentials may not read API discovery: {e}") from None
        raise


def _discover(client: ApiTransport) -> Discovery:
    core = client.get_json("/api", accept=AGGREGATED_ACCEPT, what="discovery /api")
    if _is_aggregated(core):
        apis = client.get_json("/apis", accept=AGGREGATED_ACCEPT, what="discovery /apis")
        out = Discovery()
        groups: list[ApiGroup] = []
        for doc in (core, apis):
            groups.extend(parse_aggregated(doc, out.failures))
        out.resources, out.other_versions = preferred_resources(groups)
        return out
    return _discover_legacy(client, core)


def _is_aggregated(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "APIGroupDiscoveryList"


def _gv(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def parse_aggregated(doc: dict[str, Any], failures: list[GroupFailure]) -> list[ApiGroup]:
    """The groups of one APIGroupDiscoveryList, like client-go's
    SplitGroupsAndResources: stale versions are failures and left out, the first
    other version is the preferred one, resources without a kind are dropped."""
    groups = []
    for item in doc.get("items") or []:
        g = ApiGroup((item.get("metadata") or {}).get("name", ""))
        for ver in item.get("versions") or []:
            version = str(ver.get("version") or "")
            if not version:
                continue
            if ver.get("freshness") == "Stale":
                failures.append(GroupFailure(_gv(g.name, version), STALE))
                continue
            g.versions.append(version)
            g.preferred = g.preferred or version
            g.served[version] = _aggregated_resources(ver, g.name, version)
        groups.append(g)
    return groups


def _aggregated_resources(ver: dict[str, Any], group: str, version: str) -> list[Resource]:
    out = []
    for r in ver.get("resources") or []:
        kind = (r.get("responseKind") or {}).get("kind", "")
        if not r.get("resource") or not kind:  # client-go drops a resource without a kind
            continue
        out.append(
            Resource(
                group=group,
                version=version,
                resource=r["resource"],
                kind=kind,
                namespaced=r.get("scope") == "Namespaced",
                verbs=frozenset(r.get("verbs") or ()),
                singular=r.get("singularResource") or "",
                short_names=tuple(r.get("shortNames") or ()),
            )
        )
    return out


def resource_list(doc: dict[str, Any], group: str, version: str) -> list[Resource]:
    """The resources of one APIResourceList (legacy /api/V, /apis/G/V)."""
    out = []
    for r in doc.get("resources") or []:
        name = r.get("name", "")
        if not name or "/" in name:  # subresources
            continue
        out.append(
            Resource(
                group=group,
                version=version,
                resource=name,
                kind=r.get("kind", ""),
                namespaced=bool(r.get("namespaced")),
                verbs=frozenset(r.get("verbs") or ()),
                singular=r.get("singularName") or "",
                short_names=tuple(r.get("shortNames") or ()),
            )
        )
    return out


def legacy_groups(core: Any, apis: Any) -> list[ApiGroup]:
    """The groups of the legacy /api (APIVersions) and /apis (APIGroupList)
    documents, without resources yet."""
    core_versions = [str(v) for v in (core or {}).get("versions") or ["v1"]]
    groups = [ApiGroup("", core_versions, core_versions[0])]
    for item in (apis or {}).get("groups") or []:
        if not item.get("name"):
            continue
        versions = [str(v["version"]) for v in item.get("versions") or [] if v.get("version")]
        preferred = str((item.get("preferredVersion") or {}).get("version") or "")
        groups.append(ApiGroup(item["name"], versions, preferred))
    return groups


def _discover_legacy(client: ApiTransport, core: Any) -> Discovery:
    from concurrent.futures import ThreadPoolExecutor  # only needed here (start-up)

    out = Discovery(aggregated=False)
    groups = legacy_groups(core, client.get_json("/apis", what="discovery /apis"))
    todo = [(g, v) for g in groups for v in g.versions]

    def fetch(item: tuple[ApiGroup, str]) -> list[Resource] | GroupFailure:
        g, version = item
        path = f"/apis/{g.name}/{version}" if g.name else f"/api/{version}"
        try:
            doc = client.get_json(path, what=f"discovery {path}")
        except AuthError:
            raise
        except ApiError as e:
            if not g.name and version == "v1" and e.status == 404:
                return []  # client-go tolerates a missing core/v1
            return GroupFailure(_gv(g.name, version), str(e))
        except TransportError as e:
            return GroupFailure(_gv(g.name, version), str(e))
        return resource_list(doc, g.name, version)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for (g, version), res in zip(todo, pool.map(fetch, todo), strict=True):
            if isinstance(res, GroupFailure):
                out.failures.append(res)
            else:
                g.served[version] = res
    out.resources, out.other_versions = preferred_resources(groups)
    return out
