"""A stopped run is not a failed read: when Ctrl-C / SIGTERM stops the run,
Run.cancel() sets the cancel event and closes the open streams (abort_all());
the read that breaks because of it must end in Cancelled without recording a
retry, a fallback or an error on the unit. No cluster: tests/fakes.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from kstream.cluster.stream import Cancelled, Reader, StreamOptions, Unit
from kstream.resources import Resource
from tests.fakes import FakeResponse, FakeSink, FakeTransport

V = frozenset({"list", "watch"})
CM = Resource("", "v1", "configmaps", "ConfigMap", True, V, "configmap", ("cm",))


class StoppedMidStream(FakeResponse):
    """Sends some events, then the run is stopped: the cancel event is set and
    the connection closed under the reader (what abort_all() does), so the next
    read fails like a broken connection."""

    def __init__(self, body: bytes, cancel: threading.Event) -> None:
        super().__init__(body, chunk=len(body))
        self.cancel = cancel
        self.sent = False

    def read1(self, n: int = -1, /) -> bytes:
        if not self.sent:
            self.sent = True
            return super().read1(n)
        self.cancel.set()
        raise ConnectionResetError(104, "Connection reset by peer")


def _events(n: int) -> bytes:
    out = b""
    for i in range(n):
        o: dict[str, Any] = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": f"c{i}"}}
        out += json.dumps({"type": "ADDED", "object": o}, separators=(",", ":")).encode() + b"\n"
    return out


@pytest.mark.parametrize("method", ["watch-list", "list"])
def test_a_stop_is_not_a_retry(method: str) -> None:
    cancel = threading.Event()
    body = _events(3) if method == "watch-list" else b'{"kind":"ConfigMapList","items":[{"a":1}'
    transport = FakeTransport(lambda path, accept: StoppedMidStream(body, cancel))
    # one broken stream is enough for a fallback: a stop must not count as one
    opts = StreamOptions(method="auto" if method == "watch-list" else "list",
                         stream_failures_before_fallback=1)  # fmt: skip
    reader = Reader(transport, opts, cancel)
    unit = Unit(CM, None, 0)
    emitted: list[tuple[str, int]] = []
    with pytest.raises(Cancelled):
        reader.read(unit, FakeSink(), lambda u: emitted.append((u.phase, u.retries)))
    assert unit.retries == 0
    assert unit.fallback == "" and unit.fallback_reason == ""
    assert unit.error == "" and unit.status == ""
    assert "retrying" not in [p for p, _ in emitted]
    assert len(transport.paths) == 1  # nothing was asked again
