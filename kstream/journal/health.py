"""`dump --follow --health-port PORT`: a liveness endpoint for a recorder pod.

`serve_health()` listens on PORT on every interface (0.0.0.0, and :: where the
host has IPv6: a kubelet probes the pod's IP) with the standard library's
http.server in a daemon thread, and answers `GET /healthz` (and HEAD) with one
line of text:

- 200 `ok: starting ...` until the follow loop first marks progress (the base
  snapshot, or a resume, is under way: dump's own timeouts and retries bound it);
- 200 `ok: following ...` while the loop marks progress within the bound;
- 503 `stalled: ...` once it has not for longer than the bound (a write, an
  fsync, a seal or an upload that does not return, or a loop that is stuck).

The follow loop marks progress with one call, `progress(follow)`, after each of
its steps (the events queued by the streams written, then the flush, seal and
upload that were due): a step that returns is progress, so a quiet cluster is
healthy and a hung disk or object store is not. Streams that are down are not
a failure here: the follower rides out an outage (`--outage-limit`) and records
the gap; the body says how many streams are connected.

The bound (`stall_bound()`) comes from the flush and rotate intervals: a step does
at most one flush and one seal (and upload), so 120 s at least, a hundred
flush intervals, and the rotate interval up to 10 minutes (a longer interval
makes larger segments to seal and upload).

The body names no object, resource or credential; nothing is logged. Without
--health-port nothing listens and `progress()` does nothing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sized
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from kstream.errors import UsageError

__all__ = ["Health", "HealthServer", "progress", "serve_health", "stall_bound"]

PATH = "/healthz"
MIN_BOUND = 120.0  # seconds
FLUSHES = 100
ROTATE_CAP = 600.0


def stall_bound(flush_interval: float, rotate_interval: float) -> float:
    """How long the follow loop may go without progress before /healthz says 503."""
    return max(MIN_BOUND, FLUSHES * flush_interval, min(rotate_interval, ROTATE_CAP))


class Following(Protocol):
    """What the body says of a follow (`kstream.journal.follow.Follow`)."""

    @property
    def connected(self) -> int: ...

    @property
    def units(self) -> Sized: ...

    @property
    def writer(self) -> Any: ...


class Health:
    """The follow loop's last progress and what /healthz answers from it."""

    def __init__(self, bound: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound = bound
        self.clock = clock
        self.started = clock()
        self.last: float | None = None  # the last progress mark
        self.follow: Following | None = None

    def progress(self, follow: Following | None = None) -> None:
        self.last = self.clock()
        if follow is not None:
            self.follow = follow

    def answer(self) -> tuple[int, str]:
        """(HTTP status, one line)."""
        now = self.clock()
        if self.last is None:
            return 200, f"ok: starting (base snapshot or resume) for {now - self.started:.0f}s"
        idle = now - self.last
        if idle > self.bound:
            return 503, (
                f"stalled: the follow loop has made no progress for {idle:.0f}s "
                f"(bound {self.bound:.0f}s): a write, flush, seal or upload does not return"
            )
        return 200, f"ok: following{self._detail()}, last progress {idle:.1f}s ago"

    def _detail(self) -> str:
        f = self.follow
        if f is None:
            return ""
        # read on the server's thread: counts and lists the loop only appends to
        sealed = len(f.writer.sealed)
        return f", {f.connected}/{len(f.units)} streams connected, {sealed} segments sealed"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "kstream-health"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        if self.path.split("?", 1)[0] != PATH:
            status, line = 404, f"not found: {PATH} only"
        else:
            status, line = self.server.health.answer()
        data = (line + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stderr is the follow's; probes every few seconds would drown it


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    health: Health


class _DualStack(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class HealthServer:
    """The listener: `port` (the one bound), `close()`."""

    def __init__(self, health: Health, port: int) -> None:
        self.health = health
        self._server = _listen(port)
        self._server.health = health
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        global _active
        if _active is self.health:
            _active = None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _listen(port: int) -> _Server:
    """Every interface: IPv4 and IPv6 where the host has both, IPv4 otherwise."""
    try:
        if socket.has_dualstack_ipv6():
            try:
                return _DualStack(("::", port), _Handler)
            except OSError:
                pass  # IPv6 present but unusable here (disabled in the pod): IPv4
        return _Server(("0.0.0.0", port), _Handler)
    except OSError as e:
        raise UsageError(f"--health-port {port}: cannot listen: {e.strerror or e}") from None


_active: Health | None = None


def serve_health(port: int, bound: float) -> HealthServer:
    """Listen on `port` (0: any free port; the CLI treats 0 as off) and make this
    the Health that `progress()` marks, until `close()`."""
    global _active
    health = Health(bound)
    server = HealthServer(health, port)
    _active = health
    return server


def progress(follow: Following | None = None) -> None:
    """The follow loop made progress (no-op without --health-port)."""
    h = _active
    if h is not None:
        h.progress(follow)
