"""Read one resource (in one namespace, or cluster-wide) out of the server.

Watch-list first: `watch=1&sendInitialEvents=true&allowWatchBookmarks=true&
resourceVersionMatch=NotOlderThan`, up to the BOOKMARK annotated
`k8s.io/initial-events-end`. Each ADDED event's object is handed to the sink as
the exact bytes the server sent; nothing is parsed unless the sink asks for it.

Falls back to a paginated LIST (limit/continue) when the server refuses
watch-list for the resource; `listpage.PageReader` cuts each item out of the
page as the bytes the server sent, with kind/apiVersion added where the server
leaves them out, so both paths write the same bytes for the same object. Retries 429/5xx with backoff
(honouring Retry-After) and restarts the resource from scratch, discarding what
the sink got, when a stream is cut.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kstream import deepjson
from kstream.cluster.client import CHUNK, ApiTransport, read_chunks, translate
from kstream.errors import (
    ApiError,
    AuthError,
    ConnectionFailed,
    KstreamError,
    StreamError,
    TLSError,
    TransportError,
)
from kstream.jsonlines import go_json, iter_line_blocks, iter_lines, object_key
from kstream.listpage import (
    BATCH,
    HAS_API_VERSION,
    HAS_KIND,
    NOT_OBJECT,
    PageError,
    PageReader,
    compact,
)
from kstream.resources import Resource

WATCH_LIST = "watch-list"
LIST = "list"

# Short reasons for reading by LIST, as the summary shows them: `list (watch-list off)`.
WATCH_LIST_OFF = "watch-list off"  # 422/400: the server does not serve watch-list
WATCH_FORBIDDEN = "watch forbidden"  # 403 on watch (RBAC grants list without watch)
NO_WATCH_VERB = "no watch verb"  # discovery lists no watch verb for the resource
WATCH_NOT_SERVED = "watch not served"  # 404/405/406 on watch
ERROR_EVENT = "ERROR event"  # the stream sent an ERROR event it would send again
STREAMS_BROKE = "streams broke"  # streams broke or ended without the end marker

# The error of a unit whose resource the server refuses the field selector for
# (400: it has no such field label), followed by the server's words. Not a
# fallback: LIST would be refused the same way. Reports group these units.
FIELD_SELECTOR_REFUSED = "field selector not supported"

_NS_FIELD = re.compile(r"metadata\.namespace==?([a-z0-9]([-a-z0-9]*[a-z0-9])?)")
ADDED_PREFIX = b'{"type":"ADDED","object":'
# between two ADDED events of a run of lines: the end of one, the start of the next
ADDED_SEP = b"}\n" + ADDED_PREFIX
END_ANNOTATION = "k8s.io/initial-events-end"


class Sink(Protocol):
    """Where a unit's objects go. Called from one worker thread."""

    def write(self, obj: bytes) -> None:
        """One object: its compact JSON, without a newline."""

    def reset(self) -> None:
        """Forget everything written so far (the resource is read again)."""

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        """Apply changes that arrived before the end marker (old servers): the
        object with that namespace/name is replaced, or dropped when None; keys
        not yet written are appended."""


# A sink may also have `write_block(objs, n)`: n objects at once, `objs` being
# their compact JSON joined by b"\n" (no newline at the end), the same as n
# calls of write(); without it, the reader makes those calls.
WriteBlock = Callable[[memoryview, int], None]


# how objects are read: watch-list with LIST fallback, or one of them only
Method = Literal["auto", "watch-list", "list"]
# how a unit ends when it does not complete (Reader._end)
EndStatus = Literal["forbidden", "failed", "skipped"]
# what a unit is doing, for the progress display; it ends as its status
UnitPhase = Literal["waiting", "streaming", "listing", "retrying", "done", EndStatus]


