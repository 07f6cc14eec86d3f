"""Faults between kstream and kube-apiserver: cut, stalled and rewritten streams,
throttling, expired resource versions, a server killed mid-dump, objects changing
while they are read, a limited identity and a broken aggregated API.

The real control plane serves every object; the fault proxy (tests/faultproxy.py)
misbehaves where the server cannot be made to. Every test checks the outcome:
each object exactly once, the manifest telling what happened, the exit code."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstream.store.snapshot import open_snapshot
from tests.conftest import VENV_BIN, Cluster, Result, kstream
from tests.controlplane import ControlPlane
from tests.faultproxy import (
    APF_BODY,
    Fault,
    FaultProxy,
    expired_list_status,
    random_offsets,
    tally,
)
from tests.seed import Api, configmap, grant, namespace, secret

pytestmark = pytest.mark.cluster

NS = "faults-main"
N_CM = 150
N_SECRETS = 20
CM_SIZE = 1500


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Cluster:
    """The module's own namespace: 150 ConfigMaps and 20 Secrets."""
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    api.create_many(configmap(NS, f"cm-{i:03d}", size=CM_SIZE) for i in range(N_CM))
    api.create_many(secret(NS, f"s-{i:02d}") for i in range(N_SECRETS))
    return cluster


def dump(kc: Path, out: Path, *args: str, timeout: float = 240) -> Result:
    return kstream("dump", "-o", str(out), "-q", *args, kubeconfig=kc, timeout=timeout)


def load(out: Path) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    """The manifest and (resource, namespace, name, resourceVersion) of every
    object, read back with the checksum-verifying reader."""
    snap = open_snapshot(str(out))
    assert snap.manifest is not None
    rows = []
    for e in snap.entries:
        for line in snap.lines(e):
            md = json.loads(line)["metadata"]
            rows.append((e.resource, md.get("namespace", ""), md["name"], md["resourceVersion"]))
    return snap.manifest.to_json(), rows


def exactly_once(
    rows: list[tuple[str, str, str, str]], expected: set[tuple[str, str]]
) -> tuple[int, int]:
    """(lost, duplicates) against the expected (resource, name) pairs."""
    seen = Counter((r, n) for r, _, n, _ in rows)
    lost = len(expected - set(seen))
    dups = sum(c - 1 for c in seen.values() if c > 1)
    return lost, dups


def expected_main() -> set[tuple[str, str]]:
    return {("configmaps", f"cm-{i:03d}") for i in range(N_CM)} | {
        ("secrets", f"s-{i:02d}") for i in range(N_SECRETS)
    }


def entry(manifest: dict[str, Any], resource: str) -> dict[str, Any]:
    return next(e for e in manifest["resources"] if e["resource"] == resource)


def one_line(err: str) -> None:
    assert "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) >= 1


# ------------------------------------------------------------------ cut connections


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_watch_stream_cut_at_random_points(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path, seed: int
) -> None:
    """Two cuts at random offsets of the ConfigMaps stream and one of the Secrets
    stream (below the fallback threshold): each object exactly once."""
    size = N_CM * (CM_SIZE + 300)
    for off in random_offsets(2, size, seed):
        proxy.add(Fault("cut", match="/configmaps", watch_only=True, after_bytes=off))
    proxy.add(
        Fault(
            "cut", match="/secrets", watch_only=True, after_bytes=random_offsets(1, 5000, seed)[0]
        )
    )
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps,secrets")
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, expected_main())
    tally(f"cut-watch-{seed}", faults=sum(proxy.injected.values()), runs=1, objects=len(rows),
          lost=lost, duplicates=dups)  # fmt: skip
    assert proxy.injected["cut"] == 3
    assert (lost, dups) == (0, 0)
    assert len(rows) == N_CM + N_SECRETS
    assert manifest["status"] == "complete"
    assert entry(manifest, "configmaps")["retries"] >= 2
    assert entry(manifest, "configmaps")["method"] == "watch-list"


