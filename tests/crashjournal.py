"""A journal's writer run against a fake server, as a process a test crashes
(`KSTREAM_CRASH_AT=N`, kstream/journal/durable.py) at each step in turn.

    python -m tests.crashjournal new JOURNAL     # lock, base, promote, follow
    python -m tests.crashjournal resume JOURNAL  # lock, tidy, recover, follow on
    python -m tests.crashjournal new+rebase JOURNAL     # the same with a new base
    python -m tests.crashjournal resume+rebase JOURNAL  # at every rotation, and retention
    python -m tests.crashjournal s3new STAGE s3://BUCKET/PREFIX/     # the same, staged in
    python -m tests.crashjournal s3resume STAGE s3://BUCKET/PREFIX/  # STAGE, uploaded
    python -m tests.crashjournal s3new+rebase STAGE s3://BUCKET/PREFIX/     # re-based in
    python -m tests.crashjournal s3resume+rebase STAGE s3://BUCKET/PREFIX/  # the bucket

Both run the code `dump --follow` runs (journal_lock, tidy, make_base,
JournalWriter, Follow and its followers, recover, resume_units); only the server
is a fake: one ConfigMap unit whose changes are `CHANGES` (resourceVersions
BASE_RV+1 ..), served a few per watch request from the position asked for, as a
watch from a resourceVersion would be. Each run follows until its unit's
position is the last change, then stops (the segment sealed). Exit 0, or
NO_JOURNAL when `resume` finds no journal (the base was cut before it was whole).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

NS = "ns"
BASE_RV = 5
CHANGES = 16  # change events after the base
PER_REQUEST = 3  # changes per watch request (the stream then ends: a reconnect)
NO_JOURNAL = 9
LOCKED = 2  # exit 2, as the CLI: another writer holds the lock
ROTATE = 1500  # bytes of events per segment: a rotation every few changes


def obj(name: str, rv: int, v: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": str(rv),
            "managedFields": [{"manager": "churn", "time": "2026-12-01T00:00:00Z"}],
        },
        "data": {"v": str(v)},
    }


def change(rv: int) -> tuple[str, dict[str, Any]]:
    """The change that brought the server to resourceVersion `rv` (> BASE_RV)."""
    i = rv - BASE_RV - 1
    name = f"cm-{i % 3}"
    if i % 7 == 6:
        return "DELETED", obj(name, rv, i)
    return ("ADDED" if i < 3 or (i - 1) % 7 == 6 else "MODIFIED"), obj(name, rv, i)


def base_objects() -> list[dict[str, Any]]:
    return [obj("seed", 1, 0)]


def last_rv() -> int:
    return BASE_RV + CHANGES


def handler_for(t: Any) -> Any:
    def handler(path: str, accept: str) -> bytes:
        start = int(t.requests[-1].get("resourceVersion") or 0)
        out = []
        for rv in range(start + 1, min(start + PER_REQUEST, last_rv()) + 1):
            typ, o = change(rv)
            out.append(json.dumps({"type": typ, "object": o}).encode() + b"\n")
        time.sleep(0.05)  # a few changes at a time: a frame each (flushed at every step)
        return b"".join(out)

    return handler


REBASE_EVERY = 0.001  # seconds: every rotation closes a period (a new base each time)
RETAIN = 0.001  # seconds: retention removes all it may after each new base


def follow(
    target: Path,
    units: list[Any],
    next_segment: int,
    last_time: str,
    on_sealed: Any = None,
    rebase: bool = False,
    up: Any = None,
) -> None:
    from kstream.cluster.stream import Reader, StreamOptions
    from kstream.journal.follow import Follow
    from kstream.journal.rebase import Rebaser
    from kstream.journal.writer import JournalWriter
    from tests.fakes import FakeTransport

    t = FakeTransport(lambda p, a: b"")
    t.handler = handler_for(t)
    reader = Reader(t, StreamOptions(backoff_base=0.01, backoff_max=0.05), threading.Event())
    writer = JournalWriter(
        target, level=1, rotate_size=ROTATE, flush_interval=0.0, next_segment=next_segment,
        last_time=last_time, on_sealed=on_sealed,
    )  # fmt: skip
    # inline (no background thread): each run takes the same steps in the same order
    store = None
    if rebase and up is not None:  # a journal in object storage: the bucket re-based
        from kstream.journal.remote import RemoteStore

        store = RemoteStore(up, lambda msg: print(msg, file=sys.stderr))
    rb = Rebaser(target, REBASE_EVERY, RETAIN, background=False, store=store) if rebase else None
    f = Follow(reader, writer, units, watch_timeout=5, spool_dir=target, rebaser=rb)
    f.start()
    deadline = time.monotonic() + 60
    while units[0].rv != str(last_rv()) and time.monotonic() < deadline:
        f.step(0.02)
    f.step(0.02)
    f.stop()
    if units[0].rv != str(last_rv()):
        raise SystemExit(f"the follow did not reach {last_rv()}: {units[0].rv}")


def unit() -> Any:
    from kstream.cluster.stream import Unit
    from kstream.resources import Resource

    r = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
    return Unit(r)  # over all namespaces, as the base's


def new(target: Path, rebase: bool = False) -> int:
    from kstream.journal import durable
    from kstream.journal.directory import journal_lock, make_base, tidy
    from kstream.journal.follow import UnitFollow
    from kstream.journal.format import now_time
    from tests.journalmaker import write_base

    if not target.is_dir():
        durable.mkdir(target)
    with journal_lock(target):
        tidy(target)

        def write(base: Path) -> dict[str, Any]:
            now = now_time()
            write_base(base, {"v1/configmaps": base_objects()}, started=now,
                       rvs={"v1/configmaps": str(BASE_RV)})  # fmt: skip
            return {"created": now, "options": {"secrets": "redact", "secretDigest": "sha256"}}

        make_base(target, write)
        follow(target, [UnitFollow(unit(), str(BASE_RV))], 1, "", rebase=rebase)
    return 0


def resume(target: Path, rebase: bool = False) -> int:
    from kstream.journal.directory import journal_lock, tidy
    from kstream.journal.format import META_NAME
    from kstream.journal.resume import positions, resume_units
    from kstream.transform import TransformOptions

    if not target.is_dir():  # as --resume says: no such journal directory
        return NO_JOURNAL
    with journal_lock(target):
        tidy(target)
        if not (target / META_NAME).is_file():
            return NO_JOURNAL
        pos = positions(target)
        units = resume_units([unit()], pos, TransformOptions())
        follow(target, units, pos.next_segment, pos.last_time, rebase=rebase)
    return 0


def base_meta(base: Path) -> dict[str, Any]:
    from kstream.journal.format import now_time
    from tests.journalmaker import write_base

    now = now_time()
    write_base(base, {"v1/configmaps": base_objects()}, started=now,
               rvs={"v1/configmaps": str(BASE_RV)})  # fmt: skip
    return {"created": now, "options": {"secrets": "redact", "secretDigest": "sha256"}}


def s3new(stage: Path, url: str, rebase: bool = False) -> int:
    """As `dump --follow -o s3://...` (cli/follow._run_new_remote) runs."""
    from kstream.journal import remote
    from kstream.journal.directory import journal_lock, make_base, tidy
    from kstream.journal.follow import UnitFollow

    prefix = remote.check_new_remote(url, False)
    stage = remote.prepare_stage(str(stage), url)
    with journal_lock(stage):
        tidy(stage)
        if remote.stage_holds_journal(stage):
            return NO_JOURNAL + 1  # the CLI says: --resume
        up = remote.Uploader(prefix, stage)
        make_base(stage, base_meta)
        up.commit_base()
        follow(stage, [UnitFollow(unit(), str(BASE_RV))], 1, "", up.segment_sealed, rebase, up)
        remote.drop_stage(stage, up)
    return 0


def s3resume(stage: Path, url: str, rebase: bool = False) -> int:
    """As `dump --follow --resume s3://...` (cli/follow._run_resume_remote) runs."""
    from kstream.journal import remote
    from kstream.journal.directory import journal_lock, tidy
    from kstream.journal.resume import resume_units
    from kstream.transform import TransformOptions

    prefix = remote.prefix_of(url)
    stage = remote.prepare_stage(str(stage), url)
    with journal_lock(stage):
        tidy(stage)
        if not remote.listing(prefix).meta:
            if not remote.stage_holds_journal(stage):
                remote.drop_stage(stage)
                return NO_JOURNAL
        else:
            remote.fetch_meta(prefix, stage)
        up = remote.Uploader(prefix, stage)
        tail = up.push_staged()
        pos = remote.remote_positions(prefix, stage, tail)
        units = resume_units([unit()], pos, TransformOptions())
        follow(stage, units, pos.next_segment, pos.last_time, up.segment_sealed, rebase, up)
        remote.drop_stage(stage, up)
    return 0


if __name__ == "__main__":
    from kstream.errors import UsageError

    what, path = sys.argv[1], Path(sys.argv[2])
    try:
        rebase = what.endswith("+rebase")
        if what.startswith("s3new"):
            sys.exit(s3new(path, sys.argv[3], rebase))
        if what.startswith("s3resume"):
            sys.exit(s3resume(path, sys.argv[3], rebase))
        sys.exit(new(path, rebase) if what.startswith("new") else resume(path, rebase))
    except UsageError as e:  # the lock held by another writer
        print(e, file=sys.stderr)
        sys.exit(LOCKED)
