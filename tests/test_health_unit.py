"""`dump --follow --health-port`: the /healthz endpoint (kstream/journal/health.py),
served for real on a local port, its progress driven by a fake clock."""

from __future__ import annotations

import http.client
import io
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from kstream.cli.app import run
from kstream.errors import UsageError
from kstream.journal import health
from kstream.journal.health import Health, HealthServer, serve_health, stall_bound


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str = "/healthz", method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, Clock]]:
    server = serve_health(0, bound=120.0)
    clock = Clock()
    server.health.clock = clock
    server.health.started = clock.now
    try:
        yield server, clock
    finally:
        server.close()


def follow_like(connected: int, units: int, sealed: int) -> SimpleNamespace:
    return SimpleNamespace(
        connected=connected, units=[None] * units, writer=SimpleNamespace(sealed=[None] * sealed)
    )


def test_starting_following_stalled_and_back(served: tuple[HealthServer, Clock]) -> None:
    server, clock = served
    clock.now += 30
    assert get(server.port) == (200, "ok: starting (base snapshot or resume) for 30s\n")
    health.progress(follow_like(3, 4, 2))  # what the follow loop calls after each step
    clock.now += 5
    assert get(server.port) == (
        200,
        "ok: following, 3/4 streams connected, 2 segments sealed, last progress 5.0s ago\n",
    )
    clock.now += 115  # exactly the bound: still ok
    assert get(server.port)[0] == 200
    clock.now += 6
    status, body = get(server.port)
    assert status == 503
    assert body == (
        "stalled: the follow loop has made no progress for 126s (bound 120s): "
        "a write, flush, seal or upload does not return\n"
    )
    health.progress()  # the follow remembered
    status, body = get(server.port)
    assert status == 200 and "3/4 streams connected" in body and body.count("\n") == 1


def test_head_other_paths_and_query(served: tuple[HealthServer, Clock]) -> None:
    server, _ = served
    assert get(server.port, method="HEAD") == (200, "")
    assert get(server.port, "/healthz?verbose=1")[0] == 200
    assert get(server.port, "/") == (404, "not found: /healthz only\n")
    assert get(server.port, "/healthz/x")[0] == 404


def test_close_stops_listening_and_progress_marks_nothing() -> None:
    server = serve_health(0, bound=120.0)
    port = server.port
    assert get(port)[0] == 200
    server.close()
    assert health._active is None
    health.progress()  # no server: nothing to mark, no error
    with pytest.raises(ConnectionRefusedError):
        get(port)


def test_port_in_use_is_a_usage_error() -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=rf"^--health-port {port}: cannot listen: "):
            serve_health(port, bound=120.0)
    assert health._active is None


def test_the_bound_follows_the_intervals() -> None:
    assert stall_bound(1.0, 60.0) == 120.0  # s3://: 1m segments
    assert stall_bound(1.0, 3600.0) == 600.0  # a local journal: 1h segments, capped
    assert stall_bound(1.0, 300.0) == 300.0
    assert stall_bound(2.0, 60.0) == 200.0
    h = Health(stall_bound(1.0, 60.0), clock=Clock())
    h.progress()
    h.clock.now += 121  # type: ignore[attr-defined]
    assert h.answer()[0] == 503


def test_health_port_needs_follow(tmp_path: Path) -> None:
    err = io.StringIO()
    code = run(["dump", "-o", str(tmp_path / "x.ndjson"), "--health-port", "8080"], stderr=err)
    assert code == 2
    assert "--health-port, --stage and --resume-or-start need --follow" in err.getvalue()


def test_health_port_in_use_fails_before_connecting(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        err = io.StringIO()
        code = run(
            ["dump", "--follow", "-o", str(tmp_path / "j") + "/", "--health-port", str(port),
             "--kubeconfig", str(tmp_path / "none")],
            stderr=err,
        )  # fmt: skip
    assert code == 2, err.getvalue()
    assert f"--health-port {port}: cannot listen:" in err.getvalue()
    assert not (tmp_path / "j").exists()
    assert health._active is None


def test_the_endpoint_closes_with_the_command(tmp_path: Path) -> None:
    """Started before connecting (a missing kubeconfig is the error here), closed
    when the command ends, whatever its outcome."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    err = io.StringIO()
    code = run(
        ["dump", "--follow", "-o", str(tmp_path / "j") + "/", "--health-port", str(port),
         "--kubeconfig", str(tmp_path / "none")],
        stderr=err,
    )  # fmt: skip
    assert code == 4, err.getvalue()
    assert "kubeconfig not found" in err.getvalue()
    assert health._active is None
    with pytest.raises(ConnectionRefusedError):
        get(port)
