"""Re-basing and retention while following (`dump --follow --rebase-every D --retain R`).

Periods are aligned on the epoch (`--rebase-every 24h`: midnight UTC; `5s`: every
fifth second). Once the wall clock is in a later period than the newest base's
time, the open segment is sealed (the rotation that closes the period) and the
newest base plus the segments since are folded (`reader.write_base`, the readers'
own fold) into `bases/NNNNNN.ndjson.zst`, NNNNNN the last segment folded: in
`JOURNAL/.kstream-rebase/` on a background thread (no disk step of the journal
itself there), then, on the writer's thread, renamed into `bases/` and the
directory fsynced (`durable` steps: the crash tests crash at each), and
`Store.complete()` is called: the one place that hears of a new immutable base
(object storage uploads it there, `journal.remote.RemoteStore`). A run that stops while a fold is running
abandons it (`.kstream-rebase/` removed; the next run folds again at its first
step, the period being over).

The boundary is always a segment's end, between two of the writer's items: a
resync's burst (RESYNC, SYNC..., SYNCED) is written whole by one item, so no
resync of this run is open there. A resync a crash left open is never closed:
the resume does it again from a new RESYNC, which drops what was staged, so the
fold leaves it out exactly as every reader does (docs/journal.md).

After each new base, `--retain R` removes what no instant within R needs
(`format.retention`, a pure function of the names and times), oldest first,
through `Store.remove()` (unlinks here, deletes of keys in object storage), each
removal a `durable` step; a crash midway leaves a journal every reader reads (its
oldest base followed by every segment after it).

A journal in object storage (`Rebaser(store=RemoteStore(...))`, the directory
being its stage): the fold reads the newest base and the segments since from
the bucket (ranged and streamed GETs through `journal/files.py`), so the stage
holds no period of events; only the fold's sqlite state and the new base, in
`.kstream-rebase/`, and the base until its upload.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from kstream.journal import durable
from kstream.journal.format import (
    BASES_DIR,
    REBASE_DIR,
    SEGMENT_DIR,
    base_name,
    format_time,
    list_bases,
    parse_time,
    retention,
)
from kstream.journal.reader import Journal, open_journal, write_base
from kstream.journal.writer import JournalWriter, guard


class Store:
    """Where the journal's complete files live, as the re-base sees them: the
    journal's own directory (this class: nothing to copy, retention unlinks).
    `journal.remote.RemoteStore` is the one for a journal in object storage (the
    directory is then its stage): `source` is the prefix the fold reads,
    `complete()` uploads each new base, `remove()` deletes keys."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.source = str(self.dir)  # what `open_journal` reads

    def complete(self, name: str) -> None:
        """A new base is complete and durable at `directory/name`
        (bases/NNNNNN.ndjson.zst): immutable from now on. Nothing to do locally."""

    def remove(self, names: list[str]) -> list[str]:
        """Retention: remove `names` (relative to the journal) in this order, each
        a `durable` step; what was removed."""

        def remove() -> None:
            for name in names:
                durable.unlink(self.dir / name)
            for d in {(self.dir / n).parent for n in names}:
                durable.fsync_dir(d)

        guard(remove, str(self.dir))
        return names


def period(t: str, every: float) -> int:
    return math.floor(parse_time(t).timestamp() / every)


