"""`count` after an interrupt: every unit is accounted for, either in the rows
or in the incomplete list. No cluster: the real Reader and Run over canned
watch-list streams (tests/fakes.py); open_live is replaced."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from kstream.cluster import plan as plan_module
from kstream.cluster.plan import LiveOptions
from kstream.cluster.runner import Run
from kstream.cluster.stream import END_ANNOTATION, Reader, StreamOptions, Unit
from kstream.count import CountSink, Grouping, count_live
from kstream.exitcodes import ExitCode
from kstream.resources import Resource
from kstream.selector import Scope
from tests.fakes import FakeTransport

V = frozenset({"list", "watch"})
CM = Resource("", "v1", "configmaps", "ConfigMap", True, V, "configmap", ("cm",))
SA = Resource("", "v1", "serviceaccounts", "ServiceAccount", True, V, "serviceaccount", ("sa",))


def _obj(kind: str, name: str) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": "v1", "metadata": {"name": name, "namespace": "ns"}}


def _watch_list(kind: str, n: int, changed_before_marker: bool) -> bytes:
    """A watch-list stream: n ADDED, optionally a MODIFIED before the end marker
    (the unit then needs a recount with LIST), the end marker."""
    events = [{"type": "ADDED", "object": _obj(kind, f"o{i}")} for i in range(n)]
    if changed_before_marker:
        events.append({"type": "MODIFIED", "object": _obj(kind, "o0")})
    end = {"metadata": {"resourceVersion": "7", "annotations": {END_ANNOTATION: "true"}}}
    events.append({"type": "BOOKMARK", "object": end})
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)


def test_interrupted_count_accounts_for_every_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """configmaps: read, but changes arrived before the end marker, so it waits
    for a recount with LIST after the run; the run is interrupted (Ctrl-C) once
    it is delivered, so the recount never happens. It is complete as read, never
    counted: it must be listed (interrupted), not vanish from both lists."""
    transport = FakeTransport(
        {
            "/api/v1/configmaps": _watch_list("ConfigMap", 5, changed_before_marker=True),
            "/api/v1/serviceaccounts": _watch_list("ServiceAccount", 3, False),
        }
    )
    units = [Unit(CM, None, 0), Unit(SA, None, 1)]
    reader = Reader(transport, StreamOptions(), threading.Event())
    fake_plan = SimpleNamespace(
        units=units,
        server="https://fake",
        discovery=SimpleNamespace(failures=()),
        selection=SimpleNamespace(excluded_by_default=()),
    )
    monkeypatch.setattr(plan_module, "open_live", lambda scope, live, warn: (fake_plan, reader))

    def drive(run: Run[CountSink]) -> ExitCode | None:
        """Ctrl-C as soon as configmaps (index 0) is delivered: what drive() does."""
        for _ in run.events():
            if 0 in run.written:
                break
        run.cancel()
        run.salvage()
        return ExitCode.INTERRUPTED

    result, interrupted = count_live(
        Scope(), LiveOptions(concurrency=1), Grouping.parse("resource"), drive
    )
    assert interrupted == ExitCode.INTERRUPTED and result.interrupted
    assert units[0].status == "complete"  # read, but its count was never taken
    rows = {r.key[0].name for r in result.rows}
    listed = {m.name: m for m in result.incomplete}
    assert "configmaps" not in rows
    assert listed["configmaps"].status == "interrupted"
    assert "not counted" in listed["configmaps"].error
    # every unit is somewhere, exactly once
    for u in units:
        assert (u.resource.name in rows) != (u.resource.name in listed), (rows, listed)
    assert not result.complete
