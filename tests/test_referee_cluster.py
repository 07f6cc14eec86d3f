"""The raw referee (tests/referee.py) agrees with kubectl where kubectl is a fit
referee (the default server, one minor from the pinned kubectl): what the
compatibility subset trusts on servers kubectl is too far from is checked here."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests import referee
from tests.conftest import KUBECTL, Cluster, kubectl_json

pytestmark = [pytest.mark.cluster, pytest.mark.compat]


@pytest.fixture
def fit(cluster: Cluster) -> Cluster:
    if not referee.kubectl_fits(cluster.cp, KUBECTL):
        pytest.skip("kubectl is out of the version skew policy of this server")
    return cluster


@pytest.mark.parametrize("verbs", [(), ("list", "watch")])
def test_preferred_resources_are_kubectls(fit: Cluster, verbs: tuple[str, ...]) -> None:
    args = [f"--verbs={','.join(verbs)}"] if verbs else []
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(fit.kubeconfig), "api-resources", "-o", "json", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    want = {
        (r.get("group", ""), r["version"], r["name"]) for r in json.loads(p.stdout)["resources"]
    }
    assert referee.preferred_resources(fit.cp, verbs) == want


@pytest.mark.parametrize(
    ("group", "version", "resource", "name"),
    [
        ("", "v1", "configmaps", "configmaps"),
        ("apps", "v1", "deployments", "deployments.v1.apps"),
        ("demo.kstream.dev", "v1", "widgets", "widgets.v1.demo.kstream.dev"),
        ("", "v1", "namespaces", "namespaces"),
    ],
)
def test_list_items_are_kubectls(
    fit: Cluster, group: str, version: str, resource: str, name: str
) -> None:
    for managed in (True, False):
        args = ["get", name, "-A", *(["--show-managed-fields"] if managed else [])]
        want = kubectl_json(fit.kubeconfig, *args)["items"]
        got = referee.list_items(fit.cp, group, version, resource, managed_fields=managed)
        assert got == want, name
    ns = kubectl_json(fit.kubeconfig, "get", "configmaps", "-n", "demo-0")["items"]
    assert referee.list_items(fit.cp, "", "v1", "configmaps", "demo-0", managed_fields=False) == ns
