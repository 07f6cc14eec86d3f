"""Output names and replacing outputs (dump -o, --format, --force).

The rules: kstream writes NAME.ndjson (.jsonl), NAME.ndjson.zst (.zst,
.zstd), DIR/ (or an existing directory) and - (stdout); any other name is refused
(exit 2) with that list, before anything is read. --force replaces a file, or a
directory that holds a kstream snapshot and nothing else; a directory with other
content, `.` and the directories above it are refused (exit 2) with or without
--force. A replaced snapshot is swapped out only once the new one is complete."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from kstream.errors import OutputError, UsageError
from kstream.store.format import Entry
from kstream.store.outputs import check_output, detect_format, output_format
from kstream.store.snapshot import open_snapshot
from kstream.store.writers import DirectoryWriter
from tests.conftest import NOWHERE, VENV_BIN, Cluster, Result, kstream, one_line


def tree(d: Path) -> dict[str, str]:
    """Every file below d (relative name -> sha256), directories included by name."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


# ---------------------------------------------------------------- names


KNOWN = {
    "-": "ndjson",
    "snap.ndjson": "ndjson",
    "snap.jsonl": "ndjson",
    "SNAP.NDJSON": "ndjson",
    "snap.ndjson.zst": "zst",
    "snap.zst": "zst",
    "snap.zstd": "zst",
    "snapdir/": "dir",
    "a.b/": "dir",
}
REFUSED = [
    "x.json",  # one JSON document is not what kstream writes
    "x.ndjson.gz",
    "x.yaml",
    "x.yml",
    "x.gz",
    "x.tar",
    "x.txt",
    "newdir",
    "snap.2026-11-29",
]


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_names_keep_their_format(name: str) -> None:
    assert detect_format(name) == KNOWN[name]


