"""Reading journals without a cluster: events in order with verification, the
state at an instant (fold rules), and journals as inputs of count and diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream.errors import SnapshotError, UsageError
from kstream.journal import reader as journalread
from kstream.sources import open_source
from tests.conftest import kstream, one_line
from tests.journalmaker import Journal, ev, obj, write_base

CM = "v1/configmaps"
T0 = "2026-11-29T14:00:00.000000Z"


def t(s: int) -> str:
    """T0 + s seconds."""
    return f"2026-11-29T14:{s // 60:02d}:{s % 60:02d}.000000Z"


def cm(name: str, rv: str, ns: str = "shop", **data: str) -> dict[str, Any]:
    return obj(CM, name, ns, rv, data=dict(data))


def state(path: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    snap = open_source(path)
    out = {}
    for line in snap.lines():
        o = json.loads(line)
        md = o["metadata"]
        out[(o["kind"], md.get("namespace", ""), md["name"])] = o
    return out


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    journalread._opened.clear()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10", k="1"), cm("b", "11", k="1")], "v1/namespaces": []})
    j.segment(
        1,
        [
            [ev(t(1), "MODIFIED", CM, cm("a", "20", k="2"))],
            [ev(t(2), "ADDED", CM, cm("c", "21", k="1")), ev(t(3), "DELETED", CM, cm("b", "22"))],
        ],
    )
    j.segment(2, [[ev(t(10), "MODIFIED", CM, cm("a", "30", k="3"))]], sealed=False)
    return j


def test_events_in_order(journal: Journal) -> None:
    j = journalread.open_journal(str(journal.root))
    got = [(e.time, e.type, json.loads(e.object or b"{}")["metadata"]["name"]) for e in j.events()]
    assert got == [
        (t(1), "MODIFIED", "a"),
        (t(2), "ADDED", "c"),
        (t(3), "DELETED", "b"),
        (t(10), "MODIFIED", "a"),
    ]
    assert [s.sealed for s in j.segments] == [True, False]
    assert j.notes == []  # the open segment ends on a whole frame


def test_state_at_instants(journal: Journal) -> None:
    root = str(journal.root)
    s = state(f"{root}/@{t(0)}")
    assert {k[2]: o["data"] for k, o in s.items() if k[0] == "ConfigMap"} == {
        "a": {"k": "1"},
        "b": {"k": "1"},
    }
    s = state(f"{root}/@2026-11-29T14:00:02Z")  # the event at exactly T counts
    assert {k[2]: o["data"] for k, o in s.items()} == {
        "a": {"k": "2"},
        "b": {"k": "1"},
        "c": {"k": "1"},
    }
    s = state(f"{root}/@2026-11-29T15:00:05+01:00")  # an offset: 14:00:05Z
    assert {k[2]: o["data"] for k, o in s.items()} == {"a": {"k": "2"}, "c": {"k": "1"}}
    s = state(root + "/")  # the latest state
    assert {k[2]: o["data"] for k, o in s.items()} == {"a": {"k": "3"}, "c": {"k": "1"}}


def test_state_manifest(journal: Journal) -> None:
    snap = open_source(f"{journal.root}/@{t(5)}")
    assert snap.path == f"{journal.root}/@{t(5)}"
    assert snap.manifest is not None and snap.manifest.status == "complete"
    e = {x.resource: x for x in snap.entries}
    assert (e["configmaps"].objects, e["configmaps"].resourceVersion) == (2, "22")
    assert (e["namespaces"].objects, e["namespaces"].resourceVersion) == (0, "100")
    # lines in the server's order (namespace/name), checksums as the manifest says
    names = [json.loads(x)["metadata"]["name"] for x in snap.lines(e["configmaps"])]
    assert names == ["a", "c"]


def test_temp_files_removed(journal: Journal, tmp_path: Path) -> None:
    d = tmp_path / "tmp"
    d.mkdir()
    j = journalread.open_journal(str(journal.root))
    snap = journalread.state(j, None, "J/", tmpdir=str(d))
    assert len(list(d.iterdir())) == 1
    assert not list(d.glob("*/state.sqlite"))  # the fold's database is gone already
    del snap
    import gc

    gc.collect()
    assert list(d.iterdir()) == []


def test_resync_rules(tmp_path: Path) -> None:
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10"), cm("b", "11")]})
    j.segment(
        1,
        [
            [ev(t(1), "RESYNC", CM, rv="")],
            [ev(t(2), "SYNC", CM, cm("b", "50", k="s")), ev(t(2), "SYNC", CM, cm("x", "51"))],
            [ev(t(3), "SYNCED", CM, rv="52")],
            [ev(t(4), "MODIFIED", CM, cm("x", "53", k="after"))],
            # a resync never closed: changes nothing
            [ev(t(5), "RESYNC", CM), ev(t(6), "SYNC", CM, cm("zzz", "60"))],
            [ev(t(7), "BOOKMARK", CM, rv="70")],
        ],
    )
    root = str(j.root)
    assert set(k[2] for k in state(f"{root}/@{t(2)}")) == {"a", "b"}  # resync still open
    s = state(f"{root}/@{t(3)}")
    assert {k[2]: o["metadata"]["resourceVersion"] for k, o in s.items()} == {"b": "50", "x": "51"}
    s = state(root)
    assert {k[2]: o["data"] for k, o in s.items()} == {"b": {"k": "s"}, "x": {"k": "after"}}
    snap = open_source(root)
    assert snap.entries[0].resourceVersion == "70"  # the bookmark moved the unit on


def test_unit_new_since_base(tmp_path: Path) -> None:
    """A resource that appeared while following (a new CRD): a new unit."""
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10")]})
    w = "example.com/v1/widgets"
    j.segment(
        1,
        [
            [ev(t(1), "RESYNC", w), ev(t(1), "SYNC", w, obj(w, "w1", "shop", "5"))],
            [ev(t(2), "SYNCED", w, rv="5"), ev(t(3), "ADDED", w, obj(w, "w2", "shop", "6"))],
        ],
    )
    snap = open_source(str(j.root))
    e = {x.resource: x for x in snap.entries}
    assert (e["widgets"].group, e["widgets"].kind, e["widgets"].namespaced) == (
        "example.com",
        "Widget",
        True,
    )
    assert (e["widgets"].objects, e["widgets"].resourceVersion) == (2, "6")
    journalread._opened.clear()
    snap = open_source(f"{j.root}/@{t(1)}")
    assert [x.resource for x in snap.entries] == ["configmaps"]  # not yet synced


def _cut_journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10")]})
    j.segment(1, [[ev(t(1), "MODIFIED", CM, cm("a", "11", k="1"))]])
    j.segment(
        2,
        [
            [ev(t(2), "MODIFIED", CM, cm("a", "12", k="2"))],
            [ev(t(3), "MODIFIED", CM, cm("a", "13", k="3"))],
        ],
        sealed=False,
    )
    return j


def test_crash_tail_read_to_last_whole_frame(tmp_path: Path) -> None:
    j = _cut_journal(tmp_path)
    p = j.seg_path(2)
    last = j.segments[2].frames[-1]
    p.write_bytes(p.read_bytes()[: last.offset + last.length // 2])  # kill -9 mid-frame
    r = kstream("count", str(j.root), "-o", "json")
    assert r.code == 0, r.err
    assert "000002.events.zst is open" in r.err and "left out" in r.err
    assert json.loads(r.out)["total"]["objects"] == 1
    journalread._opened.clear()
    assert state(str(j.root))[("ConfigMap", "shop", "a")]["data"] == {"k": "2"}


def test_open_segment_cut_in_header(tmp_path: Path) -> None:
    j = _cut_journal(tmp_path)
    j.seg_path(2).write_bytes(j.seg_path(2).read_bytes()[:5])
    jr = journalread.open_journal(str(j.root))
    assert len(list(jr.events())) == 1
    assert "ends inside its header" in jr.notes[0]


def test_corrupted_sealed_frame_exit_6(tmp_path: Path) -> None:
    j = _cut_journal(tmp_path)
    p = j.seg_path(1)
    data = bytearray(p.read_bytes())
    fr = j.segments[1].frames[0]
    data[fr.offset + fr.length - 6] ^= 0xFF  # inside the frame's compressed data
    p.write_bytes(bytes(data))
    r = kstream("count", f"{j.root}/@{t(9)}")
    one_line(r, 6, "000001.events.zst")


def test_sealed_segment_wrong_event_count_exit_6(tmp_path: Path) -> None:
    """Checksums that agree but an event count that does not: still corrupted."""
    from tests.journalmaker import segment_bytes

    j = _cut_journal(tmp_path)
    sb = segment_bytes(1, [[ev(t(1), "MODIFIED", CM, cm("a", "11", k="1"))]])
    data = sb.data.replace(b'"events": 1, "sha256"', b'"events": 2, "sha256"')
    assert data != sb.data
    j.seg_path(1).write_bytes(data)
    with pytest.raises(SnapshotError, match=r"000001\.events\.zst"):
        list(journalread.open_journal(str(j.root)).events())


def test_truncated_sealed_segment_not_newest_exit_6(tmp_path: Path) -> None:
    j = _cut_journal(tmp_path)
    p = j.seg_path(1)
    p.write_bytes(p.read_bytes()[:-10])  # its footer is cut: looks open, but is not the newest
    r = kstream("diff", f"{j.root}/@{t(0)}", str(j.root))
    one_line(r, 6, "000001.events.zst", "not sealed")


def test_corrupted_manifest_exit_6(tmp_path: Path) -> None:
    j = _cut_journal(tmp_path)
    p = j.seg_path(1)
    data = bytearray(p.read_bytes())
    data[j.segments[1].manifest_offset + 20] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match=r"000001\.events\.zst: corrupted segment"):
        journalread.open_journal(str(j.root))


def test_missing_segment(tmp_path: Path) -> None:
    j = _cut_journal(tmp_path)
    j.segment(2, [[ev(t(2), "MODIFIED", CM, cm("a", "12"))]])
    j.segment(4, [[ev(t(20), "MODIFIED", CM, cm("a", "20"))]])
    with pytest.raises(SnapshotError, match="000003 is missing"):
        journalread.open_journal(str(j.root))


def test_bad_instant_usage(journal: Journal) -> None:
    r = kstream("count", f"{journal.root}/@yesterday")
    one_line(r, 2, "yesterday", "RFC 3339")
    r = kstream("count", f"{journal.root}/@2026-11-29T14:00:00")
    one_line(r, 2, "time zone")
    with pytest.raises(UsageError, match="before the journal begins"):
        open_source(f"{journal.root}/@2026-11-29T12:00:00Z")


@pytest.mark.parametrize(
    "typed",
    [
        "2026-11-29T1400Z",  # a colon forgotten: read as 14:00:00 before
        "2026-11-29T14:00:00+0100",
        "20261129T140000Z",
        "2026-11-29T14:00:00,5Z",
        "2026-11-29T14:00Z",
    ],
)
def test_instant_not_rfc3339_refused(journal: Journal, typed: str) -> None:
    """ISO 8601 forms that are not RFC 3339 (datetime.fromisoformat takes
    them) were read as some instant instead of refused as the docs say."""
    one_line(kstream("count", f"{journal.root}/@{typed}"), 2, "RFC 3339")


def test_count_and_diff_of_instants(journal: Journal) -> None:
    root = str(journal.root)
    r = kstream("count", f"{root}/@{t(2)}", "-o", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["total"]["objects"] == 3
    r = kstream("diff", f"{root}/@{t(0)}", f"{root}/", "-o", "ndjson")
    assert r.code == 1, r.err
    changes = sorted((c["change"], c["name"]) for c in (json.loads(x) for x in r.out.splitlines()))
    assert changes == [("added", "c"), ("modified", "a"), ("removed", "b")]
    r = kstream("diff", f"{root}/@{t(10)}", root)
    assert r.code == 0, r.err


def test_not_a_journal_is_still_an_error(tmp_path: Path) -> None:
    d = tmp_path / "plain"
    d.mkdir()
    with pytest.raises(SnapshotError, match="not a kstream snapshot directory"):
        open_source(str(d))
    with pytest.raises(SnapshotError, match="no such file"):
        open_source(str(tmp_path / "nothing@2026-11-29T14:00:00Z"))


def test_many_events(tmp_path: Path) -> None:
    """50k events over 1k objects in 50 frames: each object ends at its last state."""
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm(f"o{i:04d}", "1") for i in range(1000)]})
    frames = []
    n = 0
    for f in range(50):
        frame = []
        for _ in range(1000):
            n += 1
            frame.append(ev(t(1 + f), "MODIFIED", CM, cm(f"o{n % 1000:04d}", str(n), v="x")))
        frames.append(frame)
    j.segment(1, frames)
    s = state(str(j.root))
    assert len(s) == 1000
    assert s[("ConfigMap", "shop", "o0000")]["metadata"]["resourceVersion"] == "50000"
    assert s[("ConfigMap", "shop", "o0001")]["metadata"]["resourceVersion"] == "49001"


@given(
    st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "SYNCED"]),
    st.text(max_size=12),
    st.text(max_size=12),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)),
)
def test_fast_event_decode_agrees(type_: str, ns: str, rv: str, o: dict[str, str] | None) -> None:
    from kstream.journal.format import Event

    raw = json.dumps(o, separators=(",", ":")).encode() if o is not None else None
    e = Event(t(1), type_, "apps/v1/deployments", ns, rv, raw)
    assert journalread.decode_event(e.encode()) == Event.decode(e.encode())


@pytest.mark.parametrize(
    "o",
    [
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a", "namespace": "n"}},
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a", "uid": "u"}},
        {"kind": "Pod", "metadata": {"name": "a", "generateName": "a-", "namespace": "n"}},
        # a custom resource (sorted keys): name is not first, the slow path answers
        {"apiVersion": "x/v1", "kind": "W", "metadata": {"creationTimestamp": "t", "name": "a"}},
        # nested metadata before the object's own: never taken for it
        {"data": {"metadata": {"name": "wrong"}}, "metadata": {"name": "a", "namespace": "n"}},
        {"apiVersion": "v1", "kind": "X", "metadata": {"namespace": "n", "name": "a"}},
        {"kind": "X", "metadata": {"name": "a\\"}},
    ],
)
def test_fast_key_agrees(o: dict[str, Any]) -> None:
    raw = json.dumps(o, separators=(",", ":")).encode()
    md = o["metadata"]
    assert journalread.line_key(raw, "x") == f"{md.get('namespace', '')}/{md['name']}"


# --------------------------------------------------------------------------- fold rules


_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.sampled_from("abcd")),
        st.tuples(st.just("RESYNC"), st.just("")),
        st.tuples(st.just("SYNC"), st.sampled_from("abcd")),
        st.tuples(st.just("SYNCED"), st.just("")),
        st.tuples(st.just("BOOKMARK"), st.just("")),
    ),
    max_size=25,
)


def _model(base: set[str], ops: list[tuple[str, str]], upto: int) -> dict[str, str]:
    """The journalformat docstring's rules, directly: name -> rv of its state."""
    state = {n: "1" for n in base}
    staged: dict[str, str] | None = None
    for i, (typ, name) in enumerate(ops[:upto]):
        rv = str(100 + i)
        if typ in ("ADDED", "MODIFIED"):
            state[name] = rv
        elif typ == "DELETED":
            state.pop(name, None)
        elif typ == "RESYNC":
            staged = {}
        elif typ == "SYNC" and staged is not None:
            staged[name] = rv
        elif typ == "SYNCED" and staged is not None:
            state, staged = staged, None
    return state


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from("abcd")), _OPS, st.data())
def test_fold_matches_the_rules(
    tmp_path_factory: pytest.TempPathFactory, base: set[str], ops: list[tuple[str, str]], data: Any
) -> None:
    j = Journal(tmp_path_factory.mktemp("fold") / "J")
    write_base(j.base, {CM: [cm(n, "1") for n in base]})
    events = []
    for i, (typ, name) in enumerate(ops):
        rv = str(100 + i)
        o = cm(name, rv) if name else None
        events.append(ev(t(1 + i), typ, CM, o, rv=rv))
    if events:
        cut = data.draw(st.integers(0, len(events)))
        j.segment(1, [events[:cut]] if cut else [])
        if cut < len(events):
            j.segment(2, [events[cut:]], sealed=data.draw(st.booleans()))
    upto = data.draw(st.integers(0, len(ops)))
    journalread._opened.clear()
    got = state(f"{j.root}/@{t(upto)}")  # events 1..upto have times t(1)..t(upto)
    assert {k[2]: o["metadata"]["resourceVersion"] for k, o in got.items()} == _model(
        base, ops, upto
    )


