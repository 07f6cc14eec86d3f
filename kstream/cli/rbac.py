"""kstream rbac: the least-privilege ClusterRole (and bindings) for a dump's scope."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kstream.cli import common as c

EXAMPLES = """
Examples:

\b
  kstream rbac                                   # what a dump of this cluster reads
  kstream rbac --service-account kstream/kstream | kubectl apply -f -
  kstream rbac --exclude secrets                 # everything but Secrets
  kstream rbac -n shop -r deployments,configmaps --service-account shop/backup
  kstream rbac --wildcard > deploy/clusterrole.yaml   # every resource, CRDs made later too
"""


def rbac(
    service_account: Annotated[
        str,
        typer.Option(
            "--service-account",
            metavar="NAMESPACE/NAME",
            help="Also print the bindings of the role(s) to this ServiceAccount (a "
            "ClusterRoleBinding; with -n, a RoleBinding in each namespace).",
            rich_help_panel=c.HELP_OUTPUT,
            show_default=False,
        ),
    ] = "",
    name: Annotated[
        str,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Name of the ClusterRole and its bindings (with -n and cluster-scoped "
            "resources named with -r, those go to NAME-cluster).",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = "kstream-reader",
    wildcard: Annotated[
        bool,
        typer.Option(
            "--wildcard",
            help="One rule, list and watch on every resource of every group, CRDs created "
            "later included (deploy/'s role); no cluster is contacted. Cannot leave "
            "anything out (-r, --exclude).",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = False,
    resource: c.ResourceOpt = None,
    exclude: c.ExcludeOpt = None,
    namespace: c.NamespaceOpt = None,
    all_namespaces: c.AllNamespacesOpt = False,
    kubeconfig: c.KubeconfigOpt = None,
    context: c.ContextOpt = None,
    debug: c.DebugOpt = False,
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

    if namespace and all_namespaces:
        raise UsageError("--namespace and --all-namespaces cannot be used together")
    sa = core.parse_service_account(service_account) if service_account else None
    name = core.check_name(name)
    namespaces = tuple(namespace or ())
    if wildcard:
        if resource or exclude:
            raise UsageError(
                "--wildcard grants every resource: it cannot leave any out (-r, --exclude); "
                "leave --wildcard out for a role that names the resources"
            )
        sys.stdout.write(core.render(core.wildcard(namespaces), name, sa))
        return
    from kstream.cluster.plan import LiveOptions

    scope = c.scope(resource, exclude, namespace, "")
    live = core.live_access(scope, LiveOptions(kubeconfig, context))
    for failure in live.failures:
        c.note(f"warning: discovery failed, not in the role: {failure}")
    words = [
        *([f"-r {','.join(resource)}"] if resource else []),
        *([f"--exclude {','.join(exclude)}"] if exclude else []),
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
