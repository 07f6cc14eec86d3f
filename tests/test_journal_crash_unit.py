"""Crash consistency of a journal, proven by crashing its writer at every step
(kstream/journal/durable.py: `KSTREAM_CRASH_AT=N` ends the process just before its
Nth creat, write, fsync, truncate, rename, unlink, mkdir or rmdir; tests/crashjournal.py
is the writer, against a fake server): the lock taken, the base written and moved
into place, segments created, frames ended and fsynced, segments rotated and
sealed, and, for `--resume`, the directory tidied, the open tail cut and sealed.

After each crash: the events on disk are the server's changes in order, with no
duplicate, up to some point (what was durable); the resume then finishes what
the crash left (or says to start again, when the base was not whole), and the
journal's change events are exactly the server's, every reader exits 0, the
segments are numbered without a hole, event times never go back, and nothing
but the journal is left in its directory or beside it.

The on-disk invariants of kstream/journal/format.py's docstring each have a test
here (`test_invariant_*`).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kstream.journal.durable import CRASH_EXIT
from kstream.journal.format import (
    BASE_NAME,
    LOCK_NAME,
    META_NAME,
    SEGMENT_DIR,
    Event,
    list_segments,
)
from tests import crashjournal as cj

ROOT = Path(__file__).resolve().parent.parent
MAX_STEPS = 400  # a bound: the new run takes far fewer


def run(what: str, j: Path, crash: int = 0, trace: Path | None = None) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("KSTREAM_CRASH_AT", None)
    env.pop("KSTREAM_CRASH_TRACE", None)
    if crash:
        env["KSTREAM_CRASH_AT"] = str(crash)
    if trace is not None:
        env["KSTREAM_CRASH_TRACE"] = str(trace)
    r = subprocess.run(
        [sys.executable, "-m", "tests.crashjournal", what, str(j)],
        env=env, cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    assert r.returncode in (0, CRASH_EXIT, cj.NO_JOURNAL, cj.LOCKED), r.stderr.decode()[-2000:]
    if r.returncode == cj.LOCKED:
        run.said = r.stderr.decode()  # type: ignore[attr-defined]
    return r.returncode


def expected() -> list[tuple[str, str]]:
    return [(cj.change(rv)[0], str(rv)) for rv in range(cj.BASE_RV + 1, cj.last_rv() + 1)]


def journal_events(j: Path) -> list[Event]:
    from kstream.journal.reader import open_journal

    return list(open_journal(str(j)).events())


def changes_of(evs: list[Event]) -> list[tuple[str, str]]:
    return [(e.type, e.rv) for e in evs if e.type in ("ADDED", "MODIFIED", "DELETED")]


def cli(*argv: str) -> tuple[int, str]:
    from kstream.cli.app import run as kstream

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    code = kstream(list(argv), out, err)
    buf = err.buffer
    assert isinstance(buf, io.BytesIO)
    return code, buf.getvalue().decode()


def check_durable_prefix(j: Path) -> None:
    """What a crash left, before any resume: when it is a journal, its change
    events are the server's first ones, in order, none twice."""
    if not (j / META_NAME).is_file():
        return
    got = changes_of(journal_events(j))
    assert got == expected()[: len(got)]


def check_complete(j: Path) -> None:
    evs = journal_events(j)
    assert changes_of(evs) == expected()  # nothing lost, nothing twice
    times = [e.time for e in evs]
    assert times == sorted(times)  # event times never go back
    segs = list_segments(j)
    assert list(segs) == list(range(1, len(segs) + 1))  # numbered without a hole
    assert {p.name for p in j.iterdir()} <= {META_NAME, BASE_NAME, SEGMENT_DIR, LOCK_NAME}
    assert [p.name for p in j.parent.iterdir() if p.name.startswith(".")] == []
    for argv in (
        ["count", f"{j}/"],
        ["count", f"{j}/", "--events"],
        ["log", f"{j}/"],
        ["diff", f"{j}/", f"{j}/"],
    ):
        code, err = cli(*argv)
        assert code == 0, (argv, err)


