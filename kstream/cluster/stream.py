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

`Reader` is the policy (which method, retries, backoff, fallback); the jobs
are elsewhere: `wire` (responses, bodies, cancellation), `watchlist`
(watch-list and watch-from), `pager` (LIST pages); the vocabulary (`Unit`,
`Sink`, `StreamOptions`, the fallback reasons) is `unit`'s, named here too.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

from kstream.cluster.client import ApiTransport
from kstream.cluster.pager import estimate_count, list_pages
from kstream.cluster.unit import (
    ERROR_EVENT,
    FIELD_SELECTOR_REFUSED,
    LIST,
    NO_WATCH_VERB,
    STREAMS_BROKE,
    WATCH_FORBIDDEN,
    WATCH_LIST,
    WATCH_LIST_OFF,
    WATCH_NOT_SERVED,
    Cancelled,
    Emit,
    EndStatus,
    Method,
    Sink,
    StreamOptions,
    Unit,
    UnitPhase,
    WriteBlock,
)
from kstream.cluster.watchlist import END_ANNOTATION, watch_from, watch_list
from kstream.cluster.wire import Wire, dechunk
from kstream.errors import (
    ApiError,
    AuthError,
    ConnectionFailed,
    KstreamError,
    StreamError,
    TLSError,
    TransportError,
)

__all__ = [
    "END_ANNOTATION",
    "ERROR_EVENT",
    "FIELD_SELECTOR_REFUSED",
    "LIST",
    "NO_WATCH_VERB",
    "STREAMS_BROKE",
    "WATCH_FORBIDDEN",
    "WATCH_LIST",
    "WATCH_LIST_OFF",
    "WATCH_NOT_SERVED",
    "Cancelled",
    "Emit",
    "EndStatus",
    "Method",
    "Reader",
    "Sink",
    "StreamOptions",
    "Unit",
    "UnitPhase",
    "WriteBlock",
    "dechunk",
    "refused_field_selector",
]


class Reader:
    """Reads units; shared by the worker threads of one run."""

    def __init__(self, client: ApiTransport, opts: StreamOptions, cancel: threading.Event) -> None:
        self.client = client
        self.opts = opts
        self.cancel = cancel
        self.wire = Wire(client, opts, cancel)

    def abort_all(self) -> None:
        """Cancellation: close every open response so blocked reads return."""
        self.wire.abort_all()

    def sleep(self, seconds: float) -> None:
        self.wire.sleep(seconds)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(min(max(retry_after, 0.1), 120.0))
        base = min(self.opts.backoff_max, self.opts.backoff_base * (2 ** max(0, attempt - 1)))
        return float(base * (0.5 + random.random() / 2))

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
        """Objects in a unit from one LIST with limit=1 (`pager.estimate_count`)."""
        return estimate_count(self.wire, unit)

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

    # -- the jobs: watch-list, a plain watch, paginated LIST
    def _watch_list(self, unit: Unit, sink: Sink) -> str:
        return watch_list(self.wire, unit, sink)

    def watch_from(
        self, unit: Unit, rv: str, timeout_seconds: int
    ) -> Iterator[tuple[str, bytes | None, str, str]]:
        """The changes after `rv` (`watchlist.watch_from`): (type, object, rv,
        stated), `stated` the newest time the object states (`server_time()`)."""
        return watch_from(self.wire, unit, rv, timeout_seconds)

    def _list(self, unit: Unit, sink: Sink) -> str:
        return list_pages(self.wire, unit, sink)


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
