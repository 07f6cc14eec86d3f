"""One unit's follower thread (`Streams.follow`): its watch from the unit's
resourceVersion, the retries when the stream breaks, the ride through an API
server outage, the resync after a 410 Gone, and the gap it records whenever it
may have missed the moment of a change.

A stream the server ends (timeoutSeconds) is watched again at once from the last
resourceVersion. One that breaks, stalls, or cannot be opened (connection
refused, 5xx, 429) is retried with backoff for as long as `outage` seconds
(`--outage-limit`, 10 minutes by default) from its first failure; other errors
keep the dump's `--retries` rule. While a unit's stream is down, the changes made
meanwhile reach the journal only when it is back (replayed from the position, or
read again by a resync), so their receive times are late: the follower records a
gap, written as a GAP event when the stream delivers again (or the resync
closes). Items go to the writer's thread through `put`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Literal

from kstream.cluster.stream import Cancelled, Reader, Unit
from kstream.dataclass import dataclass
from kstream.errors import (
    ApiError,
    AuthError,
    ConnectionFailed,
    KstreamError,
    OutputError,
    ResyncFailed,
    StreamError,
    TLSError,
    TransportError,
)
from kstream.journal.format import Event, now_time, position_key, unit_resource
from kstream.store.writers import Spool

# a follower's state, for the display: ended = its resource is gone (CRD deleted)
FollowState = Literal["watching", "retrying", "resync", "failed", "ended"]

OUTAGE = 600.0  # seconds a stream is retried through an outage (--outage-limit)


@dataclass
class UnitFollow:
    """One unit's follower: its position and what the display shows."""

    unit: Unit
    rv: str
    transform: Callable[[bytes], bytes] | None = None
    needs_resync: bool = False
    state: FollowState = "watching"
    events: int = 0  # change events written (SYNC not counted)
    bookmarks: int = 0
    resyncs: int = 0
    reconnects: int = 0
    retries: int = 0
    gaps: int = 0
    last_event: float = 0.0  # wall time of the newest change event written
    last_seen: float = 0.0  # wall time of the newest event or bookmark written
    down_since: float = 0.0  # monotonic time the stream broke (0: it is up)
    gap_since: str = ""  # an instant since which changes may be late ("": no gap)
    gap_why: str = ""
    error: str = ""
    started: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)

    @property
    def resource(self) -> str:
        r = self.unit.resource
        return unit_resource(r.group, r.version, r.resource)

    @property
    def namespace(self) -> str:
        return self.unit.namespace or ""

    @property
    def key(self) -> str:
        return position_key(self.resource, self.namespace)

    @property
    def label(self) -> str:
        return self.unit.label

    def open_gap(self, since: str, why: str) -> None:
        if not self.gap_since:
            self.gap_since, self.gap_why = since, why

    def take_gap(self, rv: str) -> tuple[str, str, str]:
        """The open gap (since, why) and the position `rv` the unit went on from,
        now handed to the writer to close."""
        gap = (self.gap_since, self.gap_why, rv)
        self.gap_since = self.gap_why = ""
        return gap


def gap_event(uf: UnitFollow, gap: tuple[str, str, str], until: str) -> Event:
    """The GAP event that closes a unit's gap at `until`: its object says since
    when the unit's changes may be missing or late, and why."""
    body = {"since": gap[0], "why": gap[1]}
    uf.gaps += 1
    data = json.dumps(body, separators=(",", ":")).encode()
    return Event(until, "GAP", uf.resource, uf.namespace, gap[2], data)


@dataclass
class Burst:
    """A resync: RESYNC, the spool's objects as SYNC, SYNCED, written at once."""

    uf: UnitFollow
    spool: Spool
    rv: str
    gap: tuple[str, str, str] = ("", "", "")


@dataclass
class Failed:
    uf: UnitFollow
    error: str


@dataclass
class Fatal:
    error: BaseException


@dataclass
class NewUnit:
    """A resource discovery found after a CRD changed: followed from a resync."""

    uf: UnitFollow


@dataclass
class Delivered:
    """An event of a unit's stream (a GAP first when the stream was down)."""

    uf: UnitFollow
    ev: Event
    gap: tuple[str, str, str]


@dataclass
class Closed:
    """A unit's stream ran to its end without an event: it was connected, so its
    gap ends (at the time the writer takes this)."""

    uf: UnitFollow
    gap: tuple[str, str, str]


Item = tuple[UnitFollow, Event] | Burst | Failed | Fatal | NewUnit | Delivered | Closed


