"""`dump --follow`: after the base snapshot, every change, as a journal.

One follower thread per unit watches from the unit's resourceVersion
(`stream.Reader.watch_from`), so the stream carries exactly the changes after
the snapshot. Events go through one bounded queue to the thread that owns the
`journal.JournalWriter` (the caller, through `Follow.step()`), in the
transformed form the snapshot uses (Secret redaction, --strip, --clean).

A stream the server ends, or that breaks or stalls (the read timeout), is
re-established from the last resourceVersion, never re-listed. A 410 Gone (the
resourceVersion was compacted away) resyncs that unit only: a fresh watch-list
(or LIST) into a spool file, then RESYNC, one SYNC per object, SYNCED written
as one burst, and the watch goes on from the new resourceVersion. Retries
follow the dump's rules (backoff, Retry-After, --retries consecutive failures).

Nothing per object is kept in memory: a follower holds its unit's position, a
resync's objects wait in a file.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from kstream.cluster.stream import Cancelled, Reader, StreamOptions, Unit
from kstream.errors import (
    ApiError,
    AuthError,
    ConnectionFailed,
    KstreamError,
    OutputError,
    StreamError,
    TLSError,
    TransportError,
)
from kstream.journal.directory import JournalMeta
from kstream.journal.format import BASE_NAME, Event, now_time, position_key, unit_resource
from kstream.journal.writer import JournalWriter
from kstream.resources import Resource
from kstream.selector import Scope
from kstream.store.writers import Spool, iter_spool_lines

if TYPE_CHECKING:
    from kstream.cluster.plan import LiveOptions
    from kstream.transform import SecretsMode, TransformOptions

# a follower's state, for the display: ended = its resource is gone (CRD deleted)
FollowState = Literal["watching", "retrying", "resync", "failed", "ended"]

QUEUE_SIZE = 2000  # events waiting for the writer; followers wait beyond it
STEP = 0.1


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
    last_event: float = 0.0  # wall time of the newest change event written
    last_seen: float = 0.0  # wall time of the newest event or bookmark written
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


@dataclass
class _Burst:
    """A resync: RESYNC, the spool's objects as SYNC, SYNCED, written at once."""

    uf: UnitFollow
    spool: Spool
    rv: str


@dataclass
class _Failed:
    uf: UnitFollow
    error: str


@dataclass
class _Fatal:
    error: BaseException


@dataclass
class _NewUnit:
    """A resource discovery found after a CRD changed: followed from a resync."""

    uf: UnitFollow


_Item = tuple[UnitFollow, Event] | _Burst | _Failed | _Fatal | _NewUnit

CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    frozenset(("list", "watch")),
)
RECHECK = 2.0  # seconds: discovery again after a CRD change (serving lags establishing)


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
    ) -> None:
        """With `replan` (the plan's units, discovered again) and `make_follow`,
        CRDs are watched: a resource new since the start is followed (from a
        resync); one whose CRD is deleted ends its follower."""
        self.reader = reader
        self.writer = writer
        self.units = units
        self.watch_timeout = max(1, watch_timeout)
        self.cancel = reader.cancel
        self._q: queue.Queue[_Item] = queue.Queue(maxsize=QUEUE_SIZE)
        self._threads: list[threading.Thread] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="kstream-follow-", dir=spool_dir))
        self.started = time.monotonic()
        self.replan = replan
        self.make_follow = make_follow
        self._lock = threading.Lock()  # self.units: appended by the main thread
        self._crd_reader: Reader | None = None
        self.discoveries = 0
        self._returned: set[str] = set()  # ended, then gone from discovery
        self._spools = itertools.count()

    # ------------------------------------------------------------ the main thread
    def start(self) -> None:
        for uf in self.units:
            if uf.state == "failed":  # not in the base
                continue
            t = threading.Thread(
                target=self._follow, args=(uf,), name=f"follow-{uf.unit.index}", daemon=True
            )
            t.start()
            self._threads.append(t)
        if self.replan is not None and self.make_follow is not None:
            self._crd_reader = Reader(self.reader.client, StreamOptions(), self.cancel)
            t = threading.Thread(target=self._crd_thread, name="follow-crds", daemon=True)
            t.start()
            self._threads.append(t)

    def _add(self, uf: UnitFollow) -> None:
        with self._lock:
            uf.unit.index = max((u.unit.index for u in self.units), default=-1) + 1
            self.units.append(uf)
        t = threading.Thread(
            target=self._follow, args=(uf,), name=f"follow-{uf.unit.index}", daemon=True
        )
        t.start()
        self._threads.append(t)

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

    def _handle(self, item: _Item) -> None:
        if isinstance(item, tuple):
            uf, ev = item
            self.writer.write(ev)
            now = time.time()
            uf.last_seen = now
            if ev.type == "BOOKMARK":
                uf.bookmarks += 1
            else:
                uf.events += 1
                uf.last_event = now
        elif isinstance(item, _Burst):
            self._write_burst(item)
        elif isinstance(item, _Failed):
            item.uf.state = "failed"
            item.uf.error = item.error
        elif isinstance(item, _NewUnit):
            self._add(item.uf)
        else:
            raise item.error

    def _write_burst(self, b: _Burst) -> None:
        uf, w = b.uf, self.writer
        try:
            w.write(Event(now_time(), "RESYNC", uf.resource, uf.namespace, b.rv))
            for line in iter_spool_lines(b.spool.file, False):
                w.write(Event(now_time(), "SYNC", uf.resource, uf.namespace, b.rv, line))
            w.write(Event(now_time(), "SYNCED", uf.resource, uf.namespace, b.rv))
        finally:
            b.spool.close()
        uf.resyncs += 1
        uf.last_seen = time.time()

    @property
    def active(self) -> int:
        return sum(1 for uf in self.units if uf.state not in ("failed", "ended"))

    def stop(self) -> None:
        """Stop the followers, write what they had sent, seal the segment."""
        self._halt()
        try:
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _Fatal):
                    self._handle(item)
            self.writer.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def abandon(self) -> None:
        """After a fatal error: stop the followers, seal what was written."""
        self._halt()
        try:
            self.writer.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _halt(self) -> None:
        """Cancel the followers and wait for them (5 s in all at most)."""
        self.cancel.set()
        self.reader.abort_all()
        if self._crd_reader is not None:
            self._crd_reader.abort_all()
        deadline = time.monotonic() + 5
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------ followers
    def _put(self, item: _Item) -> None:
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                self._q.put(item, timeout=STEP)
                return
            except queue.Full:
                continue

    def _follow(self, uf: UnitFollow) -> None:
        try:
            self._loop(uf)
        except Cancelled:
            return
        except (AuthError, TLSError) as e:
            self._q.put(_Fatal(e))
        except OSError as e:
            self._q.put(_Fatal(OutputError(f"cannot write: {e.strerror or e}")))
        except BaseException as e:  # a bug: surface it in the main thread
            self._q.put(_Fatal(e))

    def _loop(self, uf: UnitFollow) -> None:
        reader = self.reader
        attempt = 0
        while not self.cancel.is_set():
            why = ""
            retry_after: float | None = None
            try:
                if uf.needs_resync:
                    uf.state = "resync"
                    self._resync(uf)
                    uf.needs_resync = False
                    attempt = 0
                uf.state = "watching"
                resource, namespace = uf.resource, uf.namespace  # not derived again per event
                for typ, obj, rv in reader.watch_from(uf.unit, uf.rv, self.watch_timeout):
                    if obj is not None and uf.transform is not None:
                        obj = uf.transform(obj)
                    self._put((uf, Event(now_time(), typ, resource, namespace, rv, obj)))
                    if rv:
                        uf.rv = rv
                    attempt = 0
                    uf.state = "watching"
                uf.reconnects += 1  # the server ended the stream: watch on from uf.rv
                continue
            except (Cancelled, AuthError, TLSError):
                raise
            except StreamError as e:
                if e.status == 410:
                    uf.needs_resync = True
                    uf.notes.append(f"{now_time()}: resource version expired (410): resync")
                    continue
                why = str(e)
            except ApiError as e:
                if e.status == 410:
                    uf.needs_resync = True
                    uf.notes.append(f"{now_time()}: resource version expired (410): resync")
                    continue
                if e.status == 404 and uf.unit.resource.group:
                    uf.state = "ended"  # the resource is gone (its CRD deleted)
                    uf.error = f"no longer served: {e}"
                    return
                if not (e.retriable or e.status == 404):
                    self._put(_Failed(uf, str(e)))
                    return
                why, retry_after = str(e), e.retry_after
            except (TransportError, ConnectionFailed) as e:
                why = str(e)
            except _ResyncFailed as e:
                why = str(e)
            except KstreamError as e:
                self._put(_Failed(uf, str(e)))
                return
            if self.cancel.is_set():  # the stop closed the stream
                return
            attempt += 1
            if attempt > reader.opts.max_retries:
                self._put(_Failed(uf, why))
                return
            uf.state = "retrying"
            uf.retries += 1
            uf.error = why
            reader.sleep(reader.backoff(attempt, retry_after))
            uf.error = ""

    # ------------------------------------------------------------ CRDs
    def _crd_thread(self) -> None:
        try:
            self._watch_crds()
        except Cancelled:
            return
        except BaseException as e:  # credentials rejected, TLS, or a bug
            self._q.put(_Fatal(e))

    def _watch_crds(self) -> None:
        """Watch CRDs; after each change, discovery again (twice: a new CRD is
        served a moment after it is established) and a follower for each new unit."""
        r = self._crd_reader
        assert r is not None
        unit = Unit(CRDS)
        rv = ""
        attempt = 0
        while not self.cancel.is_set():
            try:
                if not rv:
                    page = r.client.get_json(
                        CRDS.path(None), what="list CRDs", query=[("limit", "1")]
                    )
                    rv = str((page.get("metadata") or {}).get("resourceVersion") or "")
                    self._replan()  # what changed before the watch began
                for typ, _obj, new_rv in r.watch_from(unit, rv, self.watch_timeout):
                    rv = new_rv or rv
                    attempt = 0
                    if typ != "BOOKMARK":
                        self._replan()
                        r.sleep(RECHECK)
                        self._replan()
                continue
            except (Cancelled, AuthError, TLSError):
                raise
            except StreamError as e:
                if e.status == 410:
                    rv = ""
                    continue
            except ApiError as e:
                if e.status in (403, 404):  # CRDs not readable: the plan stays as it is
                    return
                if e.status == 410:
                    rv = ""
                    continue
            except KstreamError:
                pass
            if self.cancel.is_set():
                return
            attempt += 1
            r.sleep(r.backoff(min(attempt, 8), None))

    def _replan(self) -> None:
        assert self.replan is not None and self.make_follow is not None
        try:
            units = self.replan()
        except (AuthError, TLSError):
            raise
        except KstreamError:
            return  # discovery failed this time; the next change tries again
        self.discoveries += 1
        with self._lock:
            active = {uf.key for uf in self.units if uf.state != "ended"}
            ended = {uf.key for uf in self.units if uf.state == "ended"}
        fresh = [self.make_follow(u) for u in units]
        listed = {uf.key for uf in fresh}
        # an ended resource comes back only after discovery stopped listing it
        self._returned |= ended - listed
        followed = active | (ended - self._returned)
        for uf in fresh:
            if uf.key not in followed:
                self._returned.discard(uf.key)
                uf.needs_resync = True
                uf.notes.append(f"{now_time()}: new resource: resync")
                followed.add(uf.key)
                self._put(_NewUnit(uf))

    def _resync(self, uf: UnitFollow) -> None:
        """A fresh read of the unit into a spool, handed to the writer as one burst."""
        unit = dataclasses.replace(
            uf.unit, phase="waiting", status="", objects=0, bytes=0, retries=0, notes=[]
        )
        name = f"resync-{uf.unit.index}-{next(self._spools)}.ndjson"  # one may wait in the queue
        spool = Spool(self._tmp / name, None, uf.transform)
        try:
            self.reader.read(unit, spool, lambda u: None)
            if unit.status != "complete":
                raise _ResyncFailed(f"resync of {uf.label}: {unit.status}: {unit.error}")
            spool.finish()
        except BaseException:
            spool.close()
            raise
        try:
            self._put(_Burst(uf, spool, unit.resource_version))
        except BaseException:
            spool.close()
            raise
        uf.rv = unit.resource_version


