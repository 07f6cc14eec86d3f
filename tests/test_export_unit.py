"""kstream export without a cluster: the layout, the cleaning, what is left out,
the bytes (stable, and a changed object changes only its file), the directory
rules (foreign files never touched), Secrets of redacted snapshots, selection."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kstream import neat
from kstream.export import file_name
from tests.conftest import kstream, one_line
from tests.journalmaker import write_base

DIGEST = "sha256:" + "0" * 64


def ns_obj(name: str, manager: str = "kubectl") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": "u-ns",
            "resourceVersion": "5",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name},
            "managedFields": [{"manager": manager, "operation": "Update"}],
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def cm(name: str, ns: str = "shop", **data: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "namespace": ns,
            "name": name,
            "uid": f"u-{name}",
            "labels": {"app": "web"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "note": "kept",
            },
        },
        "data": data or {"conf": "a = 1\nb = 2\n"},
    }


def objects() -> list[dict[str, Any]]:
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u"}
    return [
        ns_obj("shop"),
        ns_obj("kube-system", manager="kube-apiserver"),
        cm("web"),
        cm("kube-root-ca.crt", **{"ca.crt": "PEM"}),
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-1",
                "namespace": "shop",
                "ownerReferences": [owner | {"controller": True}],
            },
            "spec": {"replicas": 1},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "ownerReferences": [owner],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                        {"spec": {"ports": [{"port": 81, "nodePort": 30081}]}}
                    )
                },
            },
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.0.0.5",
                "clusterIPs": ["10.0.0.5"],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30081}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "tok", "namespace": "shop"},
            "type": "kubernetes.io/service-account-token",
        },
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "shop"},
            "reason": "x",
        },
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l", "namespace": "shop"},
            "spec": {},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"},
            },
        },
        {
            "apiVersion": "example.com/v1",
            "kind": "Thing",
            "metadata": {"name": "everywhere", "resourceVersion": "1"},
            "spec": {"z": 1, "a": {"y": None, "b": [3, 1]}},
        },
    ]


def write_ndjson(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_layout_cleaning_and_what_is_left_out(tmp_path: Path) -> None:
    src = write_ndjson(tmp_path / "in.ndjson", objects())
    r = kstream("export", str(src), "-o", f"{tmp_path}/out/")
    assert r.code == 0, r.err
    files = tree(tmp_path / "out")
    assert sorted(files) == [
        "_cluster/namespaces/shop.yaml",
        "_cluster/things.example.com/everywhere.yaml",
        "kstream-export.index",
        "shop/configmaps/web.yaml",
        "shop/services/web.yaml",
    ]
    assert files["shop/configmaps/web.yaml"] == (
        b"apiVersion: v1\n"
        b"kind: ConfigMap\n"
        b"metadata:\n"
        b"  name: web\n"
        b"  namespace: shop\n"
        b"  annotations:\n"
        b"    note: kept\n"
        b"  labels:\n"
        b"    app: web\n"
        b"data:\n"
        b"  conf: |\n"
        b"    a = 1\n"
        b"    b = 2\n"
    )
    assert files["_cluster/namespaces/shop.yaml"] == (
        b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
    )
    # allocated fields gone, the node port the last-applied configuration asked for kept
    assert yaml.safe_load(files["shop/services/web.yaml"]) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30081}]},
    }
    assert files["_cluster/things.example.com/everywhere.yaml"] == (
        b"apiVersion: example.com/v1\n"
        b"kind: Thing\n"
        b"metadata:\n"
        b"  name: everywhere\n"
        b"spec:\n"
        b"  a:\n"
        b"    b:\n"
        b"    - 3\n"
        b"    - 1\n"
        b'    "y": null\n'
        b"  z: 1\n"
    )
    assert files["kstream-export.index"].decode().splitlines()[1:] == [
        "_cluster/namespaces/shop.yaml",
        "shop/configmaps/web.yaml",
        "shop/services/web.yaml",
        "_cluster/things.example.com/everywhere.yaml",
    ]
    assert "exported 4 objects" in r.err
    for words in (
        "1 controller-owned (ownerReferences controller=true): replicasets.apps shop/web-1",
        "1 ServiceAccount token Secrets: secrets shop/tok",
        "1 kube-root-ca.crt ConfigMaps: configmaps shop/kube-root-ca.crt",
        "1 Endpoints/EndpointSlices managed by the control plane: endpoints shop/web",
        "1 Events: events shop/e1",
        "1 runtime state (Leases, Nodes, CSINodes, VolumeAttachments): leases.coordination.k8s.io",
        "1 made by the control plane (every field manager a control-plane component): "
        "namespaces kube-system",
    ):
        assert words in r.err, (words, r.err)


def test_keep_and_all(tmp_path: Path) -> None:
    src = write_ndjson(tmp_path / "in.ndjson", objects())
    r = kstream("export", str(src), "-o", f"{tmp_path}/out/", "--keep", "--all", "-q")
    assert r.code == 0 and r.err == "", r.err
    files = tree(tmp_path / "out")
    assert len(files) == len(objects()) + 1
    ns = yaml.safe_load(files["_cluster/namespaces/shop.yaml"])
    assert ns == {
        k: ns_obj("shop")[k] for k in ("apiVersion", "kind", "metadata", "spec", "status")
    }
    assert "shop/replicasets.apps/web-1.yaml" in files
    assert "shop/events/e1.yaml" in files


def test_reexport_same_bytes_and_a_change_changes_one_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    objs = [ns_obj("shop"), *(cm(f"c{i}", v=str(i)) for i in range(5))]
    src = write_ndjson(tmp_path / "in.ndjson", objs)
    assert kstream("export", str(src), "-o", f"{out}/").code == 0
    first = tree(out)
    mtimes = {p: os.stat(out / p).st_mtime_ns for p in first}
    r = kstream("export", str(src), "-o", f"{out}/")
    one_line(r, 7, "holds a kstream export; use --force")
    r = kstream("export", str(src), "-o", f"{out}/", "--force")
    assert r.code == 0, r.err
    assert "0 files written, 6 unchanged, 0 removed" in r.err
    assert tree(out) == first
    assert {p: os.stat(out / p).st_mtime_ns for p in first if p != "kstream-export.index"} == {
        p: t for p, t in mtimes.items() if p != "kstream-export.index"
    }
    # one object changed (and its keys in another order), one gone
    objs[2] = cm("c1", v="changed")
    objs[2]["metadata"] = dict(reversed(objs[2]["metadata"].items()))
    del objs[5]
    write_ndjson(src, objs)
    r = kstream("export", str(src), "-o", f"{out}/", "--force")
    assert r.code == 0, r.err
    assert "1 files written, 4 unchanged, 1 removed" in r.err
    second = tree(out)
    changed = {p for p in first.keys() | second.keys() if first.get(p) != second.get(p)}
    assert changed == {"shop/configmaps/c1.yaml", "shop/configmaps/c4.yaml", "kstream-export.index"}
    assert "shop/configmaps/c4.yaml" not in second
    assert b"v: changed" in second["shop/configmaps/c1.yaml"]


def test_foreign_files_are_never_changed(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    (out / ".git").mkdir(parents=True)
    (out / "README.md").write_text("mine\n")
    src = write_ndjson(tmp_path / "in.ndjson", [cm("a"), cm("b")])
    one_line(kstream("export", str(src), "-o", f"{out}/"), 7, "holds files; use --force")
    r = kstream("export", str(src), "-o", f"{out}/", "--force")
    assert r.code == 0, r.err
    assert (out / "README.md").read_text() == "mine\n"
    (out / "shop" / "configmaps" / "notes.txt").write_text("mine too\n")
    # b is no longer exported: its file goes, the foreign file beside it stays
    write_ndjson(src, [cm("a")])
    assert kstream("export", str(src), "-o", f"{out}/", "--force").code == 0
    assert not (out / "shop" / "configmaps" / "b.yaml").exists()
    assert (out / "shop" / "configmaps" / "notes.txt").read_text() == "mine too\n"
    # a file the export did not write where an object goes: refused, nothing changed
    (out / "shop" / "configmaps" / "c.yaml").write_text("hand-written\n")
    before = tree(out)
    write_ndjson(src, [cm("a", v="new"), cm("c")])
    r = kstream("export", str(src), "-o", f"{out}/", "--force")
    one_line(r, 2, "did not write", "shop/configmaps/c.yaml", "nothing was changed")
    assert tree(out) == before
    assert not any(p.name.startswith(".repo.kstream-export") for p in tmp_path.iterdir())


def test_output_names_refused(tmp_path: Path) -> None:
    src = write_ndjson(tmp_path / "in.ndjson", [cm("a")])
    one_line(kstream("export", str(src), "-o", "."), 2, "current directory")
    one_line(kstream("export", str(src), "-o", "s3://bucket/x/"), 2, "local directory")
    (tmp_path / "file").write_text("")
    one_line(kstream("export", str(src), "-o", str(tmp_path / "file")), 7, "a file is in the way")
    one_line(kstream("export", str(tmp_path / "missing.ndjson"), "-o", f"{tmp_path}/o/"), 6)
    assert not (tmp_path / "o").exists()


def secrets_archive(path: Path, mode: str, value: str) -> Path:
    write_base(
        path,
        {
            "v1/secrets": [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "db", "namespace": "shop"},
                    "type": "Opaque",
                    "data": {"password": value},
                }
            ],
            "v1/configmaps": [cm("web")],
        },
        options={"secrets": mode},
    )
    return path


def test_redacted_secrets_are_not_written(tmp_path: Path) -> None:
    snap = secrets_archive(tmp_path / "redacted.ndjson.zst", "redact", DIGEST)
    r = kstream("export", str(snap), "-o", f"{tmp_path}/out/", "-q")
    assert (r.code, r.err) == (3, "")  # -q: errors only, the exit code says it
    assert sorted(tree(tmp_path / "out")) == ["kstream-export.index", "shop/configmaps/web.yaml"]
    r = kstream("export", str(snap), "-o", f"{tmp_path}/said/")
    [line] = [ln for ln in r.err.splitlines() if "warning" in ln]
    assert r.code == 3 and "1 Secrets not written" in line, r.err
    assert "--secrets include" in line and "--secret-placeholders" in line
    r = kstream("export", str(snap), "-o", f"{tmp_path}/ph/", "--secret-placeholders")
    assert r.code == 0, r.err
    assert "1 Secrets written with placeholders" in r.err
    doc = yaml.safe_load((tmp_path / "ph" / "shop" / "secrets" / "db.yaml").read_text())
    assert doc["data"] == {"password": DIGEST}
    # a Secret without values has nothing redacted: written
    empty = secrets_archive(tmp_path / "empty.ndjson.zst", "redact", DIGEST)
    write_base(
        empty,
        {"v1/secrets": [{"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "e", "namespace": "shop"}, "type": "Opaque"}]},
        options={"secrets": "redact"},
    )  # fmt: skip
    r = kstream("export", str(empty), "-o", f"{tmp_path}/e/", "-q")
    assert r.code == 0, r.err
    assert "shop/secrets/e.yaml" in tree(tmp_path / "e")
    # a snapshot without a manifest: redacted values are recognised
    src = write_ndjson(
        tmp_path / "r.ndjson",
        [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "a"},
          "data": {"k": DIGEST}}],
    )  # fmt: skip
    r = kstream("export", str(src), "-o", f"{tmp_path}/n/")
    assert r.code == 3 and "warning: 1 Secrets not written" in r.err, r.err


def test_included_secrets_are_written_as_they_were(tmp_path: Path) -> None:
    snap = secrets_archive(tmp_path / "raw.ndjson.zst", "include", "czNjcjN0")
    r = kstream("export", str(snap), "-o", f"{tmp_path}/out/", "--format", "json")
    assert r.code == 0, r.err
    path = tmp_path / "out" / "shop" / "secrets" / "db.json"
    assert json.loads(path.read_text())["data"] == {"password": "czNjcjN0"}
    assert path.stat().st_mode & 0o777 == 0o600
    text = (tmp_path / "out" / "shop" / "configmaps" / "web.json").read_text()
    assert list(json.loads(text)) == ["apiVersion", "kind", "metadata", "data"]


def test_selection_flags(tmp_path: Path) -> None:
    objs = [ns_obj("shop"), ns_obj("dev"), cm("a"), cm("b", ns="dev")]
    objs[3]["metadata"]["labels"] = {"app": "db"}
    src = write_ndjson(tmp_path / "in.ndjson", objs)

    def files(*args: str) -> list[str]:
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        r = kstream("export", str(src), "-o", f"{out}/", "-q", *args)
        assert r.code == 0, r.err
        return sorted(p for p in tree(out) if p != "kstream-export.index")

    assert files("-n", "dev") == ["dev/configmaps/b.yaml"]
    assert files("-r", "cm") == ["dev/configmaps/b.yaml", "shop/configmaps/a.yaml"]
    assert files("-l", "app=web") == ["shop/configmaps/a.yaml"]
    assert files("--exclude", "configmaps") == [
        "_cluster/namespaces/dev.yaml",
        "_cluster/namespaces/shop.yaml",
    ]
    assert files("--field-selector", "metadata.name=b") == ["dev/configmaps/b.yaml"]


def test_file_names() -> None:
    assert file_name("system:controller:x", ".yaml") == "system:controller:x.yaml"
    for bad in ("", ".", "..", "a/b", "x" * 253):
        name = file_name(bad, ".yaml")
        assert "/" not in name and name not in (".yaml", "..yaml")
        assert len(name.encode()) <= 255 and name.endswith(".yaml")
    assert file_name("a/b", ".yaml") != file_name("a_b", ".yaml")


@pytest.mark.parametrize(
    ("kind", "group", "spec", "expected"),
    [
        ("PersistentVolumeClaim", "", {"volumeName": "pv-1", "resources": {}}, {"resources": {}}),
        ("Pod", "", {"nodeName": "n1", "containers": []}, {"containers": []}),
        ("Service", "", {"clusterIP": "None", "clusterIPs": ["None"]},
         {"clusterIP": "None", "clusterIPs": ["None"]}),
        ("Service", "", {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]},
         {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        ("Job", "batch", {"selector": {"matchLabels": {"controller-uid": "u"}},
                          "template": {"metadata": {"labels": {"controller-uid": "u", "a": "b"}}}},
         {"template": {"metadata": {"labels": {"a": "b"}}}}),
        ("Job", "batch", {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}}},
         {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}}}),
    ],
)  # fmt: skip
def test_server_filled_fields(
    kind: str, group: str, spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    neat.clean(doc, group)
    assert doc["spec"] == expected


def test_control_plane_made_needs_managed_fields() -> None:
    md: dict[str, Any] = {"name": "admin"}
    assert not neat.made_by_control_plane(md)  # dumped with --clean: nothing tells
    md["managedFields"] = [{"manager": "kube-apiserver"}]
    assert neat.made_by_control_plane(md)
    md["managedFields"].append({"manager": "kube-controller-manager", "subresource": "status"})
    md["managedFields"].append({"manager": "clusterrole-aggregation-controller"})
    assert neat.made_by_control_plane(md)
    md["managedFields"].append({"manager": "kubectl-edit"})
    assert not neat.made_by_control_plane(md)


def test_a_partial_snapshot_exports_what_it_holds_and_says_so(tmp_path: Path) -> None:
    snap = tmp_path / "partial.ndjson.zst"
    write_base(snap, {"v1/configmaps": [cm("web")], "v1/namespaces": []}, failed=("v1/namespaces",))
    r = kstream("export", str(snap), "-o", f"{tmp_path}/out/", "-q")
    assert (r.code, r.err) == (3, "")  # -q: errors only, the exit code says it
    r = kstream("export", str(snap), "-o", f"{tmp_path}/said/")
    assert r.code == 3 and "warning: namespaces: failed in the snapshot" in r.err, r.err
    assert "shop/configmaps/web.yaml" in tree(tmp_path / "out")


def test_a_journal_at_an_instant(tmp_path: Path) -> None:
    from tests.journalmaker import Journal, ev

    j = Journal(tmp_path / "J")
    write_base(
        j.base, {"v1/configmaps": [cm("a", v="1"), cm("b", v="1")]}, options={"secrets": "include"}
    )
    j.segment(
        1,
        [
            [ev("2026-11-29T13:00:01.000000Z", "MODIFIED", "v1/configmaps", cm("a", v="2"))],
            [ev("2026-11-29T13:00:05.000000Z", "DELETED", "v1/configmaps", cm("b"))],
        ],
    )
    r = kstream("export", f"{j.root}/@2026-11-29T13:00:02Z", "-o", f"{tmp_path}/then/", "-q")
    assert r.code == 0, r.err
    then = tree(tmp_path / "then")
    assert sorted(then) == [
        "kstream-export.index",
        "shop/configmaps/a.yaml",
        "shop/configmaps/b.yaml",
    ]
    assert b'v: "2"' in then["shop/configmaps/a.yaml"]
    r = kstream("export", f"{j.root}/", "-o", f"{tmp_path}/now/", "-q")
    assert r.code == 0, r.err
    assert sorted(tree(tmp_path / "now")) == ["kstream-export.index", "shop/configmaps/a.yaml"]


def test_memory_does_not_grow_with_the_objects(tmp_path: Path) -> None:
    """Python's peak allocation (tracemalloc) exporting 10x more objects stays
    within a fraction of a MiB: each object is written and forgotten."""
    import tracemalloc

    from kstream.export import ExportSettings, export

    def peak(n: int) -> int:
        src = tmp_path / f"in-{n}.ndjson"
        with open(src, "w") as f:
            for i in range(n):
                o = cm(f"cm-{i:06d}", ns=f"ns-{i // 100}", conf="x = 1\n" * 800)
                f.write(json.dumps(o) + "\n")
        tracemalloc.start()
        try:
            result = export(ExportSettings(str(src), f"{tmp_path}/out-{n}/"))
            top = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.objects == n
        return top

    # objects of ~5 KB, so that even the small run fills the reader's 1 MiB chunks
    # (a bounded peak that a small file would not reach), and one run first so
    # that neither measured run counts the imports
    peak(50)
    small, big = peak(500), peak(5000)
    assert big < small + 512 * 1024, (small, big)
