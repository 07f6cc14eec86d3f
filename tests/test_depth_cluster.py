"""Objects as deep as the real API server accepts, through dump (watch-list and
LIST), --clean, --strip, count --verify, diff and diff --live. The deepest
object is found by trying: a custom resource of our own CRD (schema with
x-kubernetes-preserve-unknown-fields), created here and deleted afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kstream import deepjson, paths
from kstream.exitcodes import ExitCode
from kstream.jsonlines import go_json
from kstream.transform import CLEAN_PATHS, LAST_APPLIED, digest
from tests.conftest import Cluster, kstream
from tests.seed import Api, crd, namespace, wait_for_resource
from tests.test_depth_unit import depth_of, nested

pytestmark = pytest.mark.cluster

GROUP = "depth.kstream.test"
NS = "kstream-depth"
CRD = f"nests.{GROUP}"
BASE = f"/apis/{GROUP}/v1/namespaces/{NS}/nests"


def raw(api: Api, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """A request whose body is sent and returned as bytes (the seed client
    would parse them with json, which cannot go this deep)."""
    conn = api._conn()
    headers = {"Authorization": f"Bearer {api.token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def nest(name: str, containers: int) -> bytes:
    """A Nest whose deepest value sits under `containers` maps and lists
    (the object itself counts, as in the server's decoder)."""
    head = f'{{"apiVersion":"{GROUP}/v1","kind":"Nest","metadata":{{"name":"{name}"}},"spec":'
    return (head + nested(containers - 1, '"bottom"') + "}").encode()


@dataclass
class Deep:
    cluster: Cluster
    limit: int  # the most containers the server took
    names: list[str]  # every Nest in NS

    @property
    def kc(self) -> Path:
        return self.cluster.kubeconfig

    def server_bytes(self, name: str) -> bytes:
        status, body = raw(self.cluster.api, "GET", f"{BASE}/{name}")
        assert status == 200, body[:300]
        return body.rstrip(b"\n")


@pytest.fixture(scope="module", params=["cluster", "cluster_no_watchlist"])
def deep(request: pytest.FixtureRequest) -> Iterator[Deep]:
    cluster: Cluster = request.getfixturevalue(request.param)
    api = cluster.api
    api.create(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(GROUP, "nests", "Nest")
    )
    api.create(*namespace(NS))
    try:
        wait_for_resource(api, BASE)
        # the deepest object the server takes: try from beyond its decoder's limit down
        limit = 0
        tried: dict[int, int] = {}
        for n in range(10_003, 9_000, -1):
            status, body = raw(api, "POST", BASE, nest(f"d{n}", n))
            tried[n] = status
            if status == 201:
                limit = n
                break
        assert limit, f"no deep object accepted: {tried}"
        assert all(s >= 400 for n, s in tried.items() if n > limit)
        # a Secret whose last-applied copy is deep
        applied = (
            '{"apiVersion":"v1","data":{"k":"dmFs"},"kind":"Secret","x":' + nested(9_000) + "}"
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "deep-applied", "annotations": {LAST_APPLIED: applied}},
            "data": {"k": "dmFs"},
        }
        api.create(f"/api/v1/namespaces/{NS}/secrets", secret)
        status, body = raw(api, "GET", BASE)
        assert status == 200
        names = [i["metadata"]["name"] for i in deepjson.loads(body)["items"]]
        print(f"{request.param}: deepest object accepted: {limit} containers; tried {tried}")
        yield Deep(cluster, limit, names)
    finally:  # no namespace controller here: delete the objects themselves
        raw(api, "DELETE", BASE)  # the answer lists deep objects: not for the seed client
        api.call("DELETE", f"/api/v1/namespaces/{NS}/secrets", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 202, 404))
        api.call(
            "DELETE",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}",
            ok=(200, 202, 404),
        )


def dump(d: Deep, out: Path, *extra: str) -> dict[str, bytes]:
    """Dump NS (Nests and Secrets); the object lines by name."""
    res = kstream(
        "dump", "-q", "-o", str(out), "-n", NS, "-r", f"{CRD},secrets", *extra, kubeconfig=d.kc
    )
    assert res.code == ExitCode.OK, res.err
    if out.suffix == ".zst":
        return {}
    lines = out.read_bytes().splitlines()
    return {deepjson.loads(line)["metadata"]["name"]: line for line in lines}


