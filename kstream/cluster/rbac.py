"""The least-privilege RBAC for what kstream reads (`kstream rbac`).

What a dump, a count, `diff --live` and `dump --follow` send to the server:

- discovery (`/api`, `/apis`, `/version`): open to every authenticated identity
  through the built-in `system:discovery` and `system:public-info-viewer` roles;
- `list` and `watch` on each resource of the plan (watch-list is authorised as
  `watch`; without it the resource falls back to paginated LIST, so a resource
  that serves no watch needs `list` only), cluster-wide, or in each namespace of
  `-n` for namespaced resources;
- `get` of each namespace named with `-n` (the warning for a namespace that does
  not exist; refused, it is silently skipped), granted by a RoleBinding in that
  namespace, which covers `GET /api/v1/namespaces/NAME` and nothing else.

Nothing else: no subresource (discovery never lists one as a resource, and no
rule names one), no `get` of an object, no write verb. `access()` computes the
rules from a plan's units; `render()` writes them as ClusterRoles and bindings
(YAML, with comments saying what they grant). `wildcard()` is the rule for every
resource now and later (deploy/'s role): list and watch on `*`, which RBAC also
matches against subresources, but no API server route serves list or watch on a
subresource, while `get` on `*` would reach pods/exec, pods/log and nodes/proxy
(see README, "In the cluster")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import field

from kstream.cluster.plan import LiveOptions, connect, make_plan
from kstream.cluster.unit import Unit
from kstream.dataclass import dataclass
from kstream.resources import Resource
from kstream.selector import Scope

READ = ("list", "watch")
DEFAULT_NAME = "kstream-reader"
RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


@dataclass
class Access:
    """What a scope needs: rules granted cluster-wide, and rules granted in each
    of `namespaces` (bound there by RoleBindings)."""

    cluster_rules: list[Rule] = field(default_factory=list)
    namespace_rules: list[Rule] = field(default_factory=list)
    namespaces: tuple[str, ...] = ()
    wildcard: bool = False
    resources: int = 0  # how many resources the rules name


def read_rules(resources: Sequence[Resource]) -> list[Rule]:
    """list and watch (list alone where the resource serves no watch) on these
    resources, one rule per API group and set of verbs, sorted."""
    by: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for r in resources:
        if "/" in r.resource:  # never a subresource (discovery lists none as a resource)
            continue
        verbs = READ if r.watchable or not r.verbs else ("list",)
        by.setdefault((r.group, verbs), set()).add(r.resource)
    return [
        Rule((group,), tuple(sorted(names)), verbs)
        for (group, verbs), names in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


def namespace_get() -> Rule:
    return Rule(("",), ("namespaces",), ("get",))


def access(units: Sequence[Unit], namespaces: Sequence[str]) -> Access:
    """The rules for reading these units: a unit without a namespace is read
    cluster-wide, one with a namespace inside it (then `get` of that namespace)."""
    cluster = list({u.resource: None for u in units if u.namespace is None})
    inside = list({u.resource: None for u in units if u.namespace is not None})
    out = Access(resources=len({*cluster, *inside}))
    out.cluster_rules = read_rules(cluster)
    if namespaces:
        out.namespaces = tuple(namespaces)
        out.namespace_rules = [*read_rules(inside), namespace_get()]
    return out


def wildcard(namespaces: Sequence[str] = ()) -> Access:
    """list and watch on every resource of every group, now and later."""
    rule = Rule(("*",), ("*",), READ)
    if namespaces:
        return Access([], [rule, namespace_get()], tuple(namespaces), wildcard=True)
    return Access([rule], wildcard=True)


@dataclass
class LiveAccess:
    access: Access
    server: str
    server_version: str
    failures: list[str]  # group versions whose discovery failed (not in the rules)
    excluded: list[str]  # left out by default (core events), as dump leaves them out


def live_access(scope: Scope, live: LiveOptions) -> LiveAccess:
    """Connect, discover and plan as a dump of `scope` would; the rules it needs."""
    client = connect(live)
    plan = make_plan(client, scope.resources, scope.exclude, scope.namespaces)
    return LiveAccess(
        access(plan.units, scope.namespaces),
        plan.server,
        plan.server_version,
        [f"{f.group}: {f.error}" for f in plan.discovery.failures],
        [r.name for r in plan.selection.excluded_by_default],
    )


# ------------------------------------------------------------------ YAML


def _flow(values: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def _role(name: str, rules: Sequence[Rule], about: str) -> str:
    lines = _comment(about)
    lines += [f"apiVersion: {RBAC_API}", "kind: ClusterRole", "metadata:", f"  name: {name}"]
    lines.append("rules:" if rules else "rules: []")
    for r in rules:
        lines.append(f"  - apiGroups: {_flow(r.api_groups)}")
        lines.append(f"    resources: {_flow(r.resources)}")
        lines.append(f"    verbs: {_flow(r.verbs)}")
    return "\n".join(lines) + "\n"


def _binding(kind: str, name: str, role: str, sa: tuple[str, str], namespace: str = "") -> str:
    meta = ["metadata:", f"  name: {name}"]
    if namespace:
        meta.append(f"  namespace: {namespace}")
    lines = [
        f"apiVersion: {RBAC_API}",
        f"kind: {kind}",
        *meta,
        "roleRef:",
        "  apiGroup: rbac.authorization.k8s.io",
        "  kind: ClusterRole",
        f"  name: {role}",
        "subjects:",
        "  - kind: ServiceAccount",
        f"    name: {sa[1]}",
        f"    namespace: {sa[0]}",
    ]
    return "\n".join(lines) + "\n"


def describe(a: Access, cluster: bool) -> str:
    """What a role of `a` grants, for the comment above it."""
    if a.wildcard:
        if not cluster and a.namespaces:
            return WILDCARD_ABOUT.format(
                where=" in each namespace it is bound in", but=" but of that namespace itself"
            )
        return WILDCARD_ABOUT.format(where="", but="")
    rules = a.cluster_rules if cluster else a.namespace_rules
    n = sum(len(r.resources) for r in rules if r.verbs != ("get",))
    what = f"{n} resource{'s' if n != 1 else ''} below"
    head = f"list and watch on the {what}"
    if any(r.verbs == ("list",) for r in rules):
        head = f"list (and watch where served) on the {what}"
    lines = [f"What `kstream dump` of this scope reads: {head}"]
    if not cluster:
        lines += ["in each namespace it is bound in, and get of that namespace itself."]
    lines += [
        "Nothing else: no subresource (pods/log, pods/exec, nodes/proxy ... are",
        f"named by no rule), no get of any {'other ' if not cluster else ''}object, no write verb.",
        "Discovery is open to every authenticated identity (the built-in",
        "system:discovery role).",
        "Resources created later (new CRDs) are not covered: a dump reads them as",
        "forbidden (exit 3) until the role is generated again with `kstream rbac`.",
    ]
    return "\n".join(lines)


WILDCARD_ABOUT = """What `kstream dump` reads: list and watch on every resource of every API group{where},
CRDs created later included. Nothing else: no get{but}, no write verb.
RBAC matches "*" against subresources too, so `kubectl auth can-i list pods/log`
says yes; but the API server serves no list or watch on any subresource (such a
request is answered 404 after authorization), while get and create on every
subresource (pods/exec, pods/log, nodes/proxy, serviceaccounts/token ...) are
refused. Secrets are included (dump redacts their values by default): for a role
without them, `kstream rbac --exclude secrets` lists the resources instead.
Generated by `kstream rbac --wildcard`; discovery is open to every authenticated
identity (the built-in system:discovery role)."""


def render(
    a: Access,
    name: str = DEFAULT_NAME,
    service_account: tuple[str, str] | None = None,
    header: str = "",
) -> str:
    """The ClusterRoles (and with a service account, their bindings) as one YAML
    stream: cluster-wide rules in `name` (a ClusterRoleBinding), namespace rules
    in `name` bound by a RoleBinding in each namespace, the cluster-scoped
    resources named with -r then in `name`-cluster."""
    docs: list[str] = []
    if a.namespaces:
        ns_role = name
        docs.append(_role(ns_role, a.namespace_rules, describe(a, cluster=False)))
        if service_account:
            docs += [
                _binding("RoleBinding", name, ns_role, service_account, ns) for ns in a.namespaces
            ]
        if a.cluster_rules:
            role = f"{name}-cluster"
            docs.append(_role(role, a.cluster_rules, describe(a, cluster=True)))
            if service_account:
                docs.append(_binding("ClusterRoleBinding", role, role, service_account))
    else:
        docs.append(_role(name, a.cluster_rules, describe(a, cluster=True)))
        if service_account:
            docs.append(_binding("ClusterRoleBinding", name, name, service_account))
    text = "---\n".join(docs)
    return "\n".join(_comment(header)) + "\n" + text if header else text


def check_name(name: str) -> str:
    """--name: a valid RBAC object name (lowercase, digits, '-', '.', ':')."""
    import re

    from kstream.errors import UsageError

    if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.:]*[a-z0-9])?", name):
        raise UsageError(f"--name {name!r}: not a valid role name (a-z, 0-9, '-', '.', ':')")
    return name


def parse_service_account(value: str) -> tuple[str, str]:
    """NAMESPACE/NAME of --service-account, each part a valid name."""
    import re

    from kstream.errors import UsageError

    ns, sep, sa = value.partition("/")
    label = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
    subdomain = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
    if not (sep and len(ns) <= 63 and label.fullmatch(ns) and subdomain.fullmatch(sa)):
        raise UsageError(
            f"--service-account {value!r}: NAMESPACE/NAME expected (e.g. kstream/kstream)"
        )
    return ns, sa
