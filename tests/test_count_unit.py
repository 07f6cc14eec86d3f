"""kstream count without a cluster: the counting sink, grouping, selectors,
estimates with a fake reader, and snapshots written with kstream.store.writers."""

from __future__ import annotations

import json
import threading
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from kstream.cluster.stream import Reader, StreamOptions, Unit
from kstream.count import (
    CountSink,
    Grouping,
    ResKey,
    Tally,
    count_snapshot,
    estimate_units,
    sink_for_unit,
    sort_rows,
)
from kstream.errors import SnapshotError, UsageError
from kstream.exitcodes import ExitCode
from kstream.jsonlines import go_json
from kstream.resources import Resource, guess_plural
from kstream.selector import LabelSelector, MetadataFieldSelector, Scope
from kstream.store.format import Entry
from kstream.store.writers import open_writer, unit_file_name
from tests.conftest import kstream
from tests.fakes import FakeTransport

V = frozenset({"list", "watch"})
CM = Resource("", "v1", "configmaps", "ConfigMap", True, V, "configmap", ("cm",))
NS = Resource("", "v1", "namespaces", "Namespace", False, V, "namespace", ("ns",))
DEPLOY = Resource("apps", "v1", "deployments", "Deployment", True, V, "deployment", ("deploy",))


def obj(
    r: Resource,
    name: str,
    ns: str | None = None,
    labels: dict[str, str] | None = None,
    pad: int = 0,
) -> bytes:
    md: dict[str, Any] = {"name": name}
    if ns:
        md["namespace"] = ns
    if labels:
        md["labels"] = labels
    return go_json({"kind": r.kind, "apiVersion": r.api_version, "metadata": md, "data": "x" * pad})


# --------------------------------------------------------------------------- grouping


def test_grouping_parse() -> None:
    assert Grouping.parse("resource").fields == ("resource",)
    g = Grouping.parse("namespace, label:app.kubernetes.io/name")
    assert g.fields == ("namespace", "label")
    assert g.label_key == "app.kubernetes.io/name"
    assert g.text == "namespace,label:app.kubernetes.io/name"
    for bad in ("", "kind", "label:", "label:a,label:b", "resource,resource", "label:a b"):
        with pytest.raises(UsageError):
            Grouping.parse(bad)


def test_needs_object() -> None:
    by_res = Grouping.parse("resource")
    by_ns = Grouping.parse("namespace")
    by_label = Grouping.parse("label:x")
    assert not by_res.needs_object(True, None)
    assert by_ns.needs_object(True, None)
    assert not by_ns.needs_object(True, "demo-0")  # a per-namespace unit
    assert not by_ns.needs_object(False, None)  # cluster-scoped
    assert by_label.needs_object(False, None)


# --------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("tier=web", {"tier": "web"}, True),
        ("tier==web", {"tier": "db"}, False),
        ("tier!=web", {}, True),
        ("tier!=web", {"tier": "web"}, False),
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": "x"}, False),
        ("!tier", {}, True),
        ("tier in (web, db)", {"tier": "db"}, True),
        ("tier in (web,db),app", {"tier": "db"}, False),
        ("tier notin (web,db)", {}, True),
        ("tier notin (web,db)", {"tier": "web"}, False),
        ("size>3", {"size": "4"}, True),
        ("size<3", {"size": "4"}, False),
        ("size<3", {"size": "x"}, False),
        ("app=web, tier!=db", {"app": "web", "tier": "web"}, True),
        ("", {}, True),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["a=b=c", "x/y/z=1", "a b", "=x", "size>x", "a in (b c)", "a>-1"])
def test_label_selector_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        LabelSelector(bad)


def test_field_selector() -> None:
    fs = MetadataFieldSelector("metadata.namespace=demo-0,metadata.name!=x", "a snapshot")
    assert fs.matches({"namespace": "demo-0", "name": "y"})
    assert not fs.matches({"namespace": "demo-0", "name": "x"})
    with pytest.raises(UsageError):
        MetadataFieldSelector("status.phase=Running", "a snapshot")


def test_guess_plural() -> None:
    assert guess_plural("ConfigMap") == "configmaps"
    assert guess_plural("Ingress") == "ingresses"
    assert guess_plural("NetworkPolicy") == "networkpolicies"
    assert guess_plural("Endpoints") == "endpoints"


# --------------------------------------------------------------------------- the sink


