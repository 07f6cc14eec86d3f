"""`dump --follow`: after the base snapshot, every change, as a journal.

One follower thread per unit (`kstream/journal/follower.py`) watches from the
unit's resourceVersion (`stream.Reader.watch_from`), so the stream carries exactly
the changes after the snapshot; a thread watches CRDs (`kstream/journal/crds.py`).
Events go through one bounded queue to the thread that owns the
`journal.JournalWriter` (the caller, through `Follow.step()`), in the transformed
form the snapshot uses (Secret redaction, --strip, --clean). A gap a follower
records (its stream was down, or a resync had to read its unit again) is written
as a GAP event just before what closed it.

Nothing per object is kept in memory: a follower holds its unit's position, a
resync's objects wait in a file in the journal's directory (`.kstream-follow-*`,
removed at the end, and by the next run after a crash).
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kstream.cluster.stream import Cancelled, Reader, Unit
from kstream.journal import health
from kstream.journal.crds import CrdWatch
from kstream.journal.follower import (
    OUTAGE,
    Burst,
    Closed,
    Delivered,
    Failed,
    Item,
    NewUnit,
    Streams,
    UnitFollow,
    gap_event,
)
from kstream.journal.format import FOLLOW_PREFIX, Event, now_time
from kstream.journal.rebase import Rebaser
from kstream.journal.writer import JournalWriter
from kstream.store.writers import iter_spool_lines

__all__ = ["Follow", "UnitFollow"]

QUEUE_SIZE = 2000  # events waiting for the writer; followers wait beyond it
STEP = 0.1


class Follow:
    """The followers of a journal and the writer they feed."""

    def __init__(
        self,
        reader: Reader,
        writer: JournalWriter,
        units: list[UnitFollow],
        watch_timeout: int,
        spool_dir: Path | None = None,
        replan: Callable[[], list[Unit]] | None = None,
        make_follow: Callable[[Unit], UnitFollow] | None = None,
        outage: float = OUTAGE,
        rebaser: Rebaser | None = None,
    ) -> None:
        """With `replan` (the plan's units, discovered again) and `make_follow`,
        CRDs are watched: a resource new since the start is followed (from a
        resync); one whose CRD is deleted ends its follower. `spool_dir`: where
        a resync's objects wait (the journal's directory). `rebaser`: new
        bases (and retention) between the writer's items (`--rebase-every`)."""
        self.reader = reader
        self.writer = writer
        self.rebaser = rebaser
        self.units = units
        self.cancel = reader.cancel
        self._q: queue.Queue[Item] = queue.Queue(maxsize=QUEUE_SIZE)
        self._threads: list[threading.Thread] = []
        self._tmp = Path(tempfile.mkdtemp(prefix=FOLLOW_PREFIX, dir=spool_dir))
        self.streams = Streams(reader, self._put, self._tmp, watch_timeout, outage)
        self.started = time.monotonic()
        self._lock = threading.Lock()  # self.units: appended by the main thread
        self.crds: CrdWatch | None = None
        if replan is not None and make_follow is not None:
            self.crds = CrdWatch(
                reader, replan, make_follow, self._units, self._put, self.streams.watch_timeout
            )

    @property
    def discoveries(self) -> int:
        return self.crds.discoveries if self.crds is not None else 0

    def _units(self) -> list[UnitFollow]:
        with self._lock:
            return list(self.units)

    # ------------------------------------------------------------ the main thread
    def start(self) -> None:
        for uf in self.units:
            if uf.state == "failed":  # not in the base
                continue
            self._thread(uf)
        if self.crds is not None:
            self._threads.append(self.crds.start())

    def _thread(self, uf: UnitFollow) -> None:
        t = threading.Thread(
            target=self.streams.follow, args=(uf,), name=f"follow-{uf.unit.index}", daemon=True
        )
        t.start()
        self._threads.append(t)

    def _add(self, uf: UnitFollow) -> None:
        with self._lock:
            uf.unit.index = max((u.unit.index for u in self.units), default=-1) + 1
            self.units.append(uf)
        self._thread(uf)

    def step(self, timeout: float = STEP) -> None:
        """Write what arrived within `timeout`, flush/rotate when due. Raises
        the fatal error of a follower (credentials rejected, TLS)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                item = self._q.get(timeout=max(0.0, left)) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            self._handle(item)
        self.writer.tick()
        if self.rebaser is not None:
            self.rebaser.step(self.writer)
        health.progress(self)  # --health-port: a step that returns is progress

    def _handle(self, item: Item) -> None:
        if isinstance(item, tuple):
            uf, ev = item
        elif isinstance(item, Delivered):
            uf, ev = item.uf, item.ev
            if item.gap[0]:
                self.writer.write(gap_event(uf, item.gap, ev.time))
        elif isinstance(item, Burst):
            self._write_burst(item)
            return
        elif isinstance(item, Failed):
            item.uf.state = "failed"
            item.uf.error = item.error
            return
        elif isinstance(item, NewUnit):
            self._add(item.uf)
            return
        elif isinstance(item, Closed):
            self.writer.write(gap_event(item.uf, item.gap, now_time()))
            return
        else:
            raise item.error
        self.writer.write(ev)
        now = time.time()
        uf.last_seen = now
        if ev.type == "BOOKMARK":
            uf.bookmarks += 1
        else:
            uf.events += 1
            uf.last_event = now

    def _write_burst(self, b: Burst) -> None:
        uf, w = b.uf, self.writer
        try:
            t = now_time()
            if b.gap[0]:
                w.write(gap_event(uf, b.gap, t))
            w.write(Event(t, "RESYNC", uf.resource, uf.namespace, b.rv))
            for line in iter_spool_lines(b.spool.file, False):
                w.write(Event(t, "SYNC", uf.resource, uf.namespace, b.rv, line))
            w.write(Event(t, "SYNCED", uf.resource, uf.namespace, b.rv))
        finally:
            b.spool.close()
        uf.resyncs += 1
        uf.last_seen = time.time()

    @property
    def active(self) -> int:
        return sum(1 for uf in self.units if uf.state not in ("failed", "ended"))

    @property
    def connected(self) -> int:
        return sum(1 for uf in self.units if uf.state == "watching" and not uf.down_since)

    def stop(self) -> None:
        """Stop the followers, write what they had sent, seal the segment."""
        self._halt()
        try:
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, (tuple, Delivered, Burst, Failed, Closed)):
                    self._handle(item)
            self._close_gaps()
            self.writer.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self.rebaser is not None:
                self.rebaser.abandon()

    def abandon(self) -> None:
        """After a fatal error: stop the followers, seal what was written."""
        self._halt()
        try:
            self._close_gaps()
            self.writer.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self.rebaser is not None:
                self.rebaser.abandon()

    def _close_gaps(self) -> None:
        """At the end: a unit whose stream has not delivered since its gap
        opened (down, or quiet since the resume) closes its gap at the end, so
        no later run's gap leaves that time unrecorded."""
        now = now_time()
        for uf in self.units:
            if uf.gap_since:
                self.writer.write(gap_event(uf, uf.take_gap(uf.rv), now))

    def _halt(self) -> None:
        """Cancel the followers and wait for them (5 s in all at most)."""
        self.cancel.set()
        self.reader.abort_all()
        if self.crds is not None:
            self.crds.reader.abort_all()
        deadline = time.monotonic() + 5
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _put(self, item: Item) -> None:
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                self._q.put(item, timeout=STEP)
                return
            except queue.Full:
                continue
