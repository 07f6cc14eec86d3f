"""Staging directories a killed run left beside its output (kstream/store/staging.py):
the next run that writes the same target removes those no live run holds,
and nothing else. Without a cluster: the writers are driven directly, a
child process holds a writer until it is killed with SIGKILL, and export
runs as the command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kstream.printable import human_bytes
from kstream.store import staging
from kstream.store.format import Entry
from kstream.store.snapshot import open_snapshot
from kstream.store.writers import ArchiveWriter, DirectoryWriter, NdjsonWriter, Writer
from tests.conftest import kstream

OLD = 3600.0  # seconds: a directory last changed an hour ago


def leftover(parent: Path, name: str, rand: str = "abcd1234", size: int = 4096) -> Path:
    """A staging directory as a killed dump leaves it: a file of `size` bytes
    in a subdirectory, everything last changed an hour ago."""
    d = parent / f".{name}.{rand}.kstream-tmp"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "u1.ndjson").write_bytes(b"x" * size)
    age(d)
    return d


def age(d: Path, seconds: float = OLD) -> None:
    t = time.time() - seconds
    os.utime(d, (t, t))


def dot_names(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def write_one(w: Writer) -> str:
    sp = w.new_spool("u0.ndjson", None)
    sp.write(b'{"a":1}')
    e = Entry("", "v1", "configmaps", "ConfigMap", True, None, "complete", "watch-list", "1",
              sp.objects, sp.size, 0.1, 0, None, None, sp.sha.hexdigest())  # fmt: skip
    w.append(e, sp)
    return w.finish({"format": "kstream-archive", "version": 1, "status": "complete"}, False)


WRITERS: dict[str, tuple[str, Callable[..., Writer]]] = {
    "zst": ("snap.zst", lambda p, **k: ArchiveWriter(p, False, 1, {}, **k)),
    "ndjson": ("snap.ndjson", lambda p, **k: NdjsonWriter(p, False, **k)),
    "dir": ("snapdir", lambda p, **k: DirectoryWriter(p, False, **k)),
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_next_writer_removes_only_stale_staging_of_its_target(tmp_path: Path, fmt: str) -> None:
    """Removed: the stale one (unlocked, old) of the same target. Kept: one a
    live run holds (locked, old), a fresh one (unlocked, 1 s old), another
    target's, names that only look alike, a file and a symlink with the right
    name (and the directory the symlink points to)."""
    name, make = WRITERS[fmt]
    stale = leftover(tmp_path, name, "stale001")
    held = leftover(tmp_path, name, "held0001")
    fresh = leftover(tmp_path, name, "fresh001")
    age(fresh, 1)
    other = leftover(tmp_path, "other.zst", "other001")
    longer = leftover(tmp_path, name + ".x", "longer01")  # target "snap.zst.x"
    short = tmp_path / f".{name}.abc.kstream-tmp"  # not mkdtemp's eight characters
    short.mkdir()
    age(short)
    tail = tmp_path / f".{name}.tail0001.kstream-tmp.keep"
    tail.mkdir()
    age(tail)
    (tmp_path / f".{name}.file0001.kstream-tmp").write_bytes(b"mine")
    elsewhere = leftover(tmp_path / "elsewhere", "x", "away0001")
    (tmp_path / f".{name}.link0001.kstream-tmp").symlink_to(elsewhere)
    before = dot_names(tmp_path)
    notes: list[str] = []
    fd = staging.lock(held)
    try:
        w = make(str(tmp_path / name), note=notes.append)
        assert w.spool_dir.name != stale.name
        dest = write_one(w)
    finally:
        os.close(fd)
    assert len(list(open_snapshot(dest).lines())) == 1
    assert dot_names(tmp_path) == sorted(set(before) - {stale.name})
    assert held.is_dir() and fresh.is_dir() and other.is_dir() and longer.is_dir()
    assert (elsewhere / "sub" / "u1.ndjson").stat().st_size == 4096
    assert notes == [
        f"note: removed 1 staging directory of killed runs beside {tmp_path / name} (4.0 KiB freed)"
    ]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_writer_holds_its_staging_directory_locked_until_it_is_gone(
    tmp_path: Path, fmt: str
) -> None:
    """While the writer writes, its staging directory is flocked (another
    run's cleanup cannot take it); after finish it is gone or renamed and the
    lock released; abort likewise."""
    name, make = WRITERS[fmt]
    w = make(str(tmp_path / name))
    own = w.spool_dir
    assert own.parent == tmp_path and own.name.startswith(f".{name}.")
    assert own.name.endswith(".kstream-tmp")
    with pytest.raises(BlockingIOError):
        staging.lock(own)
    age(own)  # even old, a live writer's directory is not taken
    assert staging.remove_stale(tmp_path / name) == staging.Cleaned(0, 0)
    assert own.is_dir()
    dest = Path(write_one(w))
    assert w.staging is not None and not w.staging.locked
    assert not own.exists() and dest.exists()
    if dest.is_dir():  # renamed into place: the lock went with it
        os.close(staging.lock(dest))
    w2 = make(str(tmp_path / ("again" + name)))
    with pytest.raises(BlockingIOError):
        staging.lock(w2.spool_dir)
    w2.abort()
    assert w2.staging is not None and not w2.staging.locked
    assert dot_names(tmp_path) == []


def test_killed_writer_staging_removed_by_next_run(tmp_path: Path) -> None:
    """A child process writes an archive and is killed with SIGKILL mid-way: its
    staging directory stays, with its bytes. While it lived, the lock kept it
    (even made to look old); once killed, the next writer of the same target
    removes it and says how much it freed; the new archive is complete."""
    target = tmp_path / "snap.zst"
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from kstream.store.writers import ArchiveWriter\n"
         "w = ArchiveWriter(sys.argv[1], False, 1, {})\n"
         "sp = w.new_spool('u0.ndjson', None)\n"
         "for i in range(2000):\n"
         "    sp.write(b'{\"n\":%d,\"pad\":\"%s\"}' % (i, b'y' * 100))\n"
         "sp.finish()\n"
         "pathlib.Path(sys.argv[2]).write_text(str(w.spool_dir))\n"
         "time.sleep(120)\n", str(target), str(ready)],
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        theirs = Path(ready.read_text())
        age(theirs)
        w = ArchiveWriter(str(target), False, 1, {})  # the child lives: kept
        assert theirs.is_dir()
        w.abort()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    size = sum(p.stat().st_size for p in theirs.rglob("*") if p.is_file())
    assert size > 0
    age(theirs)
    notes: list[str] = []
    dest = write_one(ArchiveWriter(str(target), False, 1, {}, notes.append))
    assert not theirs.exists()
    assert dot_names(tmp_path) == []
    assert len(notes) == 1 and "removed 1 staging directory of killed runs" in notes[0]
    shown = notes[0].rsplit("(", 1)[1]
    assert shown == f"{human_bytes(size)} freed)"
    assert open_snapshot(dest).complete


def test_cut_directory_swap_keeps_both_halves(tmp_path: Path) -> None:
    """Killed between a directory output's two renames: the old snapshot is in
    .NAME.X.kstream-old, the complete new one in .NAME.Y.kstream-tmp, the name
    free. The next run removes neither: they are the user's to pick from."""
    old = tmp_path / ".snapdir.oldold01.kstream-old"
    old.mkdir()
    age(old)
    new = leftover(tmp_path, "snapdir", "newnew01")
    write_one(DirectoryWriter(str(tmp_path / "snapdir"), False))
    assert old.is_dir() and new.is_dir()


def test_cleanup_that_fails_leaves_the_directory_and_the_dump_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Best effort: a directory that cannot be removed (here rmtree fails as
    on a permission error; the tests run as root, which no mode stops) stays,
    nothing is said, and the output is written."""

    def refused(path: Any, *a: Any, **k: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    stale = leftover(tmp_path, "snap.ndjson")
    monkeypatch.setattr(staging.shutil, "rmtree", refused)
    notes: list[str] = []
    w = NdjsonWriter(str(tmp_path / "snap.ndjson"), False, notes.append)
    monkeypatch.undo()
    write_one(w)
    assert stale.is_dir() and notes == []
    assert (tmp_path / "snap.ndjson").read_bytes() == b'{"a":1}\n'


def test_not_ours_is_left(tmp_path: Path) -> None:
    """A stale-looking staging directory of another user is not touched."""
    stale = leftover(tmp_path, "snap.zst")
    os.chown(stale, os.getuid() + 4242, -1)
    age(stale)
    assert staging.remove_stale(tmp_path / "snap.zst") == staging.Cleaned(0, 0)
    assert stale.is_dir()


def test_export_removes_stale_export_staging_of_its_target(tmp_path: Path) -> None:
    """kstream export: a killed export's `.NAME.kstream-export-XXXXXXXX` goes
    (one note line on stderr, none with -q); a live one (locked), another
    target's and dump's staging of the same name stay."""
    src = tmp_path / "in.ndjson"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "s"}}
    src.write_text(json.dumps(cm) + "\n")

    def killed_export(name: str, rand: str) -> Path:
        d = tmp_path / f".{name}.kstream-export-{rand}"
        (d / "s" / "configmaps").mkdir(parents=True)
        (d / "s" / "configmaps" / "a.yaml").write_bytes(b"z" * 2048)
        age(d)
        return d

    stale = killed_export("out", "stale001")
    held = killed_export("out", "held0001")
    other = killed_export("other", "stale001")
    dumps = leftover(tmp_path, "out", "dump0001")
    fd = staging.lock(held)
    try:
        r = kstream("export", str(src), "-o", f"{tmp_path}/out/")
    finally:
        os.close(fd)
    assert r.code == 0, r.err
    assert not stale.exists() and held.is_dir() and other.is_dir() and dumps.is_dir()
    assert r.err.splitlines()[0] == (
        f"note: removed 1 staging directory of killed runs beside {tmp_path}/out (2.0 KiB freed)"
    )
    assert (tmp_path / "out" / "s" / "configmaps" / "a.yaml").is_file()
    stale = killed_export("quiet", "stale001")
    r = kstream("export", str(src), "-o", f"{tmp_path}/quiet/", "-q")
    assert r.code == 0 and r.err == "", r.err
    assert not stale.exists()
