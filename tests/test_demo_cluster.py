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
from tests.seed import configmap
from tools import demo

pytestmark = pytest.mark.cluster

DEPLOY = "/apis/apps/v1/namespaces/demo-0/deployments/api"
CMS = "/api/v1/namespaces/demo-0/configmaps"


def test_the_time_machine_shows_the_values_before_the_changes(
    cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api = cluster.api
    old_cm = api.call("GET", f"{CMS}/config-3")
    replicas = api.call("GET", DEPLOY)["spec"]["replicas"]
    assert replicas != 1
    monkeypatch.setattr(demo, "OUT", tmp_path)
    monkeypatch.setattr(demo, "KUBECONFIG", cluster.kubeconfig)
    try:
        demo.time_machine(api)
    finally:
        api.call("PATCH", DEPLOY, {"spec": {"replicas": replicas}})
        api.call("DELETE", f"{CMS}/config-new", ok=(200, 404))
        path, obj = configmap("demo-0", "config-3")
        obj["metadata"]["labels"] = old_cm["metadata"].get("labels", {})
        obj["data"] = old_cm["data"]
        api.create(path, obj, exist_ok=True)
    out = capfd.readouterr().out
    _, before, now = re.split(r"--context (?:before|now) get deployments", out)
    assert re.search(rf"deployment.apps/api\s+0/{replicas}\s", before), out
    assert re.search(r"deployment.apps/api\s+0/1\s", now), out
    assert "configmap/config-3 " in before and "configmap/config-new" not in before, out
    assert "configmap/config-3 " not in now and "configmap/config-new" in now, out
    assert (tmp_path / "journal" / "base.ndjson.zst").exists()
    assert (tmp_path / "timemachine.kubeconfig").exists()