def test_sink_by_resource_never_parses() -> None:
    sink = sink_for_unit(Grouping.parse("resource"), Unit(CM, None))
    sink.write(b"not json at all")
    sink.write(b"{}")
    assert [(n, b) for _, n, b in sink.items()] == [(2, 17)]
    sink.reset()
    assert [(n, b) for _, n, b in sink.items()] == [(0, 0)]  # read, and empty


def test_sink_by_namespace_parses_only_when_needed() -> None:
    g = Grouping.parse("namespace")
    assert sink_for_unit(g, Unit(CM, "demo-0")).key_of is None
    assert sink_for_unit(g, Unit(NS, None)).key_of is None
    sink = sink_for_unit(g, Unit(CM, None))
    for ns in ("a", "b", "a"):
        sink.write(obj(CM, "x", ns))
    got = {k: (n, b) for k, n, b in sink.items()}
    size = len(obj(CM, "x", "a"))
    assert got == {("a",): (2, 2 * size), ("b",): (1, size)}


def test_sink_by_label_and_resource() -> None:
    g = Grouping.parse("resource,label:tier")
    sink = sink_for_unit(g, Unit(CM, None))
    sink.write(obj(CM, "a", "n", {"tier": "web"}))
    sink.write(obj(CM, "b", "n", {"tier": "db"}))
    sink.write(obj(CM, "c", "n", {"tier": "web"}))
    sink.write(obj(CM, "d", "n"))
    got = {k: n for k, n, _ in sink.items()}
    res = ResKey.of(CM)
    assert got == {(res, "web"): 2, (res, "db"): 1, (res, None): 1}


def test_sink_fold_asks_for_a_recount() -> None:
    sink = sink_for_unit(Grouping.parse("resource"), Unit(CM, None))
    sink.write(b"{}")
    sink.fold({("n", "x"): None})
    assert sink.needs_recount
    sink.reset()
    assert not sink.needs_recount


def test_sink_needs_one_of_key_and_function() -> None:
    with pytest.raises(ValueError):
        CountSink(None, None)


def test_tally_and_sort() -> None:
    t = Tally()
    t.add(("b",), 1, 1000)
    t.add(("a",), 5, 10)
    t.add(("c",), 3, 50)
    t.add(("a",), 1, 1)
    rows = t.rows()
    assert [r.key[0] for r in sort_rows(rows, "count")] == ["a", "c", "b"]
    assert [r.key[0] for r in sort_rows(rows, "size")] == ["b", "c", "a"]
    assert [r.key[0] for r in sort_rows(rows, "name")] == ["a", "b", "c"]
    assert next(r for r in rows if r.key == ("a",)).objects == 6


# --------------------------------------------------------------------------- estimates


def _list_limit_1(path: str, query: dict[str, str]) -> None:
    assert query["limit"] == "1"


def FakeReader(answers: dict[str, Any]) -> Reader:
    """The real reader (the one dump uses) over canned LIST pages."""
    return Reader(FakeTransport(answers, check=_list_limit_1), StreamOptions(), threading.Event())


def page(n_items: int, remaining: int | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"resourceVersion": "1"}
    if remaining is not None:
        md["continue"] = "token"
        md["remainingItemCount"] = remaining
    return {"metadata": md, "items": [{}] * n_items}


def test_estimate_units_names_what_it_cannot_estimate() -> None:
    from kstream.errors import ApiError, AuthError

    units = [Unit(CM, None, 0), Unit(DEPLOY, None, 1), Unit(NS, None, 2), Unit(CM, "x", 3)]
    no_remaining = page(1)
    no_remaining["metadata"]["continue"] = "token"
    reader = FakeReader(
        {
            "/api/v1/configmaps": page(1, 39),
            "/apis/apps/v1/deployments": no_remaining,
            "/api/v1/namespaces": page(0),
            "/api/v1/namespaces/x/configmaps": ApiError(403, "forbidden"),
        }
    )
    rows, not_estimated, failed = estimate_units(reader, units, Grouping.parse("resource"))
    assert {r.key[0].name: r.objects for r in rows} == {"configmaps": 40, "namespaces": 0}
    assert all(r.bytes is None for r in rows)
    assert not_estimated == ["deployments.apps"]
    assert [(m.label, m.status) for m in failed] == [("configmaps -n x", "forbidden")]
    with pytest.raises(AuthError):
        estimate_units(
            FakeReader({"/api/v1/configmaps": AuthError("401")}),
            [Unit(CM, None)],
            Grouping(),
        )