def test_cli_leaves_no_temp_files(journal: Journal, tmp_path: Path) -> None:
    d = tmp_path / "tmpdir"
    d.mkdir()
    r = kstream("diff", f"{journal.root}/@{t(1)}", f"{journal.root}/", env={"TMPDIR": str(d)})
    assert r.code == 1, r.err
    assert list(d.iterdir()) == []
    j = tmp_path / "J"  # the journal itself is untouched
    assert sorted(p.name for p in (j / "segments").iterdir()) == [
        "000001.events.zst",
        "000002.events.zst",
    ]


def test_frames_beyond_memory_spill(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames bigger than FRAME_IN_MEMORY go through a temporary file: same events."""
    j = journalread.open_journal(str(journal.root))
    expected = [(e.time, e.type, e.object) for e in j.events()]
    monkeypatch.setattr(journalread, "FRAME_IN_MEMORY", 16)
    j = journalread.open_journal(str(journal.root))
    assert [(e.time, e.type, e.object) for e in j.events()] == expected
    assert len(expected) == 4


def test_skewed_times_across_segments(tmp_path: Path) -> None:
    """Two resources' threads stamp times: file order may step back a few
    microseconds. A segment that begins just after T may hold an event at T."""
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10"), cm("b", "11")]})
    j.segment(1, [[ev(t(1), "MODIFIED", CM, cm("a", "20", k="1"))]])
    j.segment(
        2,
        [
            [
                ev("2026-11-29T14:00:05.000002Z", "MODIFIED", CM, cm("a", "21", k="late")),
                ev("2026-11-29T14:00:04.999999Z", "MODIFIED", CM, cm("b", "22", k="early")),
            ]
        ],
    )
    s = state(f"{j.root}/@2026-11-29T14:00:05Z")
    assert {k[2]: o["data"] for k, o in s.items()} == {"a": {"k": "1"}, "b": {"k": "early"}}
    r = kstream("count", str(j.root), "--events", "--since", "2026-11-29T14:00:05Z", "-o", "json")
    assert json.loads(r.out)["total"]["events"] == 1


def test_resync_completes_a_unit_the_base_could_not_read(tmp_path: Path) -> None:
    sec = "v1/secrets"
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10")], sec: []}, failed=(sec,))
    s1 = obj(sec, "s1", "shop", "30", data={"k": "sha256:00"})
    j.segment(
        1,
        [
            [ev(t(1), "RESYNC", sec, rv="30"), ev(t(1), "SYNC", sec, s1)],
            [ev(t(2), "SYNCED", sec, rv="30")],
        ],
    )
    r = kstream("count", f"{j.root}/@{t(1)}", "-o", "json")
    assert r.code == 3, r.err  # still partial: the resync is not closed by then
    r = kstream("count", f"{j.root}/", "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["complete"] is True and doc["total"]["objects"] == 2


# --------------------------------------------------------------------------- gaps and clocks


_OPS_GAPS = st.lists(
    st.tuples(
        st.one_of(
            st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.sampled_from("abcd")),
            st.tuples(st.just("RESYNC"), st.just("")),
            st.tuples(st.just("SYNC"), st.sampled_from("abcd")),
            st.tuples(st.just("SYNCED"), st.just("")),
            st.tuples(st.just("GAP"), st.integers(1, 6).map(str)),  # its length in seconds
            st.tuples(st.just("CLOCK"), st.just("")),
        ),
        st.booleans(),  # held: the same time as the event before (a clock step held it)
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from("abcd")), _OPS_GAPS, st.data())
def test_fold_with_gaps_and_clock_steps_matches_the_rules(
    tmp_path_factory: pytest.TempPathFactory,
    base: set[str],
    ops: list[tuple[tuple[str, str], bool]],
    data: Any,
) -> None:
    """The fold model with GAP events (an instant strictly inside one is refused,
    `@~T` answers it with the same rules) and clock steps (times held: several
    events at one time, a CLOCK event among them, which changes nothing)."""
    j = Journal(tmp_path_factory.mktemp("gaps") / "J")
    write_base(j.base, {CM: [cm(n, "1") for n in base]})
    events, times, gaps = [], [], []
    now = 0
    for i, ((typ, arg), held) in enumerate(ops):
        now = now if held and i else now + 2
        times.append(now)
        rv = str(100 + i)
        if typ == "GAP":
            since = max(0, now - int(arg))
            gaps.append((since, now))
            body = {"since": t(since), "why": "test"}
            o_line = json.dumps(body).encode()
            from kstream.journal.format import Event

            events.append(Event(t(now), "GAP", CM, "", rv, o_line))
        elif typ == "CLOCK":
            from kstream.journal.format import Event

            events.append(Event(t(now), "CLOCK", "", "", "", b'{"step":-5}'))
        else:
            events.append(ev(t(now), typ, CM, cm(arg, rv) if arg else None, rv=rv))
    if events:
        cut = data.draw(st.integers(0, len(events)))
        j.segment(1, [events[:cut]] if cut else [])
        if cut < len(events):
            j.segment(2, [events[cut:]], sealed=data.draw(st.booleans()))
    at = data.draw(st.integers(0, now + 1))
    upto = sum(1 for x in times if x <= at)
    # the model's rvs count every op (GAP and CLOCK included) as in the journal
    renum = [(typ, arg) for (typ, arg), _ in ops]
    expect = _model(
        base, [(x if x[0] not in ("GAP", "CLOCK") else ("BOOKMARK", "")) for x in renum], upto
    )
    inside = any(s < at < u for s, u in gaps)
    journalread._opened.clear()
    if inside:
        with pytest.raises(UsageError, match="inside a gap"):
            state(f"{j.root}/@{t(at)}")
        journalread._opened.clear()
    got = state(f"{j.root}/@~{t(at)}")
    assert {k[2]: o["metadata"]["resourceVersion"] for k, o in got.items()} == expect


def test_instant_inside_a_gap_is_refused_and_named(tmp_path: Path) -> None:
    """A GAP (no follower ran from t(2) to t(8)): an instant inside it is refused,
    naming the gap and the nearest known states on both sides; its ends are
    answered; `@~T` answers with a note; an instant after the journal's end
    says the journal ends there; count --events and log show the gap."""
    from kstream.journal.format import Event

    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10", k="1")]})
    gap = Event(
        t(8), "GAP", CM, "", "20", b'{"since":"' + t(2).encode() + b'","why":"no follower ran"}'
    )
    j.segment(1, [[ev(t(1), "MODIFIED", CM, cm("a", "20", k="2"))], [gap]])
    j.segment(2, [[ev(t(9), "MODIFIED", CM, cm("a", "30", k="3"))]], sealed=False)
    r = kstream("count", f"{j.root}/@{t(5)}")
    one_line(r, 2, "inside a gap", "v1/configmaps", t(2), t(8), f"@{t(2)}", f"@{t(8)}")
    for ok in (t(2), t(8)):
        journalread._opened.clear()
        assert state(f"{j.root}/@{ok}")
    r = kstream("count", f"{j.root}/@~{t(5)}")
    assert r.code == 0 and "inside a gap" in r.err and "may be missing" in r.err
    r = kstream("count", f"{j.root}/@2099-01-01T00:00:00Z")
    assert r.code == 0 and f"the journal ends at {t(9)}" in r.err
    r = kstream("count", f"{j.root}/", "--events", "-o", "json")
    assert r.code == 0
    assert json.loads(r.text)["gaps"] == [
        {"resource": CM, "namespace": "", "since": t(2), "until": t(8), "why": "no follower ran"}
    ]
    r = kstream("count", f"{j.root}/", "--events")
    assert r.code == 0 and f"gap in the journal: {CM} from {t(2)} to {t(8)}" in r.err
    r = kstream("log", f"{j.root}/", "-o", "ndjson")
    assert r.code == 0
    recs = [json.loads(x) for x in r.text.splitlines()]
    assert [x["type"] for x in recs] == ["MODIFIED", "GAP", "MODIFIED"]
    assert recs[1]["since"] == t(2)
