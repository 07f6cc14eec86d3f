"""The harness is real: a kube-apiserver of the pinned version, watch-list on,
WatchList=false giving 422, RBAC enforced for a limited identity."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import KUBECTL, Cluster
from tests.controlplane.versions import KUBE_VERSION
from tests.seed import grant

pytestmark = pytest.mark.cluster

WATCHLIST = (
    "/api/v1/namespaces/demo-0/configmaps?watch=1&sendInitialEvents=true"
    "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5"
)


@pytest.mark.compat
def test_version_is_pinned(cluster: Cluster) -> None:
    status, body = cluster.cp.request("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == KUBE_VERSION


@pytest.mark.compat
def test_watch_list_sends_objects_then_end_marker(cluster: Cluster) -> None:
    status, body = cluster.cp.request(WATCHLIST, timeout=30)
    assert status == 200
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    marker = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "BOOKMARK"
        and e["object"]["metadata"].get("annotations", {}).get("k8s.io/initial-events-end")
        == "true"
    )
    added = [e["object"]["metadata"]["name"] for e in events[:marker] if e["type"] == "ADDED"]
    assert {f"config-{j}" for j in range(5)} <= set(added)
    assert events[marker]["object"]["metadata"]["resourceVersion"]


@pytest.mark.compat
def test_watch_list_refused_with_gate_off(cluster_no_watchlist: Cluster) -> None:
    status, body = cluster_no_watchlist.cp.request(WATCHLIST, timeout=30)
    assert status == 422
    assert b"sendInitialEvents" in body


def test_limited_identity_gets_403(cluster: Cluster) -> None:
    kc = cluster.cp.add_user("harness-limited")
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "configmaps", "-n", "demo-0"],
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0
    assert "forbidden" in p.stderr.lower()
    # granted list in one namespace: allowed there, still forbidden elsewhere
    grant(cluster.api, "harness-limited", ["configmaps"], ["get", "list"], namespace="demo-0")
    ok = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "configmaps", "-n", "demo-0"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "configmaps", "-n", "demo-1"],
        capture_output=True,
        text=True,
    )
    assert "forbidden" in bad.stderr.lower()


def test_cli_start_stop(tmp_path) -> None:
    import sys

    d = tmp_path / "cp"
    start = subprocess.run(
        [sys.executable, "-m", "tests.controlplane", "start", str(d)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert start.returncode == 0, start.stderr
        assert start.stdout.strip() == str(d.resolve() / "kubeconfig")
        v = subprocess.run(
            [KUBECTL, "--kubeconfig", start.stdout.strip(), "version", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(v.stdout)["serverVersion"]["gitVersion"] == KUBE_VERSION
        state = json.loads((d / "state.json").read_text())
        pids = list(state["pids"].values())
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "tests.controlplane", "stop", str(d)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert stop.returncode == 0, stop.stderr
    for pid in pids:  # exited: gone, or a zombie until init reaps it
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            pass