class _ResyncFailed(KstreamError):
    pass


# ------------------------------------------------------------------ starting a follow


@dataclass
class Replan:
    """Discovery again with the follow's own selection (after a CRD changed)."""

    reader: Reader
    scope: Scope
    skip_secrets: bool
    topts: TransformOptions

    def units(self) -> list[Unit]:
        from kstream.cluster.plan import make_plan

        s = self.scope
        return make_plan(
            self.reader.client, s.resources, s.exclude, s.namespaces, self.skip_secrets
        ).units

    def make_follow(self, unit: Unit) -> UnitFollow:
        from kstream.transform import make_transform

        return UnitFollow(unit, "", make_transform(unit.resource, self.topts))


def base_follows(units: list[Unit], topts: TransformOptions) -> list[UnitFollow]:
    """A new journal's followers: each unit from the resourceVersion its base
    read ended at; a unit the base did not read completely is not followed."""
    from kstream.transform import make_transform

    out = []
    for u in units:
        uf = UnitFollow(u, u.resource_version, make_transform(u.resource, topts))
        if u.status != "complete":  # not followed; --resume tries it again (a resync)
            uf.state, uf.error = "failed", f"not in the base ({u.status or 'incomplete'})"
        elif not u.resource_version:  # a watch from "" would replay every object
            uf.needs_resync = True
        out.append(uf)
    return out


