"""The summary table and the live progress view fit the terminal: at 80 and 120
columns no number is cut and no line is wider than the terminal; fallbacks show
a short reason per resource and their explanation once; logs get one plain
line per resource."""

from __future__ import annotations

import io
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from kstream.cli import render
from kstream.cli.render import ProgressView, human_count
from kstream.cluster.runner import Run
from kstream.cluster.stream import Unit
from kstream.errors import Interrupted
from kstream.printable import human_bytes
from kstream.resources import Resource

LONG_NS = "some-long-namespace-name"
REFUSED = (
    "watch-list refused: HTTP 422 Unprocessable Entity: Invalid value: true: "
    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is "
    "enabled; resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch "
    "unless sendInitialEvents is provided"
)


def res(resource: str, group: str = "", namespaced: bool = True) -> Resource:
    return Resource(group, "v1", resource, resource.capitalize(), namespaced)


def unit(
    resource: str,
    ns: str | None,
    *,
    status: str = "complete",
    phase: str = "done",
    method: str = "watch-list",
    objects: int = 0,
    size: int = 0,
    retries: int = 0,
    reason: str = "",
    fallback: str = "",
    error: str = "",
    estimate: int | None = None,
    group: str = "",
) -> Unit:
    u = Unit(res(resource, group), ns)
    u.status, u.phase, u.method = status, phase, method
    u.objects, u.bytes, u.retries = objects, size, retries
    u.fallback_reason, u.fallback, u.error, u.estimate = reason, fallback, error, estimate
    u.started, u.finished = 1000.0, 1123.4
    return u


def realistic() -> list[Unit]:
    """Every status, every fallback, retries, counts up to 10,000,000."""
    units = [
        unit("validatingadmissionpolicybindings", LONG_NS, group="admissionregistration.k8s.io",
             objects=10_000_000, size=987_654_321_000, retries=3),
        unit("mutatingwebhookconfigurations", None, group="admissionregistration.k8s.io",
             objects=9_876_543, size=12_345_678_901, method="list", reason=REFUSED,
             fallback="watch-list off"),
        unit("configmaps", LONG_NS, objects=1_234_567, size=1023 * 1024 * 1024, method="list",
             reason="watch is forbidden (list may be allowed)", fallback="watch forbidden"),
        unit("componentstatuses", None, objects=765_432, size=5_000_000, method="list",
             reason="the resource does not support watch", fallback="no watch verb"),
        unit("events", "kube-system", objects=54_321, size=99_999, method="list",
             reason="watch-list ERROR event: etcd progress request failed", retries=12,
             fallback="ERROR event"),
        unit("leases", "kube-node-lease", objects=4_321, size=1_000, method="list",
             reason="3 streams broke: connection reset by peer", fallback="streams broke"),
        unit("secrets", LONG_NS, status="forbidden", phase="forbidden",
             error='secrets is forbidden: User "system:serviceaccount:ci:reader" cannot watch '
             'resource "secrets" in API group "" in the namespace "some-long-namespace-name"'),
        unit("widgets", "demo-0", group="demo.kstream.dev", status="failed", phase="failed",
             error="HTTP 500: Internal error occurred: conversion webhook unreachable", retries=8),
        unit("bindings", None, status="skipped", phase="skipped"),
        unit("pods", "default", status="", phase="streaming", objects=3_456_789, size=77_777_777),
        unit("deployments", LONG_NS, group="apps", status="interrupted", phase="done",
             error="interrupted after reading 8,765,432 objects; none written"),
        unit("serviceaccounts", "default", objects=0),
    ]  # fmt: skip
    for i, u in enumerate(units):
        u.index = i
    return units


def live_units() -> list[Unit]:
    units = realistic()
    states = ["streaming", "listing", "listing", "listing", "retrying", "listing", "done",
              "failed", "skipped", "streaming", "waiting", "done"]  # fmt: skip
    for u, s in zip(units, states, strict=True):
        u.phase = s
        u.finished = 0.0
        u.started = 1e-3  # long ago: rates stay small but present
    units[0].estimate = 10_000_000
    units[1].estimate = 9_999_999
    return units


def draw(renderable: Any, width: int, height: int = 200) -> str:
    con = Console(
        width=width, height=height, file=io.StringIO(), color_system=None, force_terminal=False
    )
    con.print(renderable)
    out = con.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def assert_fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"
    assert "…" not in text


def numbers(units: list[Unit]) -> list[str]:
    return [human_count(u.objects) for u in units] + [human_bytes(u.bytes) for u in units]