@dataclass(frozen=True)
class StreamOptions:
    label_selector: str = ""
    field_selector: str = ""
    resource_version: str = ""  # "" = consistent read; "0" = any cached state
    method: Method = "auto"
    page_size: int = 500
    max_retries: int = 8
    watch_timeout: int = 600  # timeoutSeconds: the server ends a stream after this
    stream_failures_before_fallback: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0


@dataclass
class Unit:
    """One stream: a resource in one namespace (or all). Mutated only by its worker."""

    resource: Resource
    namespace: str | None = None
    index: int = 0
    phase: UnitPhase = "waiting"  # live, for the progress display
    status: str = ""  # final: complete forbidden failed skipped incomplete (interrupted)
    method: str = ""  # what read it: watch-list | list
    fallback: str = ""  # short reason for a LIST read (FALLBACKS), "" when none
    fallback_reason: str = ""  # the full explanation, server text included
    objects: int = 0
    bytes: int = 0
    retries: int = 0
    resource_version: str = ""
    estimate: int | None = None
    error: str = ""
    started: float = 0.0
    finished: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.resource.name + (f" -n {self.namespace}" if self.namespace else "")

    @property
    def duration(self) -> float:
        if not self.started:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


class Cancelled(Exception):
    """The run is being stopped (Ctrl-C, SIGTERM, a fatal error elsewhere)."""


Emit = Callable[[Unit], None]


# --------------------------------------------------------------------------- the reader


