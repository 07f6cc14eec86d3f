"""Re-basing and retention without a cluster: which base a reader of an instant
starts from (at the boundaries), what retention removes and in which order, the
states read from a later base against those folded from base 0, where a journal
cut by retention starts, and the option checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kstream.journal import reader as journalread
from kstream.journal.format import (
    BASE_NAME,
    Event,
    base_name,
    base_number,
    choose_base,
    list_bases,
    retention,
)
from kstream.journal.rebase import Rebaser
from kstream.sources import open_source
from tests.conftest import kstream, one_line
from tests.journalmaker import Journal, ev, obj, write_base

CM = "v1/configmaps"
NOWHERE = {"KUBECONFIG": "/nonexistent"}


def t(s: int) -> str:
    return f"2026-11-29T14:{s // 60:02d}:{s % 60:02d}.000000Z"


def cm(name: str, rv: str, **data: str) -> dict[str, Any]:
    return obj(CM, name, "shop", rv, data=dict(data))


def state(path: str) -> dict[str, dict[str, Any]]:
    journalread._opened.clear()
    snap = open_source(path)
    return {d["metadata"]["name"]: d["data"] for _, d in snap.documents()}


def rebase(root: Path, last: int, retain: float | None = None) -> Rebaser:
    """A new base after segment `last`, as the follow makes it (`Rebaser.step`
    after the writer sealed `last`; the period is over at once)."""
    rb = Rebaser(root, 1e-6, retain, background=False)
    rb.step(SimpleNamespace(current=None, next_segment=last + 1))  # type: ignore[arg-type]
    assert rb.written == [last]
    return rb


# --------------------------------------------------------------------------- pure rules


def test_choose_base_at_the_boundaries() -> None:
    times = [(0, t(0)), (2, t(10)), (5, t(20))]
    assert choose_base(times, t(10)) == 2  # equal to a base's time: that base
    assert choose_base(times, t(9)) == 0
    assert choose_base(times, t(15)) == 2  # between two bases: the older
    assert choose_base(times, t(25)) == 5
    assert choose_base(times, None) == 5  # the latest state
    assert choose_base([(2, t(10)), (5, t(20))], t(5)) is None  # before the oldest
    assert choose_base([], t(5)) is None


def test_base_names() -> None:
    assert base_name(0) == BASE_NAME and base_number(BASE_NAME) == 0
    assert base_name(7) == "bases/000007.ndjson.zst"
    assert base_number("bases/000007.ndjson.zst") == base_number("000007.ndjson.zst") == 7
    assert base_number("bases/.000007.ndjson.zst.tmp") is None
    assert base_number("bases/000000.ndjson.zst") is None  # base 0 is base.ndjson.zst


def listing(bases: dict[int, str], segments: int) -> list[tuple[str, str]]:
    return [(base_name(n), tm) for n, tm in bases.items()] + [
        (f"segments/{n:06d}.events.zst", "") for n in range(1, segments + 1)
    ]


def test_retention_keeps_the_newest_base_at_or_before_the_cutoff() -> None:
    lst = listing({0: t(0), 2: t(10), 4: t(20)}, 6)
    assert retention(lst, t(5)) == []  # only base 0 is old enough: nothing goes
    assert retention(lst, t(10)) == [
        BASE_NAME,
        "segments/000001.events.zst",
        "segments/000002.events.zst",
    ]
    assert retention(lst, t(30)) == [
        BASE_NAME,
        "segments/000001.events.zst",
        "segments/000002.events.zst",
        "bases/000002.ndjson.zst",
        "segments/000003.events.zst",
        "segments/000004.events.zst",
    ]
    # leftovers of a retention a crash cut short (base 0 gone, segment 1 still there)
    left = [x for x in lst if x[0] != BASE_NAME]
    assert retention(left, t(10)) == ["segments/000001.events.zst", "segments/000002.events.zst"]
    assert retention(listing({0: t(0)}, 3), t(30)) == []  # no later base: nothing goes


@given(
    st.lists(st.integers(1, 12), unique=True, max_size=5).map(sorted),
    st.integers(0, 60),
)
def test_retention_leaves_a_readable_journal_at_every_step(later: list[int], cut: int) -> None:
    """Removing what `retention` lists one name at a time, in its order: after
    each removal the oldest base left is followed by every segment after it (what
    a reader needs; a crash may stop there)."""
    segs = max(later, default=0) + 2
    bases = {0: t(0)} | {n: t(n * 4) for n in later}
    lst = listing(bases, segs)
    gone = retention(lst, t(cut))
    left = {name for name, _ in lst}
    for name in gone:
        left.discard(name)
        bnums = [n for nm in left if (n := base_number(nm)) is not None]
        assert bnums, "every base removed"
        oldest = min(bnums)
        for s in range(oldest + 1, segs + 1):
            assert f"segments/{s:06d}.events.zst" in left
    keep = choose_base(sorted(bases.items()), t(cut))
    assert {base_number(n) for n in left if base_number(n) is not None} == {
        n for n in bases if keep is None or n >= keep
    }


# --------------------------------------------------------------------------- readers


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """Base 0 at t(0); segment 1: t(1)..t(3); segment 2: t(10) (a GAP in it,
    since t(4)); segment 3: t(12)..t(14); segment 4 open: t(20)."""
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10", k="1"), cm("b", "11", k="1")]}, started=t(0))
    j.segment(
        1,
        [
            [ev(t(1), "MODIFIED", CM, cm("a", "20", k="2"))],
            [ev(t(2), "ADDED", CM, cm("c", "21", k="1")), ev(t(3), "DELETED", CM, cm("b", "22"))],
        ],
    )
    j.segment(2, [[ev(t(10), "MODIFIED", CM, cm("a", "30", k="3"))]])
    gap = Event(t(13), "GAP", CM, "", "40", b'{"since":"' + t(9).encode() + b'","why":"down"}')
    j.segment(
        3,
        [
            [ev(t(12), "MODIFIED", CM, cm("c", "35", k="2"))],
            [gap, ev(t(13), "MODIFIED", CM, cm("a", "41", k="4"))],
            [ev(t(14), "ADDED", CM, cm("b", "42", k="9"))],
        ],
    )
    j.segment(4, [[ev(t(20), "DELETED", CM, cm("c", "50"))]], sealed=False)
    return j


INSTANTS = [0, 1, 2, 3, 5, 9, 10, 11, 12, 13, 14, 15, 20, 30]


def test_states_from_later_bases_equal_those_from_base_0(journal: Journal, tmp_path: Path) -> None:
    """Bases after segments 1 and 3 (base 3's time is t(14), its last event):
    every instant (equal to a base's time, between bases, after the last, in
    the open segment) reads the state folded from base 0; the base used is the
    newest at or before the instant."""
    plain = tmp_path / "plain"
    shutil.copytree(journal.root, plain)
    before = {s: state(f"{plain}/@~{t(s)}") for s in INSTANTS}
    rebase(journal.root, 1)
    rebase(journal.root, 3)
    assert sorted(list_bases(journal.root)) == [0, 1, 3]
    j = journalread.open_journal(str(journal.root))
    assert j.base_time(1) == t(3) and j.base_time(3) == t(14)
    assert j.from_base(t(14)).base_no == 3  # T equal to a base's time
    assert j.from_base(t(13)).base_no == 1  # between bases
    assert j.from_base(t(2)).base_no == 0
    assert [s.number for s in j.from_base(t(14)).segments] == [4]
    for s in INSTANTS:
        assert state(f"{journal.root}/@~{t(s)}") == before[s], t(s)
    assert state(f"{journal.root}/") == state(f"{plain}/")
    # each later base is an ordinary archive: the state after its segments, its rv
    b3 = open_source(str(journal.root / "bases" / "000003.ndjson.zst"))
    assert b3.entries[0].resourceVersion == "42"
    assert b3.manifest is not None and b3.manifest.finished == t(14)


def test_an_instant_opens_only_the_segments_after_its_base(
    journal: Journal, tmp_path: Path
) -> None:
    """Reading @T opens the segments after the base it reads from, not every
    segment since the oldest base (in object storage each costs requests: a
    journal of 1-minute segments would cost more each day). Shown by a segment
    before that base made unreadable: T after the base reads as before, an
    instant that needs the segment says it is corrupted."""
    rebase(journal.root, 1)
    rebase(journal.root, 3)
    late = state(f"{journal.root}/@~{t(14)}")
    seg1 = journal.root / "segments" / "000001.events.zst"
    seg1.write_bytes(b"not a segment")
    assert state(f"{journal.root}/@~{t(14)}") == late
    r = kstream("count", f"{journal.root}/@~{t(2)}")
    assert r.code == 6 and "000001.events.zst" in r.err, r.err


def test_a_gap_that_spans_a_base(journal: Journal) -> None:
    """The GAP in segment 3 (t(9)..t(13)) spans base 2 (time t(10)): an instant
    inside it, before or after the base, is refused naming it; @~ takes it."""
    rebase(journal.root, 2)
    for s in (9.5, 10, 11):
        at = f"2026-11-29T14:00:{s:09.6f}Z"
        r = kstream("count", f"{journal.root}/@{at}")
        one_line(r, 2, "inside a gap", t(9), t(13))
    assert state(f"{journal.root}/@~{t(11)}")["a"] == {"k": "3"}


def test_retention_moves_the_start_and_readers_say_where_it_is(journal: Journal) -> None:
    """After retention removed base 0 and segments 1..3 (keeping base 3), states
    from t(14) on are unchanged, an earlier instant is refused in one line
    naming where the journal starts, and count --events and log read what is
    left; --resume-like readers find the positions in the newest base."""
    want = {s: state(f"{journal.root}/@~{t(s)}") for s in (14, 15, 20)}
    rb = rebase(journal.root, 1)
    rb = rebase(journal.root, 3, retain=1.0)  # t(14) is long before now - 1s
    assert rb.removed == [
        BASE_NAME,
        "segments/000001.events.zst",
        "bases/000001.ndjson.zst",
        "segments/000002.events.zst",
        "segments/000003.events.zst",
    ]
    assert sorted(list_bases(journal.root)) == [3]
    for s, w in want.items():
        assert state(f"{journal.root}/@{t(s)}") == w
    r = kstream("count", f"{journal.root}/@{t(13)}")
    one_line(r, 2, "before the journal starts", "--retain", t(14), f"@{t(14)}")
    r = kstream("count", f"{journal.root}/", "--events")
    assert r.code == 0 and "configmaps" in r.text
    r = kstream("log", f"{journal.root}/", "-o", "ndjson")
    assert r.code == 0 and r.text.count("\n") == 1, r.text  # the DELETED of the open segment
    from kstream.journal.resume import positions

    pos = positions(journal.root)
    assert pos.rvs["v1/configmaps "] == "50" and pos.next_segment == 5


def test_a_crash_mid_retention_leaves_a_readable_journal(journal: Journal) -> None:
    """Base 0 removed, segment 1 not yet (what a crash between the two leaves):
    readers start at base 1 and ignore segment 1; the next retention removes it."""
    rebase(journal.root, 1)
    want = state(f"{journal.root}/@{t(14)}")
    (journal.root / BASE_NAME).unlink()
    assert state(f"{journal.root}/@{t(14)}") == want
    r = kstream("count", f"{journal.root}/@{t(2)}")
    one_line(r, 2, "before the journal starts", t(3))
    rb = rebase(journal.root, 3, retain=1.0)
    assert rb.removed[0] == "segments/000001.events.zst"


def test_a_new_journal_over_one_with_bases_removes_them(journal: Journal) -> None:
    from kstream.journal.directory import journal_dir_problem, promote

    rebase(journal.root, 2)
    assert journal_dir_problem(journal.root) == ""  # bases/ is a journal's own
    (journal.root / "bases" / "notes.txt").write_text("mine")
    assert "bases/notes.txt" in journal_dir_problem(journal.root)
    (journal.root / "bases" / "notes.txt").unlink()
    new = journal.root / ".kstream-new"
    new.mkdir()
    write_base(new / BASE_NAME, {CM: []}, started=t(40))
    (new / "journal.json").write_bytes((journal.root / "journal.json").read_bytes())
    promote(journal.root)
    assert not (journal.root / "bases").exists()
    assert list_bases(journal.root) == {0: journal.root / BASE_NAME}


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--follow", "-o", "j/", "--retain", "7d"], ["--retain", "--rebase-every"]),
        (
            ["--follow", "-o", "j/", "--rebase-every", "1h", "--retain", "30m"],
            ["--retain 30m is shorter than --rebase-every 1h"],
        ),
        (["--follow", "-o", "j/", "--rebase-every", "often"], ["--rebase-every", "duration"]),
        (["-o", "j/", "--rebase-every", "1h"], ["need --follow"]),
    ],
)
def test_bad_rebase_options(tmp_path: Path, args: list[str], words: list[str]) -> None:
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = kstream("dump", *args, env=NOWHERE)
    finally:
        os.chdir(here)
    one_line(r, 2, *words)


# --------------------------------------------------------------------------- resyncs at a boundary

W = "example.com/v1/widgets"


def test_a_resync_open_at_a_boundary_is_not_lost(tmp_path: Path) -> None:
    """Segment 1 ends inside a resync of configmaps (RESYNC and a SYNC, cut by a
    crash: never closed) and holds a whole resync of widgets, a resource the
    base did not have (a CRD created while following); segment 2 holds the
    resync done again on resume. With a base after segment 1, every instant
    reads what the fold from base 0 reads: the cut resync changes nothing (the
    base keeps the objects before it), the one done again replaces them, and
    the new resource is in the base."""
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [cm("a", "10", k="1"), cm("b", "11", k="1")]}, started=t(0))
    wd = obj(W, "w1", "shop", "5", spec={"n": 1})
    j.segment(
        1,
        [
            [ev(t(1), "MODIFIED", CM, cm("a", "20", k="2"))],
            [
                ev(t(2), "RESYNC", W, rv="5"),
                ev(t(2), "SYNC", W, wd),
                ev(t(2), "SYNCED", W, rv="5"),
            ],
            [ev(t(3), "RESYNC", CM, rv="30"), ev(t(3), "SYNC", CM, cm("z", "30", k="z"))],
        ],
    )
    j.segment(
        2,
        [
            [ev(t(10), "RESYNC", CM, rv="40"), ev(t(10), "SYNC", CM, cm("y", "40", k="y"))],
            [ev(t(10), "SYNCED", CM, rv="40")],
            [ev(t(11), "MODIFIED", CM, cm("y", "41", k="y2"))],
        ],
    )
    plain = tmp_path / "plain"
    shutil.copytree(j.root, plain)
    rebase(j.root, 1)
    b1 = open_source(str(j.root / "bases" / "000001.ndjson.zst"))
    units = {e.resource: e for e in b1.entries}
    assert units["configmaps"].resourceVersion == "20"  # not the cut resync's
    assert units["widgets"].objects == 1 and units["widgets"].resourceVersion == "5"
    assert {d["metadata"]["name"] for _, d in b1.documents()} == {"a", "b", "w1"}
    for s in (1, 2, 3, 5, 10, 11, 12):
        journalread._opened.clear()
        got = open_source(f"{j.root}/@{t(s)}")
        journalread._opened.clear()
        want = open_source(f"{plain}/@{t(s)}")
        assert [(e.resource, e.objects, e.resourceVersion) for e in got.entries] == [
            (e.resource, e.objects, e.resourceVersion) for e in want.entries
        ], t(s)
        assert sorted(got.lines()) == sorted(want.lines()), t(s)


def test_one_base_per_period(journal: Journal) -> None:
    """Periods aligned on the epoch (10 s here): no base within the period of
    the newest one; one at the first step after a period's end, folding the
    segments sealed by then; none again in that period, though the base's time
    (its last event's) is in the period before."""
    from kstream.journal.format import parse_time

    clock = [parse_time(t(5)).timestamp()]
    rb = Rebaser(journal.root, 10.0, None, background=False, wall=lambda: clock[0])

    def step(sealed: int) -> None:
        rb.step(SimpleNamespace(current=None, next_segment=sealed + 1))  # type: ignore[arg-type]

    step(2)
    assert rb.written == []  # t(5): still the base's period
    clock[0] = parse_time(t(12)).timestamp()
    step(2)
    assert rb.written == [2]
    clock[0] = parse_time(t(19)).timestamp()
    step(3)
    assert rb.written == [2]  # the period that base closed is over only at t(20)
    clock[0] = parse_time(t(21)).timestamp()
    step(3)
    assert rb.written == [2, 3]
    clock[0] = parse_time(t(29)).timestamp()
    step(4)  # base 3's time, t(14), is in the period before: still no new base
    assert rb.written == [2, 3]
    j = journalread.open_journal(str(journal.root))
    assert (j.base_time(2), j.base_time(3)) == (t(10), t(14))


def test_rebase_options_apply_to_object_storage_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """--rebase-every / --retain with -o s3:// (the recorder passes them): taken as
    for a local journal, with no note."""
    import kstream.cli.follow as cf

    said: list[str] = []
    monkeypatch.setattr(cf, "note", said.append)
    fo = cf.follow_options(None, "64MiB", None, 1, 60.0, "s3://b/j/", None, "auto",
                           rebase_every="24h", retain="30d")  # fmt: skip
    assert (fo.rebase_every, fo.retain) == (86400.0, 30 * 86400.0)
    assert fo.rotate_interval == 60.0  # 1m for s3://
    local = cf.follow_options(None, "64MiB", None, 1, 60.0, "j/", None, "auto",
                              rebase_every="24h", retain="30d")  # fmt: skip
    assert (local.rebase_every, local.retain) == (86400.0, 30 * 86400.0)
    assert said == []