@pytest.mark.parametrize("width", [80, 120])
def test_summary_fits_and_keeps_every_number(width: int) -> None:
    units = realistic()
    text = draw(render.summary(units, "kstream dump → /tmp/snap.ndjson.zst"), width)
    assert_fits(text, width)
    for n in numbers([u for u in units if u.objects or u.status != "complete"]):
        assert re.search(rf"(?<![\d,.]){re.escape(n)}(?![\d,])", text), (n, text)
    for status in ("complete", "forbidden", "failed", "skipped", "incomplete", "interrupted"):
        assert status in text
    # one short reason per resource, each fallback explained once under the table
    for code in ("watch-list off", "watch forbidden", "no watch verb", "ERROR event",
                 "streams broke"):  # fmt: skip
        assert text.count(f"list ({code}):") == 1, text
    assert "sendInitialEvents" not in text  # the server's words: manifest and --debug
    assert "retries" in text and "12" in text
    assert "1 more resources complete and empty" in text


def test_summary_drops_empty_columns() -> None:
    units = [unit("configmaps", "default", objects=5, size=500)]
    text = draw(render.summary(units, "t"), 80)
    assert "retries" not in text
    units[0].retries = 2
    assert "retries" in draw(render.summary(units, "t"), 80)


@pytest.mark.parametrize("width", [80, 120])
def test_live_view_fits_and_keeps_every_number(width: int) -> None:
    units = live_units()
    view = ProgressView(units, enabled=False)
    text = draw(view._render(), width)
    assert_fits(text, width)
    for u in units:
        if u.phase == "waiting":
            continue
        assert human_count(u.objects) in text
        if u.estimate and u.phase != "done":
            assert f"{human_count(u.objects)}/{human_count(u.estimate)}" in text
    assert "list (watch-list off)" in text.replace("\n", " ") or "(watch-list" in text
    assert "sendInitialEvents" not in text


def test_plain_summary_one_line_per_resource() -> None:
    units = realistic()
    lines = render.summary_lines(units, "kstream dump → x")
    assert lines[0] == "kstream dump → x"
    body = [ln for ln in lines if ln.startswith("resource=")]
    assert len(body) == len(units)
    for u, ln in zip(units, body, strict=True):
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', ln))
        assert fields["objects"] == str(u.objects)
        assert fields["bytes"] == str(u.bytes)
        assert fields["status"] == (u.status or "incomplete")
        assert fields["resource"] == u.resource.name
        assert fields.get("namespace") == u.namespace
        if u.fallback:
            assert fields["fallback"].strip('"') == u.fallback
    assert "┃" not in "\n".join(lines) and "…" not in "\n".join(lines)
    assert sum("sendInitialEvents" in ln for ln in lines) == 0


def test_plain_layout_with_ci_or_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from kstream.cli import common

    monkeypatch.setattr(common.consoles, "err", Console(file=io.StringIO(), force_terminal=True))
    monkeypatch.delenv("CI", raising=False)
    assert not render.plain_layout()
    monkeypatch.setenv("CI", "true")
    assert render.plain_layout()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(common.consoles, "err", Console(file=io.StringIO(), force_terminal=False))
    assert render.plain_layout()


# ------------------------------------------------------------------ the runner under a signal


class _FakeReader:
    def __init__(self) -> None:
        self.cancel = threading.Event()

    def abort_all(self) -> None:
        pass

    def estimate(self, unit: Unit) -> int | None:
        return None  # the server did not say (the runner asks with more than one worker)

    def read(self, unit: Unit, sink: Any, emit: Any) -> None:
        unit.status = "complete"


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    def on_int(signum: int, frame: object) -> None:
        raise Interrupted()

    old = signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_signal_never_cuts_a_delivery_in_half(sigint_raises: None) -> None:
    """SIGINT arriving in the middle of a delivery takes effect after it: the
    unit is written whole and recorded as written."""
    import os

    units = [Unit(res("configmaps"), None), Unit(res("secrets"), None)]
    for i, u in enumerate(units):
        u.index = i
    done: list[str] = []

    def deliver(u: Unit, sink: object) -> None:
        done.append(f"{u.resource.name}:start")
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler would run here, between bytecodes
            pass
        done.append(f"{u.resource.name}:end")

    run: Run[Any] = Run(_FakeReader(), units, lambda u: object(), deliver, 1)  # type: ignore[arg-type]
    with pytest.raises(Interrupted):
        for _ in run.events():
            pass
    assert done == ["configmaps:start", "configmaps:end"]
    assert run.written == {0}