def test_estimate_refuses_groupings_that_need_objects() -> None:
    reader = FakeReader({})
    with pytest.raises(UsageError):
        estimate_units(reader, [Unit(CM, None)], Grouping.parse("label:x"))
    with pytest.raises(UsageError):
        estimate_units(reader, [Unit(CM, None)], Grouping.parse("namespace"))
    rows, _, _ = estimate_units(
        FakeReader({"/api/v1/namespaces/a/configmaps": page(1, 1)}),
        [Unit(CM, "a")],
        Grouping.parse("namespace"),
    )
    assert [(r.key, r.objects) for r in rows] == [(("a",), 2)]


# --------------------------------------------------------------------------- snapshots

DEMO: list[tuple[Resource, str | None, list[bytes]]] = [
    (NS, None, [obj(NS, f"demo-{i}") for i in range(3)]),
    (
        CM,
        None,
        [
            obj(CM, f"config-{j}", f"demo-{i}", {"tier": "web" if j % 2 else "db"}, pad=100 * j)
            for i in range(3)
            for j in range(5)
        ],
    ),
    (
        DEPLOY,
        None,
        [obj(DEPLOY, n, f"demo-{i}", {"app": n}) for i in range(3) for n in ("web", "api")],
    ),
]


def write_snapshot(
    path: Path,
    units: Iterable[tuple[Resource, str | None, list[bytes]]],
    status: str = "complete",
    bad: Iterable[str] = (),
) -> Path:
    """A snapshot as dump writes it; `bad` names resources recorded as failed."""
    target = str(path) + ("/" if path.suffix == "" else "")
    fmt = "zst" if path.suffix == ".zst" else "dir" if path.suffix == "" else "ndjson"
    w = open_writer(target, fmt, False, 3, {"created": "now"})
    for r, ns, objs in units:
        spool = w.new_spool(unit_file_name(r.group, r.version, r.resource, ns), None)
        failed = r.name in bad
        for o in [] if failed else objs:
            spool.write(o)
        w.append(
            Entry(
                r.group,
                r.version,
                r.resource,
                r.kind,
                r.namespaced,
                ns,
                "failed" if failed else "complete",
                objects=spool.objects,
                bytes=spool.size,
                sha256=spool.sha.hexdigest(),
                error="boom" if failed else None,
            ),
            spool,
        )
    manifest = {
        "format": "kstream-archive",
        "version": 1,
        "status": status,
        "server": {"url": "https://x", "version": "v1.36.3"},
    }
    return Path(w.finish(manifest, interrupted=status == "interrupted"))


def counts(result: Any) -> dict[tuple[Any, ...], tuple[int, int | None]]:
    return {
        tuple(v.name if isinstance(v, ResKey) else v for v in r.key): (r.objects, r.bytes)
        for r in result.rows
    }


def expected_by_resource() -> dict[tuple[Any, ...], tuple[int, int]]:
    return {(r.name,): (len(objs), sum(map(len, objs))) for r, _, objs in DEMO}


