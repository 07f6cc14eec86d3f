"""From a connection and a selection to the list of units to read:
`LiveOptions` (how to reach and read the server), and `open_live()`, which
connects, discovers and plans what a `selector.Scope` selects."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kstream.cluster.client import ApiTransport, Client, ConnectSettings
from kstream.cluster.discovery import Discovery, discover
from kstream.cluster.stream import Method, Reader, StreamOptions, Unit
from kstream.dataclass import dataclass
from kstream.errors import ApiError, KstreamError
from kstream.resources import Resource, Selection, select
from kstream.selector import Scope

if TYPE_CHECKING:
    from kstream.cluster.auth import Impersonation


@dataclass(frozen=True)
class LiveOptions:
    """How to reach the server and read from it, as the command line said."""

    kubeconfig: str | None = None
    context: str | None = None
    method: Method = "auto"
    concurrency: int = 4
    timeout: float = 60.0
    retries: int = 8
    impersonate: Impersonation | None = None  # --as, --as-uid, --as-group


@dataclass
class Plan:
    server: str
    server_version: str
    context: str
    discovery: Discovery
    selection: Selection
    units: list[Unit]


def make_plan(
    client: ApiTransport,
    include: Sequence[str],
    exclude: Sequence[str],
    namespaces: Sequence[str],
    skip_secrets: bool = False,
) -> Plan:
    version = client.server_version()
    disc = discover(client)
    sel = select(
        disc.resources,
        include,
        exclude,
        namespaced_only=bool(namespaces) and not include,
        other_versions=disc.other_versions,
    )
    resources = sel.resources
    if skip_secrets:
        resources = [r for r in resources if not (r.group == "" and r.resource == "secrets")]
    units = plan_units(resources, namespaces, explicit=bool(include))
    return Plan(client.host, version, client.context, disc, sel, units)


def plan_units(
    resources: Sequence[Resource],
    namespaces: Sequence[str],
    explicit: bool = False,
) -> list[Unit]:
    """One unit per resource, or per resource and namespace when -n is given.
    With namespaces, cluster-scoped resources are read only when named."""
    units: list[Unit] = []
    for r in resources:
        if not namespaces:
            units.append(Unit(r, None))
        elif r.namespaced:
            units.extend(Unit(r, ns) for ns in namespaces)
        elif explicit:
            units.append(Unit(r, None))
    for i, u in enumerate(units):
        u.index = i
    return units


def connect(live: LiveOptions) -> Client:

    return Client(
        ConnectSettings(
            kubeconfig=live.kubeconfig,
            context=live.context,
            read_timeout=live.timeout,
            pool_size=max(4, live.concurrency + 2),
            impersonate=live.impersonate,
        )
    )


def warn_missing_namespaces(
    client: ApiTransport, namespaces: Sequence[str], warn: Callable[[str], None]
) -> None:
    """A warning for each namespace of -n that the server says does not exist
    (a GET of it is 404). Reading it selects nothing, which is not an error;
    when the GET is forbidden or fails, nothing is said."""

    for ns in namespaces:
        try:
            client.get_json(f"/api/v1/namespaces/{ns}", what=f"namespace {ns}")
        except ApiError as e:
            if e.status == 404:
                warn(f'warning: namespace "{ns}" does not exist')
        except KstreamError:
            pass


def open_live(
    scope: Scope,
    live: LiveOptions,
    warn: Callable[[str], None],
    skip_secrets: bool = False,
) -> tuple[Plan, Reader]:
    """Connect, discover and plan the units; the reader that streams them."""

    client = connect(live)
    warn_missing_namespaces(client, scope.namespaces, warn)
    plan = make_plan(
        client, scope.resources, scope.exclude, scope.namespaces, skip_secrets=skip_secrets
    )
    opts = StreamOptions(
        label_selector=scope.label_selector,
        field_selector=scope.field_selector,
        method=live.method,
        max_retries=live.retries,
    )
    return plan, Reader(client, opts, threading.Event())