class Streams:
    """The follower threads' side of a follow: each unit's watch loop."""

    def __init__(
        self,
        reader: Reader,
        put: Callable[[Item], None],
        spool_dir: Path,
        watch_timeout: int,
        outage: float = OUTAGE,
    ) -> None:
        self.reader = reader
        self.put = put
        self.spool_dir = spool_dir
        self.watch_timeout = max(1, watch_timeout)
        self.outage = outage
        self.cancel = reader.cancel
        self._spools = itertools.count()

    def follow(self, uf: UnitFollow) -> None:
        """A follower thread's body; fatal errors go to the writer's thread."""
        try:
            self._loop(uf)
        except Cancelled:
            return
        except (AuthError, TLSError) as e:
            self.put(Fatal(e))
        except OSError as e:
            self.put(Fatal(OutputError(f"cannot write: {e.strerror or e}")))
        except BaseException as e:  # a bug: surface it in the main thread
            self.put(Fatal(e))

    def _watch(self, uf: UnitFollow) -> None:
        """Follow the unit's stream until the server ends it."""
        resource, namespace = uf.resource, uf.namespace  # not derived again per event
        for typ, obj, rv, stated in self.reader.watch_from(uf.unit, uf.rv, self.watch_timeout):
            if obj is not None and uf.transform is not None:
                obj = uf.transform(obj)
            ev = Event(now_time(), typ, resource, namespace, rv, obj, stated)
            if uf.gap_since:  # the stream delivers again: the writer closes the gap first
                self.put(Delivered(uf, ev, uf.take_gap(uf.rv)))
            else:
                self.put((uf, ev))
            if rv:
                uf.rv = rv
            uf.state = "watching"
            uf.down_since = 0.0

    def _loop(self, uf: UnitFollow) -> None:
        reader = self.reader
        attempt = 0
        while not self.cancel.is_set():
            why = ""
            retry_after: float | None = None
            outage = False  # the server cannot be reached, or answers 5xx/429
            try:
                if uf.needs_resync:
                    uf.state = "resync"
                    self._resync(uf)
                    uf.needs_resync = False
                    attempt = 0
                uf.state = "watching"
                self._watch(uf)
                attempt = 0
                uf.reconnects += 1  # the server ended the stream: watch on from uf.rv
                if uf.gap_since:  # a whole stream, quiet: it was connected all along
                    self.put(Closed(uf, uf.take_gap(uf.rv)))
                continue
            except (Cancelled, AuthError, TLSError):
                raise
            except StreamError as e:
                if e.status == 410:
                    self._expired(uf)
                    continue
                why, outage = str(e), True
            except ApiError as e:
                if e.status == 410:
                    self._expired(uf)
                    continue
                if e.status == 404 and uf.unit.resource.group:
                    uf.state = "ended"  # the resource is gone (its CRD deleted)
                    uf.error = f"no longer served: {e}"
                    return
                if not (e.retriable or e.status == 404):
                    self.put(Failed(uf, str(e)))
                    return
                why, retry_after, outage = str(e), e.retry_after, e.retriable
            except (TransportError, ConnectionFailed, ResyncFailed) as e:
                why, outage = str(e), True
            except KstreamError as e:
                self.put(Failed(uf, str(e)))
                return
            if self.cancel.is_set():  # the stop closed the stream
                return
            attempt += 1
            if not uf.down_since:
                uf.down_since = time.monotonic()
                uf.open_gap(now_time(), "the stream broke; changes meanwhile came late")
            down = time.monotonic() - uf.down_since
            if (down > self.outage) if outage else (attempt > reader.opts.max_retries):
                self.put(Failed(uf, f"{why} (down for {down:.0f}s)" if outage else why))
                return
            uf.state = "retrying"
            uf.retries += 1
            uf.error = why
            reader.sleep(reader.backoff(min(attempt, 8), retry_after))
            uf.error = ""

    def _expired(self, uf: UnitFollow) -> None:
        uf.needs_resync = True
        uf.notes.append(f"{now_time()}: resource version expired (410): resync")
        uf.open_gap(now_time(), "resource version expired (410): changes until the resync lost")

    def _resync(self, uf: UnitFollow) -> None:
        """A fresh read of the unit into a spool, handed to the writer as one burst."""
        unit = dataclasses.replace(
            uf.unit, phase="waiting", status="", objects=0, bytes=0, retries=0, notes=[]
        )
        name = f"resync-{uf.unit.index}-{next(self._spools)}.ndjson"  # one may wait in the queue
        spool = Spool(self.spool_dir / name, None, uf.transform)
        try:
            self.reader.read(unit, spool, lambda u: None)
            if unit.status != "complete":
                raise ResyncFailed(f"resync of {uf.label}: {unit.status}: {unit.error}")
            spool.finish()
        except BaseException:
            spool.close()
            raise
        try:
            self.put(Burst(uf, spool, unit.resource_version, uf.take_gap(unit.resource_version)))
        except BaseException:
            spool.close()
            raise
        uf.rv = unit.resource_version
        uf.down_since = 0.0
