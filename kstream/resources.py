"""What a resource is, and how kubectl-style names select resources."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kstream.errors import UnknownResourceError


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    resource: str  # plural, e.g. "deployments"
    kind: str
    namespaced: bool
    verbs: frozenset[str] = field(default_factory=frozenset)
    singular: str = ""
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        """kubectl's fully qualified name: `deployments.apps`, `configmaps`."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def listable(self) -> bool:
        return "list" in self.verbs

    @property
    def watchable(self) -> bool:
        return "watch" in self.verbs

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.resource}"
        return f"{base}/{self.resource}"

    def names(self) -> set[str]:
        """Every lower-case name kubectl accepts for this resource (without group)."""
        out = {self.resource, self.kind.lower()}
        if self.singular:
            out.add(self.singular)
        out.update(s.lower() for s in self.short_names)
        return out

    def sort_key(self) -> tuple[str, str]:
        return (self.group, self.resource)


# Served twice under two groups: read only the first (the core group's).
ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("events.k8s.io", "events"): ("", "events"),
}

# Left out unless asked for by name: they churn constantly and are not state.
DEFAULT_EXCLUDED: tuple[tuple[str, str], ...] = (("", "events"), ("events.k8s.io", "events"))


def match(
    token: str, resources: Sequence[Resource], other_versions: Sequence[Resource] = ()
) -> list[Resource]:
    """Resources matching one kubectl-style name, best first.

    Accepts plural, singular, short name, kind, `resource.group` and
    `resource.version.group`, case-insensitively. A bare name that exists in
    several groups resolves like kubectl: the first in discovery (priority) order.
    `resource.version.group` means exactly that version (kubectl tries it first),
    also when it is not the preferred one: `other_versions` holds those.
    """
    t = token.strip().lower()
    if not t:
        return []
    found = [r for r in resources if t in r.names()]
    if found:
        return found[:1]
    if "." in t:
        head, rest = t.split(".", 1)
        if "." in rest:
            version, group = rest.split(".", 1)
            for r in (*resources, *other_versions):
                if head in r.names() and r.version == version and r.group == group:
                    return [r]
        for r in resources:
            if head in r.names() and rest == r.group:
                return [r]
        # core group spelled explicitly: "configmaps.v1" or "pods." style
        for r in resources:
            if head in r.names() and r.group == "" and rest in ("", r.version, "core"):
                return [r]
    return []


def split_names(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out.extend(p for p in (x.strip() for x in v.split(",")) if p)
    return out


@dataclass
class Selection:
    resources: list[Resource]
    excluded_by_default: list[Resource]
    not_watchable: list[Resource]


def select(
    available: Sequence[Resource],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    namespaced_only: bool = False,
    other_versions: Sequence[Resource] = (),
) -> Selection:
    """Turn --resource/--exclude into the list of resources to read, sorted.

    Without --resource: everything that supports list and watch, minus aliases
    and the default exclusions (reported). With --resource: exactly those
    (`resource.version.group` may name a version in `other_versions`).
    """
    include, exclude = split_names(include), split_names(exclude)
    excluded: set[Resource] = set()
    for name in exclude:
        m = match(name, available, other_versions)
        if not m:
            raise UnknownResourceError(f'unknown resource type "{name}" in --exclude')
        excluded.update(m)
    by_default: list[Resource] = []
    not_watchable: list[Resource] = []
    chosen: list[Resource] = []
    if include:
        for name in include:
            m = match(name, available, other_versions)
            if not m:
                raise UnknownResourceError(f'the server has no resource type "{name}"')
            r = m[0]
            if not r.listable:
                raise UnknownResourceError(f'resource "{r.name}" cannot be listed')
            if r not in chosen and r not in excluded:
                chosen.append(r)
    else:
        present = {(r.group, r.resource) for r in available}
        for r in available:
            if not (r.listable and r.watchable):
                if r.listable:
                    not_watchable.append(r)
                continue
            alias = ALIASES.get((r.group, r.resource))
            if alias is not None and alias in present:
                continue
            if r in excluded:
                continue
            if (r.group, r.resource) in DEFAULT_EXCLUDED:
                by_default.append(r)
                continue
            if namespaced_only and not r.namespaced:
                continue
            chosen.append(r)
    chosen.sort(key=Resource.sort_key)
    return Selection(chosen, by_default, not_watchable)
