"""A field selector the server rejects for some resources (issue 17.7): the
server answers 400 ("field label not supported", `"x" is not a known field
selector`) for each resource without that field label, e.g. status.phase on
anything but pods and namespaces, metadata.namespace on cluster-scoped kinds.

Each such resource is failed at once with that reason (not taken for a server
without watch-list and asked again with LIST), and reports say it in one line
for all of them, not one error line per resource."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console

from kstream.cli import render
from kstream.cluster.stream import FIELD_SELECTOR_REFUSED, Reader, StreamOptions, Unit
from kstream.errors import ApiError
from kstream.resources import Resource
from kstream.store.snapshot import open_snapshot
from tests.conftest import Cluster, kstream
from tests.fakes import FakeSink, FakeTransport

CM = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
REFUSALS = [
    '"status.phase" is not a known field selector: only "metadata.name", "metadata.namespace"',
    "field label not supported: status.phase",
    'field label "status.phase" not supported for Job',
]


def read(answer: ApiError, method: str) -> tuple[Unit, FakeTransport]:
    client = FakeTransport([answer])
    opts = StreamOptions(field_selector="status.phase=Running", method=method)  # type: ignore[arg-type]
    unit = Unit(CM)
    Reader(client, opts, threading.Event()).read(unit, FakeSink(), lambda u: None)
    return unit, client


@pytest.mark.parametrize("method", ["auto", "watch-list", "list"])
@pytest.mark.parametrize("text", REFUSALS)
def test_refused_field_selector_fails_the_unit_without_fallback(method: str, text: str) -> None:
    """Before: auto took the 400 for "watch-list off" and asked again with LIST
    (refused the same way); the unit said it had fallen back."""
    unit, client = read(ApiError(400, f"list configmaps: {text} (HTTP 400)", "BadRequest"), method)
    assert unit.status == "failed" and len(client.requests) == 1
    assert unit.error.startswith(FIELD_SELECTOR_REFUSED + ": ") and text in unit.error
    assert unit.fallback == "" and unit.retries == 0


def test_other_400s_still_fall_back() -> None:
    """A 400 that is not about the field selector keeps the watch-list fallback."""
    client = FakeTransport(
        [
            ApiError(400, "watch-list refused: sendInitialEvents is forbidden", "BadRequest"),
            b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},'
            b'"items":[]}',
        ]
    )
    opts = StreamOptions(field_selector="metadata.name=x")
    unit = Unit(CM)
    Reader(client, opts, threading.Event()).read(unit, FakeSink(), lambda u: None)
    assert unit.status == "complete" and unit.fallback == "watch-list off"


def _units(n: int) -> list[Unit]:
    units = []
    for i in range(n):
        u = Unit(Resource("", "v1", f"kind{i:02d}s", f"Kind{i:02d}", True), None)
        u.index, u.status, u.method, u.phase = i, "failed", "watch-list", "failed"
        u.error = f"{FIELD_SELECTOR_REFUSED}: list kind{i:02d}s: {REFUSALS[i % 3]} (HTTP 400)"
        u.started, u.finished = 1.0, 1.5
        units.append(u)
    ok = Unit(Resource("", "v1", "pods", "Pod", True), None)
    ok.index, ok.status, ok.method, ok.objects, ok.bytes = n, "complete", "watch-list", 3, 300
    return [*units, ok]


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("width", [80, 120])
def test_summary_says_it_once(width: int) -> None:
    units = _units(30)
    con = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False)
    con.print(render.summary(units, "kstream dump → x.zst"))
    text = con.file.getvalue()  # type: ignore[attr-defined]
    assert "pods" in text and "kind00s" in text
    assert "not a known field selector" not in text  # the server's words: in the manifest
    flat = _one_line(text)
    assert flat.count("--field-selector") == 1
    assert "does not support it for 30 resources (HTTP 400), not read: kind00s," in flat
    assert "and 20 more" in flat
    assert len(text.splitlines()) < 15, text  # no row per refused resource
    lines = render.summary_lines(units, "kstream dump → x.zst")
    body = [ln for ln in lines if ln.startswith("resource=")]
    assert len(body) == 31  # the log layout: one line per resource, a short error
    assert all('error="field selector not supported"' in ln for ln in body[:30])
    assert sum("--field-selector" in ln for ln in lines) == 1
    assert not any("not a known field selector" in ln for ln in lines)


# ---------------------------------------------------------------- the real server


def _err_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.cluster
def test_full_dump_with_a_field_selector_most_kinds_refuse(
    cluster: Cluster, tmp_path: Path
) -> None:
    kc = cluster.kubeconfig
    out = tmp_path / "s.zst"
    sel = ("--field-selector", "status.phase=Active")  # namespaces and pods have it
    r = kstream("dump", "-q", "-o", str(out), *sel, kubeconfig=kc)
    assert r.code == 3  # -q: errors only: one line says the dump is partial
    assert len(r.err.splitlines()) == 1 and r.err.startswith("partial: "), r.err
    r = kstream("count", *sel, kubeconfig=kc)  # count says it in the same one line
    assert r.code == 3
    [line] = [ln for ln in _err_lines(r.err) if ln.startswith("warning:")]
    assert re.fullmatch(
        r"warning: --field-selector: the server does not support it for \d+ resources "
        r"\(HTTP 400\), not read: configmaps, .* and \d+ more",
        line,
    ), line
    snap = open_snapshot(str(out))
    assert snap.manifest is not None
    by = {e.resource: e for e in snap.manifest.resources}
    assert by["namespaces"].status == "complete" and by["namespaces"].objects > 0
    assert by["pods"].status == "complete"
    refused = [e for e in snap.manifest.resources if e.status == "failed"]
    assert len(refused) > 20
    n = int(re.search(r"for (\d+) resources", line).group(1))  # type: ignore[union-attr]
    assert n == len(refused)
    for e in refused:  # the server's words, and no fallback to LIST claimed
        assert e.error and e.error.startswith(FIELD_SELECTOR_REFUSED + ": ")
        assert "HTTP 400" in e.error and not e.fallback
    # the summary (log layout): one line says it, the server's words are not repeated
    r = kstream("dump", "-o", str(tmp_path / "t.zst"), *sel, kubeconfig=kc, env={"CI": "true"})
    assert r.code == 3
    assert sum("--field-selector" in ln for ln in r.err.splitlines()) == 1, r.err
    assert "not a known field selector" not in r.err and "watch-list off" not in r.err
    # count -q: the exit code and one line
    r = kstream("count", "-q", *sel, kubeconfig=kc)
    assert r.code == 3
    assert len(r.err.splitlines()) == 1 and r.err.startswith("partial: "), r.err


@pytest.mark.cluster
def test_namespace_field_on_cluster_scoped_kinds(cluster: Cluster, tmp_path: Path) -> None:
    """metadata.namespace: namespaced kinds are read in that namespace;
    cluster-scoped ones have no such field, and that is said in one line (also
    by diff --live, which dumps quietly, as the snapshot was dumped)."""
    kc = cluster.kubeconfig
    sel = ("-r", "namespaces,nodes,configmaps", "--field-selector", "metadata.namespace=demo-0")
    out = tmp_path / "s.ndjson"
    r = kstream("dump", "-q", "-o", str(out), *sel, kubeconfig=kc)
    assert r.code == 3  # -q: errors only, in one line
    assert len(r.err.splitlines()) == 1 and r.err.startswith("partial: "), r.err
    r = kstream("count", *sel, kubeconfig=kc)
    assert r.code == 3, r.err
    assert [ln for ln in _err_lines(r.err) if ln.startswith("warning:")] == [
        "warning: --field-selector: the server does not support it for 2 resources "
        "(HTTP 400), not read: namespaces, nodes"
    ], r.err
    objs = [json.loads(x) for x in out.read_text().splitlines()]
    assert objs and {(o["kind"], o["metadata"]["namespace"]) for o in objs} == {
        ("ConfigMap", "demo-0")
    }
    # diff --live reads the cluster as the archive was dumped (its manifest's selection)
    snap = tmp_path / "s.zst"
    assert kstream("dump", "-q", "-o", str(snap), *sel, kubeconfig=kc).code == 3
    r = kstream("diff", str(snap), "--live", kubeconfig=kc)
    assert r.code == 3, r.err
    assert "field label not supported" not in r.err  # the server's words, per resource
    refused = [ln for ln in r.err.splitlines() if "--field-selector" in ln]
    assert refused == [  # reading the cluster, then comparing: one line each
        "warning: --field-selector: the server does not support it for 2 resources "
        "(HTTP 400), not read: namespaces, nodes",
        "warning: --field-selector: the server does not support it for 2 resources "
        "(HTTP 400), not compared: namespaces, nodes",
    ], r.err
