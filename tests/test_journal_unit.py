"""JournalWriter without a cluster: segments as journalformat describes them
(header, one frame per flush, manifest + footer when sealed), rotation, flush,
and the tail a crash leaves (sealed on resume, its cut frame dropped)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import zstandard

from kstream.errors import SnapshotError
from kstream.journal.directory import journal_dir_problem, write_meta
from kstream.journal.format import SEGMENT_FORMAT, Event, SegmentManifest, list_segments
from kstream.journal.recovery import (
    read_sealed_manifest,
    recover,
    seal_open_segment,
    segment_events,
)
from kstream.journal.writer import JournalWriter
from kstream.store.format import FOOTER_SIZE, FOOTER_TAG, MAGIC_FOOTER, MAGIC_HEADER, MAGIC_MANIFEST


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ev(i: int, typ: str = "MODIFIED", res: str = "v1/configmaps", ns: str = "") -> Event:
    obj = None
    if typ not in ("BOOKMARK", "RESYNC", "SYNCED"):
        obj = json.dumps({"metadata": {"name": f"cm-{i}", "resourceVersion": str(i)}}).encode()
    return Event(f"2026-11-29T14:00:{i % 60:02d}.000000Z", typ, res, ns, str(i), obj)


def zstdcat(path: Path) -> list[bytes]:
    """What `zstdcat` shows: every zstd frame, skippable frames ignored."""
    d = zstandard.ZstdDecompressor()
    with open(path, "rb") as f:
        out = d.stream_reader(f, read_across_frames=True).read()
    return out.split(b"\n")[:-1]


def parse_layout(path: Path) -> tuple[dict, list[int], dict, bytes]:
    """(header, offsets of the zstd frames, manifest, footer) walking the file."""
    data = path.read_bytes()
    magic, n = struct.unpack("<II", data[:8])
    assert magic == MAGIC_HEADER
    header = json.loads(data[8 : 8 + n])
    footer = data[-FOOTER_SIZE:]
    fmagic, _ = struct.unpack("<II", footer[:8])
    assert fmagic == MAGIC_FOOTER and footer[8:16] == FOOTER_TAG
    (moff,) = struct.unpack("<Q", footer[48:56])
    mmagic, msize = struct.unpack("<II", data[moff : moff + 8])
    assert mmagic == MAGIC_MANIFEST
    body = data[moff + 8 : moff + 8 + msize]
    assert hashlib.sha256(data[8 : 8 + n] + body).digest() == footer[16:48]
    manifest = json.loads(body)
    return header, [f["offset"] for f in manifest["frames"]], manifest, footer


def test_segment_layout_frames_and_manifest(tmp_path: Path) -> None:
    clock = Clock()
    w = JournalWriter(tmp_path, clock=clock)
    for i in range(1, 4):
        w.write(ev(i))
    clock.t += 1.0
    w.tick()  # due: one frame
    w.write(ev(4, "BOOKMARK"))
    w.write(ev(5, "DELETED", ns="shop"))
    w.close()
    segs = list_segments(tmp_path)
    assert list(segs) == [1]
    path = segs[1]
    header, offsets, manifest, _ = parse_layout(path)
    assert header["format"] == SEGMENT_FORMAT and header["segment"] == 1
    assert len(offsets) == 2  # one frame per flush
    assert manifest["events"] == 5
    assert [f["events"] for f in manifest["frames"]] == [3, 2]
    assert manifest["positions"] == {"v1/configmaps ": "4", "v1/configmaps shop": "5"}
    assert manifest["first"] == "2026-11-29T14:00:01.000000Z"
    assert manifest["last"] == "2026-11-29T14:00:05.000000Z"
    # each frame's sha256 covers its lines with their newlines
    lines = zstdcat(path)
    assert [Event.decode(ln).rv for ln in lines] == ["1", "2", "3", "4", "5"]
    assert (
        manifest["frames"][0]["sha256"]
        == hashlib.sha256(b"".join(ln + b"\n" for ln in lines[:3])).hexdigest()
    )
    assert list(segment_events(path)) == lines
    m = read_sealed_manifest(path)
    assert isinstance(m, SegmentManifest) and m.events == 5


def test_no_flush_before_the_interval(tmp_path: Path) -> None:
    clock = Clock()
    w = JournalWriter(tmp_path, clock=clock, flush_interval=1.0)
    w.write(ev(1))
    clock.t += 0.5
    w.tick()
    assert w.current is not None and w.current.unflushed == 1
    clock.t += 0.6
    w.tick()
    assert w.current.unflushed == 0 and len(w.current.manifest.frames) == 1


def test_rotation_by_size_and_interval(tmp_path: Path) -> None:
    clock = Clock()
    w = JournalWriter(tmp_path, clock=clock, rotate_size=300, rotate_interval=60)
    for i in range(1, 7):  # ~100 bytes each: full after 3
        w.write(ev(i))
        w.tick()
    assert len(w.sealed) >= 1
    n_size = len(w.sealed)
    w.write(ev(7))
    clock.t += 61
    w.tick()  # old enough: sealed
    assert len(w.sealed) == n_size + 1 and w.current is None
    w.close()
    segs = list_segments(tmp_path)
    assert list(segs) == list(range(1, len(segs) + 1))
    every = [Event.decode(ln).rv for p in segs.values() for ln in segment_events(p)]
    assert every == [str(i) for i in range(1, 8)]
    for p in segs.values():
        assert read_sealed_manifest(p) is not None


def test_quiet_run_writes_no_segment(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.tick()
    w.close()
    assert list_segments(tmp_path) == {}


def crashed(tmp_path: Path, flushed: int, unflushed: int) -> Path:
    clock = Clock()
    w = JournalWriter(tmp_path, clock=clock)
    for i in range(1, flushed + 1):
        w.write(ev(i))
    w.flush()
    for i in range(flushed + 1, flushed + unflushed + 1):
        w.write(ev(i))
    assert w.current is not None
    w.current._frame.flush()  # compressed bytes on disk, the frame not ended
    w.current.file.flush()
    path = w.current.path
    w.abandon()
    return path


def test_crash_tail_is_open_then_sealed_without_the_cut_frame(tmp_path: Path) -> None:
    path = crashed(tmp_path, flushed=3, unflushed=2)
    assert read_sealed_manifest(path) is None  # open: no footer
    m = seal_open_segment(path)
    assert m is not None and m.events == 3
    assert [Event.decode(ln).rv for ln in segment_events(path)] == ["1", "2", "3"]
    assert zstdcat(path) == list(segment_events(path))
    assert m.positions == {"v1/configmaps ": "3"}


def test_cut_in_the_middle_of_a_frame(tmp_path: Path) -> None:
    clock = Clock()
    w = JournalWriter(tmp_path, clock=clock)
    w.write(ev(1))
    w.flush()
    w.write(ev(2))
    w.write(ev(3))
    w.flush()
    assert w.current is not None
    path, frames = w.current.path, list(w.current.manifest.frames)
    w.abandon()
    data = path.read_bytes()
    cut = frames[1].offset + frames[1].length // 2
    path.write_bytes(data[:cut])  # power cut inside the second frame
    pos = recover(tmp_path, {"v1/configmaps ": "0"})
    assert pos.sealed_tail == 1 and pos.rvs == {"v1/configmaps ": "1"}
    assert [Event.decode(ln).rv for ln in segment_events(path)] == ["1"]
    assert pos.next_segment == 2


def test_manifest_without_footer_is_resealed(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.write(ev(1))
    w.close()
    path = list_segments(tmp_path)[1]
    path.write_bytes(path.read_bytes()[:-FOOTER_SIZE])  # crash between manifest and footer
    m = seal_open_segment(path)
    assert m is not None and m.events == 1
    assert read_sealed_manifest(path) is not None


def test_only_the_newest_segment_may_be_open(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, rotate_size=1)
    w.write(ev(1))
    w.tick()
    w.write(ev(2))
    w.tick()
    w.close()
    first = list_segments(tmp_path)[1]
    first.write_bytes(first.read_bytes()[:-10])
    with pytest.raises(SnapshotError, match="000001"):
        recover(tmp_path, {})


def test_sealed_segment_that_does_not_verify(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.write(ev(1))
    w.close()
    path = list_segments(tmp_path)[1]
    data = bytearray(path.read_bytes())
    i = data.rfind(b'"events"')
    data[i + 1] = ord("E")  # the manifest changed: its checksum no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum"):
        read_sealed_manifest(path)


def test_open_resync_is_reported(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.write(ev(5))
    w.write(Event("2026-11-29T14:00:06.000000Z", "RESYNC", "v1/secrets", "", "9"))
    w.write(Event("2026-11-29T14:00:06.000000Z", "SYNC", "v1/secrets", "", "9", b"{}"))
    w.flush()
    w.abandon()  # crash before SYNCED
    pos = recover(tmp_path, {"v1/secrets ": "2"})
    assert pos.open_resync == {"v1/secrets "}
    assert pos.rvs["v1/secrets "] == "2"  # RESYNC and SYNC do not move it
    assert pos.rvs["v1/configmaps "] == "5"


def test_header_only_tail_is_removed(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.write(ev(1))
    assert w.current is not None
    w.current.file.flush()
    path = w.current.path
    w.abandon()
    path.write_bytes(path.read_bytes()[:5])  # not even a whole header
    pos = recover(tmp_path, {})
    # its number is free again: the next segment takes it (a hole would make every
    # reader refuse the journal once a later segment is written)
    assert not path.exists() and pos.next_segment == 1


def test_journal_dir_rules(tmp_path: Path) -> None:
    j = tmp_path / "j"
    j.mkdir()
    assert journal_dir_problem(j) == ""
    write_meta(j, {"created": "x"})
    JournalWriter(j).close()
    (j / "segments" / "000001.events.zst").write_bytes(b"")
    assert journal_dir_problem(j) == ""
    (j / "notes.txt").write_text("mine")
    assert "notes.txt" in journal_dir_problem(j)
    other = tmp_path / "o"
    other.mkdir()
    (other / "a").write_text("x")
    assert "no kstream journal.json" in journal_dir_problem(other)


def test_own_directory_problems_say_why(tmp_path: Path) -> None:
    """What a snapshot directory or a journal directory holds that kstream did
    not write: the reason each refusal (even with --force) gives."""
    from kstream.journal.directory import journal_dir_problem, write_meta
    from kstream.store.outputs import snapshot_dir_problem

    snap, journal = tmp_path / "snap", tmp_path / "journal"
    for d in (snap, journal):
        d.mkdir()
        assert snapshot_dir_problem(d) == journal_dir_problem(d) == ""  # empty
        for n in ("a", "b", "c", "d"):
            (d / n).write_text("x")
    assert snapshot_dir_problem(snap) == "has no kstream manifest.json (it holds a, b, c, ...)"
    assert journal_dir_problem(journal) == "has no kstream journal.json (it holds a, b, c, ...)"
    (snap / "manifest.json").write_text('{"format": "other"}')
    (journal / "journal.json").write_text('{"format": "other"}')
    assert snapshot_dir_problem(snap) == "has a manifest.json that kstream did not write"
    assert journal_dir_problem(journal) == "has a journal.json that kstream did not write"
    manifest = {"format": "kstream-archive", "version": 1, "resources": [{"file": "a"}]}
    (snap / "manifest.json").write_text(json.dumps(manifest))
    write_meta(journal, {})
    assert snapshot_dir_problem(snap) == "holds files its manifest does not list (b, c, d)"
    assert journal_dir_problem(journal) == "holds files a kstream journal does not (a, b, c, ...)"
    for n in ("b", "c", "d"):
        (snap / n).unlink()
    assert snapshot_dir_problem(snap) == ""


def test_journal_json_layout_and_key_check(tmp_path: Path) -> None:
    """journal.json as a new journal writes it (keys in this order, the HMAC key's
    check value among the options) and as --resume reads it back."""
    from types import SimpleNamespace

    from kstream.cluster.plan import LiveOptions
    from kstream.dump import DumpSettings
    from kstream.errors import UsageError
    from kstream.journal.directory import JournalMeta, check_key, new_meta, read_meta
    from kstream.selector import Scope
    from kstream.transform import digest

    plan = SimpleNamespace(context="ctx", server="https://s:6443", server_version="v1.36.3")
    settings = DumpSettings("j/", "dir", Scope(namespaces=("a",)), LiveOptions(), secret_key=b"k")
    meta = new_meta(plan, settings)  # type: ignore[arg-type]
    doc = meta.to_json()
    assert list(doc) == ["created", "tool", "context", "server", "options"]
    assert doc["context"] == "ctx" and doc["tool"].startswith("kstream ")
    assert doc["server"] == {"url": "https://s:6443", "version": "v1.36.3"}
    check = digest(b"kstream-journal-key-check", b"k")
    assert doc["options"] == {**settings.dump_options().to_json(), "secretKeyCheck": check}
    assert list(doc["options"])[-1] == "secretKeyCheck"
    write_meta(tmp_path, doc)
    back = JournalMeta.from_json(read_meta(tmp_path))
    assert back == meta
    check_key(tmp_path, back, b"k")
    with pytest.raises(UsageError, match="not the key"):
        check_key(tmp_path, back, b"other")
    with pytest.raises(UsageError, match="give its key with --secret-key-file"):
        check_key(tmp_path, back, None)
    plain = new_meta(plan, DumpSettings("j/", "dir", Scope(), LiveOptions()))  # type: ignore[arg-type]
    assert "secretKeyCheck" not in plain.to_json()["options"]
    check_key(tmp_path, plain, None)
    with pytest.raises(UsageError, match="plain sha256: drop --secret-key-file"):
        check_key(tmp_path, plain, b"k")


@pytest.mark.parametrize(
    ("content", "cls", "message"),
    [
        (b"{not json", SnapshotError, "{p}: corrupted (not JSON)"),
        (
            b'{"format": "other"}',
            "foreign",
            "{j} is not a kstream journal (journal.json says otherwise)",
        ),
        (b"[1]", "foreign", "{j} is not a kstream journal (journal.json says otherwise)"),
        (
            b'{"format": "kstream-journal", "version": 2}',
            SnapshotError,
            "{p}: journal format version 2 is not supported (this kstream reads version 1)",
        ),
        (
            b'{"format": "kstream-journal", "version": "1"}',
            SnapshotError,
            '{p}: journal format version "1" is not supported (this kstream reads version 1)',
        ),
        (
            b'{"format": "kstream-journal", "version": 1, "server": "https://x"}',
            SnapshotError,
            "{p}: corrupted (server is not an object)",
        ),
        (
            b'{"format": "kstream-journal", "version": 1, "options": []}',
            SnapshotError,
            "{p}: corrupted (options is not an object)",
        ),
        (
            b'{"format": "kstream-journal", "version": 1, "context": 7}',
            SnapshotError,
            "{p}: corrupted (context is not a string)",
        ),
    ],
)
def test_journal_json_is_checked_alike_everywhere(
    tmp_path: Path, content: bytes, cls: object, message: str
) -> None:
    """journal.json is checked by one function (`format.check_meta`) for the
    writer's --resume of a directory (`directory.read_meta`), of a prefix in
    object storage (`remote.journal_meta`) and for every reader (`open_journal`):
    the same one-line message; a journal.json of another format is a usage error
    (exit 2) where kstream would write, a corrupted input (exit 6) where it reads."""
    from kstream.errors import UsageError
    from kstream.journal.directory import read_meta
    from kstream.journal.reader import open_journal
    from kstream.journal.remote import journal_meta

    j = tmp_path / "j"
    j.mkdir()
    (j / "journal.json").write_bytes(content)
    p = j / "journal.json"
    url = "s3://b/j/"
    for call, where, journal, foreign in (
        (lambda: read_meta(j), str(p), str(j), UsageError),
        (lambda: journal_meta(content, url), f"{url}journal.json", url, UsageError),
        (lambda: open_journal(str(j)), str(p), str(j), SnapshotError),
    ):
        want = foreign if cls == "foreign" else cls
        with pytest.raises(SnapshotError if want is SnapshotError else UsageError) as e:
            call()
        assert type(e.value) is want
        assert str(e.value) == message.format(p=where, j=journal)


def test_a_segment_header_is_checked_alike_by_readers_and_recovery(tmp_path: Path) -> None:
    """A segment's header is checked by one function (`format.read_segment_header`):
    the readers and the recovery (`read_sealed_manifest`, `seal_open_segment`)
    refuse a header that is not a kstream segment's with the same message; a
    segment cut inside its header holds no event (open, and removed by the seal)."""
    from kstream.journal.reader import _open_segment

    w = JournalWriter(tmp_path)
    w.write(ev(1))
    w.close()
    path = list_segments(tmp_path)[1]
    good = path.read_bytes()
    (n,) = struct.unpack("<I", good[4:8])
    header = json.loads(good[8 : 8 + n])
    bad = json.dumps(header | {"format": "other"}).encode().ljust(n)[:n]
    assert len(bad) == n
    path.write_bytes(good[:8] + bad + good[8 + n :])
    for call in (
        lambda: _open_segment(path, 1),
        lambda: read_sealed_manifest(path),
        lambda: seal_open_segment(path),
    ):
        with pytest.raises(SnapshotError) as e:
            call()
        assert str(e.value) == f"{path}: not a kstream journal segment"
    assert path.exists()  # nothing removed
    path.write_bytes(good[: 8 + n // 2])  # a crash cut it inside its header
    assert read_sealed_manifest(path) is None
    assert _open_segment(path, 1).header_end == -1
    assert seal_open_segment(path) is None and not path.exists()
