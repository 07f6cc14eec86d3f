"""What a resource is, and how kubectl-style names select resources: the one
table of resource identity (short names, plurals, group/version) that the live
plan, count and diff share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import field

from kstream.dataclass import dataclass
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

    def answers_to(self, token: str) -> bool:
        """Whether one kubectl-style name names this resource: plural, singular,
        short name or kind, alone or as `NAME.GROUP` or `NAME.VERSION.GROUP` (the
        core group: `NAME.`, `NAME.v1`, `NAME.core`), case-insensitively."""
        t = token.strip().lower()
        if not t:
            return False
        names = self.names()
        if t in names:
            return True
        if "." not in t:
            return False
        head, rest = t.split(".", 1)
        if head not in names:
            return False
        g, v = self.group.lower(), self.version.lower()
        if not g:
            return rest in ("", "core", "v1", v)
        return rest in (g, f"{v}.{g}")

    def sort_key(self) -> tuple[str, str]:
        return (self.group, self.resource)


# kubectl's short names of built-in resources, by (group, plural): snapshots
# carry no discovery data, so that `-r cm` works on them too.
SHORT_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "componentstatuses"): ("cs",),
    ("", "configmaps"): ("cm",),
    ("", "endpoints"): ("ep",),
    ("", "events"): ("ev",),
    ("", "limitranges"): ("limits",),
    ("", "namespaces"): ("ns",),
    ("", "nodes"): ("no",),
    ("", "persistentvolumeclaims"): ("pvc",),
    ("", "persistentvolumes"): ("pv",),
    ("", "pods"): ("po",),
    ("", "replicationcontrollers"): ("rc",),
    ("", "resourcequotas"): ("quota",),
    ("", "serviceaccounts"): ("sa",),
    ("", "services"): ("svc",),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("crd", "crds"),
    ("apps", "daemonsets"): ("ds",),
    ("apps", "deployments"): ("deploy",),
    ("apps", "replicasets"): ("rs",),
    ("apps", "statefulsets"): ("sts",),
    ("autoscaling", "horizontalpodautoscalers"): ("hpa",),
    ("batch", "cronjobs"): ("cj",),
    ("certificates.k8s.io", "certificatesigningrequests"): ("csr",),
    ("events.k8s.io", "events"): ("ev",),
    ("networking.k8s.io", "ingresses"): ("ing",),
    ("networking.k8s.io", "ipaddresses"): ("ip",),
    ("networking.k8s.io", "networkpolicies"): ("netpol",),
    ("policy", "poddisruptionbudgets"): ("pdb",),
    ("scheduling.k8s.io", "priorityclasses"): ("pc",),
    ("storage.k8s.io", "storageclasses"): ("sc",),
    ("storage.k8s.io", "volumeattributesclasses"): ("vac",),
}
IRREGULAR_PLURALS = {"endpoints": "endpoints"}


def guess_plural(kind: str) -> str:
    """The plural of a kind, as apimachinery's UnsafeGuessKindToResource does
    (for objects read without discovery data)."""
    k = kind.lower()
    if not k:
        return ""
    if k in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[k]
    if k.endswith("s"):
        return k + "es"
    if k.endswith("y"):
        return k[:-1] + "ies"
    return k + "s"


def split_api_version(api_version: str) -> tuple[str, str]:
    """`apps/v1` -> ("apps", "v1"); `v1` -> ("", "v1")."""
    if "/" in api_version:
        g, v = api_version.split("/", 1)
        return g, v
    return "", api_version


def snapshot_resource(
    group: str, version: str, resource: str, kind: str, namespaced: bool
) -> Resource:
    """A Resource as a snapshot knows it (no discovery data), for name matching:
    plural, kind, singular and, for built-in resources, kubectl's short names."""
    return Resource(
        group,
        version,
        resource,
        kind,
        namespaced,
        frozenset({"list", "watch"}),
        singular=kind.lower(),
        short_names=SHORT_NAMES.get((group, resource), ()),
    )


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