def test_an_existing_directory_is_a_directory_snapshot(tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir()
    assert detect_format(str(tmp_path / "existing")) == "dir"


@pytest.mark.parametrize("name", REFUSED)
def test_other_names_are_refused_with_the_list(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as e:
        detect_format(str(tmp_path / name))
    msg = e.value.message
    if name.endswith(".json"):
        assert "not one JSON document" in msg and "x.ndjson" in msg and "x.jsonl" in msg
    elif "." in name:
        assert "does not write" in msg and Path(name).suffix in msg
        for known in (".ndjson", ".ndjson.zst", "DIR/", "- ("):
            assert known in msg, msg
    else:  # no extension: say what to write instead
        assert f"{name}/" in msg and f"{name}.ndjson" in msg


@pytest.mark.parametrize("name", REFUSED)
def test_refused_names_exit_2_before_connecting(name: str, tmp_path: Path) -> None:
    r = kstream("dump", "-o", str(tmp_path / name), env=NOWHERE)
    one_line(r, 2, "-o")
    assert list(tmp_path.iterdir()) == []


def test_format_flag_allows_any_name_but_not_a_contradiction() -> None:
    assert output_format("snapshot", "zst") == "zst"
    assert output_format("backup.data", "ndjson") == "ndjson"
    assert output_format("snap.zst", "zst") == "zst"
    with pytest.raises(UsageError, match="names a zstd archive, but --format is ndjson"):
        output_format("snap.zst", "ndjson")
    with pytest.raises(UsageError, match="names a directory"):
        output_format("d/", "zst")
    with pytest.raises(UsageError, match="no output name"):
        output_format("", "auto")


@pytest.mark.cluster
@pytest.mark.parametrize("name", ["x.ndjson.gz", "x.yaml", "newdir"])
def test_names_that_lie_write_nothing(cluster: Cluster, tmp_path: Path, name: str) -> None:
    """Before: these wrote plain NDJSON under a name that says otherwise (exit 0)."""
    r = kstream(
        "dump", "-q", "-n", "demo-0", "-o", str(tmp_path / name), kubeconfig=cluster.kubeconfig
    )
    one_line(r, 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("name", "fmt"),
    [("s.ndjson", "ndjson"), ("s.ndjson.zst", "zst"), ("s.zst", "zst"), ("d/", "dir")],
)
def test_known_names_still_write(cluster: Cluster, tmp_path: Path, name: str, fmt: str) -> None:
    out = f"{tmp_path}/{name}"  # keeps the slash of d/
    r = kstream("dump", "-q", "-n", "demo-0", "-r", "cm", "-o", out, kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    snap = open_snapshot(out.rstrip("/"))
    assert snap.format == fmt
    assert len(list(snap.lines())) > 0


# ---------------------------------------------------------------- replacing directories


def kstream_snapshot(d: Path, marker: str = "old") -> Path:
    """A minimal kstream directory snapshot: manifest.json and the file it lists."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "core_v1_configmaps.ndjson").write_text(json.dumps({"marker": marker}) + "\n")
    manifest = {
        "format": "kstream-archive",
        "version": 1,
        "status": "complete",
        "resources": [{"file": "core_v1_configmaps.ndjson", "resource": "configmaps"}],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def foreign_only(d: Path) -> None:
    d.mkdir()
    (d / "notes.txt").write_text("my notes\n")


def snapshot_plus_notes(d: Path) -> None:
    kstream_snapshot(d)
    (d / "notes.txt").write_text("my notes\n")


def older_snapshots_inside(d: Path) -> None:
    d.mkdir()
    kstream_snapshot(d / "2026-11-28")
    kstream_snapshot(d / "2026-11-27")


def foreign_manifest(d: Path) -> None:
    d.mkdir()
    (d / "manifest.json").write_text('{"name": "my web app"}')
    (d / "index.html").write_text("<html/>")


def snapshot_with_subdirectory(d: Path) -> None:
    kstream_snapshot(d)
    (d / "core_v1_configmaps.ndjson").unlink()
    (d / "core_v1_configmaps.ndjson").mkdir()
    (d / "core_v1_configmaps.ndjson" / "data").write_text("x")


FOREIGN = {
    "foreign-files": foreign_only,
    "snapshot-plus-notes": snapshot_plus_notes,
    "older-snapshots-inside": older_snapshots_inside,
    "foreign-manifest": foreign_manifest,
    "listed-name-is-a-directory": snapshot_with_subdirectory,
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
@pytest.mark.parametrize("force", [True, False])
def test_directory_with_foreign_content_is_refused(case: str, force: bool, tmp_path: Path) -> None:
    d = tmp_path / "out"
    FOREIGN[case](d)
    before = tree(d)
    with pytest.raises(UsageError, match="not a kstream snapshot directory"):
        check_output(f"{d}/", "dir", force)
    with pytest.raises(UsageError):
        DirectoryWriter(f"{d}/", force)
    r = kstream("dump", "-o", f"{d}/", *(["--force"] if force else []), env=NOWHERE)
    one_line(r, 2, "not a kstream snapshot directory", "even with --force")
    assert "use --force" not in r.err
    assert tree(d) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.cluster
@pytest.mark.parametrize("case", ["foreign-files", "snapshot-plus-notes", "older-snapshots-inside"])
def test_force_never_deletes_foreign_content(cluster: Cluster, tmp_path: Path, case: str) -> None:
    """Before: -o DIR/ --force replaced the whole directory, whatever it held."""
    d = tmp_path / "out"
    FOREIGN[case](d)
    before = tree(d)
    r = kstream(
        "dump", "-q", "-n", "demo-0", "-o", f"{d}/", "--force", kubeconfig=cluster.kubeconfig
    )
    one_line(r, 2, "not a kstream snapshot directory")
    assert tree(d) == before


def test_snapshot_directory_needs_force(tmp_path: Path) -> None:
    d = kstream_snapshot(tmp_path / "snap")
    with pytest.raises(OutputError, match="holds a kstream snapshot; use --force"):
        check_output(str(d), "dir", False)
    check_output(str(d), "dir", True)  # allowed
    check_output(str(tmp_path / "empty/"), "dir", False)  # a new name
    (tmp_path / "empty").mkdir()
    check_output(str(tmp_path / "empty/"), "dir", False)  # an empty directory


@pytest.mark.parametrize("name", [".", "./", "..", "../", "/", "sub/.."])
@pytest.mark.parametrize("force", [True, False])
def test_current_directory_and_above_are_refused(name: str, force: bool, tmp_path: Path) -> None:
    """Before: -o . --force crashed (exit 70) after the whole dump."""
    work = tmp_path / "work"
    kstream_snapshot(work)  # even a snapshot: it is where the user stands
    (work / "sub").mkdir()
    before = tree(work)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(NOWHERE)
    p = subprocess.run(
        [str(VENV_BIN / "kstream"), "dump", "-o", name, *(["--force"] if force else [])],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    one_line(Result(p.returncode, p.stdout.encode(), p.stderr), 2, "current directory")
    assert tree(work) == before


@pytest.mark.cluster
def test_dot_force_is_a_clean_error_on_a_cluster(cluster: Cluster, tmp_path: Path) -> None:
    kstream_snapshot(tmp_path)
    before = tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    p = subprocess.run(
        [str(VENV_BIN / "kstream"), "dump", "-q", "-n", "demo-0", "-o", ".", "--force"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    one_line(Result(p.returncode, p.stdout.encode(), p.stderr), 2, "current directory")
    assert tree(tmp_path) == before


@pytest.mark.cluster
def test_force_replaces_a_kstream_snapshot(cluster: Cluster, tmp_path: Path) -> None:
    d = tmp_path / "snap"
    args = ("dump", "-q", "-n", "demo-0", "-r", "configmaps", "-o", f"{d}/")
    r = kstream(*args, kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    r = kstream(*args, kubeconfig=cluster.kubeconfig)
    one_line(r, 7, "holds a kstream snapshot", "--force")
    (d / "core_v1_configmaps.ns-demo-0.ndjson").write_text("")  # make the old one different
    r = kstream(*args, "--force", kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    snap = open_snapshot(str(d))
    assert len(list(snap.lines())) > 0  # the new snapshot, verified against its manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]  # nothing left behind


# ---------------------------------------------------------------- the swap


def write_snapshot(w: DirectoryWriter, marker: str) -> None:
    spool = w.new_spool("core_v1_configmaps.ndjson", None)
    spool.write(json.dumps({"marker": marker}).encode())
    entry = Entry(group="", version="v1", resource="configmaps", kind="ConfigMap",
                  namespaced=True, namespace=None, status="complete", objects=1)  # fmt: skip
    w.append(entry, spool)


MANIFEST = {"format": "kstream-archive", "version": 1, "status": "complete"}


def markers(d: Path) -> list[str]:
    snap = open_snapshot(str(d))
    return [json.loads(line)["marker"] for line in snap.lines(verify=False)]


def test_old_snapshot_stays_until_the_new_one_is_complete(tmp_path: Path) -> None:
    d = kstream_snapshot(tmp_path / "snap")
    before = tree(d)
    w = DirectoryWriter(f"{d}/", True)
    write_snapshot(w, "new")
    assert tree(d) == before  # written beside it, in a temporary sibling
    assert w.spool_dir.parent == d.parent
    assert w.finish(MANIFEST, interrupted=False) == str(d)
    assert markers(d) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]


def test_interrupted_or_aborted_dump_leaves_the_old_snapshot(tmp_path: Path) -> None:
    d = kstream_snapshot(tmp_path / "snap")
    before = tree(d)
    w = DirectoryWriter(f"{d}/", True)
    write_snapshot(w, "new")
    partial = w.finish(MANIFEST, interrupted=True)
    assert tree(d) == before and partial.endswith("snap.partial")
    w = DirectoryWriter(f"{d}/", True)
    write_snapshot(w, "new")
    w.abort()
    assert tree(d) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap", "snap.partial"]


def test_failed_swap_puts_the_old_snapshot_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = kstream_snapshot(tmp_path / "snap")
    before = tree(d)
    w = DirectoryWriter(f"{d}/", True)
    write_snapshot(w, "new")
    real = os.replace

    def replace(src: object, dst: object) -> None:
        if Path(str(src)) == w.spool_dir:
            raise OSError(28, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match="No space left"):
        w.finish(MANIFEST, interrupted=False)
    monkeypatch.undo()
    assert tree(d) == before
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir() if "kstream-old" in p.name) == []


def test_directory_that_changed_during_the_dump_is_left_alone(tmp_path: Path) -> None:
    d = kstream_snapshot(tmp_path / "snap")
    w = DirectoryWriter(f"{d}/", True)
    write_snapshot(w, "new")
    (d / "notes.txt").write_text("written while the dump ran\n")
    before = tree(d)
    with pytest.raises(OutputError, match="changed during the dump"):
        w.finish(MANIFEST, interrupted=False)
    assert tree(d) == before
    assert markers(tmp_path / "snap.partial") == ["new"]