def test_repeated_cuts_fall_back_to_list_and_cuts_in_list(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every watch of ConfigMaps is cut: after three broken streams kstream reads
    them with LIST, whose first body is cut too; the fallback is reported."""
    proxy.add(Fault("cut", match="/configmaps", watch_only=True, times=-1, after_bytes=20_000))
    proxy.add(Fault("cut", match="/configmaps", watch_only=False, times=1, after_bytes=77_777))
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps")
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("cut-fallback-list", faults=sum(proxy.injected.values()), runs=1, objects=len(rows),
          lost=lost, duplicates=dups)  # fmt: skip
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    e = entry(manifest, "configmaps")
    assert e["method"] == "list"
    assert "broke" in (e.get("fallback") or "")
    assert proxy.injected["cut"] == 4


def test_cut_list_pages(objects: Cluster, proxy: FaultProxy, tmp_path: Path) -> None:
    """--method list with its bodies cut twice at random points."""
    for off in random_offsets(2, N_CM * CM_SIZE, 7):
        proxy.add(Fault("cut", match="/configmaps", after_bytes=off))
    out = tmp_path / "snap.zst"
    r = dump(
        proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps", "--method", "list"
    )
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("cut-list", faults=2, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    assert entry(manifest, "configmaps")["retries"] == 2


# ------------------------------------------------------------------ stalls and a missing end marker


def test_stalled_stream_is_retried_after_the_timeout(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.add(
        Fault("stall", match="/configmaps", watch_only=True, after_bytes=30_000, stall_for=60)
    )
    out = tmp_path / "snap.zst"
    r = dump(
        proxy.kubeconfig(tmp_path / "kc"),
        out,
        "-n",
        NS,
        "-r",
        "configmaps",
        "--timeout",
        "2",
        timeout=120,
    )
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("stall", faults=1, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    assert entry(manifest, "configmaps")["retries"] == 1
    watches = proxy.requests(lambda q: q.watch and "/configmaps" in q.path)
    assert len(watches) == 2
    assert watches[1].t - watches[0].t >= 2.0  # waited for the timeout, not hot


def test_stream_without_end_marker_falls_back(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The server's stream never carries the end marker (an aggregated server
    that does not implement it): bounded wait, retries, then LIST, reported."""
    proxy.add(Fault("drop_marker", match="/configmaps", watch_only=True, times=-1, stall_for=60))
    out = tmp_path / "snap.zst"
    r = dump(
        proxy.kubeconfig(tmp_path / "kc"),
        out,
        "-n",
        NS,
        "-r",
        "configmaps",
        "--timeout",
        "2",
        timeout=120,
    )
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("no-end-marker", faults=proxy.injected["drop_marker"], runs=1, objects=len(rows),
          lost=lost, duplicates=dups)  # fmt: skip
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    e = entry(manifest, "configmaps")
    assert e["method"] == "list"
    assert e.get("fallback")
    assert proxy.injected["drop_marker"] == 3


# ------------------------------------------------------------------ throttling and server errors


def test_429_with_retry_after_is_honoured(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """APF's 429: plain-text body, Retry-After: 2. Two in a row, then success."""
    proxy.add(Fault("status", match="/configmaps", times=2, status=429, body=APF_BODY,
                    headers={"Retry-After": "2", "X-Kubernetes-PF-FlowSchema-UID": "x",
                             "X-Kubernetes-PF-PriorityLevel-UID": "y"}))  # fmt: skip
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps")
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("429", faults=2, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    reqs = proxy.requests(lambda q: "/configmaps" in q.path and q.watch)
    assert len(reqs) == 3  # no hot loop
    gaps = [b.t - a.t for a, b in itertools.pairwise(reqs)]
    assert all(g >= 1.9 for g in gaps), gaps
    assert entry(manifest, "configmaps")["retries"] == 2


def test_5xx_burst_backs_off(objects: Cluster, proxy: FaultProxy, tmp_path: Path) -> None:
    """Four 5xx answers (500, 503 with JSON Status, 502, 504), then success:
    growing waits, one request per answer."""
    status_503 = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "message": "service unavailable", "reason": "ServiceUnavailable",
                             "code": 503}).encode()  # fmt: skip
    for code, body in (
        (500, b"internal error\n"),
        (503, status_503),
        (502, b""),
        (504, b"timeout\n"),
    ):
        proxy.add(Fault("status", match="/secrets", status=code, body=body))
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "secrets")
    assert r.code == 0, r.err
    _manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "secrets"})
    tally("5xx", faults=4, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0) and len(rows) == N_SECRETS
    reqs = proxy.requests(lambda q: "/secrets" in q.path)
    assert len(reqs) == 5
    gaps = [b.t - a.t for a, b in itertools.pairwise(reqs)]
    assert all(g >= 0.2 for g in gaps), gaps
    assert sum(gaps) >= 3.0, gaps  # 0.5+1+2+4 with jitter of at most half