def test_crash_at_every_step_of_a_new_journal(tmp_path: Path) -> None:
    """Lock, base (write, journal.json, move into place), segments, frames,
    rotation, seal: a crash before each step, then the resume (or, when the
    base was not whole, a new run, as the resume says)."""
    steps = 0
    for n in range(1, MAX_STEPS):
        j = tmp_path / f"c{n}" / "j"
        j.parent.mkdir()
        code = run("new", j, crash=n)
        if code == 0:
            check_complete(j)
            break  # the run took fewer steps than n: every step was crashed at
        assert code == CRASH_EXIT
        steps = n
        check_durable_prefix(j)
        if run("resume", j) == cj.NO_JOURNAL:
            assert not (j / META_NAME).exists()
            assert run("new", j) == 0
        check_complete(j)
        shutil.rmtree(j.parent)
    assert steps >= 20  # the run was crashed at each of its steps (and there are many)


def test_crash_at_every_step_of_a_resume(tmp_path: Path) -> None:
    """A journal cut mid-follow (an open segment, its last frame whole or not);
    then `--resume` crashed before each of its steps (lock, tidy, the tail cut
    and sealed, new segments...), then resumed again."""
    trace = tmp_path / "trace"
    first = tmp_path / "first" / "j"
    first.parent.mkdir()
    assert run("new", first, trace=trace) == 0
    frames = [i for i, ln in enumerate(trace.read_text().splitlines(), 1) if " end frame " in ln]
    cut = frames[len(frames) // 2]  # crash just before a frame is ended: a tail to repair
    crashed = tmp_path / "crashed" / "j"
    crashed.parent.mkdir()
    assert run("new", crashed, crash=cut) == CRASH_EXIT
    resumed = 0
    for m in range(1, MAX_STEPS):
        j = tmp_path / f"r{m}" / "j"
        shutil.copytree(crashed.parent, j.parent)
        code = run("resume", j, crash=m)
        if code == 0:
            check_complete(j)
            break
        assert code == CRASH_EXIT
        resumed = m
        check_durable_prefix(j)
        assert run("resume", j) == 0
        check_complete(j)
        shutil.rmtree(j.parent)
    assert resumed >= 8


@pytest.fixture(scope="module")
def open_tail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal whose newest segment is open with whole frames (crashed just
    before a seal), for the byte-offset cuts."""
    d = tmp_path_factory.mktemp("tail")
    trace = d / "trace"
    j = d / "full" / "j"
    j.parent.mkdir()
    assert run("new", j, trace=trace) == 0
    seals = [i for i, ln in enumerate(trace.read_text().splitlines(), 1) if " seal " in ln]
    c = d / "cut" / "j"
    c.parent.mkdir()
    assert run("new", c, crash=seals[1]) == CRASH_EXIT
    return c


def test_open_segment_cut_at_every_byte_of_its_last_frame(open_tail: Path, tmp_path: Path) -> None:
    """The newest segment cut at each byte offset inside its last frame (and
    just after it): readers read the whole frames before the cut, the resume's
    repair keeps exactly them and takes its positions from them, so the resume
    goes on from the last durable change: nothing lost, nothing twice."""
    from kstream.journal.recovery import read_sealed_manifest
    from kstream.journal.resume import positions

    segs = list_segments(open_tail)
    newest = segs[max(segs)]
    assert read_sealed_manifest(newest) is None
    from kstream.journal.reader import open_journal

    seg = open_journal(str(open_tail)).segments[-1]
    data = newest.read_bytes()
    # the start of the last whole frame: where the repair would cut before it
    from kstream.journal.recovery import _scan_frames

    with open(newest, "rb") as f:
        frames = list(_scan_frames(f, seg.header_end, len(data)))
    last_off, last_len, _ = frames[-1]
    full = changes_of(journal_events(open_tail))
    before = len(changes_of([Event.decode(x) for x in frames[-1][2]]))
    for cut in range(last_off, last_off + last_len + 1):
        j = tmp_path / f"b{cut}" / "j"
        shutil.copytree(open_tail, j)
        (j / SEGMENT_DIR / newest.name).write_bytes(data[:cut])
        got = changes_of(journal_events(j))
        whole = cut == last_off + last_len
        assert got == (full if whole else full[: len(full) - before])
        pos = positions(j)  # the repair: sealed, positions from what is whole
        assert changes_of(journal_events(j)) == got
        assert pos.rvs["v1/configmaps "] == (got[-1][1] if got else str(cj.BASE_RV))
        assert read_sealed_manifest(j / SEGMENT_DIR / newest.name) is not None
        shutil.rmtree(j)


# ------------------------------------------------------------------ invariants


def test_invariant_journal_json_means_a_whole_base(tmp_path: Path) -> None:
    """I1: journal.json is in the journal's directory only once its base is
    whole: a crash before the commit point leaves no journal.json."""
    for n in range(1, 12):
        j = tmp_path / f"i{n}" / "j"
        j.parent.mkdir()
        if run("new", j, crash=n) == 0:
            break
        if (j / META_NAME).exists():
            from kstream.store.snapshot import open_snapshot

            snap = open_snapshot(str(j / BASE_NAME))  # a whole, verified archive
            assert snap.manifest is not None and snap.manifest.status == "complete"


def test_invariant_one_open_segment_the_newest(open_tail: Path) -> None:
    """I2: segments are numbered 1..N with no hole; every one but the newest is
    sealed; the newest may be open (whole frames, then at most a cut one)."""
    from kstream.journal.recovery import read_sealed_manifest

    segs = list_segments(open_tail)
    assert list(segs) == list(range(1, len(segs) + 1))
    *older, newest = segs.values()
    assert all(read_sealed_manifest(p) is not None for p in older)
    assert read_sealed_manifest(newest) is None


def test_invariant_a_segment_cut_in_its_header_leaves_no_hole(tmp_path: Path) -> None:
    """I2 after the repair: a newest segment cut inside its header holds no
    event; the repair removes it and the next segment takes its number (no hole:
    before, the number was skipped and every reader refused the journal)."""
    j = tmp_path / "j"
    j.mkdir()
    assert run("new", j) == 0
    segs = list_segments(j)
    n = max(segs) + 1
    (j / SEGMENT_DIR / f"{n:06d}.events.zst").write_bytes(b"\x50\x2a\x4d")
    from kstream.journal.resume import positions

    assert positions(j).next_segment == n


def test_invariant_positions_never_pass_the_durable_events(open_tail: Path) -> None:
    """I3: each unit's position (sealed manifests, then the open segment's whole
    frames) is the resourceVersion of its last durable event."""
    from kstream.journal.recovery import Positions

    evs = journal_events(open_tail)
    last = [e.rv for e in evs if e.rv][-1]
    j = open_tail.parent / "copy"
    shutil.copytree(open_tail, j)
    from kstream.journal.resume import positions

    pos: Positions = positions(j)
    assert pos.rvs["v1/configmaps "] == last
    shutil.rmtree(j)


def test_invariant_times_never_go_back(tmp_path: Path) -> None:
    """I4: event times never go back in file order, across segments and runs,
    even when the wall clock steps back (a CLOCK event says so, once)."""
    from kstream.journal.format import now_time
    from kstream.journal.writer import JournalWriter

    j = tmp_path / "j"
    j.mkdir()
    w = JournalWriter(j)
    w.write(Event("2026-12-01T10:00:05.000000Z", "BOOKMARK", "v1/configmaps", "", "1"))
    w.write(Event("2026-12-01T10:00:01.000000Z", "BOOKMARK", "v1/configmaps", "", "2"))
    w.write(Event("2026-12-01T10:00:02.000000Z", "BOOKMARK", "v1/configmaps", "", "3"))
    w.close()
    w = JournalWriter(j, last_time=w.last_time)  # a resume goes on from the newest time
    w.write(Event("2026-12-01T10:00:00.500000Z", "BOOKMARK", "v1/configmaps", "", "4"))
    w.write(Event(now_time(), "BOOKMARK", "v1/configmaps", "", "5"))
    w.close()
    from kstream.journal.recovery import segment_events

    evs = [Event.decode(x) for p in list_segments(j).values() for x in segment_events(p)]
    times = [e.time for e in evs]
    assert times == sorted(times)
    assert [e.rv for e in evs if e.type == "BOOKMARK"] == ["1", "2", "3", "4", "5"]
    assert [e.type for e in evs].count("CLOCK") == 2  # once per run that saw a step


def test_invariant_nothing_left_but_the_journal(tmp_path: Path) -> None:
    """I5: a crash at any step leaves nothing beside the journal's directory,
    and inside it only what the next run removes (`tidy`)."""
    from kstream.journal.directory import journal_lock, tidy

    for n in range(1, 40, 3):
        j = tmp_path / f"l{n}" / "j"
        j.parent.mkdir()
        if run("new", j, crash=n) == 0:
            break
        assert [p.name for p in j.parent.iterdir()] in ([], ["j"])
        if j.exists():
            with journal_lock(j):
                tidy(j)
            assert {p.name for p in j.iterdir()} <= {META_NAME, BASE_NAME, SEGMENT_DIR, LOCK_NAME}


def test_two_writers_race_at_every_phase(tmp_path: Path) -> None:
    """A writer held at each step of its run (the lock taken, the base written and
    moved into place, segments created, frames ended, sealed) and at each step of a
    resume: a second writer (a resume, as `--force` or another `--resume` would)
    is refused with the holder named, and changes nothing; once the first is
    killed (-9), its lock is free: the second takes it over and the journal
    completes."""
    import signal
    import time

    trace = tmp_path / "trace"
    probe = tmp_path / "probe" / "j"
    probe.parent.mkdir()
    assert run("new", probe, trace=trace) == 0
    names = trace.read_text().splitlines()
    lock_step = next(i for i, ln in enumerate(names, 1) if ln.split()[1] == "lock")
    # every step of the base; of the follow, the first step of each kind (a segment
    # created, its header, a frame ended, fsynced, a seal): the rest repeat them
    seen: set[str] = set()
    steps = []
    for n, ln in enumerate(names, 1):
        kind = ln.split()[1]
        if n > lock_step and (ln.split()[-1] in (".lock", ".kstream-new", "j") or kind not in seen):
            seen.add(kind)
            steps.append(("new", n))
    steps += [("resume", n) for n in (2, 3, 4, 5)]  # a resume's lock, tidy, first segment
    for what, n in steps:
        d = tmp_path / f"{what}{n}"
        d.mkdir()
        j = d / "j"
        if what == "resume":
            assert run("new", j, crash=len(names) - 3) == CRASH_EXIT  # an open tail
        t = d / "trace"
        env = dict(os.environ, PYTHONPATH=str(ROOT), KSTREAM_STOP_AT=str(n))
        env["KSTREAM_CRASH_TRACE"] = str(t)
        first = subprocess.Popen(
            [sys.executable, "-m", "tests.crashjournal", what, str(j)], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (t.exists() and "stopped" in t.read_text()):
                assert first.poll() in (None, 0) and time.monotonic() < deadline, (what, n)
                if first.poll() == 0:
                    break  # this run took fewer steps
                time.sleep(0.02)
            if first.poll() == 0:
                continue
            before = sorted((p.relative_to(j), p.stat().st_size) for p in j.rglob("*"))
            assert run("resume", j) == cj.LOCKED, (what, n)
            held_at = t.read_text().splitlines()[-2]  # the step it is held before
            if not held_at.endswith(f"write {LOCK_NAME}"):  # then it has said who it is
                assert f"pid {first.pid} on " in run.said  # type: ignore[attr-defined]
            assert sorted((p.relative_to(j), p.stat().st_size) for p in j.rglob("*")) == before
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        code = run("resume", j)  # the dead writer's lock is taken over
        if code == cj.NO_JOURNAL:
            assert run("new", j) == 0
        check_complete(j)
        shutil.rmtree(d)


def test_crash_at_every_step_of_a_force_over_a_journal(tmp_path: Path) -> None:
    """A new journal written over a complete one (what `--force` does): a crash
    before each step of its base and its move into place leaves either the old
    journal whole (before the new journal.json was written) or the new one
    (after it; the next run finishes the move), never a mix: after the resume,
    the journal is complete and every reader exits 0."""
    trace = tmp_path / "trace"
    old = tmp_path / "old" / "j"
    old.parent.mkdir()
    assert run("new", old) == 0
    probe = tmp_path / "probe"
    shutil.copytree(old.parent, probe)
    assert run("new", probe / "j", trace=trace) == 0
    names = trace.read_text().splitlines()
    last = next(i for i, ln in enumerate(names, 1) if ln.split()[1] == "rmdir")
    for n in range(1, last + 2):
        d = tmp_path / f"f{n}"
        shutil.copytree(old.parent, d)
        j = d / "j"
        assert run("new", j, crash=n) == CRASH_EXIT
        check_durable_prefix(j)
        assert run("resume", j) == 0
        check_complete(j)
        shutil.rmtree(d)


# ------------------------------------------------------------------ re-basing and retention


def server_state(rv: int) -> dict[str, str]:
    """The fake server's objects (name -> data.v) at resourceVersion `rv`."""
    objs = {o["metadata"]["name"]: o["data"]["v"] for o in cj.base_objects()}
    for r in range(cj.BASE_RV + 1, rv + 1):
        typ, o = cj.change(r)
        if typ == "DELETED":
            objs.pop(o["metadata"]["name"], None)
        else:
            objs[o["metadata"]["name"]] = o["data"]["v"]
    return objs


