"""The live progress display and the summary table (stderr, rich)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kstream.cli.common import consoles, stderr_is_terminal
from kstream.exitcodes import ExitCode
from kstream.stream import Unit

if TYPE_CHECKING:
    from kstream.runner import Run

STATE_STYLE = {
    "waiting": "dim",
    "streaming": "cyan",
    "listing": "blue",
    "retrying": "yellow",
    "done": "green",
    "complete": "green",
    "forbidden": "magenta",
    "failed": "red",
    "skipped": "dim",
    "incomplete": "red",
}
MAX_ROWS = 14


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_count(n: float) -> str:
    return f"{n:,.0f}"


def _state(u: Unit) -> str:
    if u.state == "streaming":
        return "streaming"
    if u.state == "listing":
        return "fallback list" if u.fallback_reason else "listing"
    return u.state


class ProgressView:
    """Driven by unit events; draws a live table only when stderr is a terminal."""

    def __init__(self, units: Sequence[Unit], enabled: bool) -> None:
        self.units = units
        self.started = time.monotonic()
        self.live: Live | None = None
        self.touched: dict[int, float] = {}
        if enabled and stderr_is_terminal():
            self.live = Live(
                self._render(), console=consoles.err, refresh_per_second=8, transient=True
            )

    def __enter__(self) -> ProgressView:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, unit: Unit | None) -> None:
        if unit is not None:
            self.touched[unit.index] = time.monotonic()
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Group:
        active = [u for u in self.units if u.state in ("streaming", "listing", "retrying")]
        recent = sorted(
            (u for u in self.units if u.state not in ("waiting",) and u not in active),
            key=lambda u: -self.touched.get(u.index, 0),
        )
        rows = (active + recent)[:MAX_ROWS]
        t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        t.add_column("resource", overflow="fold")
        t.add_column("state")
        t.add_column("objects", justify="right")
        t.add_column("bytes", justify="right")
        t.add_column("rate", justify="right")
        for u in rows:
            dur = max(u.duration, 1e-6)
            obj = human_count(u.objects)
            if u.estimate and u.state not in ("done",):
                obj += f"/{human_count(u.estimate)}"
            t.add_row(
                Text(u.label),
                Text(_state(u), style=STATE_STYLE.get(u.state, "")),
                obj,
                human_bytes(u.bytes),
                f"{u.objects / dur:,.0f}/s" if u.objects else "",
            )
        return Group(t, self._totals())

    def _totals(self) -> Text:
        done = sum(
            1 for u in self.units if u.state not in ("waiting", "streaming", "listing", "retrying")
        )
        objs = sum(u.objects for u in self.units)
        size = sum(u.bytes for u in self.units)
        el = max(time.monotonic() - self.started, 1e-6)
        txt = (
            f"{done}/{len(self.units)} resources  {human_count(objs)} objects  "
            f"{human_bytes(size)}  {objs / el:,.0f} obj/s  {human_bytes(size / el)}/s  {el:.0f}s"
        )
        known = [u.estimate for u in self.units if u.estimate is not None]
        if known and len(known) == len(self.units):
            total = sum(known)
            if objs and total > objs:
                eta = (total - objs) / (objs / el)
                txt += f"  ~{human_count(total)} total, ETA {eta:.0f}s"
        return Text(txt, style="bold")


def summary_table(units: Sequence[Unit], title: str) -> Table:
    """Resources that hold objects or did not complete; empty complete ones are
    counted in the caption."""
    shown = [u for u in units if u.objects or u.status != "complete"]
    hidden = len(units) - len(shown)
    t = Table(
        title=title,
        title_justify="left",
        caption=f"{hidden} more resources complete and empty" if hidden else None,
        caption_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    t.add_column("resource", no_wrap=True)
    t.add_column("namespace", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("method", no_wrap=True)
    t.add_column("objects", justify="right", no_wrap=True)
    t.add_column("bytes", justify="right", no_wrap=True)
    t.add_column("time", justify="right", no_wrap=True)
    t.add_column("retries", justify="right", no_wrap=True)
    t.add_column("note", overflow="fold")
    for u in shown:
        status = u.status or "incomplete"
        note = u.error or u.fallback_reason
        t.add_row(
            Text(u.resource.name),
            Text(u.namespace or ""),
            Text(status, style=STATE_STYLE.get(status, "")),
            u.method,
            human_count(u.objects),
            human_bytes(u.bytes),
            f"{u.duration:.1f}s",
            str(u.retries) if u.retries else "",
            Text(note or ""),
        )
    return t


def drive(run: Run[Any], quiet: bool) -> ExitCode | None:
    """Consume a run's events, drawing progress. Ctrl-C and SIGTERM (turned into
    exceptions by main()) cancel the run and come back as their exit code; any
    other error cancels it and propagates."""
    from kstream.runner import Interrupted, Terminated

    try:
        with ProgressView(run.units, enabled=not quiet) as view:
            for ev in run.events():
                view.update(ev)
    except (KeyboardInterrupt, Interrupted):
        run.cancel()
        return ExitCode.INTERRUPTED
    except Terminated:
        run.cancel()
        return ExitCode.TERMINATED
    except BaseException:
        run.cancel()
        raise
    return None