@pytest.fixture(params=["snap.ndjson.zst", "snapdir", "snap.ndjson"])
def snapshot(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write_snapshot(tmp_path / request.param, DEMO)


def test_snapshot_by_resource(snapshot: Path) -> None:
    r = count_snapshot(str(snapshot), Grouping(), Scope())
    assert counts(r) == expected_by_resource()
    assert r.complete and r.exit_code() is ExitCode.OK
    assert r.from_manifest is (snapshot.suffix != ".ndjson")
    if r.from_manifest:  # the manifest and a full pass agree
        streamed = count_snapshot(str(snapshot), Grouping(), Scope(), force_stream=True)
        assert counts(streamed) == counts(r)


def test_snapshot_by_namespace_label_and_filters(snapshot: Path) -> None:
    s = str(snapshot)
    r = count_snapshot(s, Grouping.parse("namespace"), Scope())
    assert not r.from_manifest
    assert {k: n for k, (n, _) in counts(r).items()} == {
        (None,): 3,
        ("demo-0",): 7,
        ("demo-1",): 7,
        ("demo-2",): 7,
    }
    r = count_snapshot(s, Grouping.parse("label:tier"), Scope(resources=("cm",)))
    assert {k: n for k, (n, _) in counts(r).items()} == {("db",): 9, ("web",): 6}
    r = count_snapshot(
        s,
        Grouping.parse("resource,namespace"),
        Scope(namespaces=("demo-1",), label_selector="tier in (web)"),
    )
    assert {k: n for k, (n, _) in counts(r).items()} == {("configmaps", "demo-1"): 2}
    r = count_snapshot(s, Grouping(), Scope(exclude=("configmaps",), namespaces=("demo-2",)))
    assert {k: n for k, (n, _) in counts(r).items()} == {("deployments.apps",): 2}
    r = count_snapshot(s, Grouping(), Scope(resources=("ns", "deploy"), namespaces=("demo-2",)))
    assert {k: n for k, (n, _) in counts(r).items()} == {
        ("namespaces",): 3,
        ("deployments.apps",): 2,
    }
    r = count_snapshot(s, Grouping(), Scope(field_selector="metadata.name=web"))
    assert {k: n for k, (n, _) in counts(r).items() if n} == {("deployments.apps",): 3}


def test_snapshot_per_namespace_units_from_manifest(tmp_path: Path) -> None:
    units = [(CM, ns, [obj(CM, "a", ns), obj(CM, "b", ns)]) for ns in ("demo-0", "demo-1")]
    p = write_snapshot(tmp_path / "ns.ndjson.zst", units)
    r = count_snapshot(str(p), Grouping.parse("namespace"), Scope(namespaces=("demo-1",)))
    assert r.from_manifest
    assert {k: n for k, (n, _) in counts(r).items()} == {("demo-1",): 2}


def test_interrupted_snapshot_is_counted_but_incomplete(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snap.ndjson.zst", DEMO[:2], status="interrupted")
    assert p.name.endswith(".partial")
    r = count_snapshot(str(p), Grouping(), Scope())
    assert not r.complete and r.problem
    assert r.exit_code() is ExitCode.SNAPSHOT
    assert r.to_json()["complete"] is False
    res = kstream("count", str(p), "-o", "json")
    assert res.code == ExitCode.SNAPSHOT
    doc = json.loads(res.out)
    assert doc["problem"] and doc["complete"] is False
    assert doc["total"]["objects"] == 18
    assert "interrupted" in res.err


def test_partial_snapshot_names_what_is_missing(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snapdir", DEMO, status="partial", bad=["deployments.apps"])
    r = count_snapshot(str(p), Grouping(), Scope())
    assert r.exit_code() is ExitCode.PARTIAL
    assert [(m.name, m.status) for m in r.incomplete] == [("deployments.apps", "failed")]
    res = kstream("count", str(p))
    assert res.code == ExitCode.PARTIAL
    assert "deployments.apps" in res.text and "INCOMPLETE" in res.text


def test_truncated_archive_is_not_counted(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snap.ndjson.zst", DEMO)
    cut = tmp_path / "cut.ndjson.zst"
    cut.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(SnapshotError):
        count_snapshot(str(cut), Grouping(), Scope())
    res = kstream("count", str(cut), "-o", "json")
    assert res.code == ExitCode.SNAPSHOT
    assert res.out == b""
    assert "truncated" in res.err


def test_truncated_ndjson_is_not_counted(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snap.ndjson", DEMO)
    data = p.read_bytes()
    cut = tmp_path / "cut.ndjson"
    cut.write_bytes(data[: len(data) // 2])
    assert kstream("count", str(cut)).code == ExitCode.SNAPSHOT
    # compressed NDJSON (no manifest): cut inside the zstd frame
    z = zstandard.ZstdCompressor().compress(data)
    (tmp_path / "whole.zst").write_bytes(z + z)
    (tmp_path / "cut.zst").write_bytes(z + z[: len(z) - 7])
    whole = count_snapshot(str(tmp_path / "whole.zst"), Grouping(), Scope())
    assert whole.total_objects == 2 * sum(len(o) for _, _, o in DEMO)
    with pytest.raises(SnapshotError, match="truncated"):
        count_snapshot(str(tmp_path / "cut.zst"), Grouping(), Scope())


def test_cut_file_in_a_directory_is_reported(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snapdir", DEMO)
    f = p / unit_file_name("", "v1", "configmaps", None)
    f.write_bytes(f.read_bytes()[:-10])
    for grouping in ("resource", "namespace"):  # from the manifest, and streaming
        with pytest.raises(SnapshotError):
            count_snapshot(str(p), Grouping.parse(grouping), Scope())


def test_corrupted_archive_data_is_reported(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snap.ndjson.zst", DEMO)
    data = bytearray(p.read_bytes())
    entry = json.loads(json.dumps(count_snapshot(str(p), Grouping(), Scope()).to_json()))
    assert entry["complete"]
    from kstream.store.snapshot import open_snapshot

    e = open_snapshot(str(p)).entries[1]  # configmaps: inside its zstd frame
    assert e.offset is not None and e.length is not None
    data[e.offset + e.length // 2] ^= 0xFF
    bad = tmp_path / "bad.ndjson.zst"
    bad.write_bytes(bytes(data))
    # the manifest alone cannot see it; a pass over the objects does
    with pytest.raises(SnapshotError):
        count_snapshot(str(bad), Grouping.parse("namespace"), Scope())
    assert count_snapshot(str(bad), Grouping(), Scope()).from_manifest
    res = kstream("count", str(bad), "--verify")
    assert res.code == ExitCode.SNAPSHOT and res.out == b"", res.err


def test_json_and_ndjson_schema(tmp_path: Path) -> None:
    p = write_snapshot(tmp_path / "snap.ndjson.zst", DEMO)
    res = kstream("count", str(p), "--by", "namespace,resource", "-o", "json", "--sort", "size")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert {
        k: doc[k] for k in ("kind", "schemaVersion", "source", "estimate", "by", "complete")
    } == {
        "kind": "kstream-count",
        "schemaVersion": 1,
        "source": "snapshot",
        "estimate": False,
        "by": "namespace,resource",
        "complete": True,
    }
    assert doc["snapshot"] == str(p) and doc["server"] == "https://x"
    assert doc["incomplete"] == [] and doc["notEstimated"] == []
    row = doc["rows"][0]
    assert set(row) == {"namespace", "group", "version", "resource", "kind", "objects", "bytes"}
    sizes = [r["bytes"] for r in doc["rows"]]
    assert sizes == sorted(sizes, reverse=True)
    assert doc["total"]["objects"] == sum(r["objects"] for r in doc["rows"]) == 24
    nd = kstream("count", str(p), "--by", "label:tier", "-o", "ndjson", "-r", "configmaps")
    lines = [json.loads(x) for x in nd.text.splitlines()]
    assert lines == [
        {"label": "db", "objects": 9, "bytes": lines[0]["bytes"]},
        {"label": "web", "objects": 6, "bytes": lines[1]["bytes"]},
    ]


def test_table_has_bars_totals_and_hides_empty(tmp_path: Path) -> None:
    units = [*DEMO, (Resource("", "v1", "pods", "Pod", True, V), None, [])]
    p = write_snapshot(tmp_path / "snap.ndjson.zst", units)
    res = kstream("count", str(p), "--color", "never")
    assert res.code == 0, res.err
    lines = res.text.splitlines()
    assert "from its manifest" in lines[0]
    body = [ln for ln in lines if ln.startswith(("configmaps", "deployments", "namespaces"))]
    assert [ln.split()[0] for ln in body] == ["configmaps", "deployments.apps", "namespaces"]
    assert "█" * 24 in body[0]  # the biggest gets the full bar
    assert any(ln.startswith("total") and " 24 " in ln for ln in lines)
    assert "1 empty" in res.text and "pods" not in res.text


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command in-process (faster than a subprocess for error paths)."""
    from kstream.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = str(write_snapshot(tmp_path / "snap.ndjson.zst", DEMO))
    assert run_main(capsys, "count", "--verify")[0] == ExitCode.USAGE
    for args in (
        ["--by", "kind"],
        ["--estimate"],
        ["-l", "a b"],
        ["--sort", "x"],
        ["--field-selector", "spec.x=1"],
        ["-n", "a", "-A"],
    ):
        code, _, err = run_main(capsys, "count", p, *args)
        assert code == ExitCode.USAGE, (args, err)
        assert err.startswith("kstream: error:"), err
    code, out, _ = run_main(capsys, "count", p, "-r", "nosuch", "--color", "never")
    assert code == 0 and "total" in out  # not an error: nothing matches
    assert run_main(capsys, "count", str(tmp_path / "missing.zst"))[0] == ExitCode.SNAPSHOT


def test_counting_a_snapshot_is_flat_in_its_size(tmp_path: Path) -> None:
    """Parsing every object (grouping by label) keeps memory to the groups."""

    def many(n: int) -> list[tuple[Resource, str | None, list[bytes]]]:
        return [
            (
                CM,
                None,
                [obj(CM, f"c-{i}", f"ns-{i % 7}", {"k": str(i % 3)}, pad=300) for i in range(n)],
            )
        ]

    peaks = []
    for n in (2_000, 20_000):
        p = write_snapshot(tmp_path / f"m{n}.ndjson.zst", many(n))
        tracemalloc.start()
        r = count_snapshot(str(p), Grouping.parse("namespace,label:k"), Scope())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert r.total_objects == n and len(r.rows) == 21
    assert peaks[1] < 8 * 1024 * 1024
    assert peaks[1] < peaks[0] * 2 + 1024 * 1024