@dataclass
class Resumed:
    """A journal ready to be followed on (`resume`)."""

    reader: Reader
    units: list[UnitFollow]
    replan: Replan
    next_segment: int


def resume(
    target: Path,
    meta: JournalMeta,
    live: LiveOptions,
    secret_key: bytes | None,
    warn: Callable[[str], None],
) -> Resumed:
    """`--resume JOURNAL/` (the journal locked, its key checked): seal a tail
    left by a crash, connect, and follow each unit on from its last recorded
    resourceVersion (a resync where there is none, or one was left open), with
    the selection and rules the journal was written with."""
    from kstream import paths
    from kstream.cluster.plan import open_live
    from kstream.journal.recovery import recover
    from kstream.store.snapshot import open_snapshot
    from kstream.transform import TransformOptions, make_transform

    opts = meta.options
    snap = open_snapshot(str(target / BASE_NAME))
    base_rvs = {
        position_key(unit_resource(e.group, e.version, e.resource), e.namespace or ""): str(
            e.resourceVersion or ""
        )
        for e in snap.entries
        if e.status == "complete" and e.resourceVersion
    }
    pos = recover(target, base_rvs)
    if pos.sealed_tail is not None:
        warn(f"sealed segment {pos.sealed_tail:06d}, left open by the previous run")
    scope = Scope(
        opts.resources, opts.exclude, opts.namespaces, opts.label_selector, opts.field_selector
    )
    secrets = opts.secrets or "redact"
    plan, reader = open_live(scope, live, warn, skip_secrets=secrets == "exclude")
    was = str(meta.server_url or "")
    if was and plan.server and was.rstrip("/") != plan.server.rstrip("/"):
        # resourceVersions are one cluster's: another's would be watched from
        # positions that mean nothing there (or replay its changes as this one's)
        warn(
            f"warning: {target} was written from {was}; resuming against {plan.server}: "
            "if that is another cluster, stop and start a new journal"
        )
    topts = TransformOptions(
        secrets=cast("SecretsMode", secrets),  # as the journal's journal.json says
        secret_key=secret_key,
        strip=tuple(paths.parse(p) for p in opts.strip),
    )
    units = []
    for u in plan.units:
        uf = UnitFollow(u, "", make_transform(u.resource, topts))
        uf.rv = pos.rvs.get(uf.key, "")
        uf.needs_resync = not uf.rv or uf.key in pos.open_resync
        units.append(uf)
    return Resumed(
        reader, units, Replan(reader, scope, secrets == "exclude", topts), pos.next_segment
    )
