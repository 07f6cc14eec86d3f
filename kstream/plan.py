"""From a connection and a selection to the list of units to read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kstream.discovery import Discovery, discover
from kstream.kubeclient import Client
from kstream.resources import Selection, select
from kstream.runner import plan_units
from kstream.stream import Unit


@dataclass
class Plan:
    server: str
    server_version: str
    context: str
    discovery: Discovery
    selection: Selection
    units: list[Unit]


def make_plan(
    client: Client,
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
