"""`make demo`'s time machine (tools/demo.py, issue 25 "The demo") on the session's
control plane: a short `dump --follow` while three objects change, then `kstream
serve` of an instant before the changes beside the latest state, and kubectl
showing the old values through one context and the new through the other. The
cluster is put back as it was afterwards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.seed import configmap, deployment, namespace
from tools import demo

pytestmark = pytest.mark.cluster

NS = "demo-timemachine-t"  # its own namespace: the session's demo objects stay as seeded


def test_the_time_machine_shows_the_values_before_the_changes(
    cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    api.create(*deployment(NS, "api", replicas=3))
    api.create(*deployment(NS, "web"))
    for i in range(5):
        api.create(*configmap(NS, f"config-{i}"))
    monkeypatch.setattr(demo, "OUT", tmp_path)
    monkeypatch.setattr(demo, "KUBECONFIG", cluster.kubeconfig)
    try:
        demo.time_machine(api, NS)
    finally:  # no namespace controller here: the objects first
        for name in ("api", "web"):
            api.call("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/{name}", ok=(200, 404))
        for name in [f"config-{i}" for i in range(5)] + ["config-new"]:
            api.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps/{name}", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 404))
    out = capfd.readouterr().out
    _, before, now = re.split(r"--context (?:before|now) get deployments", out)
    assert re.search(r"deployment.apps/api\s+0/3\s", before), out
    assert re.search(r"deployment.apps/api\s+0/1\s", now), out
    assert "configmap/config-3 " in before and "configmap/config-new" not in before, out
    assert "configmap/config-3 " not in now and "configmap/config-new" in now, out
    assert "configmap/config-4 " in before and "configmap/config-4 " in now, out
    assert (tmp_path / "journal" / "base.ndjson.zst").exists()
    assert (tmp_path / "timemachine.kubeconfig").exists()
