"""kstream diff without a cluster: merge logic, identity, ignores, selection,
unsorted and broken input, Secrets, and memory on a large generated snapshot."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kstream import diff as d
from kstream.errors import SnapshotError, UsageError
from kstream.selector import LabelSelector, Scope
from kstream.store.format import Entry
from kstream.store.snapshot import open_snapshot
from kstream.store.writers import (
    ArchiveWriter,
    DirectoryWriter,
    Writer,
    unit_file_name,
)
from tests.conftest import VENV_BIN, kstream

# ---------------------------------------------------------------- builders


def cm(ns: str, name: str, uid: str | None = None, rv: str = "1", **data: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid or f"uid-{ns}-{name}",
            "resourceVersion": rv,
            "labels": {"app": name},
        },
        "data": data or {"k": "v"},
    }


def ns_obj(name: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid or f"uid-{name}"},
    }


def deploy(ns: str, name: str, image: str = "nginx:1", replicas: int = 1) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "generation": replicas},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "main", "image": image}]}},
        },
        "status": {"replicas": replicas},
    }


def line(o: dict[str, Any]) -> bytes:
    return json.dumps(o, separators=(",", ":")).encode()


def write_ndjson(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(line(o) + b"\n" for o in objs))
    return path


RES = {
    "ConfigMap": ("", "v1", "configmaps", True),
    "Secret": ("", "v1", "secrets", True),
    "Namespace": ("", "v1", "namespaces", False),
    "Deployment": ("apps", "v1", "deployments", True),
    "Widget": ("demo.kstream.dev", "v1", "widgets", True),
}


def write_snapshot(
    path: Path,
    objs: list[dict[str, Any]],
    fmt: str = "zst",
    status: str = "complete",
    options: dict[str, Any] | None = None,
    unit_status: dict[str, str] | None = None,
    per_namespace: bool = False,
    manifest_extra: dict[str, Any] | None = None,
) -> Path:
    """An archive or directory as dump writes it: one unit per resource (or
    per resource and namespace), in the order given (not sorted here)."""
    w: Writer = (
        ArchiveWriter(str(path), False, 1) if fmt == "zst" else DirectoryWriter(str(path), False)
    )
    units: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for o in objs:
        ns = o["metadata"].get("namespace") if per_namespace else None
        units.setdefault((o["kind"], ns), []).append(o)
    for (kind, ns), items in sorted(
        units.items(), key=lambda kv: (RES[kv[0][0]][2], kv[0][1] or "")
    ):
        g, _, r, namespaced = RES[kind]
        v = items[0]["apiVersion"].rpartition("/")[2]  # the version the objects were read at
        spool = w.new_spool(unit_file_name(g, v, r, ns), None)
        for o in items:
            spool.write(line(o))
        e = Entry(
            g,
            v,
            r,
            kind,
            namespaced,
            ns,
            (unit_status or {}).get(r, "complete"),
            objects=spool.objects,
            sha256=spool.sha.hexdigest(),
        )
        w.append(e, spool)
    manifest = {
        "format": "kstream-archive",
        "version": 1,
        "status": status,
        "options": {"secrets": "redact", "secretDigest": "sha256", **(options or {})},
        **(manifest_extra or {}),
    }
    w.finish(manifest, interrupted=False)
    return path


def compare(old: Path, new: Path, **kw: Any) -> tuple[list[d.Change], d.Comparison]:
    kw.setdefault("ignore", tuple(d.ignore_list()))
    scope = {k: kw.pop(k) for k in ("resources", "exclude", "namespaces") if k in kw}
    if "selector" in kw:
        scope["label_selector"] = kw.pop("selector")
    kw["scope"] = Scope(**scope)
    with d.Comparison(open_snapshot(str(old)), open_snapshot(str(new)), d.Settings(**kw)) as c:
        return list(c.changes()), c


def summary(changes: list[d.Change]) -> set[tuple[str, str, str]]:
    return {(ch.change, ch.kind, f"{ch.namespace}/{ch.name}") for ch in changes}


# ---------------------------------------------------------------- merge and identity

OLD = [cm("a", "keep"), cm("a", "mod"), cm("a", "gone"), cm("b", "again", uid="u1"), ns_obj("a")]
NEW = [
    cm("a", "keep", rv="9"),
    cm("a", "mod", rv="5", k="w"),
    cm("b", "again", uid="u2"),
    cm("b", "fresh"),
    ns_obj("a"),
]
WANT = {
    ("modified", "ConfigMap", "a/mod"),
    ("removed", "ConfigMap", "a/gone"),
    ("recreated", "ConfigMap", "b/again"),
    ("added", "ConfigMap", "b/fresh"),
}


@pytest.mark.parametrize("fmt", ["ndjson", "zst", "dir"])
def test_merge_reports_each_kind_of_change(tmp_path: Path, fmt: str) -> None:
    if fmt == "ndjson":
        a, b = write_ndjson(tmp_path / "a.ndjson", OLD), write_ndjson(tmp_path / "b.ndjson", NEW)
    else:
        ext = ".ndjson.zst" if fmt == "zst" else ""
        a = write_snapshot(tmp_path / f"a{ext}", OLD, fmt)
        b = write_snapshot(tmp_path / f"b{ext}", NEW, fmt)
    changes, c = compare(a, b)
    assert summary(changes) == WANT
    mod = next(ch for ch in changes if ch.change == "modified")
    assert [(f.path, f.old, f.new) for f in mod.fields] == [("data.k", "v", "w")]
    name = "configmaps" if fmt != "ndjson" else "ConfigMap"
    assert c.summary[name] == d.Counts(added=1, removed=1, modified=1, recreated=1, unchanged=1)
    assert c.total.changed == 4


def test_archive_against_plain_ndjson_shares_resource_names(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.ndjson.zst", OLD)
    b = write_ndjson(tmp_path / "b.ndjson", NEW)
    changes, c = compare(a, b)
    assert summary(changes) == WANT
    assert set(c.summary) == {"configmaps", "namespaces"}
    assert {ch.resource for ch in changes} == {"configmaps"}


def test_resource_only_on_one_side(tmp_path: Path) -> None:
    a = write_ndjson(tmp_path / "a.ndjson", [cm("a", "x")])
    b = write_ndjson(tmp_path / "b.ndjson", [cm("a", "x"), deploy("a", "web")])
    changes, _ = compare(a, b)
    assert summary(changes) == {("added", "Deployment", "a/web")}
    assert changes[0].group == "apps" and changes[0].version == "v1"


def test_missing_uid_is_not_recreated(tmp_path: Path) -> None:
    o, n = cm("a", "x"), cm("a", "x", k="2")
    del o["metadata"]["uid"]
    changes, _ = compare(write_ndjson(tmp_path / "a", [o]), write_ndjson(tmp_path / "b", [n]))
    assert summary(changes) == {("modified", "ConfigMap", "a/x")}


# ---------------------------------------------------------------- ignores


def test_default_ignores_and_include_status(tmp_path: Path) -> None:
    o = deploy("a", "web")
    n = deploy("a", "web")
    n["metadata"]["resourceVersion"] = "77"
    n["metadata"]["generation"] = 5
    n["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    n["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    n["status"] = {"replicas": 9}
    a, b = write_ndjson(tmp_path / "a", [o]), write_ndjson(tmp_path / "b", [n])
    assert compare(a, b)[0] == []
    changes, _ = compare(a, b, ignore=tuple(d.ignore_list(include_status=True)))
    assert [(f.path, f.old, f.new) for f in changes[0].fields] == [("status.replicas", 1, 9)]
    changes, _ = compare(a, b, ignore=tuple(d.ignore_list(defaults=False, include_status=True)))
    assert {f.path for f in changes[0].fields} == {
        "metadata.generation",
        "metadata.resourceVersion",
        "metadata.managedFields",
        "metadata.annotations",
        "status.replicas",
    }


def test_ignore_with_wildcards_and_brackets(tmp_path: Path) -> None:
    o, n = deploy("a", "web"), deploy("a", "web", image="nginx:2", replicas=3)
    o["metadata"]["labels"] = {"x.io/hash": "1", "app": "web"}
    n["metadata"]["labels"] = {"x.io/hash": "2", "app": "web"}
    a, b = write_ndjson(tmp_path / "a", [o]), write_ndjson(tmp_path / "b", [n])
    changes, _ = compare(a, b)
    assert {f.path for f in changes[0].fields} == {
        "spec.replicas",
        "spec.template.spec.containers.0.image",
        'metadata.labels["x.io/hash"]',
    }
    ign = d.ignore_list(["spec.template.spec.containers.*.image", 'metadata.labels["x.io/hash"]'])
    changes, _ = compare(a, b, ignore=tuple(ign))
    assert [f.path for f in changes[0].fields] == ["spec.replicas"]
    changes, _ = compare(a, b, ignore=tuple(d.ignore_list(["spec", "metadata.labels"])))
    assert changes == []


def test_ignored_only_annotation_leaves_no_empty_map(tmp_path: Path) -> None:
    o, n = cm("a", "x"), cm("a", "x")
    n["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    assert compare(write_ndjson(tmp_path / "a", [o]), write_ndjson(tmp_path / "b", [n]))[0] == []


def test_bad_ignore_path_is_usage_error() -> None:
    with pytest.raises(UsageError):
        d.ignore_list(['metadata.labels["unterminated'])


def test_field_changes_lists_and_types() -> None:
    out = d.field_changes(
        {"a": [1, 2], "b": 1, "c": {"x": 1}}, {"a": [1, 3, 4], "b": 1.5, "c": None}
    )
    assert out == [
        (("a", "1"), 2, 3),
        (("a", "2"), d.MISSING, 4),
        (("b",), 1, 1.5),
        (("c",), {"x": 1}, None),
    ]
    assert d.field_changes({"b": 1}, {"b": True}) == [(("b",), 1, True)]


# ---------------------------------------------------------------- selection


def test_parse_selector() -> None:
    """diff uses the one selector grammar (kstream.selector), as count does."""
    sel = LabelSelector("app=web, tier!=db,env in (a, b),x notin (c),has,!gone,k==v,n>1")
    got = [(r.key, r.op, list(r.values)) for r in sel.reqs]
    assert got == [
        ("app", "=", ["web"]),
        ("env", "in", ["a", "b"]),
        ("gone", "!", []),
        ("has", "exists", []),
        ("k", "==", ["v"]),
        ("n", ">", ["1"]),
        ("tier", "!=", ["db"]),
        ("x", "notin", ["c"]),
    ]
    assert sel.matches({"app": "web", "env": "b", "has": "", "k": "v", "n": "2"})
    assert not sel.matches({"app": "web", "env": "b", "has": "", "k": "v", "n": "1"})
    assert not LabelSelector("tier!=db").matches({"tier": "db"})
    assert LabelSelector("tier!=db").matches({})
    with pytest.raises(UsageError):
        LabelSelector("a in (b")


def test_selection_applies_to_both_sides(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", OLD)
    b = write_snapshot(tmp_path / "b.zst", NEW)
    changes, _ = compare(a, b, namespaces=("b",))
    assert summary(changes) == {
        ("recreated", "ConfigMap", "b/again"),
        ("added", "ConfigMap", "b/fresh"),
    }
    changes, _ = compare(a, b, selector="app in (mod,fresh)")
    assert summary(changes) == {
        ("modified", "ConfigMap", "a/mod"),
        ("added", "ConfigMap", "b/fresh"),
    }
    changes, _ = compare(a, b, resources=("ns",))
    assert changes == []
    changes, c = compare(a, b, exclude=("cm",))
    assert changes == [] and set(c.summary) == {"namespaces"}
    # -n leaves cluster-scoped resources out unless named with -r
    n2 = [*NEW[:-1], ns_obj("a", uid="other")]
    b2 = write_snapshot(tmp_path / "b2.zst", n2)
    assert ("recreated", "Namespace", "/a") not in summary(compare(a, b2, namespaces=("a",))[0])
    got = compare(a, b2, namespaces=("a",), resources=("configmaps", "namespaces"))[0]
    assert ("recreated", "Namespace", "/a") in summary(got)
    with pytest.raises(UsageError):
        compare(a, b, resources=("nosuch",))


def test_resource_names_for_plain_ndjson(tmp_path: Path) -> None:
    a = write_ndjson(tmp_path / "a", [cm("a", "x"), deploy("a", "d")])
    b = write_ndjson(tmp_path / "b", [cm("a", "x", k="1"), deploy("a", "d", replicas=2)])
    for token, kinds in (
        ("configmaps", {"ConfigMap"}),
        ("cm", {"ConfigMap"}),
        ("deploy", {"Deployment"}),
        ("deployments.apps", {"Deployment"}),
        ("Deployment", {"Deployment"}),
    ):
        assert {ch.kind for ch in compare(a, b, resources=(token,))[0]} == kinds, token


# ---------------------------------------------------------------- order


def test_unsorted_input_is_sorted_externally(tmp_path: Path) -> None:
    rnd = random.Random(7)
    old = [cm(f"ns{i % 7}", f"o{i:04d}") for i in range(600)]
    new = [
        cm(f"ns{i % 7}", f"o{i:04d}", k="changed" if i % 50 == 0 else "v") for i in range(20, 620)
    ]
    rnd.shuffle(old)
    rnd.shuffle(new)
    a = write_snapshot(tmp_path / "a.zst", old)
    b = write_ndjson(tmp_path / "b.ndjson", new)
    changes, c = compare(a, b, sort_buffer=4096)  # many runs
    counts = c.summary["configmaps"]
    assert (counts.removed, counts.added, counts.modified, counts.unchanged) == (20, 20, 11, 569)
    keys = [(ch.namespace, ch.name) for ch in changes]
    assert keys == sorted(keys, key=lambda k: f"{k[0]}/{k[1]}")


def test_per_namespace_units_in_any_order(tmp_path: Path) -> None:
    objs = [cm(ns, f"x{i}") for ns in ("zz", "a-b", "a") for i in range(3)]
    a = write_snapshot(tmp_path / "a.zst", objs, per_namespace=True)
    b = write_snapshot(tmp_path / "b", list(reversed(objs)), fmt="dir")
    changes, c = compare(a, b)
    assert changes == [] and c.summary["configmaps"].unchanged == 9


def test_duplicate_object_is_an_error(tmp_path: Path) -> None:
    a = write_ndjson(tmp_path / "a", [cm("a", "x"), cm("a", "y"), cm("a", "x")])
    b = write_ndjson(tmp_path / "b", [cm("a", "x")])
    with pytest.raises(SnapshotError, match="twice"):
        compare(a, b)


# ---------------------------------------------------------------- broken input (CLI, exit 6)


def _cli(*args: str) -> Any:
    return kstream("diff", *args)


def test_truncated_archive_exits_6(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", OLD)
    b = tmp_path / "b.zst"
    data = write_snapshot(tmp_path / "full.zst", NEW).read_bytes()
    b.write_bytes(data[: len(data) // 2])
    r = _cli(str(a), str(b))
    assert r.code == 6 and "truncated" in r.err and r.out == b""


def test_corrupted_archive_exits_6_before_any_output(tmp_path: Path) -> None:
    many = [cm("a", f"x{i:03d}", k="v" * 50) for i in range(200)]
    a = write_snapshot(tmp_path / "a.zst", [*many, ns_obj("a")])
    b = write_snapshot(tmp_path / "b.zst", [cm("a", "x000"), ns_obj("a")])
    e = open_snapshot(str(a)).entries[0]
    raw = bytearray(a.read_bytes())
    assert e.offset is not None and e.length is not None
    raw[e.offset + e.length // 2] ^= 0xFF
    a.write_bytes(bytes(raw))
    r = _cli(str(a), str(b), "-o", "ndjson")
    assert r.code == 6, r.err
    assert r.out == b""


def test_truncated_ndjson_exits_6(tmp_path: Path) -> None:
    a = write_ndjson(tmp_path / "a.ndjson", OLD)
    b = tmp_path / "b.ndjson"
    b.write_bytes(write_ndjson(tmp_path / "f.ndjson", NEW).read_bytes()[:-30])
    r = _cli(str(a), str(b))
    assert r.code == 6 and "truncated" in r.err


def test_interrupted_snapshot_exits_6(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", OLD)
    b = write_snapshot(tmp_path / "b.zst", NEW, status="interrupted")
    r = _cli(str(a), str(b))
    assert r.code == 6 and "interrupted" in r.err


def test_count_mismatch_in_directory_exits_6(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a", OLD, fmt="dir")
    b = write_snapshot(tmp_path / "b", OLD, fmt="dir")
    f = next(p for p in b.iterdir() if p.name.startswith("core_v1_configmaps"))
    f.write_bytes(b"".join(f.read_bytes().splitlines(keepends=True)[:-1]))
    r = _cli(str(a), str(b))
    assert r.code == 6 and "configmaps" in r.err and r.out == b""


def test_partial_snapshot_skips_resource_exit_3(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", OLD)
    b = write_snapshot(
        tmp_path / "b.zst",
        [ns_obj("a")],
        status="partial",
        unit_status={"namespaces": "complete"},
        options={},
    )
    b2 = write_snapshot(
        tmp_path / "b2.zst", [*NEW], status="partial", unit_status={"configmaps": "forbidden"}
    )
    r = _cli(str(a), str(b2))
    assert r.code == 3 and "configmaps not compared" in r.err
    r = _cli(str(a), str(b))  # configmaps simply absent from b: all removed
    assert r.code == 1


# ---------------------------------------------------------------- CLI


def test_exit_codes_and_formats(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", OLD)
    b = write_snapshot(tmp_path / "b.zst", NEW)
    r = _cli(str(a), str(a))
    assert r.code == 0 and r.out == b""
    r = _cli(str(a), str(b), "-o", "ndjson")
    assert r.code == 1
    recs = [json.loads(x) for x in r.out.splitlines()]
    assert {(x["change"], x["name"]) for x in recs} == {
        ("modified", "mod"),
        ("removed", "gone"),
        ("recreated", "again"),
        ("added", "fresh"),
    }
    assert set(recs[0]) >= {"change", "group", "version", "resource", "kind", "namespace", "name"}
    mod = next(x for x in recs if x["change"] == "modified")
    assert mod["fields"] == [{"path": "data.k", "old": "v", "new": "w"}]
    r = _cli(str(a), str(b), "-o", "json", "--stat")
    doc = json.loads(r.out)
    assert doc["changes"] == [] and doc["total"]["recreated"] == 1
    assert doc["summary"]["configmaps"]["unchanged"] == 1
    r = _cli(str(a), str(b), "--color", "never")
    assert "~ configmaps a/mod  modified" in r.text and 'data.k: "v" → "w"' in r.text
    assert _cli(str(a)).code == 2
    assert _cli(str(a), str(b), "--live", "--live-old").code == 2
    assert _cli(str(a), str(tmp_path / "nope")).code == 6
    r = _cli("--explain")
    assert r.code == 0 and "metadata.managedFields" in r.text


def test_stdin_side(tmp_path: Path) -> None:
    a = write_ndjson(tmp_path / "a.ndjson", OLD)
    r = kstream(
        "diff", str(a), "-", "-o", "ndjson", input=write_ndjson(tmp_path / "b", NEW).read_bytes()
    )
    assert r.code == 1 and len(r.out.splitlines()) == 4


# ---------------------------------------------------------------- Secrets


def secret_obj(name: str, **data: str) -> dict[str, Any]:
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": "a", "uid": f"uid-{name}"},
        "data": data,
    }


def test_raw_secret_values_are_never_shown(tmp_path: Path) -> None:
    a = write_snapshot(
        tmp_path / "a.zst", [secret_obj("s", pw="b2xk")], options={"secrets": "include"}
    )
    b = write_snapshot(
        tmp_path / "b.zst",
        [secret_obj("s", pw="bmV3", extra="eA==")],
        options={"secrets": "include"},
    )
    changes, _ = compare(a, b)
    assert [(f.path, f.old, f.new) for f in changes[0].fields] == [
        ("data.pw", d.HIDDEN, d.HIDDEN),
        ("data.extra", d.MISSING, d.HIDDEN),
    ]
    r = _cli(str(a), str(b), "--color", "never")
    assert "bmV3" not in r.text and "b2xk" not in r.text and "(changed)" in r.text


def test_redacted_digests_compare_and_show(tmp_path: Path) -> None:
    from kstream.transform import digest

    old_d, new_d = digest(b"old", None), digest(b"new", None)
    a = write_snapshot(tmp_path / "a.zst", [secret_obj("s", pw=old_d), secret_obj("t", pw=old_d)])
    # the other side was dumped with --secrets include: redacted on the fly to compare
    b = write_snapshot(
        tmp_path / "b.zst",
        [secret_obj("s", pw="bmV3"), secret_obj("t", pw="b2xk")],
        options={"secrets": "include"},
    )
    changes, _ = compare(a, b)
    assert [(ch.name, [(f.path, f.old, f.new) for f in ch.fields]) for ch in changes] == [
        ("s", [("data.pw", old_d, new_d)])
    ]


# ---------------------------------------------------------------- memory


def _gen(path: Path, n: int, seed: int, shuffle: bool) -> None:
    """n small ConfigMaps over 50 namespaces; every 1000th differs by seed."""
    rnd = random.Random(seed)
    order = list(range(n))
    if shuffle:
        rnd.shuffle(order)
    with open(path, "wb") as f:
        for i in order:
            v = f"value-{i}" + ("-x" if seed and i % 1000 == 0 else "")
            f.write(line(cm(f"ns-{i % 50:02d}", f"cm-{i:07d}", k=v, pad="p" * 100)) + b"\n")


WRAPPER = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
sys.stderr.write(p.stderr.decode())
print(p.returncode, peak / 1024, len(p.stdout.splitlines()))
"""


