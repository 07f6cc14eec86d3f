"""kstream count against the real control plane: counts equal kubectl's, per
resource and per namespace, with and without watch-list, live and from
snapshots. Only the demo namespaces are compared (other tests create objects
elsewhere in the same session); demo objects are never modified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster, kstream, kubectl_json

pytestmark = pytest.mark.cluster

DEMO_NS = ["demo-0", "demo-1", "demo-2"]
# kubectl name -> the row's resource name
RESOURCES = {
    "configmaps": "configmaps",
    "secrets": "secrets",
    "deployments.apps": "deployments.apps",
    "widgets.demo.kstream.dev": "widgets.demo.kstream.dev",
}


def kubectl_counts(kc: Path, namespaces: list[str] = DEMO_NS) -> dict[tuple[str, str], int]:
    out = {}
    for ns in namespaces:
        for name in RESOURCES:
            out[(ns, name)] = len(kubectl_json(kc, "get", name, "-n", ns)["items"])
    return out


def count_json(kc: Path, *args: str) -> dict[str, Any]:
    res = kstream("count", "-o", "json", "-q", *args, kubeconfig=kc)
    assert res.code == 0, res.err
    doc: dict[str, Any] = json.loads(res.out)
    assert doc["complete"] is True
    return doc


def name(row: dict[str, Any]) -> str:
    return f"{row['resource']}.{row['group']}" if row["group"] else row["resource"]


def by_ns_resource(doc: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(r["namespace"], name(r)): r["objects"] for r in doc["rows"]}


@pytest.fixture(params=["cluster", "cluster_no_watchlist"])
def any_cluster(request: pytest.FixtureRequest) -> Cluster:
    c: Cluster = request.getfixturevalue(request.param)
    return c


def test_live_counts_equal_kubectl(any_cluster: Cluster) -> None:
    """Per namespace and resource: per-namespace units (-n), and cluster-wide
    units grouped by parsing each object's namespace."""
    kc = any_cluster.kubeconfig
    want = kubectl_counts(kc)
    assert want[("demo-0", "configmaps")] == 5
    per_ns = count_json(
        kc, "-n", ",".join(DEMO_NS), "-r", ",".join(RESOURCES), "--by", "namespace,resource"
    )
    assert by_ns_resource(per_ns) == want
    wide = count_json(kc, "-r", ",".join(RESOURCES), "--by", "namespace,resource")
    got = {k: v for k, v in by_ns_resource(wide).items() if k[0] in DEMO_NS}
    assert got == want
    # per namespace only
    ns_doc = count_json(kc, "-n", ",".join(DEMO_NS), "-r", ",".join(RESOURCES), "--by", "namespace")
    assert {r["namespace"]: r["objects"] for r in ns_doc["rows"]} == {
        ns: sum(v for (n, _), v in want.items() if n == ns) for ns in DEMO_NS
    }


def test_live_cluster_scoped_equals_kubectl(any_cluster: Cluster) -> None:
    """Cluster-scoped resources nobody else touches: per resource, no -n."""
    kc = any_cluster.kubeconfig
    doc = count_json(kc, "-r", "clusterroles,priorityclasses,customresourcedefinitions")
    got = {name(r): r["objects"] for r in doc["rows"]}
    for res in (
        "clusterroles.rbac.authorization.k8s.io",
        "priorityclasses.scheduling.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
    ):
        assert got[res] == len(kubectl_json(kc, "get", res)["items"]), res
    assert doc["total"]["objects"] == sum(got.values())


def test_live_bytes_are_what_dump_writes(cluster: Cluster, tmp_path: Path) -> None:
    """ConfigMaps are written untransformed: count's bytes equal the dump's
    (whose manifest counts a newline per object)."""
    kc = cluster.kubeconfig
    doc = count_json(kc, "-n", "demo-0", "-r", "configmaps")
    out = tmp_path / "d"
    assert (
        kstream(
            "dump", "-q", "-n", "demo-0", "-r", "configmaps", "-o", f"{out}/", kubeconfig=kc
        ).code
        == 0
    )
    entry = json.loads((out / "manifest.json").read_text())["resources"][0]
    assert doc["rows"][0]["bytes"] == entry["bytes"] - entry["objects"]
    assert doc["rows"][0]["objects"] == entry["objects"] == 5


def test_group_by_label(any_cluster: Cluster) -> None:
    kc = any_cluster.kubeconfig
    doc = count_json(kc, "-n", ",".join(DEMO_NS), "-r", "configmaps", "--by", "label:tier")
    got = {r["label"]: r["objects"] for r in doc["rows"]}
    for tier in ("web", "db"):
        assert got[tier] == sum(
            len(kubectl_json(kc, "get", "configmaps", "-n", ns, "-l", f"tier={tier}")["items"])
            for ns in DEMO_NS
        )
    assert {k: v for k, v in got.items() if k} == {"db": 9, "web": 6}
    # a server-side selector and a grouping together
    sel = count_json(kc, "-n", "demo-1", "-r", "cm", "-l", "tier=web", "--by", "label:tier")
    assert [(r["label"], r["objects"]) for r in sel["rows"]] == [("web", 2)]