def test_server_that_keeps_failing_ends_partial(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every request for Secrets gets 503: bounded retries, then the Secrets are
    reported not read (exit 3), the ConfigMaps are all there."""
    proxy.add(Fault("status", match="/secrets", times=-1, status=503, body=b"unavailable\n"))
    out = tmp_path / "snap.zst"
    r = dump(
        proxy.kubeconfig(tmp_path / "kc"),
        out,
        "-n",
        NS,
        "-r",
        "configmaps,secrets",
        "--retries",
        "3",
    )
    assert r.code == 3, r.err
    one_line(r.err)
    manifest, rows = load(out)
    assert manifest["status"] == "partial"
    assert entry(manifest, "secrets")["status"] == "failed"
    assert "503" in entry(manifest, "secrets")["error"]
    assert len(proxy.requests(lambda q: "/secrets" in q.path)) == 4
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally(
        "503-forever",
        faults=proxy.injected["status"],
        runs=1,
        objects=len(rows),
        lost=lost,
        duplicates=dups,
    )
    assert (lost, dups) == (0, 0)
    assert "secrets" in r.err


def test_discovery_5xx_is_retried(objects: Cluster, proxy: FaultProxy, tmp_path: Path) -> None:
    """A 503 on discovery (/apis) once: retried, the dump is complete."""
    proxy.add(Fault("status", match=lambda m, p, q: p == "/apis", status=503, body=b"unavailable\n",
                    headers={"Retry-After": "1"}))  # fmt: skip
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps")
    tally("discovery-503", faults=1, runs=1, objects=0)
    assert r.code == 0, r.err
    assert len(proxy.requests(lambda q: q.path == "/apis")) == 2


# ------------------------------------------------------------------ 410 Expired


def test_expired_error_event_restarts(objects: Cluster, proxy: FaultProxy, tmp_path: Path) -> None:
    """An ERROR event (410 Expired) after 40 objects: restarted from scratch."""
    proxy.add(Fault("error_event", match="/configmaps", watch_only=True, after_lines=40))
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps")
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("410-event", faults=1, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    e = entry(manifest, "configmaps")
    assert e["method"] == "watch-list" and e["retries"] == 1
    watches = proxy.requests(lambda q: q.watch and "/configmaps" in q.path)
    assert len(watches) == 2
    assert watches[1].query.get("resourceVersion", [""])[0] == ""  # restarted with no version


N_PAGED = 520  # more than one LIST page (500)


@pytest.fixture(scope="module")
def paged(cluster: Cluster) -> str:
    ns = "faults-paged"
    cluster.api.create(*namespace(ns), exist_ok=True)
    cluster.api.create_many(configmap(ns, f"p-{i:03d}", size=20) for i in range(N_PAGED))
    return ns


def test_expired_continue_token_restarts_the_list(
    paged: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The second page's continue token has expired (410, with the server's
    inconsistent new token): the LIST starts again, never mixing snapshots."""
    proxy.add(Fault("status", match=lambda m, p, q: "continue" in q, status=410,
                    body=expired_list_status(), headers={"Content-Type": "application/json"}))  # fmt: skip
    out = tmp_path / "snap.zst"
    r = dump(
        proxy.kubeconfig(tmp_path / "kc"), out, "-n", paged, "-r", "configmaps", "--method", "list"
    )
    assert r.code == 0, r.err
    _manifest, rows = load(out)
    expected = {("configmaps", f"p-{i:03d}") for i in range(N_PAGED)}
    lost, dups = exactly_once([x for x in rows if x[2].startswith("p-")], expected)
    tally("410-continue", faults=1, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0)
    firsts = proxy.requests(lambda q: "/configmaps" in q.path and "continue" not in q.query)
    assert len(firsts) == 2  # the list was started again from its first page
    conts = proxy.requests(lambda q: "continue" in q.query)
    assert all(c.query["continue"][0] != "bm90LWNvbnNpc3RlbnQ=" for c in conts)


# ------------------------------------------------------------------ objects changing while read


def _exact_list(cp: ControlPlane, path: str, rv: str) -> set[tuple[str, str]]:
    status, body = cp.request(
        f"{path}?resourceVersion={rv}&resourceVersionMatch=Exact&limit=5000", timeout=30
    )
    assert status == 200, body[:300]
    return {
        (i["metadata"]["name"], i["metadata"]["resourceVersion"]) for i in json.loads(body)["items"]
    }


@pytest.mark.parametrize("method", ["watch-list", "list"])
def test_objects_changing_during_the_dump_give_a_consistent_cut(
    cluster: Cluster, proxy: FaultProxy, tmp_path: Path, method: str
) -> None:
    """ConfigMaps and Secrets are created, updated and deleted while the dump
    runs (slowed by the proxy, and cut once so a restart happens mid-churn).
    Each resource's recorded resourceVersion must name exactly the set of
    objects (and their versions) that were written."""
    ns = f"faults-churn-{method.replace('-', '')}"
    api = cluster.api
    api.create(*namespace(ns), exist_ok=True)
    api.create_many(configmap(ns, f"c-{i:03d}", size=800) for i in range(120))
    api.create_many(secret(ns, f"s-{i:03d}") for i in range(30))
    stop = threading.Event()
    ops = Counter[str]()

    def churn() -> None:
        churner = Api(cluster.cp)
        i = 0
        while not stop.is_set() and i < 2000:
            i += 1
            base = f"/api/v1/namespaces/{ns}"
            churner.create(*configmap(ns, f"new-{i:04d}", size=100))
            ops["create"] += 1
            churner.call("PATCH", f"{base}/configmaps/c-{i % 120:03d}", {"data": {"n": str(i)}})
            ops["update"] += 1
            if i % 3 == 0:
                churner.call("DELETE", f"{base}/configmaps/new-{i - 1:04d}", ok=(200, 202, 404))
                churner.create(*secret(ns, f"t-{i:04d}"))
                churner.call("DELETE", f"{base}/secrets/s-{(i // 3) % 30:03d}", ok=(200, 202, 404))
                churner.call("DELETE", f"{base}/secrets/t-{i - 6:04d}", ok=(200, 202, 404))
                ops["delete"] += 3
            time.sleep(0.01)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        proxy.add(Fault("slow", match="/configmaps", times=-1, delay=0.05, chunk=8192))
        proxy.add(Fault("cut", match="/secrets", after_bytes=1500))
        out = tmp_path / "snap.zst"
        before = ops["update"]
        r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", ns, "-r", "configmaps,secrets",
                 "--method", method, "--secrets", "include")  # fmt: skip
        during = ops["update"] - before
    finally:
        stop.set()
        t.join(30)
    assert r.code == 0, r.err
    assert during >= 5, ops  # the dump really overlapped the changes
    manifest, rows = load(out)
    for res in ("configmaps", "secrets"):
        rv = entry(manifest, res)["resourceVersion"]
        assert rv
        got = [(n, v) for rr, _, n, v in rows if rr == res]
        assert got  # something to compare (the churn keeps at least two new Secrets)
        assert len(got) == len(set(got))
        want = _exact_list(cluster.cp, f"/api/v1/namespaces/{ns}/{res}", rv)
        lost, extra = len(want - set(got)), len(set(got) - want)
        tally(f"churn-{method}-{res}", faults=1, runs=1, objects=len(got), lost=lost,
              duplicates=len(got) - len(set(got)) + extra)  # fmt: skip
        assert set(got) == want, (res, sorted(want - set(got))[:5], sorted(set(got) - want)[:5])


