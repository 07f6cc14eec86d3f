"""kstream's selector grammar against the real API server: for the table of
test_selector_unit and for generated selectors, a LIST with labelSelector (or
fieldSelector) is refused (400) exactly when kstream refuses the selector, and
otherwise returns exactly the objects kstream's matching selects. Bad selectors
stop live commands before any request; count and diff select alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream.exitcodes import ExitCode
from kstream.selector import LabelSelector, SelectorError, parse_fields, parse_labels
from tests.conftest import KUBECTL, Cluster, kstream
from tests.test_selector_unit import FIELD_CASES, LABEL_CASES

pytestmark = pytest.mark.cluster

NS = "kstream-selectors"
LABELS: dict[str, dict[str, str]] = {
    "c0": {},
    "c1": {"tier": "web"},
    "c2": {"tier": "db", "num": "1"},
    "c3": {"tier": "", "num": "2"},
    "c4": {"num": "10", "in": "in", "a": ""},
    "c5": {"num": "007", "example.com/team": "a", "a": "b"},
    "c6": {"num": "9223372036854775807", "a.b.c/d": "x", "b": "1"},
    "c7": {"x" * 63: "v", "tier": "x" * 63},
    "c8": {"a_b": "c", "num": "x", "a/b": "1"},
}


@dataclass
class Labelled:
    cluster: Cluster
    labels: dict[str, dict[str, str]]  # as the server stored them

    def server(self, query: str, value: str) -> set[str] | None:
        """The names a LIST selects, None when the server refuses it (400)."""
        api = self.cluster.api
        conn = api._conn()
        path = f"/api/v1/namespaces/{NS}/configmaps?{query}={quote(value, safe='')}"
        conn.request("GET", path, headers={"Authorization": f"Bearer {api.token}"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 400:
            return None
        assert resp.status == 200, body[:300]
        return {i["metadata"]["name"] for i in json.loads(body)["items"]}

    def local_labels(self, text: str) -> set[str] | None:
        try:
            parse_labels(text)
        except SelectorError:
            return None
        sel = LabelSelector(text)
        return {n for n, labels in self.labels.items() if sel.matches(labels)}

    def local_fields(self, text: str) -> set[str] | None:
        try:
            reqs = parse_fields(text)
        except SelectorError:
            return None
        fields = {n: {"metadata.name": n, "metadata.namespace": NS} for n in self.labels}
        return {n for n, f in fields.items() if all(r.matches(f[r.field]) for r in reqs)}


@pytest.fixture(scope="module")
def labelled(cluster: Cluster) -> Iterator[Labelled]:
    api = cluster.api
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    )
    try:
        for name, labels in LABELS.items():
            api.create(
                f"/api/v1/namespaces/{NS}/configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": labels},
                    "data": {"k": name},
                },
            )
        items = api.call("GET", f"/api/v1/namespaces/{NS}/configmaps")["items"]
        stored = {i["metadata"]["name"]: i["metadata"].get("labels") or {} for i in items}
        assert stored == LABELS
        yield Labelled(cluster, stored)
    finally:  # no namespace controller here: delete the objects themselves
        api.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 202, 404))


@pytest.mark.parametrize(("text", "ok"), LABEL_CASES)
def test_label_selectors_like_the_server(labelled: Labelled, text: str, ok: bool) -> None:
    server = labelled.server("labelSelector", text)
    assert labelled.local_labels(text) == server
    assert (server is not None) is ok  # the table's verdict is the server's


@pytest.mark.parametrize(("text", "ok"), FIELD_CASES)
def test_field_selectors_like_the_server(labelled: Labelled, text: str, ok: bool) -> None:
    server = labelled.server("fieldSelector", text)
    assert labelled.local_fields(text) == server
    assert (server is not None) is ok


_TOKENS = ["tier", "num", "a", "b", "in", "notin", "x/y", "example.com/team", "Ab.c/d", "web",
           "db", "1", "2", "-1", "007", "_", "=", "==", "!", "!=", "<", ">", "(", ")", ",",
           " ", "\t"]  # fmt: skip


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=8).map("".join))
def test_generated_selectors_like_the_server(labelled: Labelled, text: str) -> None:
    assert labelled.local_labels(text) == labelled.server("labelSelector", text), text


# ------------------------------------------------------------------ the commands


def test_bad_selectors_stop_live_commands(labelled: Labelled, tmp_path: Path) -> None:
    """One line, exit 2, nothing written: not a 400 per resource and an
    empty partial output."""
    kc = labelled.cluster.kubeconfig
    snap = tmp_path / "snap.ndjson.zst"
    res = kstream("dump", "-q", "-o", str(snap), "-n", NS, "-r", "cm", kubeconfig=kc)
    assert res.code == ExitCode.OK, res.err
    out = tmp_path / "out.ndjson"
    for args in (
        ("dump", "-o", str(out), "-l", "x/y/z=1"),
        ("dump", "-o", str(out), "--field-selector", "metadata.name=a=b"),
        ("count", "-l", "tier>-1"),
        ("count", "--field-selector", "metadata.name"),
        ("diff", str(snap), "--live", "-l", "a in (b"),
    ):
        res = kstream(*args, kubeconfig=kc)
        assert res.code == ExitCode.USAGE, (args, res.err)
        assert len(res.err.strip().splitlines()) == 1, res.err
        assert "selector" in res.err and res.out == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.ndjson.zst"]


def kubectl_names(kc: Path, selector: str) -> set[str]:
    import subprocess

    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "cm", "-n", NS, "-l", selector, "-o", "json"],
        capture_output=True,
        check=True,
    )
    return {i["metadata"]["name"] for i in json.loads(p.stdout)["items"]}


@pytest.mark.parametrize("selector", ["num>1", "num<2", "tier in (web,db),!b", "a"])
def test_count_and_diff_select_what_the_server_selects(
    labelled: Labelled, tmp_path: Path, selector: str
) -> None:
    kc = labelled.cluster.kubeconfig
    want = kubectl_names(kc, selector)
    snap = tmp_path / "snap.ndjson.zst"
    res = kstream("dump", "-q", "-o", str(snap), "-n", NS, "-r", "cm", kubeconfig=kc)
    assert res.code == ExitCode.OK, res.err

    def counted(*args: str, **kw: Any) -> int:
        res = kstream("count", "-o", "json", "-l", selector, *args, **kw)
        assert res.code == ExitCode.OK, res.err
        return sum(r["objects"] for r in json.loads(res.out)["rows"])

    assert counted("-n", NS, "-r", "cm", kubeconfig=kc) == len(want)  # the server's selection
    assert counted(str(snap)) == len(want)  # kstream's
    # diff: the snapshot against one without the selected objects
    base = tmp_path / "base.ndjson"
    lines = _lines(snap)
    base.write_bytes(b"".join(line + b"\n" for line in lines if _name(line) not in want))
    res = kstream("diff", str(base), str(snap), "-l", selector, "-o", "ndjson")
    assert res.code == (ExitCode.DIFFERENCES if want else ExitCode.OK), res.err
    assert {json.loads(line)["name"] for line in res.out.splitlines()} == want


def _lines(snap: Path) -> list[bytes]:
    from kstream.store.snapshot import open_snapshot

    return list(open_snapshot(str(snap)).lines())


def _name(line: bytes) -> str:
    return str(json.loads(line)["metadata"]["name"])