def test_estimate_is_close_on_an_unfiltered_resource(cluster: Cluster) -> None:
    kc = cluster.kubeconfig
    res = kstream(
        "count", "--estimate", "-o", "json", "-r", "configmaps,clusterroles", kubeconfig=kc
    )
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["estimate"] is True and doc["total"]["bytes"] is None
    got = {name(r): r["objects"] for r in doc["rows"]}
    for res_name in ("configmaps", "clusterroles.rbac.authorization.k8s.io"):
        real = len(kubectl_json(kc, "get", res_name, "-A")["items"])
        assert abs(got[res_name] - real) <= max(2, real // 10), (res_name, got, real)
    per_ns = json.loads(
        kstream(
            "count",
            "--estimate",
            "-o",
            "json",
            "-n",
            "demo-0",
            "-r",
            "configmaps,secrets",
            kubeconfig=kc,
        ).out
    )
    assert {name(r): r["objects"] for r in per_ns["rows"]} == {
        n: len(kubectl_json(kc, "get", n, "-n", "demo-0")["items"])
        for n in ("configmaps", "secrets")
    }
    table = kstream("count", "--estimate", "-n", "demo-0", "-r", "cm", kubeconfig=kc)
    assert "ESTIMATES" in table.text and "~" in table.text
    assert kstream("count", "--estimate", "-l", "a=b", kubeconfig=kc).code == 2


def test_snapshots_count_like_the_server(cluster: Cluster, tmp_path: Path) -> None:
    kc = cluster.kubeconfig
    want = kubectl_counts(kc)
    sel = ["-n", ",".join(DEMO_NS), "-r", ",".join(RESOURCES)]
    for out in ("snap.ndjson.zst", "snap.ndjson", "snapdir/"):
        target = f"{tmp_path}/{out}"  # keeps the slash of snapdir/
        res = kstream("dump", "-q", "-o", target, *sel, kubeconfig=kc)
        assert res.code == 0, res.err
        doc = json.loads(
            kstream("count", target.rstrip("/"), "-o", "json", "--by", "namespace,resource").out
        )
        assert doc["source"] == "snapshot" and doc["complete"] is True
        assert by_ns_resource(doc) == want, out
        # filters apply to snapshots too
        web = json.loads(
            kstream("count", target, "-o", "json", "-n", "demo-2", "-l", "tier=web").out
        )
        assert [(name(r), r["objects"]) for r in web["rows"] if r["objects"]] == [("configmaps", 2)]


def test_truncated_archive_is_reported_not_counted(cluster: Cluster, tmp_path: Path) -> None:
    kc = cluster.kubeconfig
    snap = tmp_path / "snap.ndjson.zst"
    assert kstream("dump", "-q", "-o", str(snap), "-n", "demo-0", kubeconfig=kc).code == 0
    data = snap.read_bytes()
    cut = tmp_path / "cut.ndjson.zst"
    cut.write_bytes(data[: len(data) * 2 // 3])
    res = kstream("count", str(cut))
    assert res.code == 6
    assert res.out == b""
    assert "truncated" in res.err


@pytest.fixture(scope="module")
def many(cluster: Cluster) -> tuple[Path, str]:
    """2,000 ConfigMaps of ~4 KiB in a namespace of their own; 200 labelled batch=a."""
    from tests.seed import configmap, namespace

    ns = "count-mem"
    cluster.api.create(*namespace(ns), exist_ok=True)

    def objs() -> Any:
        for i in range(2000):
            path, o = configmap(ns, f"cm-{i}", size=4000, labels={"batch": "a" if i < 200 else "b"})
            yield path, o

    cluster.api.create_many(objs(), threads=4)
    return cluster.kubeconfig, ns


@pytest.mark.parametrize("method", ["watch-list", "list"])
def test_live_count_memory_is_flat(many: tuple[Path, str], method: str) -> None:
    """Python allocations while counting 200 and 2,000 objects (0.8 vs 8 MiB of
    JSON): the peak does not follow the data."""
    import tracemalloc

    from kstream.cluster.plan import LiveOptions
    from kstream.count import Grouping, count_live
    from kstream.selector import Scope

    kc, ns = many
    peaks, totals = [], []
    for selector in ("batch=a", "batch=a", ""):  # the first run warms up (imports)
        tracemalloc.start()
        result, interrupted = count_live(
            Scope(("configmaps",), (), (ns,), selector, ""),
            LiveOptions(str(kc), None, method, concurrency=2, timeout=60, retries=2),
            Grouping.parse("namespace,label:batch"),
        )
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert interrupted is None and result.complete
        totals.append(result.total_objects)
        assert result.total_bytes and result.total_bytes > 4000 * result.total_objects
    assert totals == [200, 200, 2000]
    assert peaks[2] < peaks[1] + 2 * 1024 * 1024, peaks  # measured: ~0.2 MiB both
    assert peaks[2] < 4 * 1024 * 1024, peaks


def test_forbidden_resources_are_partial(cluster: Cluster) -> None:
    """A user who may list ConfigMaps in demo-0 only: what it can read is
    counted, the rest is named, exit 3 (live and estimate)."""
    from tests.seed import grant

    kc = cluster.cp.add_user("count-limited")
    grant(
        cluster.api, "count-limited", ["configmaps"], ["get", "list", "watch"], namespace="demo-0"
    )
    args = ["-r", "configmaps,secrets", "-n", "demo-0,demo-1", "-o", "json", "--retries", "0"]
    for extra in ([], ["--estimate"]):
        res = kstream("count", *args, *extra, kubeconfig=kc)
        assert res.code == 3, res.err
        doc = json.loads(res.out)
        assert doc["complete"] is False
        assert [(r["resource"], r["objects"]) for r in doc["rows"]] == [("configmaps", 5)]
        assert sorted((m["name"], m["namespace"], m["status"]) for m in doc["incomplete"]) == [
            ("configmaps", "demo-1", "forbidden"),
            ("secrets", "demo-0", "forbidden"),
            ("secrets", "demo-1", "forbidden"),
        ]
        assert "forbidden" in res.err