class Reader:
    """Reads units; shared by the worker threads of one run."""

    def __init__(self, client: ApiTransport, opts: StreamOptions, cancel: threading.Event) -> None:
        self.client = client
        self.opts = opts
        self.cancel = cancel
        self._open: dict[int, Any] = {}
        self._lock = threading.Lock()

    # -- cancellation: close every open response so blocked reads return
    def abort_all(self) -> None:
        with self._lock:
            responses = list(self._open.values())
        for r in responses:
            try:
                r.shutdown() if hasattr(r, "shutdown") else r.close()
            except Exception:
                pass

    def _track(self, resp: Any) -> None:
        with self._lock:
            self._open[threading.get_ident()] = resp

    def _untrack(self, resp: Any) -> None:
        with self._lock:
            self._open.pop(threading.get_ident(), None)
        if _read_to_end(resp) and not self.cancel.is_set():
            # the connection goes back to the pool: the next LIST page costs
            # no new TLS handshake (one per page was 2-4 us per object)
            try:
                resp.release_conn()
            except Exception:
                pass
            return
        try:
            resp.close()
        except Exception:
            pass
        try:
            resp.release_conn()
        except Exception:
            pass

    def _chunks(self, resp: Any, fill: int = 0) -> Iterator[bytes]:
        """The body's chunks as they arrive; `fill`: in chunks of that size."""
        size = fill or CHUNK
        return self._until_cancelled(read_chunks(resp, self.client.host, size, fill=bool(fill)))

    def _body(self, resp: Any) -> Iterator[bytes]:
        """As _chunks, with the chunked framing undone here (`body`)."""
        return self._until_cancelled(body(resp, self.client.host))

    def _until_cancelled(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self.cancel.is_set():
                raise Cancelled()
            yield chunk

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(min(max(retry_after, 0.1), 120.0))
        base = min(self.opts.backoff_max, self.opts.backoff_base * (2 ** max(0, attempt - 1)))
        return float(base * (0.5 + random.random() / 2))

    def _target(self, unit: Unit) -> tuple[str, list[tuple[str, str]]]:
        """The URL path and selector parameters for a unit. A field selector
        `metadata.namespace=X` on a namespaced resource becomes the namespaced
        path: kube-apiserver 1.36 pages such a cluster-wide LIST wrongly (a
        custom resource's pages after the first are lost, a built-in's come
        back again; reproduced with a plain HTTP client in
        tests/test_every_kind_cluster.py)."""
        ns = unit.namespace
        fs = self.opts.field_selector
        if ns is None and unit.resource.namespaced and fs:
            terms = [t.strip() for t in fs.split(",")]
            for t in terms:
                m = _NS_FIELD.fullmatch(t)
                if m:
                    ns = m.group(1)
                    terms.remove(t)
                    break
            fs = ",".join(terms)
        q = []
        if self.opts.label_selector:
            q.append(("labelSelector", self.opts.label_selector))
        if fs:
            q.append(("fieldSelector", fs))
        return unit.resource.path(ns), q

    def estimate(self, unit: Unit) -> int | None:
        """A cheap object count for the progress display (None when unknown;
        the server gives no remaining count with selectors, so none is asked)."""
        if self.opts.label_selector or self.opts.field_selector:
            return None
        try:
            return self.estimate_count(unit)
        except KstreamError:
            return None

    def estimate_count(self, unit: Unit) -> int | None:
        """Objects in a unit from one LIST with limit=1: the item plus the
        server's remainingItemCount; None when the server does not say (it
        never does with selectors). Errors are raised."""
        path, selectors = self._target(unit)
        resp = self.client.open(path, [("limit", "1"), *selectors], what=f"list {unit.label}")
        self._track(resp)
        page = PageReader()
        n = 0
        try:
            for chunk in self._chunks(resp):
                n += len(page.feed(chunk))
            n += len(page.close())
        except PageError as e:
            raise _page_error(unit, e) from None
        finally:
            self._untrack(resp)
        if not page.continue_token:
            return n
        rem = page.remaining
        return None if rem is None else n + rem

    # -- one unit, with retries and fallback
    def read(self, unit: Unit, sink: Sink, emit: Emit) -> None:
        """Fill the sink with the unit's objects; sets unit.status. Raises only
        AuthError/TLSError (fatal for the run) and Cancelled.

        With `method="watch-list"` (forced) nothing falls back to LIST: what
        would have made `auto` fall back ends the unit as failed (forbidden
        for a 403), with the reason."""
        unit.started = time.monotonic()
        try:
            self._read(unit, sink, emit)
        except _NoFallback as e:
            status: EndStatus = "forbidden" if e.code == WATCH_FORBIDDEN else "failed"
            self._end(unit, emit, status, f"--method watch-list: {e.code}: {e.reason}")

    def _read(self, unit: Unit, sink: Sink, emit: Emit) -> None:
        r = unit.resource
        method: str = self.opts.method
        if method == "auto":
            method = WATCH_LIST if r.watchable else LIST
        if not r.watchable and self.opts.method != LIST:
            method = self._fall_back(
                unit, NO_WATCH_VERB, "the server lists no watch verb for the resource"
            )
        stream_failures = 0
        attempt = 0
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            unit.method = method
            unit.phase = "streaming" if method == WATCH_LIST else "listing"
            emit(unit)
            try:
                if method == WATCH_LIST:
                    rv = self._watch_list(unit, sink)
                else:
                    rv = self._list(unit, sink)
                unit.resource_version = rv
                unit.status = "complete"
                unit.phase = "done"
                unit.finished = time.monotonic()
                emit(unit)
                return
            except (AuthError, TLSError, Cancelled):
                raise
            except ApiError as e:
                self._stop_if_cancelled()
                self._discard(unit, sink)
                if _refuses_field_selector(e, self.opts.field_selector):
                    self._end(unit, emit, "failed", f"{FIELD_SELECTOR_REFUSED}: {e}")
                    return
                if method == WATCH_LIST and e.status in (400, 403, 404, 405, 406, 422):
                    method = self._fall_back(unit, *_refusal(e))
                    continue
                again = e.status == 410 or e.retriable or e.reason == "ResourceVersionTooLarge"
                if again and attempt < self.opts.max_retries:
                    attempt += 1
                    self._retry(unit, emit, attempt, e.retry_after, str(e))
                    continue
                self._end(unit, emit, "forbidden" if e.status == 403 else "failed", str(e))
                return
            except StreamError as e:
                self._stop_if_cancelled()
                self._discard(unit, sink)
                if e.status == 410:
                    unit.notes.append("resource version expired (410): restarted")
                elif e.status == 0:
                    stream_failures += 1
                elif e.status != 429 and e.status <= 500 and method == WATCH_LIST:
                    # an ERROR event the server would send again (e.g. 500 from an
                    # etcd without progress requests): read with LIST instead
                    method = self._fall_back(unit, ERROR_EVENT, f"watch-list ERROR event: {e}")
                    continue
                if (
                    method == WATCH_LIST
                    and stream_failures >= self.opts.stream_failures_before_fallback
                ):
                    method = self._fall_back(
                        unit,
                        STREAMS_BROKE,
                        f"{stream_failures} streams ended without the end marker",
                    )
                    continue
                if attempt < self.opts.max_retries:
                    attempt += 1
                    self._retry(unit, emit, attempt, None, str(e))
                    continue
                self._end(unit, emit, "failed", str(e))
                return
            except (TransportError, ConnectionFailed) as e:
                self._stop_if_cancelled()
                self._discard(unit, sink)
                if method == WATCH_LIST and isinstance(e, TransportError):
                    stream_failures += 1
                    if stream_failures >= self.opts.stream_failures_before_fallback:
                        method = self._fall_back(
                            unit, STREAMS_BROKE, f"{stream_failures} streams broke: {e}"
                        )
                        continue
                if attempt < self.opts.max_retries:
                    attempt += 1
                    self._retry(unit, emit, attempt, None, str(e))
                    continue
                self._end(unit, emit, "failed", str(e))
                return
            except KstreamError as e:
                self._stop_if_cancelled()
                self._discard(unit, sink)
                self._end(unit, emit, "failed", str(e))
                return

    def _stop_if_cancelled(self) -> None:
        """In a failed read's handler: when the run is being stopped, the failure is
        the stop itself (abort_all() closed the stream), not a reason to retry, fall
        back or fail: no retry, fallback or error is recorded for it."""
        if self.cancel.is_set():
            raise Cancelled()

    def _discard(self, unit: Unit, sink: Sink) -> None:
        sink.reset()
        unit.objects = unit.bytes = 0
        unit.estimate = None

    def _fall_back(self, unit: Unit, code: str, reason: str) -> str:
        if self.opts.method == WATCH_LIST:
            raise _NoFallback(code, reason)
        unit.fallback = code
        unit.fallback_reason = reason
        return LIST

    def _retry(self, unit: Unit, emit: Emit, attempt: int, after: float | None, why: str) -> None:
        unit.retries += 1
        unit.phase = "retrying"
        unit.error = why
        emit(unit)
        self.sleep(self.backoff(attempt, after))
        unit.error = ""

    def _end(self, unit: Unit, emit: Emit, status: EndStatus, error: str) -> None:
        unit.phase = unit.status = status
        unit.error = error
        unit.finished = time.monotonic()
        emit(unit)

    # -- watch-list
    def _watch_list(self, unit: Unit, sink: Sink) -> str:
        path, selectors = self._target(unit)
        q = [
            ("watch", "1"),
            ("sendInitialEvents", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("resourceVersion", self.opts.resource_version),
            ("timeoutSeconds", str(self.opts.watch_timeout)),
            *selectors,
        ]
        resp = self.client.open(path, q, what=f"watch {unit.label}")
        self._track(resp)
        folded: dict[tuple[str, str], bytes | None] = {}
        plen = len(ADDED_PREFIX)
        write = sink.write
        write_block: WriteBlock = getattr(sink, "write_block", None) or _writer_of_blocks(write)
        try:
            for block in iter_line_blocks(self._body(resp)):
                # a run of ADDED events (nearly every block before the end marker):
                # their objects cut out all at once, as the line loop below would
                if not folded and block.startswith(ADDED_PREFIX) and block.endswith(b"}\n"):
                    # one line (find stops at the first newline), or count them
                    n = 1 if block.find(b"\n") == len(block) - 1 else block.count(b"\n")
                    if n == 1 or block.count(ADDED_SEP) == n - 1:
                        objs = memoryview(block.replace(ADDED_SEP, b"\n") if n > 1 else block)
                        objs = objs[plen:-2]
                        write_block(objs, n)
                        unit.objects += n
                        unit.bytes += len(objs) - (n - 1)
                        continue
                for line in block.split(b"\n")[:-1]:
                    if not folded and line.startswith(ADDED_PREFIX) and line.endswith(b"}"):
                        obj = line[plen:-1]
                        write(obj)
                        unit.objects += 1
                        unit.bytes += len(obj)
                        continue
                    if not line.strip():
                        continue
                    try:
                        ev = deepjson.loads(line)
                        typ, o = ev["type"], ev["object"]
                    except (ValueError, KeyError, TypeError):
                        raise StreamError(f"watch {unit.label}: unreadable event") from None
                    if typ == "BOOKMARK":
                        md = o.get("metadata") or {}
                        if (md.get("annotations") or {}).get(END_ANNOTATION) == "true":
                            if folded:
                                sink.fold(folded)
                                unit.notes.append(f"{len(folded)} changes folded before the marker")
                            return str(md.get("resourceVersion", ""))
                        continue
                    if typ == "ERROR":
                        raise _error_event(unit, o)
                    key = object_key(o)
                    if typ == "ADDED" and not folded:
                        obj = go_json(o)
                        write(obj)
                        unit.objects += 1
                        unit.bytes += len(obj)
                    elif typ == "DELETED":
                        folded[key] = None
                    elif typ in ("ADDED", "MODIFIED"):
                        folded[key] = go_json(o)
            raise StreamError(
                f"watch {unit.label}: stream ended before the end-of-initial-events marker"
            )
        finally:
            self._untrack(resp)

    # -- a plain watch from a resourceVersion (dump --follow)
    def watch_from(
        self, unit: Unit, rv: str, timeout_seconds: int
    ) -> Iterator[tuple[str, bytes | None, str]]:
        """The changes after `rv`: (type, object, rv) for each ADDED, MODIFIED,
        DELETED (the object as the bytes the server sent) and BOOKMARK (no
        object); ends when the server ends the stream (timeoutSeconds). An
        ERROR event raises StreamError with its code (410: rv too old)."""
        path, selectors = self._target(unit)
        q = [
            ("watch", "1"),
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
            *selectors,
        ]
        resp = self.client.open(path, q, what=f"watch {unit.label}")
        self._track(resp)
        try:
            for line in iter_lines(self._chunks(resp)):
                if not line.strip():
                    continue
                try:
                    ev = deepjson.loads(line)
                    typ, o = ev["type"], ev["object"]
                    md = o.get("metadata") or {}
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise StreamError(f"watch {unit.label}: unreadable event") from None
                if typ == "ERROR":
                    raise _error_event(unit, o)
                new_rv = str(md.get("resourceVersion") or "")
                if typ == "BOOKMARK":
                    yield typ, None, new_rv
                elif typ in ("ADDED", "MODIFIED", "DELETED"):
                    prefix = b'{"type":"' + typ.encode() + b'","object":'
                    if line.startswith(prefix) and line.endswith(b"}"):
                        obj = line[len(prefix) : -1]
                    else:
                        obj = go_json(o)
                    yield typ, obj, new_rv
        finally:
            self._untrack(resp)

    # -- paginated LIST
    def _list(self, unit: Unit, sink: Sink) -> str:
        r = unit.resource
        path, selectors = self._target(unit)
        kind, api = json.dumps(r.kind), json.dumps(r.api_version)
        # what goes before an item's own members, by the TypeMeta it lacks
        heads = {
            0: f'{{"kind":{kind},"apiVersion":{api}'.encode(),
            HAS_KIND: f'{{"apiVersion":{api}'.encode(),
            HAS_API_VERSION: f'{{"kind":{kind}'.encode(),
        }
        typed = HAS_KIND | HAS_API_VERSION
        cont = ""
        rv = ""
        write = sink.write
        while True:
            q = [("limit", str(self.opts.page_size)), *selectors]
            if cont:
                q.append(("continue", cont))
            resp = self.client.open(path, q, what=f"list {unit.label}")
            self._track(resp)
            page = PageReader()

            def put(items: list[tuple[bytes, int]]) -> None:
                size = 0
                for item, flags in items:
                    if flags != typed:
                        item = _typed(item, flags, heads, unit)
                    elif b"\n" in item or b"\r" in item:
                        item = compact(item)
                    write(item)
                    size += len(item)
                unit.objects += len(items)
                unit.bytes += size

            try:
                for chunk in self._chunks(resp, fill=BATCH):
                    items = page.feed(chunk)
                    if items:
                        put(items)
                put(page.close())
            except PageError as e:
                raise _page_error(unit, e) from None
            finally:
                self._untrack(resp)
            if not page.items_seen:
                raise TransportError(f"list {unit.label}: the server sent a list without items")
            # all pages are one snapshot at the first page's resourceVersion
            rv = rv or page.resource_version
            cont = page.continue_token
            remaining = page.remaining
            if remaining is not None:
                unit.estimate = unit.objects + remaining
            if not cont:
                return rv


def _read_to_end(resp: Any) -> bool:
    """Whether the body of a urllib3 response was read to its end: the
    http.client response under it closes itself then (never on a fake)."""
    fp = getattr(resp, "_fp", None)
    try:
        return fp is not None and bool(fp.isclosed())
    except Exception:
        return False


def _writer_of_blocks(write: Callable[[bytes], None]) -> WriteBlock:
    """write_block for a sink that has only write()."""

    def write_block(objs: memoryview, n: int) -> None:
        for obj in bytes(objs).split(b"\n"):
            write(obj)

    return write_block


def body(resp: Any, host: str, size: int = CHUNK) -> Iterator[bytes]:
    """A response's body as it arrives, like kubeclient.read_chunks, but with
    HTTP/1.1 chunked framing undone here over whole socket reads (`dechunk`).

    http.client returns at most one chunk per read and spends a dozen Python
    calls on each; the server sends about one chunk per watch event, so that
    was most of the stream threads' CPU beyond the raw reader's. Anything but
    an unread, chunked, identity-encoded http.client response (a fake, a body
    with a length, a compressed one) is read by read_chunks as before."""
    import http.client

    hr = resp if isinstance(resp, http.client.HTTPResponse) else getattr(resp, "_fp", None)
    fp = getattr(hr, "fp", None)
    if (
        not isinstance(hr, http.client.HTTPResponse)
        or fp is None
        or not hr.chunked
        or hr.chunk_left is not None
        or resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
    ):
        yield from read_chunks(resp, host, size)
        return
    try:
        yield from dechunk(fp.read1, size)
    except Exception as e:
        raise translate(e, host) from None


_MAXLINE = 65536  # http.client's limit on a chunk-size line


def dechunk(read: Callable[[int], bytes], size: int = CHUNK) -> Iterator[bytes]:
    """The data of an HTTP/1.1 chunked body (RFC 9112 7.1) read with `read(size)`
    (returning what is there, b"" at the end): one piece per read that carried
    data, as it arrives; ends after the last chunk (the trailer is not read).
    A body cut short, or a chunk size that is not one, raises
    http.client.IncompleteRead, a chunk-size line over 64 KiB LineTooLong, as
    http.client's own reading does."""
    from http.client import IncompleteRead, LineTooLong

    left = 0  # data bytes of the current chunk still to come
    skip = 0  # bytes of the CRLF after the current chunk's data still to come
    head = b""  # a chunk-size line read in part
    while True:
        data = read(size)
        if not data:
            raise IncompleteRead(b"")
        if head:
            data = head + data
            head = b""
        pieces: list[bytes] = []
        pos, end = 0, len(data)
        last = False
        while pos < end:
            if left:
                stop = pos + left
                if stop > end:
                    pieces.append(data[pos:] if pos else data)
                    left = stop - end
                    break
                pieces.append(data[pos:stop])
                pos, left, skip = stop, 0, 2
            if skip:
                step = min(skip, end - pos)
                pos += step
                skip -= step
                if pos == end:
                    break
            i = data.find(b"\n", pos) + 1
            if not i:
                if end - pos > _MAXLINE:
                    raise LineTooLong("chunk size")
                head = data[pos:]
                break
            if i - pos > _MAXLINE:
                raise LineTooLong("chunk size")
            try:
                left = int(data[pos:i], 16)
            except ValueError:  # a chunk extension (";name=value"), or not a size
                try:
                    left = int(data[pos:i].split(b";", 1)[0], 16)
                except ValueError:
                    raise IncompleteRead(b"") from None
            if left < 0:
                raise IncompleteRead(b"")
            pos = i
            if not left:
                last = True
                break
        if pieces:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if last:
            return


def _typed(item: bytes, flags: int, heads: dict[int, bytes], unit: Unit) -> bytes:
    """A LIST item as a watch event carries it: kind and apiVersion first
    (LIST items of built-in types carry neither), compact."""
    if flags == NOT_OBJECT:
        raise TransportError(f"list {unit.label}: an item of the list is not an object")
    if b"\n" in item or b"\r" in item:
        item = compact(item)
    if item[1:2] not in b" \t}":
        return b"".join((heads[flags], b",", memoryview(item)[1:]))  # one copy of the item
    rest = item[1:].lstrip(b" \t")
    if rest.startswith(b"}"):
        return heads[flags] + b"}"
    return heads[flags] + b"," + rest


def _error_event(unit: Unit, o: Any) -> StreamError:
    """The error of a watch's ERROR event (a Status object)."""
    return StreamError(
        f"watch {unit.label}: {o.get('message', 'error event')}",
        status=int(o.get("code") or 0),
        reason=str(o.get("reason") or ""),
    )


def _page_error(unit: Unit, e: PageError) -> TransportError:
    if e.truncated:
        return TransportError(f"list {unit.label}: the body was cut short ({e})")
    return TransportError(f"list {unit.label}: the server sent invalid JSON ({e})")


def _refuses_field_selector(e: ApiError, field_selector: str) -> bool:
    """A 400 that rejects the field selector for this resource. kube-apiserver
    words it `"x" is not a known field selector: only ...`, `field label not
    supported: x`, or `field label "x" not supported for Job`."""
    if e.status != 400 or not field_selector:
        return False
    text = str(e).lower()
    return "field selector" in text or "field label" in text


def refused_field_selector(labels: list[str], outcome: str = "not read") -> str:
    """One line for every unit the server refused the field selector for."""
    n = len(labels)
    names = ", ".join(labels[:10]) + (f" and {n - 10} more" if n > 10 else "")
    return (
        f"--field-selector: the server does not support it for {n} "
        f"resource{'s' if n != 1 else ''} (HTTP 400), {outcome}: {names}"
    )


def _refusal(e: ApiError) -> tuple[str, str]:
    """The short and the full reason for falling back after a refused watch."""
    if e.status == 422 or e.status == 400:
        return WATCH_LIST_OFF, f"watch-list refused: {e}"
    if e.status == 403:
        return WATCH_FORBIDDEN, f"watch is forbidden (list may be allowed): {e}"
    return WATCH_NOT_SERVED, f"watch not served: {e}"


class _NoFallback(Exception):
    """`--method watch-list` was forced where auto would have fallen back."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
