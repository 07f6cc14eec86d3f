"""Run many units concurrently and hand each finished one over, in order.

    run = Run(reader, units, make_sink, deliver, concurrency=4)
    for unit in run.events():   # a Unit whose state changed, or None (a tick)
        ...                     # render progress
    # deliver(unit, sink) has been called for every unit, in index order

Workers are daemon threads, so a stuck socket never keeps the process alive.
A fatal error in any worker (credentials rejected, TLS, disk full) stops the run
and is raised from events(). cancel() stops it from outside (Ctrl-C, SIGTERM);
salvage() then delivers the units that had finished but were waiting for an
earlier one, so that `written` says exactly which units reached the output.
A delivery is never cut in half by SIGINT/SIGTERM: the signal waits for it.

Huge units run one at a time. A watch-list of a huge resource holds the API
server's watch-cache lock about twice as long as a LIST, and several at once
block writes (kubernetes/kubernetes#139526: 1M Pods, 50 readers, writes blocked
up to 574 ms). So with more than one worker, the size of each unit that reads a
whole resource (all namespaces, or cluster-scoped) is estimated first (one LIST
with limit=1: the item plus remainingItemCount) and a unit estimated above
`huge` objects (HUGE, 100,000, by default) waits while another huge unit
streams; the other workers go on with the smaller units meanwhile, and the
worker that finishes a huge unit takes the next waiting one. A unit whose size
the server does not tell (label or field selectors) counts as small; units of
one namespace (-n) are not estimated for this (one namespace's share).
"""

from __future__ import annotations

import collections
import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from kstream.cluster.stream import Cancelled, Reader, Sink, Unit
from kstream.dataclass import dataclass
from kstream.errors import AuthError, KstreamError, OutputError, TLSError

S = TypeVar("S", bound=Sink)

TICK = 0.1
HUGE = 100_000  # objects: units estimated above this stream one at a time


@dataclass
class _Done(Generic[S]):
    unit: Unit
    sink: S


@dataclass
class _Fatal:
    error: BaseException


class Run(Generic[S]):
    def __init__(
        self,
        reader: Reader,
        units: Sequence[Unit],
        make_sink: Callable[[Unit], S],
        deliver: Callable[[Unit, S], None],
        concurrency: int = 4,
        estimate: bool = False,
        huge: int | None = HUGE,
        follow: Callable[[S], None] | None = None,
    ) -> None:
        """`follow(sink)`: called on the main thread, between events and at
        least every TICK, with the sink of the next unit to deliver while its
        worker is still filling it."""
        self.reader = reader
        self.units = list(units)
        self.make_sink = make_sink
        self.deliver = deliver
        self.concurrency = max(1, min(concurrency, len(self.units) or 1))
        self.estimate = estimate
        # more than one worker: estimate every unit, huge ones stream one at a time
        self.huge = huge if self.concurrency > 1 else None
        self._huge_lock = threading.Lock()
        self._huge_busy = False  # a huge unit is streaming
        self._huge_waiting: collections.deque[Unit] = collections.deque()
        self.cancelled = reader.cancel
        self._todo: queue.Queue[Unit | None] = queue.Queue()
        self._events: queue.Queue[Unit | _Done[S] | _Fatal] = queue.Queue()
        self._finished: dict[int, _Done[S]] = {}
        self.follow = follow
        self._filling: dict[int, S] = {}  # sinks being filled, by unit index
        self.delivered = 0  # units delivered in order
        self.written: set[int] = set()  # indices of every unit delivered
        self.at_cancel: dict[int, tuple[int, int]] = {}  # index: (objects, retries)

    def _deliver(self, d: _Done[S]) -> None:
        with signals_held():  # a signal now takes effect once this is recorded
            self.deliver(d.unit, d.sink)
            self.written.add(d.unit.index)

    def salvage(self) -> None:
        """After cancel(): deliver, in index order, the units that finished but
        were waiting for an earlier unit; drop the sinks of everything else."""
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(ev, _Done):
                self._finished[ev.unit.index] = ev
        finished, self._finished = self._finished, {}
        for i in self.written & finished.keys():
            del finished[i]
        try:
            for i in sorted(finished):
                d = finished.pop(i)
                self._deliver(d)
        finally:
            for d in finished.values():
                _close(d.sink)

    def cancel(self) -> None:
        if not self.cancelled.is_set():  # before the aborted reads reset them
            self.at_cancel = {u.index: (u.objects, u.retries) for u in self.units}
        self.cancelled.set()
        self.reader.abort_all()

    def _worker(self) -> None:
        handed: Unit | None = None  # a huge unit that waited for the one this worker ran
        while not self.cancelled.is_set():
            if handed is not None:
                unit, handed, huge = handed, None, True
            else:
                got = self._todo.get()
                if got is None:
                    return
                unit, huge = got, False
            sink: S | None = None
            try:
                gate = self.huge is not None and unit.namespace is None
                if not huge and (self.estimate or gate):
                    n = self.reader.estimate(unit)
                    if self.estimate:
                        unit.estimate = n
                    if gate and n is not None and n > (self.huge or 0):
                        with self._huge_lock:
                            if self._huge_busy:  # its worker takes this one next
                                self._huge_waiting.append(unit)
                                continue
                            self._huge_busy = True
                        huge = True
                sink = self.make_sink(unit)
                self._filling[unit.index] = sink
                try:
                    self.reader.read(unit, sink, self._events.put)
                finally:
                    self._filling.pop(unit.index, None)
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
            finally:
                if huge:
                    with self._huge_lock:
                        if self._huge_waiting:
                            handed = self._huge_waiting.popleft()
                        else:
                            self._huge_busy = False

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
        finished = self._finished
        try:
            while self.delivered < len(self.units):
                filling = self._filling.get(self.delivered) if self.follow else None
                if filling is not None and self.follow is not None:
                    self.follow(filling)
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
                        # popped only once delivered: a signal in between leaves
                        # it to salvage(), which skips what is already written
                        self._deliver(finished[self.delivered])
                        del finished[self.delivered]
                        self.delivered += 1
                    yield ev.unit
                    continue
                yield ev
        finally:
            if self.delivered < len(self.units):
                self.cancel()  # the finished sinks wait for salvage() or close()

    def close(self) -> None:
        """After a failed run: drop the sinks of finished, undelivered units."""
        finished, self._finished = self._finished, {}
        for d in finished.values():
            _close(d.sink)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then take effect (the
    main thread only; elsewhere the block runs as is)."""
    got: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    try:
        old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in sigs}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        h = old[signal.Signals(got[0])]
        if callable(h):
            h(got[0], None)
        elif h == signal.SIG_DFL and got[0] == signal.SIGINT:
            raise KeyboardInterrupt
        elif h == signal.SIG_DFL:
            signal.raise_signal(got[0])


def _close(sink: Sink) -> None:
    close = getattr(sink, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass
