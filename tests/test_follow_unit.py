"""`dump --follow` / `--resume` options without a cluster: bad input is one
line and exit 2 before anything connects; durations and sizes parse."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from kstream.cli.follow import parse_duration, parse_size
from kstream.errors import UsageError
from kstream.journal.directory import write_meta
from kstream.journal.writer import JournalWriter
from tests.conftest import NOWHERE, kstream, one_line


def test_durations_and_sizes() -> None:
    assert parse_duration("30s", "--x") == 30
    assert parse_duration("5m", "--x") == 300
    assert parse_duration("1h30m", "--x") == 5400
    assert parse_duration("90", "--x") == 90
    assert parse_size("64MiB", "--x") == 64 * 1024 * 1024
    assert parse_size("512k", "--x") == 512 * 1024
    assert parse_size("1000", "--x") == 1000
    for bad in ("", "5x", "m5", "0s", "-1", "1h x"):
        with pytest.raises(UsageError):
            parse_duration(bad, "--x")


@pytest.mark.parametrize("bad", ["inf", "nan", "infinity", "1e400"])
def test_duration_not_finite_refused(bad: str) -> None:
    # float() takes these: --follow-for nan never ended, nor did inf
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(bad, "--follow-for")
    for bad in ("", "lots", "0", "1Q"):
        with pytest.raises(UsageError):
            parse_size(bad, "--x")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--follow"], ["-o JOURNAL/"]),
        (["--follow", "-o", "j.ndjson.zst"], ["journal directory"]),
        (["--follow", "-o", "-"], ["journal directory"]),
        (["--follow", "-o", "j/", "--format", "zst"], ["--format zst"]),
        (["--follow", "-o", "j/", "--follow-for", "soon"], ["--follow-for", "duration"]),
        (["--follow", "-o", "j/", "--rotate-size", "big"], ["--rotate-size"]),
        (["--follow", "-o", "j/", "--rotate-interval", "0"], ["--rotate-interval"]),
        (["-o", "j/", "--follow-for", "5m"], ["need --follow"]),
        (["--resume", "nojournal/"], ["no such journal"]),
    ],
)
def test_bad_follow_options(tmp_path: Path, args: list[str], words: list[str]) -> None:
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = kstream("dump", *args, env=NOWHERE)
    finally:
        os.chdir(here)
    one_line(r, 2, *words)


def journal(tmp_path: Path) -> Path:
    j = tmp_path / "j"
    j.mkdir()
    write_meta(j, {"options": {"secrets": "redact", "secretDigest": "sha256"}})
    JournalWriter(j).close()
    return j


def test_resume_keeps_the_journals_own_rules(tmp_path: Path) -> None:
    j = journal(tmp_path)
    r = kstream("dump", "--resume", f"{j}/", "-r", "pods", "--clean", env=NOWHERE)
    one_line(r, 2, "journal's own", "-r", "--clean")
    r = kstream("dump", "--resume", f"{j}/", "-o", f"{tmp_path}/other/", env=NOWHERE)
    one_line(r, 2, "drop -o")
    key = tmp_path / "key"
    key.write_text("k")
    r = kstream("dump", "--resume", f"{j}/", "--secret-key-file", str(key), env=NOWHERE)
    one_line(r, 2, "plain sha256")


def test_existing_journal_or_foreign_directory_refused(tmp_path: Path) -> None:
    j = journal(tmp_path)
    r = kstream("dump", "--follow", "-o", f"{j}/", env=NOWHERE)
    one_line(r, 2, "holds a kstream journal", "--resume", "--force")
    (j / "notes.txt").write_text("mine")
    r = kstream("dump", "--follow", "-o", f"{j}/", "--force", env=NOWHERE)
    one_line(r, 2, "not a kstream journal", "notes.txt")
    assert (j / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    r = kstream("dump", "--follow", "-o", f"{other}/", "--force", env=NOWHERE)
    one_line(r, 2, "not a kstream journal")
    r = kstream("dump", "--resume", f"{other}/", env=NOWHERE)
    one_line(r, 2, "not a kstream journal")


def test_one_writer_per_journal(tmp_path: Path) -> None:
    import fcntl
    import os

    j = journal(tmp_path)
    fd = os.open(j, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
        one_line(r, 2, "being written by another kstream")
    finally:
        os.close(fd)
    r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
    one_line(r, 6, "base.ndjson.zst")


def test_follower_reconnects_from_its_position_and_resyncs_on_410(tmp_path: Path) -> None:
    """Without a server: a stream that ends is watched again from the last
    resourceVersion (a bookmark's included); an ERROR 410 makes a resync
    (watch-list) written as RESYNC / SYNC / SYNCED, and the watch goes on from
    the resync's resourceVersion."""
    import json
    import threading
    import time

    from kstream.cluster.stream import Reader, StreamOptions, Unit
    from kstream.errors import ConnectionFailed
    from kstream.journal.follow import Follow, UnitFollow
    from kstream.journal.format import Event, list_segments
    from kstream.journal.recovery import read_sealed_manifest, segment_events
    from kstream.resources import Resource
    from tests.fakes import FakeTransport

    def cm(rv: str, v: str = "1") -> dict:
        return {"kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "a", "namespace": "ns", "resourceVersion": rv},
                "data": {"v": v}}  # fmt: skip

    def lines(*events: dict) -> bytes:
        return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)

    def bookmark(rv: str, end: bool = False) -> dict:
        md: dict = {"resourceVersion": rv}
        if end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": md}}

    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    answers = [
        lines({"type": "ADDED", "object": cm("11")}, bookmark("12")),
        lines({"type": "MODIFIED", "object": cm("13", "2")}, {"type": "ERROR", "object": gone}),
        lines({"type": "ADDED", "object": cm("15", "3")}, bookmark("20", end=True)),
        lines({"type": "DELETED", "object": cm("21", "3")}),
    ]
    done = threading.Event()

    def handler(path: str, accept: str) -> object:
        if answers:
            return answers.pop(0)
        done.set()
        return ConnectionFailed("no more")

    t = FakeTransport(handler)
    reader = Reader(t, StreamOptions(backoff_base=0.01, backoff_max=0.05), threading.Event())
    r = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
    writer = JournalWriter(tmp_path)
    f = Follow(reader, writer, [UnitFollow(Unit(r, "ns"), "10")], watch_timeout=5)
    f.start()
    deadline = time.monotonic() + 20
    while not done.is_set() and time.monotonic() < deadline:
        f.step()
    f.step()
    f.stop()
    assert done.is_set()
    assert [q.get("resourceVersion") for q in t.requests[:4]] == ["10", "12", "", "20"]
    assert t.requests[2].get("sendInitialEvents") == "true"
    assert t.requests[4].get("resourceVersion") == "21"
    path = list_segments(tmp_path)[1]
    evs = [Event.decode(ln) for ln in segment_events(path)]
    assert [(e.type, e.rv) for e in evs] == [
        ("ADDED", "11"),
        ("BOOKMARK", "12"),
        ("MODIFIED", "13"),
        ("GAP", "20"),  # from the 410 to the resync: changes meanwhile are lost
        ("RESYNC", "20"),
        ("SYNC", "20"),
        ("SYNCED", "20"),
        ("DELETED", "21"),
        ("GAP", "21"),  # the stream was down ("no more") from then to the stop
    ]
    assert json.loads(evs[5].object or b"")["data"] == {"v": "3"}
    assert "410" in json.loads(evs[3].object or b"")["why"]
    assert all(e.resource == "v1/configmaps" and e.namespace == "ns" for e in evs)
    m = read_sealed_manifest(path)
    assert m is not None and m.positions == {"v1/configmaps ns": "21"}
    assert f.units[0].resyncs == 1 and f.units[0].events == 3