class Rebaser:
    """Driven by the writer's thread: `step(writer)` after each `writer.tick()`."""

    def __init__(
        self,
        directory: Path,
        every: float,
        retain: float | None = None,
        background: bool = True,
        force: bool = True,
        wall: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.store = store if store is not None else Store(self.dir)
        self.every = every
        self.retain = retain
        self.background = background
        self.force = force
        self.wall = wall
        j = open_journal(self.store.source, upto=0)  # the bases alone
        self.newest = max(j.bases)
        self.newest_time = j.base_time(self.newest)
        # the period of the newest base, or of the wall clock when the last fold began
        # (a base's time, its last event's, is before the end of the period it closes)
        self._period = period(self.newest_time, every) if self.newest_time else -1
        self.written: list[int] = []  # bases written by this run
        self.removed: list[str] = []  # what retention removed in this run
        self.fold_seconds: list[float] = []  # how long each fold took (background)
        self._thread: threading.Thread | None = None
        self._job: tuple[int, str] | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------ when
    def _now_period(self) -> int:
        return math.floor(self.wall() / self.every)

    def due(self) -> bool:
        """The wall clock is in a later period than the newest base's time (and
        than the one in which the last fold began)."""
        return self._now_period() > self._period

    @property
    def running(self) -> bool:
        return self._job is not None

    def step(self, writer: JournalWriter) -> None:
        """Commit a finished fold; start one when a period closed."""
        if self._job is not None:
            if self._thread is not None and self._thread.is_alive():
                return
            self._commit()
        if not self.due():
            return
        if writer.current is not None:
            if not self.force:
                last = writer.current.number - 1
            else:
                writer.rotate()  # the period's end seals the open segment
                last = writer.next_segment - 1
        else:
            last = writer.next_segment - 1
        if last <= self.newest:
            return  # nothing since the newest base
        self._period = self._now_period()
        self._start(last)

    # ------------------------------------------------------------ the fold
    def _start(self, last: int) -> None:
        work = self.dir / REBASE_DIR
        if work.exists():
            guard(lambda: durable.rmtree(work), str(work))
        guard(lambda: durable.mkdir(work), str(work))
        # the newest base and the segments since (only those opened)
        j = open_journal(self.store.source, upto=last, newest=True)
        seg = next(s for s in j.segments if s.number == last) if j.segments else None
        t = self.newest_time
        if seg is not None and seg.manifest is not None and seg.manifest.last:
            t = seg.manifest.last
        self._job = (last, t)
        self._error = None
        if not self.background:
            self._fold(j, last, t)
            self._commit()
            return
        self._thread = threading.Thread(
            target=self._fold, args=(j, last, t), name="rebase", daemon=True
        )
        self._thread.start()

    def _fold(self, j: Journal, last: int, t: str) -> None:
        t0 = time.monotonic()
        work = self.dir / REBASE_DIR
        try:
            write_base(j, work / Path(base_name(last)).name, work, last, t)
        except BaseException as e:  # raised on the writer's thread (`_commit`)
            self._error = e
        self.fold_seconds.append(time.monotonic() - t0)

    def _commit(self) -> None:
        assert self._job is not None
        last, t = self._job
        self._job, self._thread = None, None
        err, self._error = self._error, None
        work = self.dir / REBASE_DIR
        if err is not None:
            with contextlib.suppress(OSError):
                durable.rmtree(work)
            raise err
        bases = self.dir / BASES_DIR
        name = base_name(last)

        def put() -> None:
            if not bases.is_dir():
                durable.mkdir(bases)
                durable.fsync_dir(self.dir)
            durable.replace(work / Path(name).name, self.dir / name)
            durable.fsync_dir(bases)
            durable.rmtree(work)

        guard(put, str(self.dir / name))
        self.newest, self.newest_time = last, t
        self.written.append(last)
        self.store.complete(name)
        if self.retain is not None:
            self.trim()

    def abandon(self) -> None:
        """At the end of a run: a fold still running is left (its work removed
        once it stops; the next run folds again)."""
        th = self._thread
        if th is not None:
            th.join(0)  # a daemon thread: it dies with the process
        if self._job is not None and (th is None or not th.is_alive()):
            self._job = None
            with contextlib.suppress(OSError):
                durable.rmtree(self.dir / REBASE_DIR)

    # ------------------------------------------------------------ retention
    def listing(self) -> list[tuple[str, str]]:
        """(name, time) of the journal's bases and segments, as `retention` takes them
        (each base's time from its own manifest: no segment is opened)."""
        j = open_journal(self.store.source, upto=0)
        out = [(base_name(n), j.base_time(n)) for n in j.bases]
        assert j.files is not None
        for leaf in j.files.names(SEGMENT_DIR):
            out.append((f"{SEGMENT_DIR}/{leaf}", ""))
        return out

    def trim(self) -> None:
        assert self.retain is not None
        cutoff = format_time(datetime.fromtimestamp(self.wall() - self.retain, timezone.utc))
        names = retention(self.listing(), cutoff)
        if names:
            self.removed += self.store.remove(names)


__all__ = ["Rebaser", "Store", "list_bases", "retention"]
