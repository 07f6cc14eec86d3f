"""The dump summary against the real control plane: after an interrupt it
reports exactly what the .partial file holds, resource by resource; on a server
with WatchList off it fits 80 columns and says why each resource fell back in a
few words, not the server's 422 text per row."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from kstream.store.snapshot import open_snapshot
from tests.conftest import VENV_BIN, Cluster, kstream
from tests.faultproxy import Fault, FaultProxy
from tests.seed import configmap, namespace, secret

pytestmark = pytest.mark.cluster

NS = "render-int"
N_CM = 150
N_SECRETS = 20
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Cluster:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    api.create_many(configmap(NS, f"cm-{i:03d}", size=1500) for i in range(N_CM))
    api.create_many(secret(NS, f"s-{i:02d}") for i in range(N_SECRETS))
    return cluster


@pytest.fixture
def proxy(objects: Cluster, proxy: FaultProxy) -> FaultProxy:
    """conftest's proxy, once this module's objects exist."""
    return proxy


def summary_counts(err: str) -> dict[str, tuple[str, int]]:
    """resource -> (status, objects) from the plain summary lines."""
    out = {}
    for line in err.splitlines():
        if not line.startswith("resource="):
            continue
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        out[fields["resource"]] = (fields["status"], int(fields["objects"]))
    return out


def file_counts(path: Path, fmt: str) -> Counter[str]:
    """resource -> objects actually in the output."""
    kinds = {"ConfigMap": "configmaps", "Secret": "secrets", "ServiceAccount": "serviceaccounts"}
    if fmt == "ndjson":
        return Counter(kinds[json.loads(ln)["kind"]] for ln in path.read_bytes().splitlines())
    snap = open_snapshot(str(path))
    got: Counter[str] = Counter()
    for e in snap.entries:
        got[e.resource] += sum(1 for _ in snap.lines(e))  # verifies checksums and counts
    return got


@pytest.mark.parametrize("fmt", ["zst", "ndjson", "dir"])
def test_interrupted_summary_matches_the_partial_file(
    proxy: FaultProxy, tmp_path: Path, fmt: str
) -> None:
    """The ConfigMaps stream stalls after some objects; Secrets and
    ServiceAccounts finish meanwhile; then SIGINT. The summary, the manifest and
    the .partial file agree resource by resource: the finished units are in the
    file (they do not wait for the stalled one), the stalled one is reported
    "interrupted" with 0 objects."""
    target = str(tmp_path / ("out" if fmt == "dir" else f"out.{fmt}")) + (
        "/" if fmt == "dir" else ""
    )
    proxy.add(Fault("stall", match="/configmaps", after_bytes=30_000, stall_for=60))
    env = {
        "KUBECONFIG": str(proxy.kubeconfig(tmp_path / "kc")),
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "CI": "",
    }
    p = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "dump", "-o", target, "-n", NS,
         "-r", "configmaps,secrets,serviceaccounts", "--timeout", "60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        proxy.wait_for(lambda q: q.action == "stall" and q.body_bytes > 0, timeout=60)
        proxy.wait_for(lambda q: "/secrets" in q.path and q.marker, timeout=60)
        proxy.wait_for(lambda q: "/serviceaccounts" in q.path and q.marker, timeout=60)
        time.sleep(1.0)  # the finished units reach the main thread
        p.send_signal(signal.SIGINT)
        _, err_b = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    err = err_b.decode()
    assert p.returncode == 130, err
    assert "Traceback" not in err
    partial = Path(target.rstrip("/") + ".partial")
    assert partial.exists()
    summary = summary_counts(err)
    in_file = file_counts(partial, fmt)
    assert set(summary) == {"configmaps", "secrets", "serviceaccounts"}, err
    for resource, (_, n) in summary.items():
        assert n == in_file.get(resource, 0), (resource, summary, in_file, err)
    # the stalled unit had read objects, none of which are in the file
    assert summary["configmaps"] == ("interrupted", 0), err
    assert re.search(r"interrupted after reading [1-9][\d,]* objects; none written", err), err
    # the finished ones were kept, whole
    assert summary["secrets"] == ("complete", N_SECRETS), err
    assert in_file["secrets"] == N_SECRETS
    assert summary["serviceaccounts"][0] == "complete"
    assert f"{N_SECRETS + summary['serviceaccounts'][1]:,} objects" in err
    if fmt != "ndjson":  # the manifest says the same
        snap = open_snapshot(str(partial))
        assert snap.manifest is not None and snap.manifest.status == "interrupted"
        assert {e.resource: e.objects for e in snap.entries} == dict(in_file)
        (cm,) = snap.manifest.not_read
        assert (cm.resource, cm.status, cm.objects) == ("configmaps", "interrupted", 0)
        assert cm.error is not None and "none written" in cm.error


def test_no_watchlist_summary_fits_80_columns(
    cluster_no_watchlist: Cluster, tmp_path: Path
) -> None:
    """A whole dump from a WatchList=false server, drawn as on an 80-column
    terminal: no line wider than 80, no number cut, one short reason per
    resource; the server's 422 text at most once (it is in the manifest)."""
    out = tmp_path / "all.zst"
    env = {"COLUMNS": "80", "CI": "", "TERM": "xterm"}
    r = kstream("dump", "-o", str(out), "--color", "always",
                kubeconfig=cluster_no_watchlist.kubeconfig, env=env)  # fmt: skip
    assert r.code == 0, r.err
    err = ANSI.sub("", r.err)
    assert "resource=" not in err  # the terminal layout, not the plain one
    for line in err.splitlines():
        assert len(line) <= 80, f"{len(line)}: {line!r}\n{err}"
    assert "…" not in err
    snap = open_snapshot(str(out))
    fallbacks = {e.fallback for e in snap.entries if e.fallback}
    assert any("422" in f or "refused" in f for f in fallbacks), fallbacks
    # the server's text: in the manifest, never repeated on the terminal
    for f in fallbacks:
        text = f.split(": ", 1)[-1]
        assert err.count(text[:60]) <= 1, (f, err)
    assert err.count("422") <= 1, err
    assert err.count("list (watch-list off):") == 1, err
    flat = " ".join(err.split())
    for e in snap.entries:
        if e.objects:
            assert f"{e.objects:,}" in flat
    assert len(err.splitlines()) < 3 * len(snap.entries) + 20
    # --debug prints the full reasons
    dbg = kstream("dump", "-o", str(tmp_path / "d.zst"), "-r", "configmaps", "--debug",
                  kubeconfig=cluster_no_watchlist.kubeconfig, env=env)  # fmt: skip
    assert dbg.code == 0, dbg.err
    (cm,) = open_snapshot(str(tmp_path / "d.zst")).entries
    assert cm.fallback and " ".join(cm.fallback.split()) in " ".join(dbg.err.split())
    assert os.environ.get("KUBECONFIG") != str(cluster_no_watchlist.kubeconfig)