def test_summary_on_a_terminal_without_changes_draws_no_empty_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A follow on a terminal that saw no change printed the table's header
    row with no row under it."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from kstream.cli import common
    from kstream.cli.follow import UnitFollow, report_follow
    from kstream.cluster.stream import Unit
    from kstream.resources import Resource

    out = io.StringIO()
    monkeypatch.setattr(common.consoles, "err", Console(file=out, force_terminal=True, width=100))
    monkeypatch.delenv("CI", raising=False)
    cm = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset(("list", "watch")))
    follow = SimpleNamespace(
        units=[UnitFollow(Unit(cm, "shop"), "7")], writer=SimpleNamespace(sealed=[]), rebaser=None
    )
    report_follow(follow, Path("j"), quiet=False, why="interrupted")  # type: ignore[arg-type]
    text = out.getvalue()
    assert "kstream dump --follow → j/" in text
    assert "1 more resources without changes" in text
    assert "state" not in text and "retries" not in text  # no header row alone


def test_outage_is_ridden_out_and_recorded_as_a_gap(tmp_path: Path) -> None:
    """The API server unreachable for more attempts than --retries allows (which
    ended the resource's stream before): the follower keeps retrying within the
    outage limit, goes on from its position, and a GAP (since the stream broke)
    comes before its first event after the outage. Past the limit, the resource
    fails, saying how long it was down."""
    import json
    import threading
    import time

    from kstream.cluster.stream import Reader, StreamOptions, Unit
    from kstream.errors import ConnectionFailed
    from kstream.journal.follow import Follow, UnitFollow
    from kstream.journal.format import Event, list_segments
    from kstream.journal.recovery import segment_events
    from kstream.resources import Resource
    from tests.fakes import FakeTransport

    def change(rv: str) -> bytes:
        o = {"kind": "ConfigMap", "apiVersion": "v1",
             "metadata": {"name": "a", "namespace": "ns", "resourceVersion": rv}}  # fmt: skip
        return json.dumps({"type": "MODIFIED", "object": o}).encode() + b"\n"

    refused = ConnectionFailed("connection refused")
    answers: list[object] = [change("11"), *[refused] * 6, change("12")]
    done = threading.Event()

    def handler(path: str, accept: str) -> object:
        if answers:
            return answers.pop(0)
        done.set()
        time.sleep(0.01)
        return b""

    r = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
    opts = StreamOptions(backoff_base=0.01, backoff_max=0.02, max_retries=2)
    t = FakeTransport(handler)
    reader = Reader(t, opts, threading.Event())
    uf = UnitFollow(Unit(r, "ns"), "10")
    f = Follow(reader, JournalWriter(tmp_path), [uf], watch_timeout=5, spool_dir=tmp_path)
    f.start()
    deadline = time.monotonic() + 20
    while not done.is_set() and time.monotonic() < deadline:
        f.step(0.02)
    f.step(0.02)
    f.stop()
    assert uf.state != "failed" and uf.rv == "12"
    assert [q.get("resourceVersion") for q in t.requests[:8]] == ["10"] + ["11"] * 7
    evs = [Event.decode(x) for p in list_segments(tmp_path).values() for x in segment_events(p)]
    assert [(e.type, e.rv) for e in evs] == [("MODIFIED", "11"), ("GAP", "11"), ("MODIFIED", "12")]
    gap = json.loads(evs[1].object or b"")
    assert evs[0].time <= gap["since"] <= evs[1].time == evs[2].time
    assert "broke" in gap["why"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kstream-follow-")]

    # past the outage limit: that resource fails, saying how long it was down
    j2 = tmp_path / "j2"
    j2.mkdir()
    reader = Reader(FakeTransport(lambda p, a: refused), opts, threading.Event())
    uf = UnitFollow(Unit(r, "ns"), "10")
    f = Follow(reader, JournalWriter(j2), [uf], watch_timeout=5, spool_dir=j2, outage=0.2)
    f.start()
    deadline = time.monotonic() + 20
    while uf.state != "failed" and time.monotonic() < deadline:
        f.step(0.02)
    f.stop()
    assert uf.state == "failed" and "connection refused" in uf.error and "down for" in uf.error


def test_force_on_a_held_journal_names_the_holder(tmp_path: Path) -> None:
    """--force (and --resume) on a journal another kstream is writing: exit 2,
    one line naming the holder (pid, host, since); the journal untouched. A lock
    left by a killed process is free: the next run gets past it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    j = journal(tmp_path)
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from kstream.journal.directory import journal_lock\n"
         "with journal_lock(pathlib.Path(sys.argv[1])):\n"
         "    pathlib.Path(sys.argv[2]).write_text('x')\n"
         "    time.sleep(60)\n", str(j), str(ready)],
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        before = sorted((p.name, p.stat().st_size) for p in j.rglob("*"))
        r = kstream("dump", "--follow", "-o", f"{j}/", "--force", env=NOWHERE)
        one_line(r, 2, "being written by another kstream", f"pid {holder.pid} on ", "since")
        r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
        one_line(r, 2, "being written by another kstream", f"pid {holder.pid} on ")
        assert sorted((p.name, p.stat().st_size) for p in j.rglob("*")) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)  # the lock is free again
    assert "being written" not in r.err


def test_resume_after_a_crash_in_the_base_says_what_to_run(tmp_path: Path) -> None:
    """A run killed while writing its base leaves JOURNAL/ with its lock and the
    unfinished base in .kstream-new/ (nothing beside it): --resume removes them
    and says exactly what to run; a run killed after the base's journal.json was
    written (while moving it into place) is finished by the next run instead."""
    from kstream.journal.directory import journal_dir_problem, write_meta
    from kstream.journal.format import NEW_DIR

    j = tmp_path / "j"
    (j / NEW_DIR).mkdir(parents=True)
    (j / ".lock").write_text("pid 1 on gone, since 2026-12-01T00:00:00Z\n")
    (j / NEW_DIR / "base.ndjson.zst").write_bytes(b"(cut)")
    r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
    one_line(r, 2, "holds no journal", f"kstream dump --follow -o {j}/")
    assert sorted(p.name for p in j.iterdir()) == [".lock"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j"]
    # cut after the commit point: the old journal.json gone, the new one not yet renamed in
    (j / NEW_DIR).mkdir()
    (j / NEW_DIR / "base.ndjson.zst").write_bytes(b"(a base)")
    write_meta(j / NEW_DIR, {"options": {"secrets": "redact", "secretDigest": "sha256"}})
    assert journal_dir_problem(j) == ""
    r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
    assert "moved the complete base of a cut run into place" in r.err
    assert sorted(p.name for p in j.iterdir()) == [".lock", "base.ndjson.zst", "journal.json"]


def test_server_stated_time_is_recorded_beside_the_receive_time() -> None:
    """The newest time an object states (managedFields entries, deletionTimestamp,
    creationTimestamp) goes beside the receive time as `st`; both decoders read it."""
    from kstream.cluster.watchlist import server_time
    from kstream.journal.format import Event
    from kstream.journal.reader import decode_event

    md = {
        "creationTimestamp": "2026-12-01T09:00:00Z",
        "managedFields": [{"time": "2026-12-01T10:00:00Z"}, {"time": "2026-12-01T10:30:00Z"}],
    }
    assert server_time(md) == "2026-12-01T10:30:00Z"
    assert server_time(md | {"deletionTimestamp": "2026-12-01T11:00:00Z"}) == "2026-12-01T11:00:00Z"
    assert server_time({"name": "x"}) == ""
    e = Event("2026-12-01T12:00:00.000000Z", "MODIFIED", "v1/configmaps", "", "5", b"{}", "T")
    line = e.encode()
    assert b',"st":"T"' in line
    assert Event.decode(line) == e == decode_event(line)
    plain = Event("2026-12-01T12:00:00.000000Z", "BOOKMARK", "v1/configmaps", "", "6")
    assert b'"st"' not in plain.encode() and decode_event(plain.encode()) == plain


def test_live_view_says_each_streams_state_and_how_many_are_connected() -> None:
    """streaming / reconnecting since N s / failed per stream, and N/M connected
    (the live view said "following: 57/57 streams" for a minute after the server
    was gone)."""
    import threading
    import time

    from kstream.cli.follow import _connected, stream_state
    from kstream.cluster.stream import Reader, StreamOptions, Unit
    from kstream.journal.follow import Follow, UnitFollow
    from kstream.resources import Resource
    from tests.fakes import FakeTransport

    r = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
    up, down, failed = (UnitFollow(Unit(r, ns), "1") for ns in ("a", "b", "c"))
    now = time.monotonic()
    down.state, down.down_since = "retrying", now - 42
    failed.state = "failed"
    assert stream_state(up, now) == "streaming"
    assert stream_state(down, now) == "reconnecting since 42s"
    assert stream_state(failed, now) == "failed"
    reader = Reader(FakeTransport([]), StreamOptions(), threading.Event())
    with tempfile.TemporaryDirectory() as d:
        f = Follow(reader, JournalWriter(Path(d)), [up, down, failed], 5, spool_dir=Path(d))
        text = _connected(f)
        f.stop()
    assert text.startswith("1/3 streams connected (1 reconnecting, the longest for 4")


def test_resource_versions_gone_back_force_a_resync_of_every_resource() -> None:
    """The server's resourceVersion below the journal's highest (etcd restored
    behind the same URL): every unit is read again (a resync), with a gap."""
    from kstream.cluster.stream import Unit
    from kstream.journal.recovery import Positions
    from kstream.journal.resume import resume_units, rv_behind
    from kstream.resources import Resource
    from kstream.transform import TransformOptions

    assert rv_behind("100", ["150", "90", ""]) == "150"
    assert rv_behind("200", ["150", "90"]) == "" and rv_behind("", ["150"]) == ""
    r = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
    pos = Positions(rvs={"v1/configmaps a": "150"}, end="2026-12-01T10:00:00.000000Z")
    (same,) = resume_units([Unit(r, "a")], pos, TransformOptions())
    assert same.rv == "150" and not same.needs_resync and "no follower ran" in same.gap_why
    (back,) = resume_units([Unit(r, "a")], pos, TransformOptions(), behind=True)
    assert back.rv == "" and back.needs_resync and "went back" in back.gap_why
    assert back.gap_since == pos.end


def test_a_quiet_resumed_stream_closes_its_gap_and_the_stop_closes_an_open_one(
    tmp_path: Path,
) -> None:
    """After --resume each unit's gap is open: a stream that runs to its end
    without an event (it was connected: nothing was missed) closes it; a unit
    whose stream never came back has its gap closed at the stop, so no later run
    leaves that time unrecorded."""
    import threading
    import time

    from kstream.cluster.stream import Reader, StreamOptions, Unit
    from kstream.errors import ConnectionFailed
    from kstream.journal.follow import Follow, UnitFollow
    from kstream.journal.format import Event, list_segments
    from kstream.journal.recovery import segment_events
    from kstream.resources import Resource
    from tests.fakes import FakeTransport

    def handler(path: str, accept: str) -> object:
        time.sleep(0.01)
        if "/namespaces/down/" in path:
            return ConnectionFailed("connection refused")
        return b""  # the server ends the stream: quiet

    r = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
    opts = StreamOptions(backoff_base=0.01, backoff_max=0.02)
    reader = Reader(FakeTransport(handler), opts, threading.Event())
    quiet, down = UnitFollow(Unit(r, "quiet"), "7"), UnitFollow(Unit(r, "down"), "8")
    for uf in (quiet, down):
        uf.open_gap("2026-12-01T10:00:00.000000Z", "no follower ran")
    f = Follow(reader, JournalWriter(tmp_path), [quiet, down], 5, spool_dir=tmp_path)
    f.start()
    deadline = time.monotonic() + 20
    while quiet.gaps == 0 and time.monotonic() < deadline:
        f.step(0.02)
    f.stop()
    evs = [Event.decode(x) for p in list_segments(tmp_path).values() for x in segment_events(p)]
    assert sorted((e.type, e.namespace, e.rv) for e in evs) == [
        ("GAP", "down", "8"),
        ("GAP", "quiet", "7"),
    ]
    assert down.state != "failed"