def test_the_server_takes_objects_10000_deep(deep: Deep) -> None:
    assert deep.limit >= 10_000
    assert depth_of(deepjson.loads(deep.server_bytes(f"d{deep.limit}"))) == deep.limit


def test_dump_keeps_deep_objects_byte_for_byte(deep: Deep, tmp_path: Path) -> None:
    got = dump(deep, tmp_path / "snap.ndjson")
    assert set(got) == {*deep.names, "deep-applied"}
    for name in deep.names:
        assert got[name] == deep.server_bytes(name), name
    s = deepjson.loads(got["deep-applied"])
    assert s["data"] == {"k": digest(b"val", None)}
    inner = deepjson.loads(s["metadata"]["annotations"][LAST_APPLIED])
    assert inner["data"] == {"k": digest(b"val", None)} and depth_of(inner) == 9_001
    dump(deep, tmp_path / "snap.ndjson.zst")


def test_clean_and_strip_at_depth(deep: Deep, tmp_path: Path) -> None:
    deep_path = "spec" + ".a.0" * 2_000
    got = dump(deep, tmp_path / "clean.ndjson", "--clean", "--strip", deep_path)
    for name in deep.names:
        want = deepjson.loads(deep.server_bytes(name))
        for p in (*CLEAN_PATHS, deep_path):
            paths.delete(want, paths.parse(p))
        assert got[name] == go_json(want), name
        assert "managedFields" not in deepjson.loads(got[name])["metadata"]
    got = dump(deep, tmp_path / "strip.ndjson", "--strip", "spec")
    assert all("spec" not in deepjson.loads(got[n]) for n in deep.names)


def test_count_and_diff_of_deep_snapshots(deep: Deep, tmp_path: Path) -> None:
    nd, zst = tmp_path / "snap.ndjson", tmp_path / "snap.ndjson.zst"
    dump(deep, nd)
    dump(deep, zst)
    total = len(deep.names) + 1
    for snap in (nd, zst):
        for extra in ((), ("--by", "label:app"), ("-l", "!app")):
            res = kstream("count", "--verify", "-o", "json", str(snap), *extra)
            assert res.code == ExitCode.OK, res.err
            assert sum(r["objects"] for r in json.loads(res.out)["rows"]) == total
        res = kstream("diff", str(snap), str(snap))
        assert res.code == ExitCode.OK, res.err
    res = kstream("diff", str(nd), str(zst), "-o", "json")
    assert res.code == ExitCode.OK, res.err
    # the live side too: dumped again and compared with the snapshot
    res = kstream("diff", str(zst), "--live", kubeconfig=deep.kc)
    assert res.code == ExitCode.OK, res.err
    # a live count that parses every object (grouped by a label)
    res = kstream(
        "count",
        "-n",
        NS,
        "-r",
        f"{CRD},secrets",
        "--by",
        "label:app",
        "-o",
        "json",
        kubeconfig=deep.kc,
    )
    assert res.code == ExitCode.OK, res.err
    assert sum(r["objects"] for r in json.loads(res.out)["rows"]) == total


def test_a_change_deep_down_is_found(deep: Deep, tmp_path: Path) -> None:
    old = tmp_path / "old.ndjson"
    dump(deep, old)
    name = f"d{deep.limit}"
    status, body = raw(
        deep.cluster.api,
        "PUT",
        f"{BASE}/{name}",
        _swap(deep.server_bytes(name), "bottom", "changed"),
    )
    assert status == 200, body[:300]
    try:
        res = kstream(
            "diff", str(old), "--live", "-n", NS, "-r", f"{CRD},secrets", "-o", "ndjson",
            kubeconfig=deep.kc,
        )  # fmt: skip
        assert res.code == ExitCode.DIFFERENCES, res.err
        [rec] = [json.loads(line) for line in res.out.splitlines()]
        [f] = rec["fields"]
        assert (rec["name"], f["old"], f["new"]) == (name, "bottom", "changed")
        assert f["path"].count(".") == deep.limit - 1
    finally:
        back = _swap(deep.server_bytes(name), "changed", "bottom")
        status, body = raw(deep.cluster.api, "PUT", f"{BASE}/{name}", back)
        assert status == 200, body[:300]


def _swap(obj: bytes, old: str, new: str) -> bytes:
    """The object with its innermost value replaced (for a PUT)."""
    o: Any = deepjson.loads(obj)
    return deepjson.dumps(o).replace(f'"{old}"', f'"{new}"').encode()
