"""kstream rbac: the least-privilege ClusterRole (and bindings) for a dump's scope."""

from __future__ import annotations

import sys
from typing import Annotated

from kstream.cli import common as c

EXAMPLES = """
Examples:

\b
  kstream rbac                                   # what a dump of this cluster reads
  kstream rbac --service-account kstream/kstream | kubectl apply -f -
  kstream rbac --exclude secrets                 # everything but Secrets
  kstream rbac -n shop -r deployments,configmaps --service-account shop/backup
  kstream rbac --wildcard > deploy/base/clusterrole.yaml   # every resource, CRDs made later too
"""


@c.option_groups
def rbac(
    service_account: Annotated[
        str,
        c.output_option(
            "--service-account",
            metavar="NAMESPACE/NAME",
            help="Also print the bindings of the role(s) to this ServiceAccount (a "
            "ClusterRoleBinding; with -n, a RoleBinding in each namespace).",
            show_default=False,
        ),
    ] = "",
    name: Annotated[
        str,
        c.output_option(
            "--name",
            metavar="NAME",
            help="Name of the ClusterRole and its bindings (with -n and cluster-scoped "
            "resources named with -r, those go to NAME-cluster).",
        ),
    ] = "kstream-reader",
    wildcard: Annotated[
        bool,
        c.output_option(
            "--wildcard",
            help="One rule, list and watch on every resource of every group, CRDs created "
            "later included (deploy/'s role); no cluster is contacted. Cannot leave "
            "anything out (-r, --exclude).",
        ),
    ] = False,
    *,
    sel: c.Selection,
    cluster: c.Cluster,
    ui: c.Ui,
) -> None:
    """Print the least-privilege RBAC for `kstream dump` of a scope, as YAML.

    The scope is dump's (-r, --exclude, -n; core events left out unless named),
    planned from the cluster's discovery as dump plans it. The ClusterRole grants
    list and watch on exactly the resources that dump would read (list alone
    where a resource serves no watch), never a subresource, no get (but of the
    namespaces named with -n), no write verb. With -n, namespaced resources are
    granted in those namespaces only (RoleBindings). Resources created later
    (new CRDs) are not covered: generate the role again, or use --wildcard.
    Label and field selectors do not change the role (RBAC does not see them).
    """
    from kstream.cluster import rbac as core
    from kstream.errors import UsageError

    c.setup_consoles(ui)
    if len(cluster.contexts) > 1:
        raise UsageError("rbac reads one cluster's discovery: give --context once")
    sa = core.parse_service_account(service_account) if service_account else None
    name = core.check_name(name)
    namespaces = tuple(sel.namespace or ())
    if wildcard:
        if sel.resource or sel.exclude:
            raise UsageError(
                "--wildcard grants every resource: it cannot leave any out (-r, --exclude); "
                "leave --wildcard out for a role that names the resources"
            )
        sys.stdout.write(core.render(core.wildcard(namespaces), name, sa))
        return
    from kstream.cluster.plan import LiveOptions

    live_opts = LiveOptions(
        cluster.kubeconfig, cluster.first_context, impersonate=cluster.impersonation()
    )
    live = core.live_access(sel.scope(), live_opts)
    for failure in live.failures:
        c.note(f"warning: discovery failed, not in the role: {failure}")
    words = [
        *([f"-r {','.join(sel.resource)}"] if sel.resource else []),
        *([f"--exclude {','.join(sel.exclude)}"] if sel.exclude else []),
        *([f"-n {','.join(namespaces)}"] if namespaces else []),
    ]
    header = (
        " ".join(["kstream rbac", *words])
        + f"\nfor {live.server} (Kubernetes {live.server_version}): "
        + f"{live.access.resources} resources"
        + (
            f"; left out as dump leaves them out: {', '.join(live.excluded)}"
            if live.excluded
            else ""
        )
    )
    sys.stdout.write(core.render(live.access, name, sa, header))