@pytest.mark.parametrize("width", [80, 120])
def test_count_table_fits_and_keeps_every_number(width: int) -> None:
    from kstream.cli.count import table
    from kstream.count import CountResult, Grouping, ResKey, Row

    g = Grouping.parse("namespace,resource")
    vapb = ResKey("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings")
    rows = [
        Row((LONG_NS, vapb), 10_000_000, 987_654_321_000),
        Row(("kube-system", ResKey("", "v1", "configmaps")), 1_234_567, 5_000_000),
        Row((None, ResKey("", "v1", "namespaces")), 7, 500),
    ]
    result = CountResult("live", g, rows, server="https://127.0.0.1:6443")
    t, _ = table(result, "count", width)
    text = draw(t, width)
    assert_fits(text, width)
    for n in ("10,000,000", "1,234,567", "11,234,574", "919.8 GiB", "4.8 MiB", "89.0", "11.0"):
        assert n in text, text


def test_live_view_never_taller_than_the_terminal() -> None:
    """rich cuts a live display taller than the screen (the totals would go):
    rows that do not fit are counted instead."""
    view = ProgressView(live_units(), enabled=False)
    text = draw(view._render(), 80, height=15)
    lines = text.splitlines()
    assert len(lines) <= 15, text
    assert re.search(r"^\+\d+ more$", text, re.M), text
    assert lines[-1].startswith("4/12 resources") or lines[-2].startswith("4/12 resources")
    assert "10,000,000/10,000,000" in text  # the active streams come first


class _StallFirst(_FakeReader):
    """Unit 0 blocks until the run is cancelled; the others finish at once."""

    def read(self, unit: Unit, sink: Any, emit: Any) -> None:
        from kstream.cluster.stream import Cancelled

        if unit.index == 0:
            self.cancel.wait(30)
            raise Cancelled()
        unit.status = "complete"


def test_units_finished_behind_a_stalled_one_are_salvaged() -> None:
    """Units are delivered in order, so finished ones wait behind a stalled
    earlier one; when the run is stopped they are delivered all the same, and
    `written` says exactly which units reached the output."""
    units = [Unit(res(r), None) for r in ("configmaps", "secrets", "services")]
    for i, u in enumerate(units):
        u.index = i
    delivered: list[str] = []
    run: Run[Any] = Run(
        _StallFirst(),  # type: ignore[arg-type]
        units,
        lambda u: object(),
        lambda u, sink: delivered.append(u.resource.name),
        3,
    )
    done = set()
    for ev in run.events():  # the reader emits nothing: a unit here has finished
        if ev is not None:
            done.add(ev.index)
        if done == {1, 2}:
            break
    assert delivered == []  # in order: they wait for configmaps
    run.cancel()
    run.salvage()
    assert delivered == ["secrets", "services"]
    assert run.written == {1, 2}


def test_every_fallback_code_has_its_own_explanation() -> None:
    """Each short reason the reader gives (kstream.cluster.stream) is explained under
    the summary in its own words, not by the generic line."""
    from kstream.cluster import stream

    codes = [stream.WATCH_LIST_OFF, stream.WATCH_FORBIDDEN, stream.NO_WATCH_VERB,
             stream.WATCH_NOT_SERVED, stream.ERROR_EVENT, stream.STREAMS_BROKE]  # fmt: skip
    for code in codes:
        assert code in render.FALLBACK_EXPLAINED, code
        assert render.FALLBACK_EXPLAINED[code] != render.FALLBACK_EXPLAINED["fallback"]


def test_problem_lines_say_refused_field_selectors_once() -> None:
    """Several contexts (dump, count, diff --live A B): each resource not read
    gets its line, those whose field selector the server refused one line."""
    from kstream.cluster.stream import FIELD_SELECTOR_REFUSED

    refused = f"{FIELD_SELECTOR_REFUSED}: the server said so"
    lines = render.problem_lines(
        [
            ("namespaces", "failed", refused),
            ("secrets", "forbidden", "HTTP 403"),
            ("nodes", "failed", refused),
            ("pods", "", ""),
        ]
    )
    assert lines == [
        "secrets: forbidden: HTTP 403",
        "pods: incomplete",
        "--field-selector: the server does not support it for 2 resources (HTTP 400), "
        "not read: namespaces, nodes",
    ]
