"""Find every resource the server serves: aggregated discovery (two requests),
or per-group discovery on servers without it. A group whose discovery fails (an
APIService whose backend is down) is reported, never fatal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kstream.errors import ApiError, AuthError, ConfigError, TransportError
from kstream.kubeclient import Client
from kstream.resources import Resource

AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


@dataclass
class GroupFailure:
    group: str  # "group/version"
    error: str


@dataclass
class Discovery:
    resources: list[Resource] = field(default_factory=list)
    failures: list[GroupFailure] = field(default_factory=list)
    aggregated: bool = True


def discover(client: Client) -> Discovery:
    try:
        return _discover(client)
    except ApiError as e:
        if e.status == 403:  # anonymous, or an identity without system:discovery
            raise ConfigError(f"these credentials may not read API discovery: {e}") from None
        raise


def _discover(client: Client) -> Discovery:
    core = client.get_json("/api", accept=AGGREGATED_ACCEPT, what="discovery /api")
    if _is_aggregated(core):
        apis = client.get_json("/apis", accept=AGGREGATED_ACCEPT, what="discovery /apis")
        out = Discovery()
        for doc in (core, apis):
            _parse_aggregated(doc, out)
        return out
    return _discover_legacy(client, core)


def _is_aggregated(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "APIGroupDiscoveryList"


def _parse_aggregated(doc: dict[str, Any], out: Discovery) -> None:
    for item in doc.get("items") or []:
        group = (item.get("metadata") or {}).get("name", "")
        versions = item.get("versions") or []
        if not versions:
            continue
        preferred = versions[0]  # versions are listed in preference order
        gv = f"{group}/{preferred.get('version')}" if group else str(preferred.get("version"))
        if preferred.get("freshness") == "Stale":
            out.failures.append(
                GroupFailure(gv, "discovery is stale (the API service is unavailable)")
            )
            continue
        for r in preferred.get("resources") or []:
            kind = (r.get("responseKind") or {}).get("kind", "")
            out.resources.append(
                Resource(
                    group=group,
                    version=str(preferred.get("version")),
                    resource=r["resource"],
                    kind=kind,
                    namespaced=r.get("scope") == "Namespaced",
                    verbs=frozenset(r.get("verbs") or ()),
                    singular=r.get("singularResource") or "",
                    short_names=tuple(r.get("shortNames") or ()),
                )
            )


def _resource_list(doc: dict[str, Any], group: str, version: str) -> list[Resource]:
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


def _discover_legacy(client: Client, core: Any) -> Discovery:
    out = Discovery(aggregated=False)
    todo: list[tuple[str, str, str]] = []  # (group, version, path)
    for v in (core or {}).get("versions") or ["v1"]:
        todo.append(("", v, f"/api/{v}"))
    groups = client.get_json("/apis", what="discovery /apis")
    for g in (groups or {}).get("groups") or []:
        pv = (g.get("preferredVersion") or {}).get("version") or (g.get("versions") or [{}])[0].get(
            "version"
        )
        if pv:
            todo.append((g["name"], pv, f"/apis/{g['name']}/{pv}"))

    def fetch(item: tuple[str, str, str]) -> list[Resource] | GroupFailure:
        group, version, path = item
        try:
            doc = client.get_json(path, what=f"discovery {path}")
        except AuthError:
            raise
        except (ApiError, TransportError) as e:
            return GroupFailure(f"{group}/{version}" if group else version, str(e))
        return _resource_list(doc, group, version)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for res in pool.map(fetch, todo):
            if isinstance(res, GroupFailure):
                out.failures.append(res)
            else:
                out.resources.extend(res)
    return out
