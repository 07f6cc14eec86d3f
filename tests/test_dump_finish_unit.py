"""DumpJob.finish() under a real signal: a second Ctrl-C (or a SIGTERM) that
arrives while the output is being finished must not delete it. No cluster: the
job is assembled around a real writer, and the signal is sent to this process
from inside the writer's finish step (at its fsync, before the rename)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from kstream.cluster.plan import LiveOptions
from kstream.dump import DumpJob, DumpSettings
from kstream.errors import Interrupted, Terminated
from kstream.exitcodes import ExitCode
from kstream.selector import Scope
from kstream.store import writers as archive
from kstream.store.format import Entry
from kstream.store.snapshot import open_snapshot
from kstream.store.writers import open_writer

OBJS = [b'{"kind":"ConfigMap","metadata":{"name":"c%d","namespace":"ns"}}' % i for i in range(50)]


@pytest.fixture
def app_signals() -> Iterator[None]:
    """The handlers kstream's main() installs: SIGINT -> Interrupted, SIGTERM -> Terminated."""

    def on_int(signum: int, frame: object) -> None:
        raise Interrupted()

    def on_term(signum: int, frame: object) -> None:
        raise Terminated()

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _job(output: str, fmt: str) -> DumpJob:
    """A DumpJob whose run is over: one unit's objects already in the output."""
    job = DumpJob.__new__(DumpJob)
    job.settings = DumpSettings(output, fmt, Scope(), LiveOptions())
    job.started = dt.datetime.now(dt.timezone.utc)
    job.t0 = time.monotonic()
    job.writer = open_writer(output, fmt, False, 3, {"created": job.started.isoformat()})
    sp = job.writer.new_spool("core_v1_configmaps.ndjson", None)
    for o in OBJS:
        sp.write(o)
    e = Entry("", "v1", "configmaps", "ConfigMap", True, None, "complete", "watch-list", "1",
              sp.objects, sp.size, 0.1, 0, None, None, sp.sha.hexdigest())  # fmt: skip
    job.writer.append(e, sp)
    job.written = {}
    selection = SimpleNamespace(excluded_by_default=(), not_watchable=())
    job.plan = SimpleNamespace(  # type: ignore[assignment]
        server="https://127.0.0.1:1",
        server_version="v1.36.3",
        context="test",
        discovery=SimpleNamespace(failures=()),
        selection=selection,
        units=[],
    )
    job.run = SimpleNamespace(at_cancel={})  # type: ignore[assignment]
    return job


def _signal_at_fsync(monkeypatch: pytest.MonkeyPatch, sig: int) -> list[int]:
    """os.fsync in the writers sends `sig` to this process first (once): the
    handler runs in the main thread right there, inside writer.finish()."""
    sent: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if not sent:
            sent.append(sig)
            os.kill(os.getpid(), sig)
        real(fd)

    monkeypatch.setattr(archive.os, "fsync", fsync)
    return sent


@pytest.mark.parametrize("fmt", ["zst", "ndjson"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_second_signal_during_finish_keeps_the_partial(
    app_signals: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str, sig: int
) -> None:
    """Interrupted once (the run was stopped), then a second signal while the
    output is being finished: the .partial is still written and reported."""
    target = tmp_path / f"out.{fmt}"
    job = _job(str(target), fmt)
    sent = _signal_at_fsync(monkeypatch, sig)
    result = job.finish(ExitCode.INTERRUPTED)
    assert sent == [sig]  # the signal did arrive during finish()
    partial = Path(str(target) + ".partial")
    assert result.destination == str(partial) and result.exit_code == ExitCode.INTERRUPTED
    assert partial.is_file() and not target.exists()
    if fmt == "ndjson":
        assert partial.read_bytes() == b"".join(o + b"\n" for o in OBJS)
    else:
        snap = open_snapshot(str(partial))
        assert snap.manifest.status == "interrupted"
        assert [len(list(snap.lines(e))) for e in snap.entries] == [len(OBJS)]
    assert [p.name for p in tmp_path.iterdir()] == [partial.name]  # no temporary left


def test_signal_during_a_complete_finish_keeps_the_output_then_takes_effect(
    app_signals: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run that was not stopped: Ctrl-C while its output is finished waits until
    the output is in place (complete), then takes effect."""
    target = tmp_path / "out.zst"
    job = _job(str(target), "zst")
    _signal_at_fsync(monkeypatch, signal.SIGINT)
    with pytest.raises(Interrupted):
        job.finish(None)
    snap = open_snapshot(str(target))
    assert snap.manifest.status == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.zst"]


@pytest.mark.parametrize("fmt", ["zst", "ndjson", "dir"])
def test_interrupted_output_takes_the_first_free_partial_name(tmp_path: Path, fmt: str) -> None:
    """NAME.partial is taken (twice over): the interrupted output goes to NAME.partial3."""
    target = tmp_path / ("out" if fmt == "dir" else f"out.{fmt}")
    for taken in (".partial", ".partial2"):
        Path(str(target) + taken).mkdir()
    result = _job(str(target), fmt).finish(ExitCode.INTERRUPTED)
    assert result.destination == str(target) + ".partial3"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        target.name + s for s in (".partial", ".partial2", ".partial3")
    )
    assert sum(1 for _ in open_snapshot(result.destination.rstrip("/")).lines()) == len(OBJS)
