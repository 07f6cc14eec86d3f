"""Resources served only in a non-preferred version of their group, on the real
control plane (issue 17): kstream reads every resource in the version kubectl's
ServerPreferredResources picks, and `-r NAME.VERSION.GROUP` reads exactly that
version.

One group, multi.kstream.dev, versions in priority order v1 > v1beta1 > v1alpha1:
  gizmos     served at v1 only
  sprockets  served at v1alpha1 only            (read at v1alpha1)
  cogs       served at v1 and v1beta1, stored at v1beta1 (read at v1)
  doohickeys served at v1beta1 and v1alpha1     (read at v1beta1)
The CRDs live only for this module; their objects in their own namespace."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstream.cluster.client import Client, ConnectSettings
from kstream.cluster.discovery import AGGREGATED_ACCEPT, Discovery, _discover_legacy, discover
from kstream.resources import DEFAULT_EXCLUDED
from tests import referee
from tests.conftest import KUBECTL, Cluster, completion_refresh, kstream
from tests.seed import Api, namespace, wait_for_resource
from tests.seed import crd as seed_crd

pytestmark = pytest.mark.cluster

GROUP = "multi.kstream.dev"
NS = "disc-multi"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
# plural -> (kind, short name, [(version, storage)] in the CRD's order, namespaced)
KINDS: dict[str, tuple[str, str, list[tuple[str, bool]], bool]] = {
    "gizmos": ("Gizmo", "gzm", [("v1", True)], True),
    "sprockets": ("Sprocket", "spk", [("v1alpha1", True)], True),
    "cogs": ("Cog", "cgz", [("v1beta1", True), ("v1", False)], True),
    "doohickeys": ("Doohickey", "dhk", [("v1alpha1", False), ("v1beta1", True)], False),
}
OBJECTS = {"gizmos": 2, "sprockets": 3, "cogs": 4, "doohickeys": 2}


def crd(plural: str) -> dict[str, Any]:
    kind, short, versions, namespaced = KINDS[plural]
    return seed_crd(GROUP, plural, kind, namespaced, tuple(versions), (short,))


def client(kc: Path) -> Client:
    return Client(ConnectSettings(kubeconfig=str(kc)))


def storage_version(plural: str) -> str:
    return next(v for v, s in KINDS[plural][2] if s)


def collection(plural: str, version: str) -> str:
    ns = f"/namespaces/{NS}" if KINDS[plural][3] else ""
    return f"/apis/{GROUP}/{version}{ns}/{plural}"


def _group_gone(api: Api, kc: Path) -> bool:
    """The group is gone from legacy and aggregated discovery (both are updated
    asynchronously), so that later tests' full dumps never meet it."""
    try:
        api.call("GET", f"/apis/{GROUP}")
        return False
    except RuntimeError as e:
        if "HTTP 404" not in str(e):
            return False
    doc = client(kc).get_json("/apis", accept=AGGREGATED_ACCEPT)
    return all(i["metadata"]["name"] != GROUP for i in doc["items"])


