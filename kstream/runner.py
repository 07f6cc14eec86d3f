"""Run many units concurrently and hand each finished one over, in order.

    run = Run(reader, units, make_sink, deliver, concurrency=4)
    for unit in run.events():   # a Unit whose state changed, or None (a tick)
        ...                     # render progress
    # deliver(unit, sink) has been called for every unit, in index order

Workers are daemon threads, so a stuck socket never keeps the process alive.
A fatal error in any worker (credentials rejected, TLS, disk full) stops the run
and is raised from events(). cancel() stops it from outside (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kstream.errors import AuthError, KstreamError, OutputError, TLSError
from kstream.resources import Resource
from kstream.stream import Cancelled, Reader, Sink, Unit

S = TypeVar("S", bound=Sink)

TICK = 0.1


class Terminated(BaseException):
    """SIGTERM, turned into an exception in the main thread."""


class Interrupted(BaseException):
    """SIGINT (Ctrl-C), raised instead of KeyboardInterrupt so that no library
    in between (click turns KeyboardInterrupt into a silent exit) swallows it."""


@dataclass
class _Done(Generic[S]):
    unit: Unit
    sink: S


@dataclass
class _Fatal:
    error: BaseException


def plan_units(
    resources: Sequence[Resource],
    namespaces: Sequence[str],
    explicit: bool = False,
) -> list[Unit]:
    """One unit per resource, or per resource and namespace when -n is given.
    With namespaces, cluster-scoped resources are read only when named."""
    units: list[Unit] = []
    for r in resources:
        if not namespaces:
            units.append(Unit(r, None))
        elif r.namespaced:
            units.extend(Unit(r, ns) for ns in namespaces)
        elif explicit:
            units.append(Unit(r, None))
    for i, u in enumerate(units):
        u.index = i
    return units


class Run(Generic[S]):
    def __init__(
        self,
        reader: Reader,
        units: Sequence[Unit],
        make_sink: Callable[[Unit], S],
        deliver: Callable[[Unit, S], None],
        concurrency: int = 4,
        estimate: bool = False,
    ) -> None:
        self.reader = reader
        self.units = list(units)
        self.make_sink = make_sink
        self.deliver = deliver
        self.concurrency = max(1, min(concurrency, len(self.units) or 1))
        self.estimate = estimate
        self.cancelled = reader.cancel
        self._todo: queue.Queue[Unit | None] = queue.Queue()
        self._events: queue.Queue[Unit | _Done[S] | _Fatal] = queue.Queue()
        self.delivered = 0

    def cancel(self) -> None:
        self.cancelled.set()
        self.reader.abort_all()

    def _worker(self) -> None:
        while not self.cancelled.is_set():
            unit = self._todo.get()
            if unit is None:
                return
            sink: S | None = None
            try:
                sink = self.make_sink(unit)
                if self.estimate:
                    unit.estimate = self.reader.estimate(unit)
                self.reader.read(unit, sink, self._events.put)
                self._events.put(_Done(unit, sink))
            except Cancelled:
                return
            except (AuthError, TLSError, KstreamError) as e:
                self._events.put(_Fatal(e))
                return
            except OSError as e:
                self._events.put(_Fatal(OutputError(f"cannot write: {e.strerror or e}")))
                return
            except BaseException as e:  # a bug: surface it in the main thread
                self._events.put(_Fatal(e))
                return

    def events(self) -> Iterator[Unit | None]:
        for u in self.units:
            self._todo.put(u)
        for _ in range(self.concurrency):
            self._todo.put(None)
        threads = [
            threading.Thread(target=self._worker, name=f"kstream-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in threads:
            t.start()
        finished: dict[int, _Done[S]] = {}
        try:
            while self.delivered < len(self.units):
                try:
                    ev = self._events.get(timeout=TICK)
                except queue.Empty:
                    yield None
                    continue
                if isinstance(ev, _Fatal):
                    raise ev.error
                if isinstance(ev, _Done):
                    finished[ev.unit.index] = ev
                    while self.delivered in finished:
                        d = finished.pop(self.delivered)
                        self.deliver(d.unit, d.sink)
                        self.delivered += 1
                    yield ev.unit
                    continue
                yield ev
        finally:
            if self.delivered < len(self.units):
                self.cancel()
                for d in finished.values():
                    _close(d.sink)


def _close(sink: Sink) -> None:
    close = getattr(sink, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass
