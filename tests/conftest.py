"""Shared fixtures. Tests that need the real control plane use `cluster` (one per
session, started on first use) and carry the `cluster` marker; the rest never
start it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane import ControlPlane
from tests.controlplane.versions import KUBE_VERSION, watch_list_by_default
from tests.faultproxy import FaultProxy, make_server_cert
from tests.seed import Api, seed_demo

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
KUBECTL = str(VENV_BIN / "kubectl")


@dataclass
class Cluster:
    cp: ControlPlane
    api: Api

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig


def _start(tmp: Path, gates: str = "") -> ControlPlane:
    cp = ControlPlane(tmp, feature_gates=gates)
    cp.start()
    return cp


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's control plane, seeded with the demo objects (3 namespaces,
    ConfigMaps, Secrets, Deployments, widgets.demo.kstream.dev)."""
    # a server whose WatchList gate is off by default (1.33) gets it turned on here
    gates = "" if watch_list_by_default(KUBE_VERSION) else "WatchList=true"
    cp = _start(tmp_path_factory.mktemp("controlplane"), gates)
    try:
        api = seed_demo(cp)
        yield Cluster(cp, api)
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def cluster_no_watchlist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A second control plane with the WatchList feature gate off."""
    cp = _start(tmp_path_factory.mktemp("controlplane-nowl"), "WatchList=false")
    try:
        api = seed_demo(cp)
        yield Cluster(cp, api)
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def proxy_cert(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A serving certificate for a FaultProxy in front of the session's control plane."""
    return make_server_cert(cluster.cp, tmp_path_factory.mktemp("proxy-certs"))


@pytest.fixture
def proxy(cluster: Cluster, proxy_cert: tuple[Path, Path], tmp_path: Path) -> Iterator[FaultProxy]:
    """A FaultProxy (tests/faultproxy.py) in front of the session's control plane."""
    with FaultProxy(cluster.cp, tmp_path, cert=proxy_cert) as px:
        yield px


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = {"cluster", "cluster_no_watchlist"} & set(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("cluster") is None:
            raise pytest.UsageError(
                f"{item.nodeid} uses the control plane but lacks @pytest.mark.cluster"
            )


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


def kstream(
    *args: str,
    kubeconfig: Path | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 300,
) -> Result:
    """Run the real `kstream` command (a subprocess, as a user would)."""
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR")}
    e["HOME"] = e.get("HOME", "/root")
    if kubeconfig is not None:
        e["KUBECONFIG"] = str(kubeconfig)
    e.update(env or {})
    p = subprocess.run(
        [str(VENV_BIN / "kstream"), *args],
        capture_output=True,
        env=e,
        input=input,
        timeout=timeout,
    )
    return Result(p.returncode, p.stdout, p.stderr.decode(errors="replace"))


def kubectl_json(kubeconfig: Path, *args: str) -> dict:
    import json

    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return json.loads(p.stdout)


# An environment whose kubeconfig does not exist: checks that must come before
# connecting still answer, anything that connects fails.
NOWHERE = {"KUBECONFIG": "/nonexistent/kubeconfig"}


def one_line(r: Result, code: int, *words: str) -> None:
    """The command ended with `code` and one line on stderr holding `words`."""
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    for w in words:
        assert w in r.err, (w, r.err)


def completion_refresh(kubeconfig: Path, cache_home: Path) -> dict[str, Any]:
    """Run `python -m kstream.completion refresh` against kubeconfig (no
    KUBECONFIG, XDG_CACHE_HOME=cache_home); the discovery cache it wrote."""
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    e["XDG_CACHE_HOME"] = str(cache_home)
    p = subprocess.run(
        [sys.executable, "-m", "kstream.completion", "refresh", "--kubeconfig", str(kubeconfig)],
        env=e,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    doc: dict[str, Any] = json.loads(Path(p.stdout.strip()).read_text())
    return doc