def _setup(api: Api, kc: Path) -> None:
    api.create(*namespace(NS), exist_ok=True)
    for plural in KINDS:
        api.create(CRDS, crd(plural), exist_ok=True)
    for plural, (kind, _short, versions, _ns) in KINDS.items():
        for v, _storage in versions:
            wait_for_resource(api, collection(plural, v))
        v = storage_version(plural)
        for i in range(OBJECTS[plural]):
            meta: dict[str, Any] = {"name": f"disc-{plural}-{i}"}
            if KINDS[plural][3]:
                meta["namespace"] = NS
            obj = {"apiVersion": f"{GROUP}/{v}", "kind": kind, "metadata": meta}
            api.create(collection(plural, v), {**obj, "spec": {"n": i}}, exist_ok=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _discovery_settled(api, kc):
        time.sleep(0.2)


def _served() -> dict[str, set[str]]:
    """version -> the plurals it serves, as the CRDs say."""
    out: dict[str, set[str]] = {}
    for plural, (_kind, _short, versions, _ns) in KINDS.items():
        for v, _storage in versions:
            out.setdefault(v, set()).add(plural)
    return out


def _discovery_settled(api: Api, kc: Path) -> bool:
    """Legacy and aggregated discovery (both updated asynchronously) show every
    version of the group with its resources."""
    want = _served()
    doc = client(kc).get_json("/apis", accept=AGGREGATED_ACCEPT)
    agg = {
        v["version"]: {r["resource"] for r in v.get("resources") or []}
        for i in doc["items"]
        if i["metadata"]["name"] == GROUP
        for v in i["versions"]
    }
    if agg != want:
        return False
    for v, plurals in want.items():
        try:
            legacy = api.call("GET", f"/apis/{GROUP}/{v}")
        except RuntimeError:
            return False
        if {r["name"] for r in legacy["resources"] if "/" not in r["name"]} != plurals:
            return False
    return True


def _teardown(api: Api, kc: Path) -> None:
    for plural in KINDS:
        api.call("DELETE", f"{CRDS}/{plural}.{GROUP}", ok=(200, 202, 404))
    deadline = time.monotonic() + 60
    while not _group_gone(api, kc):
        assert time.monotonic() < deadline, f"{GROUP} still served 60s after deleting its CRDs"
        time.sleep(0.3)  # the CRD finalizer deletes the objects first


@pytest.fixture(scope="module")
def multi(cluster: Cluster) -> Iterator[Cluster]:
    _setup(cluster.api, cluster.kubeconfig)
    try:
        yield cluster
    finally:
        _teardown(cluster.api, cluster.kubeconfig)


@pytest.fixture(scope="module")
def multi_nowl(cluster_no_watchlist: Cluster) -> Iterator[Cluster]:
    _setup(cluster_no_watchlist.api, cluster_no_watchlist.kubeconfig)
    try:
        yield cluster_no_watchlist
    finally:
        _teardown(cluster_no_watchlist.api, cluster_no_watchlist.kubeconfig)


@pytest.fixture(params=["multi", "multi_nowl"])
def any_multi(request: pytest.FixtureRequest) -> Cluster:
    c: Cluster = request.getfixturevalue(request.param)
    return c


def kubectl(kc: Path, cache: Path, *args: str) -> str:
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def kubectl_preferred(kc: Path, cache: Path, *args: str) -> set[tuple[str, str, str]]:
    """(group, version, resource) of `kubectl api-resources` (ServerPreferredResources)."""
    doc = json.loads(kubectl(kc, cache, "api-resources", "-o", "json", *args))
    return {(r.get("group", ""), r["version"], r["name"]) for r in doc["resources"]}


def preferred(c: Cluster, cache: Path, verbs: tuple[str, ...] = ()) -> set[tuple[str, str, str]]:
    """kubectl_preferred; the server's raw discovery read the same way where kubectl
    is out of the version skew policy (tests/referee.py)."""
    if referee.kubectl_fits(c.cp, KUBECTL):
        return kubectl_preferred(
            c.kubeconfig, cache, *([f"--verbs={','.join(verbs)}"] if verbs else [])
        )
    return referee.preferred_resources(c.cp, verbs)


def gvr(resources: Any) -> set[tuple[str, str, str]]:
    return {(r.group, r.version, r.resource) for r in resources}


def dump(kc: Path, out: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Dump to a directory; (manifest, objects)."""
    res = kstream("dump", "-q", "-o", str(out), "--format", "dir", *args, kubeconfig=kc)
    assert res.code == 0, res.err
    manifest = json.loads((out / "manifest.json").read_text())
    objs = [
        json.loads(line)
        for f in sorted(out.glob("*.ndjson"))
        for line in f.read_text().splitlines()
        if line
    ]
    return manifest, objs


def ours(objs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """kind -> apiVersions of this module's objects."""
    out: dict[str, set[str]] = {}
    for o in objs:
        if o["apiVersion"].startswith(f"{GROUP}/"):
            out.setdefault(o["kind"], set()).add(o["apiVersion"])
    return out


# ------------------------------------------------------------------ (a) same choice as kubectl


@pytest.mark.compat
def test_discovery_picks_the_versions_kubectl_picks(any_multi: Cluster, tmp_path: Path) -> None:
    """Every resource, aggregated and legacy discovery alike: the (group, version,
    resource) set equals `kubectl api-resources`, and the group's resources are
    read in the expected versions."""
    kc = any_multi.kubeconfig
    want = preferred(any_multi, tmp_path / "kc")
    assert {r for r in want if r[0] == GROUP} == {
        (GROUP, "v1", "gizmos"),
        (GROUP, "v1alpha1", "sprockets"),
        (GROUP, "v1", "cogs"),
        (GROUP, "v1beta1", "doohickeys"),
    }
    c = client(kc)
    agg = discover(c)
    assert agg.aggregated and not agg.failures
    core = c.get_json("/api", accept="application/json")
    legacy: Discovery = _discover_legacy(c, core)
    assert not legacy.aggregated and not legacy.failures
    for d in (agg, legacy):
        assert gvr(d.resources) == want
        assert len(d.resources) == len(want)  # one version per resource
        assert {(r.group, r.version, r.resource) for r in d.other_versions if r.group == GROUP} == {
            (GROUP, "v1beta1", "cogs"),
            (GROUP, "v1alpha1", "doohickeys"),
        }
    # the aggregated document really is aggregated (the legacy path was forced above)
    assert c.get_json("/apis", accept=AGGREGATED_ACCEPT)["kind"] == "APIGroupDiscoveryList"


@pytest.mark.compat
def test_full_dump_plans_what_kubectl_lists(any_multi: Cluster, tmp_path: Path) -> None:
    """(a)+(b): the units of a full dump are kubectl's listable and watchable
    resources minus the documented default exclusions, B's objects are in it
    at multi.kstream.dev/v1alpha1, and the dump is complete (exit 0)."""
    kc = any_multi.kubeconfig
    want = preferred(any_multi, tmp_path / "kc", ("list", "watch"))
    want = {r for r in want if (r[0], r[2]) not in DEFAULT_EXCLUDED}
    manifest, objs = dump(kc, tmp_path / "snap")
    assert manifest["status"] == "complete"
    planned = [(e["group"], e["version"], e["resource"]) for e in manifest["resources"]]
    assert len(planned) == len(set(planned))
    assert set(planned) == want
    assert all(e["status"] == "complete" for e in manifest["resources"])
    assert ours(objs) == {
        "Gizmo": {f"{GROUP}/v1"},
        "Sprocket": {f"{GROUP}/v1alpha1"},
        "Cog": {f"{GROUP}/v1"},
        "Doohickey": {f"{GROUP}/v1beta1"},
    }
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "Sprocket"}
    assert names == {f"disc-sprockets-{i}" for i in range(OBJECTS["sprockets"])}


# ------------------------------------------------------------------ (c), (d) naming resources


@pytest.mark.parametrize("name", ["sprockets", "sprocket", "spk", "Sprocket", f"sprockets.{GROUP}"])
def test_resource_only_in_a_non_preferred_version_by_name(
    multi: Cluster, tmp_path: Path, name: str
) -> None:
    manifest, objs = dump(multi.kubeconfig, tmp_path / "snap", "-r", name)
    assert [(e["group"], e["version"], e["resource"]) for e in manifest["resources"]] == [
        (GROUP, "v1alpha1", "sprockets")
    ]
    assert {o["apiVersion"] for o in objs} == {f"{GROUP}/v1alpha1"}
    assert len(objs) == OBJECTS["sprockets"]


WATCH_LIST = (
    "watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
)


@pytest.mark.parametrize(
    "name,version,plural",
    [
        (f"cogs.v1beta1.{GROUP}", "v1beta1", "cogs"),  # neither preferred nor first served
        (f"cog.v1beta1.{GROUP}", "v1beta1", "cogs"),
        (f"Cog.v1beta1.{GROUP}", "v1beta1", "cogs"),
        (f"cogs.v1.{GROUP}", "v1", "cogs"),
        (f"cogs.{GROUP}", "v1", "cogs"),  # NAME.GROUP: the preferred version
        (f"doohickeys.v1alpha1.{GROUP}", "v1alpha1", "doohickeys"),
        (f"sprockets.v1alpha1.{GROUP}", "v1alpha1", "sprockets"),
    ],
)
def test_fully_qualified_name_reads_that_version(
    any_multi: Cluster, tmp_path: Path, name: str, version: str, plural: str
) -> None:
    """(d): the objects' apiVersion is the one asked for, and the objects equal
    `kubectl get NAME -o json`'s items (kubectl re-encodes, so as parsed JSON)."""
    kc = any_multi.kubeconfig
    manifest, objs = dump(kc, tmp_path / "snap", "-r", name)
    assert [(e["version"], e["resource"]) for e in manifest["resources"]] == [(version, plural)]
    assert {o["apiVersion"] for o in objs} == {f"{GROUP}/{version}"}
    want = json.loads(
        kubectl(kc, tmp_path / "kc", "get", name, "-A", "--show-managed-fields", "-o", "json")
    )["items"]
    assert {o["apiVersion"] for o in want} == {f"{GROUP}/{version}"}
    key = lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(objs, key=key) == sorted(want, key=key)
    assert len(objs) == OBJECTS[plural]


def test_non_preferred_version_bytes_are_the_servers(multi: Cluster, tmp_path: Path) -> None:
    """`-r cogs.v1beta1.GROUP` writes the bytes the server sends for v1beta1."""
    out = tmp_path / "cogs.ndjson"
    r = kstream(
        "dump", "-q", "-r", f"cogs.v1beta1.{GROUP}", "-o", str(out), kubeconfig=multi.kubeconfig
    )
    assert r.code == 0, r.err
    status, body = multi.cp.request(
        f"/apis/{GROUP}/v1beta1/cogs?{WATCH_LIST}&timeoutSeconds=10", timeout=60
    )
    assert status == 200
    prefix = b'{"type":"ADDED","object":'
    server = [line[len(prefix) : -1] for line in body.splitlines() if line.startswith(prefix)]
    assert len(server) == OBJECTS["cogs"]
    assert out.read_bytes() == b"".join(o + b"\n" for o in server)
    assert b'"apiVersion":"multi.kstream.dev/v1beta1"' in out.read_bytes()


def test_unserved_version_is_unknown(multi: Cluster) -> None:
    res = kstream(
        "dump", "-q", "-o", "-", "-r", f"gizmos.v1beta1.{GROUP}", kubeconfig=multi.kubeconfig
    )
    assert res.code == 2
    assert f'no resource type "gizmos.v1beta1.{GROUP}"' in res.err
    assert res.out == b""


# ------------------------------------------------------------------ completion


def test_completion_offers_every_resource_of_the_group(multi: Cluster, tmp_path: Path) -> None:
    from kstream import completion

    doc = completion_refresh(multi.kubeconfig, tmp_path)
    names = dict(completion.resource_candidates(doc))
    assert {"gizmos", "sprockets", "cogs", "doohickeys"} <= set(names)
    rows = {(r["group"], r["name"]): r["version"] for r in doc["resources"]}
    assert rows[(GROUP, "sprockets")] == "v1alpha1"
    assert rows[(GROUP, "doohickeys")] == "v1beta1"