def run_measured(*args: str) -> tuple[int, float, int]:
    p = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(VENV_BIN / "kstream"), *args],
        capture_output=True,
        timeout=900,
        env={**os.environ, "NO_COLOR": "1"},
    )
    code, peak, lines = p.stdout.split()
    return int(code), float(peak), int(lines)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux")
def test_memory_stays_bounded_on_large_snapshots(tmp_path: Path) -> None:
    results = {}
    for n in (20_000, 200_000):
        a, b = tmp_path / f"a{n}.ndjson", tmp_path / f"b{n}.ndjson"
        _gen(a, n, 0, shuffle=False)
        _gen(b, n, 1, shuffle=True)  # unsorted: forces the external sort
        code, peak, lines = run_measured(
            "diff", str(a), str(b), "-o", "ndjson", "--sort-buffer", "8"
        )
        assert code == 1 and lines == n // 1000
        results[n] = peak
        a.unlink()
        b.unlink()
    # ten times the objects (~40 MiB per side), nearly the same peak
    assert results[200_000] < results[20_000] + 25, results
    assert results[200_000] < 200, results


# ---------------------------------------------------------------- recreated objects (issue 17.6)


def test_recreated_shows_its_field_changes(tmp_path: Path) -> None:
    o = cm("b", "again", uid="u1", k="v", same="s")
    n = cm("b", "again", uid="u2", k="w", same="s")
    n["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    a = write_snapshot(tmp_path / "a.zst", [o])
    b = write_snapshot(tmp_path / "b.zst", [n])
    changes, c = compare(a, b)
    [ch] = changes
    assert (ch.change, ch.old_uid, ch.new_uid) == ("recreated", "u1", "u2")
    assert [(f.path, f.old, f.new) for f in ch.fields] == [("data.k", "v", "w")]
    assert c.summary["configmaps"].recreated == 1
    r = _cli(str(a), str(b), "-o", "ndjson")
    assert r.code == 1
    [rec] = [json.loads(x) for x in r.out.splitlines()]
    assert rec["change"] == "recreated" and rec["uid"] == {"old": "u1", "new": "u2"}
    assert rec["fields"] == [{"path": "data.k", "old": "v", "new": "w"}]
    r = _cli(str(a), str(b), "-o", "json")
    assert json.loads(r.out)["changes"][0]["fields"] == rec["fields"]
    r = _cli(str(a), str(b), "--color", "never")
    assert "± configmaps b/again  recreated (uid u1 → u2)" in r.text
    assert 'data.k: "v" → "w"' in r.text
    # recreated with the same content: still recreated, no fields
    same = write_snapshot(tmp_path / "c.zst", [cm("b", "again", uid="u3", k="v", same="s")])
    [ch] = compare(a, same)[0]
    assert ch.change == "recreated" and ch.fields == []


def test_recreated_secret_values_stay_hidden(tmp_path: Path) -> None:
    o, n = secret_obj("s", pw="b2xk"), secret_obj("s", pw="bmV3")
    n["metadata"]["uid"] = "other"
    opts = {"secrets": "include"}
    a = write_snapshot(tmp_path / "a.zst", [o], options=opts)
    b = write_snapshot(tmp_path / "b.zst", [n], options=opts)
    [ch] = compare(a, b)[0]
    assert ch.change == "recreated"
    assert [(f.path, f.old, f.new) for f in ch.fields] == [("data.pw", d.HIDDEN, d.HIDDEN)]
    r = _cli(str(a), str(b), "--color", "never")
    assert "bmV3" not in r.text and "b2xk" not in r.text and "(changed)" in r.text


# ---------------------------------------------------------------- different selections (17.8)


def _note(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("note: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_different_namespaces_compare_only_what_both_selected(tmp_path: Path) -> None:
    old = [cm("a", "x"), cm("a", "y")]
    new = [cm("a", "x"), cm("a", "y", k="2"), cm("b", "z"), cm("b", "w")]
    a = write_snapshot(tmp_path / "a.zst", old, options={"namespaces": ["a"]})
    b = write_snapshot(tmp_path / "b.zst", new, options={"namespaces": ["a", "b"]})
    changes, c = compare(a, b)
    assert summary(changes) == {("modified", "ConfigMap", "a/y")}
    assert "-n" in c.selection_note and "2 objects outside" in c.selection_note
    r = _cli(str(a), str(b), "-o", "ndjson")
    assert r.code == 1 and len(r.out.splitlines()) == 1
    note = _note(r.err)
    assert "different -n" in note and f"2 objects outside {a}'s -n a" in note
    # the other way round too (removed instead of added before)
    assert summary(compare(b, a)[0]) == {("modified", "ConfigMap", "a/y")}


def test_namespaced_dump_against_full_dump(tmp_path: Path) -> None:
    # -n a (no -r): cluster-scoped resources are not in the dump at all
    a = write_snapshot(tmp_path / "a.zst", [cm("a", "x")], options={"namespaces": ["a"]})
    b = write_snapshot(tmp_path / "b.zst", [cm("a", "x"), cm("b", "y"), ns_obj("a")])
    changes, c = compare(a, b)
    assert changes == []
    assert "namespaces (not selected by" in c.selection_note
    assert "cluster-scoped" in c.selection_note and "1 object outside" in c.selection_note
    assert set(c.summary) == {"configmaps"}


def test_different_resources(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", [cm("a", "x")], options={"resources": ["cm"]})
    b = write_snapshot(tmp_path / "b.zst", [cm("a", "x"), deploy("a", "web"), ns_obj("a")])
    changes, c = compare(a, b)
    assert changes == []
    note = c.selection_note
    assert "different -r" in note
    assert "deployments.apps, namespaces (not selected by" in note and "-r cm" in note
    r = _cli(str(a), str(b))
    assert r.code == 0 and r.out == b"" and "different -r" in r.err


def test_resource_new_in_the_cluster_is_still_added(tmp_path: Path) -> None:
    # same selection (everything): a resource only in NEW is really new
    a = write_snapshot(tmp_path / "a.zst", [cm("a", "x")])
    b = write_snapshot(tmp_path / "b.zst", [cm("a", "x"), deploy("a", "web")])
    changes, c = compare(a, b)
    assert summary(changes) == {("added", "Deployment", "a/web")}
    assert c.selection_note == ""
    # excluded by default in OLD, named with -r in NEW: not selected by OLD
    a2 = write_snapshot(
        tmp_path / "a2.zst",
        [cm("a", "x")],
        manifest_extra={"excludedByDefault": ["deployments.apps"]},
    )
    b2 = write_snapshot(
        tmp_path / "b2.zst",
        [cm("a", "x"), deploy("a", "web")],
        options={"resources": ["cm", "deploy"]},
    )
    changes, c = compare(a2, b2)
    assert changes == [] and "excluded by default" in c.selection_note
    # not watchable: read only when named (a manifest without the list still diffs)
    a3 = write_snapshot(
        tmp_path / "a3.zst", [cm("a", "x")], manifest_extra={"notWatchable": ["deployments.apps"]}
    )
    changes, c = compare(a3, b2)
    assert changes == [] and "cannot be watched" in c.selection_note
    # this command's own -n leaves the cluster-scoped resource out: not reported
    a4 = write_snapshot(tmp_path / "a4.zst", [cm("a", "x")], options={"namespaces": ["a"]})
    b4 = write_snapshot(tmp_path / "b4.zst", [cm("a", "x"), ns_obj("a")], options={})
    changes, c = compare(a4, b4, namespaces=("a",))
    assert changes == [] and "namespaces" not in c.selection_note


def test_different_label_and_field_selectors(tmp_path: Path) -> None:
    objs = [cm("a", "x"), cm("a", "y"), cm("b", "z")]
    a = write_snapshot(tmp_path / "a.zst", objs)
    b = write_snapshot(
        tmp_path / "b.zst", [cm("a", "x", k="2")], options={"labelSelector": "app=x"}
    )
    c_ = write_snapshot(
        tmp_path / "c.zst",
        [cm("a", "x", k="2")],
        options={"fieldSelector": "metadata.namespace=a,metadata.name!=y"},
    )
    for other, opt in ((b, "-l app=x"), (c_, "--field-selector")):
        changes, c = compare(a, other)
        assert summary(changes) == {("modified", "ConfigMap", "a/x")}, opt
        assert opt in c.selection_note and "2 objects outside" in c.selection_note


def test_field_selector_evaluation() -> None:
    reqs = d.parse_field_selector(r"status.phase=Running,spec.nodeName!=,metadata.name=a\,b")
    pod = {"metadata": {"name": "a,b"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert d.field_selector_matches(reqs, pod)
    assert not d.field_selector_matches(reqs, {**pod, "spec": {}})
    assert d.field_selector_matches(
        d.parse_field_selector("spec.unschedulable=true"), {"spec": {"unschedulable": True}}
    )
    with pytest.raises(UsageError):
        d.parse_field_selector("nonsense")


def test_different_strip_and_secrets(tmp_path: Path) -> None:
    o = [cm("a", "x"), secret_obj("s", pw="sha256:00")]
    n = [cm("a", "x"), secret_obj("s", pw="sha256:00")]
    for x in n:
        x["metadata"]["annotations"] = {"team": "blue"}
    a = write_snapshot(
        tmp_path / "a.zst",
        [x for x in o if x["kind"] != "Secret"],
        options={"strip": ["metadata.annotations"], "secrets": "exclude"},
    )
    b = write_snapshot(tmp_path / "b.zst", n)
    changes, c = compare(a, b)
    assert changes == [] and c.skipped == []
    note = c.selection_note
    assert "different --secrets, --strip" in note
    assert "secrets (not selected by" in note and "--secrets exclude" in note
    assert "fields metadata.annotations (--strip of" in note
    r = _cli(str(a), str(b))
    assert r.code == 0, r.err  # left out by selection, not a partial comparison (3)


def test_plain_ndjson_side_has_an_unknown_selection(tmp_path: Path) -> None:
    a = write_snapshot(tmp_path / "a.zst", [cm("a", "x")], options={"namespaces": ["a"]})
    b = write_ndjson(tmp_path / "b.ndjson", [cm("a", "x"), cm("b", "y"), ns_obj("a")])
    changes, c = compare(a, b)
    assert changes == []
    note = c.selection_note
    assert note.startswith(f"{b} has no manifest, so what its dump selected is unknown")
    assert "1 object outside" in note and "Namespace (not selected by" in note
    # both plain: nothing known, nothing left out, nothing said
    changes, c = compare(write_ndjson(tmp_path / "c", [cm("a", "x")]), b)
    assert len(changes) == 2 and c.selection_note == ""


# ---------------------------------------------------------------- apiVersion only (17.10)


def widget_obj(version: str, name: str, color: str = "blue") -> dict[str, Any]:
    return {
        "apiVersion": f"demo.kstream.dev/{version}",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "a", "uid": f"uid-{name}"},
        "spec": {"color": color},
    }


@pytest.mark.parametrize("new_fmt", ["zst", "ndjson"])
def test_api_version_only_change_is_hidden(tmp_path: Path, new_fmt: str) -> None:
    a = write_snapshot(tmp_path / "a.zst", [widget_obj("v1", "same"), widget_obj("v1", "painted")])
    new = [widget_obj("v2", "same"), widget_obj("v2", "painted", color="red")]
    b = (
        write_snapshot(tmp_path / "b.zst", new)
        if new_fmt == "zst"
        else write_ndjson(tmp_path / "b.ndjson", new)
    )
    changes, c = compare(a, b)
    [ch] = changes  # matched across versions, the pure apiVersion change hidden
    assert (ch.change, ch.name, ch.version) == ("modified", "painted", "v2")
    assert {f.path for f in ch.fields} == {"spec.color", "apiVersion"}
    assert sum(c.api_version_only.values()) == 1 and c.total.unchanged == 1
    changes, c = compare(a, b, show_api_version_changes=True)
    assert summary(changes) == {
        ("modified", "Widget", "a/same"),
        ("modified", "Widget", "a/painted"),
    }
    same = next(ch for ch in changes if ch.name == "same")
    assert [(f.path, f.old, f.new) for f in same.fields] == [
        ("apiVersion", "demo.kstream.dev/v1", "demo.kstream.dev/v2")
    ]
    r = _cli(str(a), str(b), "--color", "never")
    assert r.code == 1 and "a/same" not in r.text
    assert "1 object differs only in apiVersion, hidden" in r.text
    r = _cli(str(a), str(b), "-o", "json")
    assert json.loads(r.out)["apiVersionOnly"] == 1
    r = _cli(str(a), str(b), "-o", "ndjson", "--show-api-version-changes")
    assert {json.loads(x)["name"] for x in r.out.splitlines()} == {"same", "painted"}
    # only the version changed: no differences at all
    b2 = write_snapshot(tmp_path / "b2.zst", [widget_obj("v2", "same")])
    a2 = write_snapshot(tmp_path / "a2.zst", [widget_obj("v1", "same")])
    r = _cli(str(a2), str(b2))
    assert r.code == 0 and r.out == b"" and "differs only in apiVersion" in r.err


# ---------------------------------------------------------------- long values (17.12)


def test_long_values_show_where_they_differ(tmp_path: Path) -> None:
    old_v = "a" * 4000 + "B" + "a" * 999
    new_v = "a" * 4000 + "C" + "a" * 999
    assert len(old_v) == len(new_v) == 5000
    text_old = "line one\n" + "b" * 4000 + "OLD" + "b" * 1000 + "\nlast\n"
    text_new = "line one\n" + "b" * 4000 + "NEW" + "b" * 1000 + "\nlast\n"
    a = write_snapshot(tmp_path / "a.zst", [cm("a", "x", big=old_v, text=text_old)])
    b = write_snapshot(tmp_path / "b.zst", [cm("a", "x", big=new_v, text=text_new)])
    r = _cli(str(a), str(b), "--color", "never")
    assert r.code == 1
    out = r.text
    assert "data.big: 5,000 → 5,000 chars, first difference at offset 4,000" in out
    minus = next(x for x in out.splitlines() if x.strip().startswith("- …"))
    plus = next(x for x in out.splitlines() if x.strip().startswith("+ …"))
    assert "aaaB" in minus and "C" not in minus
    assert "aaaC" in plus and "B" not in plus
    # a long line of a multi-line value: the unified diff shows its change too
    assert any("bbbOLD" in x and "column 4,000" in x for x in out.splitlines())
    assert any("bbbNEW" in x and "column 4,000" in x for x in out.splitlines())


def test_dump_like_reads_the_cluster_as_the_snapshot_was_dumped(tmp_path: Path) -> None:
    """diff SNAPSHOT --live: the live dump takes the snapshot's selection where
    the command line makes none (its field selector always), its Secret
    handling and --strip; an HMAC snapshot needs its key, an interrupted one is
    refused."""
    from kstream.cluster.plan import LiveOptions

    opts = {"resources": ["configmaps"], "namespaces": ["a"], "labelSelector": "x=1",
            "fieldSelector": "metadata.name!=z", "strip": ["metadata.labels"]}  # fmt: skip
    snap = open_snapshot(str(write_snapshot(tmp_path / "s.zst", [cm("a", "c")], options=opts)))
    live = LiveOptions()
    mine = d.Settings(scope=Scope(namespaces=("b",)), secret_key=b"k")
    dump, settings, inherited = d.dump_like(snap, mine, live, "OUT")
    assert inherited == ["resources=configmaps", "selector=x=1"]
    assert dump.scope == Scope(("configmaps",), (), ("b",), "x=1", "metadata.name!=z")
    assert settings.scope == Scope(("configmaps",), (), ("b",), "x=1")
    assert (dump.output, dump.fmt, dump.level, dump.live) == ("OUT", "zst", 1, live)
    assert (dump.secrets, dump.secret_key, dump.strip) == (
        "redact",
        None,
        (("metadata", "labels"),),
    )
    hmac = {"secretDigest": "hmac-sha256"}
    snap = open_snapshot(str(write_snapshot(tmp_path / "h.zst", [cm("a", "c")], options=hmac)))
    assert d.dump_like(snap, mine, live, "OUT")[0].secret_key == b"k"
    with pytest.raises(UsageError, match="HMAC-redacted Secrets: give the same key"):
        d.dump_like(snap, d.Settings(), live, "OUT")
    cut = write_snapshot(tmp_path / "i.zst", [cm("a", "c")], status="interrupted")
    with pytest.raises(SnapshotError, match="the dump was interrupted"):
        d.dump_like(open_snapshot(str(cut)), mine, live, "OUT")


# ---------------------------------------------------------------- diff --live without a manifest (17.8)


def test_namespaces_held_by_a_snapshot_without_a_manifest(tmp_path: Path) -> None:
    """diff FILE --live reads the cluster only in FILE's namespaces when FILE has
    no manifest and every object it holds is in a namespace (a dump with -n)."""
    from kstream.diff import namespaces_held as _namespaces_held

    def held(name: str, objs: list[dict[str, Any]]) -> tuple[str, ...]:
        return _namespaces_held(open_snapshot(str(write_ndjson(tmp_path / name, objs))))

    assert held("a.ndjson", [cm("b", "x"), cm("a", "y"), cm("b", "z")]) == ("a", "b")
    assert held("b.ndjson", [cm("a", "x"), ns_obj("a")]) == ()  # a cluster-scoped object
    nameless = cm("a", "y")
    del nameless["metadata"]["namespace"]  # a kind of an unknown scope, with no namespace
    assert held("c.ndjson", [cm("a", "x"), nameless]) == ()