def state_at(j: Path | str, instant: str | None) -> dict[str, str]:
    from kstream.journal import reader

    snap = reader.open_state(f"{j}/@{instant}" if instant else f"{j}/")
    assert snap is not None
    out = {str(d["metadata"]["name"]): str(d["data"]["v"]) for _, d in snap.documents()}
    reader._opened.clear()
    return out


def check_states(j: Path | str) -> None:
    """The state at the journal's start, at every retained event's time and at
    its end is the server's at the resourceVersion of that instant."""
    from kstream.journal.reader import open_journal

    jr = open_journal(str(j))
    start = jr.start
    rv0 = int(jr.base.entries[0].resourceVersion or 0)
    assert state_at(j, start) == server_state(rv0)
    evs = [e for e in jr.events() if e.type in ("ADDED", "MODIFIED", "DELETED")]
    for e in evs:
        rv = max([int(x.rv) for x in evs if x.time <= e.time] + [rv0])
        assert state_at(j, e.time) == server_state(rv), (e.time, rv)
    last = max([int(x.rv) for x in evs] + [rv0])
    assert state_at(j, None) == server_state(last)


def check_rebased(j: Path, whole: bool = True, at: str = "") -> None:
    """A journal with later bases (and retention): its events a suffix of the
    server's (ending at the last change when `whole`), in order, none twice;
    its segments numbered without a hole after its oldest base; nothing but
    the journal in it; every state right; every reader exits 0 (reading `at`
    when given: the same journal in object storage, `j` its copy)."""
    from kstream.journal.format import BASES_DIR, list_bases

    evs = journal_events(j)
    got, exp = changes_of(evs), expected()
    if whole:
        assert got == exp[len(exp) - len(got) :]
    else:  # cut by a crash: some run of the server's changes, in order
        firsts = [i for i, c in enumerate(exp) if got and c == got[0]]
        assert not got or exp[firsts[0] : firsts[0] + len(got)] == got
    times = [e.time for e in evs]
    assert times == sorted(times)
    oldest = min(list_bases(j))
    segs = [n for n in list_segments(j) if n > oldest]
    assert segs == list(range(oldest + 1, oldest + 1 + len(segs)))
    if whole:
        allowed = {META_NAME, BASE_NAME, SEGMENT_DIR, LOCK_NAME, BASES_DIR}
        assert {p.name for p in j.iterdir()} <= allowed
        assert [p.name for p in j.parent.iterdir() if p.name.startswith(".")] == []
    name = at.rstrip("/") or str(j)
    check_states(name)
    for argv in (
        ["count", f"{name}/"],
        ["count", f"{name}/", "--events"],
        ["log", f"{name}/"],
        ["diff", f"{name}/", f"{name}/"],
    ):
        code, err = cli(*argv)
        assert code == 0, (argv, err)


