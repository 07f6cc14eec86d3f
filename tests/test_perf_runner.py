"""Huge units stream one at a time; the small ones go on meanwhile
(kubernetes/kubernetes#139526: watch-lists of huge resources block writes)."""

from __future__ import annotations

import threading
from typing import Any

from kstream.cluster.runner import Run
from kstream.cluster.stream import Unit
from kstream.resources import Resource

WAIT = 20.0  # seconds: only reached when the runner is wrong


def unit(name: str, index: int) -> Unit:
    return Unit(Resource("", "v1", name, name.title(), True), None, index)


class FakeReader:
    """estimate() from a table; read() records which units stream at once. A
    huge unit's read lasts until every small unit has been read; a small unit's
    read starts streaming once a huge one does (or the threshold has none)."""

    def __init__(self, sizes: dict[str, int | None], threshold: int) -> None:
        self.cancel = threading.Event()
        self.sizes = sizes
        self.threshold = threshold
        self.lock = threading.Lock()
        self.active: set[str] = set()
        self.max_huge = 0
        self.together: list[tuple[str, str]] = []  # (small, huge) streaming at once
        self.order: list[str] = []
        self.estimated: list[str] = []
        small = [n for n, s in sizes.items() if s is None or s <= threshold]
        self.small_left = len(small)
        self.small_done = threading.Event()
        self.huge_started = threading.Event()
        if not small:
            self.small_done.set()

    def huge(self, name: str) -> bool:
        n = self.sizes[name]
        return n is not None and n > self.threshold

    def abort_all(self) -> None:
        pass

    def estimate(self, u: Unit) -> int | None:
        with self.lock:
            self.estimated.append(u.resource.resource)
        return self.sizes[u.resource.resource]

    def read(self, u: Unit, sink: Any, emit: Any) -> None:
        name = u.resource.resource
        with self.lock:
            self.active.add(name)
            self.order.append(name)
            self.max_huge = max(self.max_huge, sum(1 for a in self.active if self.huge(a)))
        if self.huge(name):
            self.huge_started.set()
            self.small_done.wait(WAIT)  # ends at once only if small units stream meanwhile
        elif self.huge_started.wait(WAIT):
            with self.lock:
                self.together += [(name, h) for h in self.active if self.huge(h)]
        with self.lock:
            self.active.discard(name)
            if not self.huge(name):
                self.small_left -= 1
                if self.small_left == 0:
                    self.small_done.set()
        u.status = "complete"


def run(
    sizes: dict[str, int | None], concurrency: int, threshold: int
) -> tuple[FakeReader, list[str]]:
    reader = FakeReader(sizes, threshold)
    units = [unit(n, i) for i, n in enumerate(sizes)]
    delivered: list[str] = []
    r: Run[Any] = Run(
        reader,  # type: ignore[arg-type]
        units,
        lambda u: object(),
        lambda u, s: delivered.append(u.resource.resource),
        concurrency,
        huge=threshold,
    )
    done = threading.Event()

    def drive() -> None:
        for _ in r.events():
            pass
        done.set()

    t = threading.Thread(target=drive, daemon=True)
    t.start()
    assert done.wait(WAIT), f"the run hung; streamed {reader.order}"
    return reader, delivered


def test_two_huge_units_never_stream_at_once_while_small_ones_go_on() -> None:
    sizes: dict[str, int | None] = {
        "pods": 1_000_000,
        "events": 250_000,
        "configmaps": 10,
        "secrets": 99,
        "leases": None,  # the server did not say: small
        "services": 3,
        "endpoints": 500_000,
    }
    reader, delivered = run(sizes, concurrency=3, threshold=100)
    assert delivered == list(sizes)  # all of them, in order
    assert reader.max_huge == 1
    assert sorted(reader.estimated) == sorted(sizes)
    # the small units streamed while a huge one did
    assert {s for s, _ in reader.together} == {"configmaps", "secrets", "leases", "services"}
    assert sorted(n for n in reader.order if reader.huge(n)) == ["endpoints", "events", "pods"]


def test_only_huge_units() -> None:
    sizes: dict[str, int | None] = {f"r{i}": 200 + i for i in range(5)}
    reader, delivered = run(sizes, concurrency=4, threshold=100)
    assert delivered == list(sizes)
    assert reader.max_huge == 1


class BarrierReader(FakeReader):
    """Every read waits for the others: they must all stream at once."""

    def __init__(self, sizes: dict[str, int | None], threshold: int) -> None:
        super().__init__(sizes, threshold)
        self.barrier = threading.Barrier(len(sizes))

    def read(self, u: Unit, sink: Any, emit: Any) -> None:
        self.barrier.wait(WAIT)  # BrokenBarrierError (the run fails) if one was held back
        u.status = "complete"


def test_units_at_the_threshold_are_not_huge() -> None:
    sizes: dict[str, int | None] = {"a": 100, "b": 100, "c": None}
    reader = BarrierReader(sizes, 100)
    delivered: list[str] = []
    r: Run[Any] = Run(
        reader,  # type: ignore[arg-type]
        [unit(n, i) for i, n in enumerate(sizes)],
        lambda u: object(),
        lambda u, s: delivered.append(u.resource.resource),
        3,
        huge=100,
    )
    for _ in r.events():
        pass
    assert delivered == ["a", "b", "c"]


def test_one_worker_asks_for_no_estimate() -> None:
    reader, delivered = run({"pods": 10**6, "events": 10**6}, concurrency=1, threshold=100)
    assert delivered == ["pods", "events"]
    assert reader.estimated == []  # one stream at a time anyway: no extra request


def test_units_of_one_namespace_are_not_estimated() -> None:
    """-n: each unit is one namespace's share of a resource: no extra request,
    and the two stream at once (BarrierReader fails the run otherwise)."""
    reader = BarrierReader({"pods": 10**6, "events": 10**6}, 100)
    units = [
        Unit(Resource("", "v1", n, n.title(), True), "ns", i) for i, n in enumerate(reader.sizes)
    ]
    r: Run[Any] = Run(reader, units, lambda u: object(), lambda u, s: None, 2, huge=100)  # type: ignore[arg-type]
    for _ in r.events():
        pass
    assert reader.estimated == []