# ------------------------------------------------------------------ a limited identity


def test_limited_identity_gives_partial_result(objects: Cluster, tmp_path: Path) -> None:
    """May list and watch ConfigMaps, only list Secrets, nothing on Deployments:
    ConfigMaps by watch-list, Secrets by LIST, Deployments forbidden; exit 3 and
    the manifest says which."""
    cp = objects.cp
    user = "faults-limited"
    kc = cp.add_user(user)
    grant(objects.api, user, ["configmaps"], ["list", "watch"], namespace=NS, name="faults-cm")
    grant(objects.api, user, ["secrets"], ["list"], namespace=NS, name="faults-secrets")
    out = tmp_path / "snap.zst"
    r = dump(kc, out, "-n", NS, "-r", "configmaps,secrets,deployments")
    assert r.code == 3, r.err
    assert "Traceback" not in r.err
    assert "deployments" in r.err
    manifest, rows = load(out)
    assert manifest["status"] == "partial"
    cm, sec, dep = (entry(manifest, x) for x in ("configmaps", "secrets", "deployments"))
    assert (cm["status"], cm["method"]) == ("complete", "watch-list")
    assert (sec["status"], sec["method"]) == ("complete", "list")
    assert "forbidden" in (sec.get("fallback") or "")
    assert dep["status"] == "forbidden" and dep["objects"] == 0
    lost, dups = exactly_once(rows, expected_main())
    tally("rbac-limited", faults=2, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0)


# ------------------------------------------------------------------ own control planes: kill, broken APIService


@pytest.fixture
def own_cp(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path / "own-cp")
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def test_apiserver_killed_and_restarted_during_dump(own_cp: ControlPlane, tmp_path: Path) -> None:
    api = Api(own_cp)
    api.create(*namespace("faults-kill"))
    api.create_many(configmap("faults-kill", f"k-{i:03d}", size=1000) for i in range(200))
    expected = {("configmaps", f"k-{i:03d}") for i in range(200)}
    with FaultProxy(own_cp, tmp_path) as px:
        # the first stream stalls after 20 kB; the server is killed meanwhile, so
        # the retries meet a dead server until it is back
        px.add(
            Fault("stall", match="/configmaps", watch_only=True, after_bytes=20_000, stall_for=60)
        )
        out = tmp_path / "snap.zst"
        env_kc = px.kubeconfig(tmp_path / "kc")
        p = subprocess.Popen(
            [str(VENV_BIN / "kstream"), "dump", "-o", str(out), "-q", "-n", "faults-kill", "-r", "configmaps",
             "--timeout", "3"],
            env={"KUBECONFIG": str(env_kc), "PATH": "/usr/bin:/bin", "HOME": "/root"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            px.wait_for(lambda q: "/configmaps" in q.path and q.body_bytes >= 20_000, timeout=60)
            own_cp.kill_apiserver()
            time.sleep(4.0)  # kstream's stream times out and its retries fail
            own_cp.start_apiserver_again()
            _, err_b = p.communicate(timeout=240)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        failed_while_down = len(px.requests(lambda q: "/configmaps" in q.path and q.status == 502))
    err = err_b.decode()
    assert "Traceback" not in err
    if p.returncode == 0:
        manifest, rows = load(out)
        lost, dups = exactly_once(rows, expected)
        tally("apiserver-killed", faults=1, runs=1, objects=len(rows), lost=lost, duplicates=dups)
        assert (lost, dups) == (0, 0) and len(rows) == 200
        assert manifest["status"] == "complete"
        assert entry(manifest, "configmaps")["retries"] >= 1 + failed_while_down
        assert failed_while_down >= 1
    else:
        # never a silently short file: partial, and it says so
        assert p.returncode == 3, err
        manifest, rows = load(out)
        assert manifest["status"] == "partial"
        assert entry(manifest, "configmaps")["status"] != "complete"
        tally("apiserver-killed", faults=1, runs=1, objects=len(rows))


def test_broken_apiservice_fails_only_its_group(own_cp: ControlPlane, tmp_path: Path) -> None:
    api = Api(own_cp)
    api.create(*namespace("faults-agg"))
    api.create_many(configmap("faults-agg", f"a-{i}", size=100) for i in range(10))
    api.create("/apis/apiregistration.k8s.io/v1/apiservices", {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1.broken.example.com"},
        "spec": {"group": "broken.example.com", "version": "v1", "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "insecureSkipTLSVerify": True,
                 "service": {"namespace": "default", "name": "no-such-backend", "port": 443}},
    })  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the aggregator has noticed the APIService
        st, _body = own_cp.request("/apis/broken.example.com/v1")
        if st in (503, 404) and b"broken" in own_cp.request("/apis")[1]:
            break
        time.sleep(0.3)
    out = tmp_path / "snap.zst"
    r = dump(own_cp.kubeconfig, out)
    assert "Traceback" not in r.err
    assert r.code == 3, r.err
    assert "broken.example.com" in r.err
    manifest, rows = load(out)
    assert manifest["status"] == "partial"
    assert any("broken.example.com" in f["groupVersion"] for f in manifest["discoveryFailures"])
    assert all(e["status"] == "complete" for e in manifest["resources"])
    names = {n for res, ns, n, _ in rows if res == "configmaps" and ns == "faults-agg"}
    assert names == {f"a-{i}" for i in range(10)}
    assert any(e["resource"] == "namespaces" for e in manifest["resources"])
    tally("broken-apiservice", faults=1, runs=1, objects=len(rows))


def test_apiserver_killed_for_good_ends_partial(own_cp: ControlPlane, tmp_path: Path) -> None:
    """The server dies mid-stream and does not come back: after bounded
    retries the dump ends partial (exit 3) and says so, never a short file
    that looks complete."""
    api = Api(own_cp)
    api.create(*namespace("faults-dead"))
    api.create_many(configmap("faults-dead", f"d-{i:03d}", size=1000) for i in range(100))
    api.create_many(secret("faults-dead", f"s-{i}") for i in range(5))
    with FaultProxy(own_cp, tmp_path) as px:
        px.add(
            Fault("stall", match="/configmaps", watch_only=True, after_bytes=20_000, stall_for=60)
        )
        out = tmp_path / "snap.zst"
        p = subprocess.Popen(
            [str(VENV_BIN / "kstream"), "dump", "-o", str(out), "-q", "-n", "faults-dead",
             "-r", "secrets,configmaps", "--timeout", "2", "--retries", "2"],
            env={"KUBECONFIG": str(px.kubeconfig(tmp_path / "kc")), "PATH": "/usr/bin:/bin", "HOME": "/root"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            px.wait_for(lambda q: "/configmaps" in q.path and q.body_bytes >= 20_000, timeout=60)
            own_cp.kill_apiserver()
            _, err_b = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    err = err_b.decode()
    assert p.returncode == 3, err
    assert "Traceback" not in err and "configmaps" in err
    manifest, rows = load(out)
    assert manifest["status"] == "partial"
    cm = entry(manifest, "configmaps")
    assert cm["status"] == "failed" and cm["objects"] == 0 and cm["error"]
    assert entry(manifest, "secrets")["status"] == "complete"
    assert {n for r, _, n, _ in rows} == {f"s-{i}" for i in range(5)}
    tally("apiserver-dead", faults=1, runs=1, objects=len(rows))


def test_live_count_through_cuts_counts_each_object_once(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    for off in random_offsets(2, N_CM * CM_SIZE, 11):
        proxy.add(Fault("cut", match="/configmaps", watch_only=True, after_bytes=off))
    proxy.add(
        Fault("status", match="/secrets", status=429, body=APF_BODY, headers={"Retry-After": "1"})
    )
    r = kstream("count", "-n", NS, "-r", "configmaps,secrets", "-o", "json", "-q",
                kubeconfig=proxy.kubeconfig(tmp_path / "kc"))  # fmt: skip
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    by = {row["resource"]: row["objects"] for row in doc["rows"]}
    tally("count-live-cuts", faults=3, runs=1, objects=sum(by.values()),
          lost=max(0, N_CM - by.get("configmaps", 0)) + max(0, N_SECRETS - by.get("secrets", 0)),
          duplicates=max(0, by.get("configmaps", 0) - N_CM) + max(0, by.get("secrets", 0) - N_SECRETS))  # fmt: skip
    assert by == {"configmaps": N_CM, "secrets": N_SECRETS}
    assert proxy.injected["cut"] == 2


def test_live_diff_through_faults_sees_no_difference(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    out = tmp_path / "snap.zst"
    r = dump(objects.kubeconfig, out, "-n", NS, "-r", "configmaps,secrets")
    assert r.code == 0, r.err
    proxy.add(Fault("cut", match="/configmaps", watch_only=True, after_bytes=33_333))
    proxy.add(Fault("error_event", match="/secrets", watch_only=True, after_lines=5))
    r = kstream("diff", "--live", str(out), "-n", NS, "-r", "configmaps,secrets",
                kubeconfig=proxy.kubeconfig(tmp_path / "kc"))  # fmt: skip
    tally("diff-live-faults", faults=2, runs=1)
    assert r.code == 0, (r.code, r.err, r.out[-2000:])
    assert sum(proxy.injected.values()) == 2


def test_error_event_500_falls_back_to_list(
    objects: Cluster, proxy: FaultProxy, tmp_path: Path
) -> None:
    """An ERROR event with a 500 Status right at the start (what a server on an
    etcd without progress notifications sends): read with LIST, reported."""
    proxy.add(
        Fault("error_event", match="/configmaps", watch_only=True, after_lines=0, event_code=500)
    )
    out = tmp_path / "snap.zst"
    r = dump(proxy.kubeconfig(tmp_path / "kc"), out, "-n", NS, "-r", "configmaps")
    assert r.code == 0, r.err
    manifest, rows = load(out)
    lost, dups = exactly_once(rows, {k for k in expected_main() if k[0] == "configmaps"})
    tally("500-event", faults=1, runs=1, objects=len(rows), lost=lost, duplicates=dups)
    assert (lost, dups) == (0, 0) and len(rows) == N_CM
    e = entry(manifest, "configmaps")
    assert e["method"] == "list"
    assert "ERROR event" in (e.get("fallback") or "")