def test_crash_at_every_step_of_a_rebase_and_retention(tmp_path: Path) -> None:
    """`--rebase-every` and `--retain` (a new base at each rotation, then all that
    retention may remove): a crash before each step of the first three new bases
    (the work directory made, bases/ made, the rename, its fsync, the work
    removed) and of each retention after them (base.ndjson.zst, then each
    segment and older base, oldest first). What the crash left is read by every
    reader with the server's state at every instant still retained; after the
    resume (re-basing too) the journal is whole to the last change."""
    trace = tmp_path / "trace"
    first = tmp_path / "first" / "j"
    first.parent.mkdir()
    assert run("new+rebase", first, trace=trace) == 0
    check_rebased(first)
    assert not (first / BASE_NAME).exists()  # retention removed base 0
    steps = trace.read_text().splitlines()
    rebases = [i for i, ln in enumerate(steps, 1) if ln.endswith(" mkdir .kstream-rebase")]
    assert len(rebases) >= 4
    kinds = set()
    for n in range(rebases[0], rebases[3]):
        j = tmp_path / f"c{n}" / "j"
        j.parent.mkdir()
        code = run("new+rebase", j, crash=n)
        if code == 0:
            break
        assert code == CRASH_EXIT
        kinds.add(" ".join(steps[n - 1].split()[1:2]))
        check_rebased(j, whole=False)  # readable as the crash left it
        assert run("resume+rebase", j) == 0
        check_rebased(j)
        shutil.rmtree(j.parent)
    assert kinds >= {"mkdir", "rename", "fsync-dir", "rmdir", "unlink"}, kinds


def test_crash_at_every_step_of_a_resume_that_rebases(tmp_path: Path) -> None:
    """A journal with later bases cut mid-follow, then `--resume` (re-basing
    and retaining) crashed before each of its steps, then resumed again."""
    trace = tmp_path / "trace"
    first = tmp_path / "first" / "j"
    first.parent.mkdir()
    assert run("new+rebase", first, trace=trace) == 0
    frames = [i for i, ln in enumerate(trace.read_text().splitlines(), 1) if " end frame " in ln]
    cut = frames[len(frames) // 2]
    crashed = tmp_path / "crashed" / "j"
    crashed.parent.mkdir()
    assert run("new+rebase", crashed, crash=cut) == CRASH_EXIT
    assert (crashed / "bases").is_dir()
    resumed = 0
    for m in range(1, 60):
        j = tmp_path / f"r{m}" / "j"
        shutil.copytree(crashed.parent, j.parent)
        code = run("resume+rebase", j, crash=m)
        if code == 0:
            check_rebased(j)
            break
        assert code == CRASH_EXIT
        resumed = m
        assert run("resume+rebase", j) == 0
        check_rebased(j)
        shutil.rmtree(j.parent)
    assert resumed >= 8
