"""Many contexts in one run, for `dump` and `count`: one job per context
(kstream.fleet), then one table with a row per context on stderr (dump) or
stdout (count); the exit code is the worst of the contexts'."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from kstream.cli import common as c
from kstream.cli.render import (
    STATE_STYLE,
    Col,
    FitTable,
    human_count,
    logfmt,
    plain_layout,
    problem_lines,
    styled_line,
)
from kstream.errors import UsageError
from kstream.exitcodes import ExitCode
from kstream.fleet import Fleet, Outcome, Stop, Target, dump_one, worst
from kstream.printable import human_bytes

if TYPE_CHECKING:
    from kstream.cluster.plan import LiveOptions
    from kstream.count import CountResult, Grouping
    from kstream.dump import DumpJob, DumpResult, DumpSettings
    from kstream.selector import Scope


def outputs(template: str, targets: Sequence[Target], started: Any) -> list[str]:
    """Each context's output name (checked: {context} present, names distinct)."""
    from kstream.store import outputname

    if template == "-":
        raise UsageError("several contexts cannot all write to stdout: use -o with {context}")
    if not outputname.uses(template, "context"):
        raise UsageError(
            f"-o {template}: with several contexts the name must contain {{context}}, "
            "e.g. -o 'backups/{context}/{date}.ndjson.zst'"
        )
    names = [
        outputname.expand(template, context=t.context, cluster=t.server, started=started)
        for t in targets
    ]
    outputname.check_unique([(t.context, n) for t, n in zip(targets, names, strict=True)])
    return names


def _status(o: Outcome[Any], status: str | None) -> str:
    if o.error:
        if o.error.startswith("not started"):
            return "not started"
        return "interrupted" if o.code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED) else "failed"
    return status or "complete"


def _emit_rows(title: str, cols: list[Col], rows: list[list[Text | str]], plain: list[str]) -> None:
    if plain_layout():
        c.consoles.err.print(Text(title), soft_wrap=True)
        for line in plain:
            c.consoles.err.print(styled_line(line), soft_wrap=True)
    else:
        c.consoles.err.print(Text(title, style="bold"))
        c.consoles.err.print(FitTable(cols, rows))


def note_warnings(o: Outcome[Any]) -> None:
    """The context's warnings (its debug lines: only with --debug, see run_dump_fleet)."""
    for w in o.warnings:
        if not w.startswith("debug: "):
            c.note(f"{o.context}: {w}")


def note_problems(
    o: Outcome[Any],
    not_read: Callable[[Any], Sequence[tuple[str, str, str]]],
    prefix: str = "warning: ",
) -> None:
    """The context's error, else what it did not read, `not_read(o.value)` as
    (label, status, error): refused field selectors in one line."""
    if o.error:
        c.note_error(f"{o.context}: {o.error}")
    elif o.value is not None:
        for line in problem_lines(not_read(o.value)):
            c.note(f"{o.context}: {prefix}{line}")


def units_not_read(r: DumpResult) -> list[tuple[str, str, str]]:
    return [(u.label, u.status, u.error) for u in r.units if u.status != "complete"]


def _warnings(outcomes: Sequence[Outcome[Any]]) -> None:
    for o in outcomes:
        note_warnings(o)


# --------------------------------------------------------------------------- dump


def run_dump_fleet(
    settings: Sequence[DumpSettings],
    targets: Sequence[Target],
    parallel: int,
    quiet: bool,
    debug: bool,
    created: Sequence[Sequence[Path]] = (),
) -> ExitCode:
    """Dump each context into its own output; `created`: the directories made
    for each output, removed again (when empty) for a context that wrote nothing."""
    by_context = {t.context: s for t, s in zip(targets, settings, strict=True)}

    jobs: dict[str, DumpJob] = {}

    def work(t: Target, stop: Stop, warn: Any) -> tuple[DumpResult, ExitCode]:
        r = dump_one(by_context[t.context], stop, warn, lambda job: jobs.update({t.context: job}))
        return r, r.exit_code

    fleet = Fleet(targets, work, parallel)
    live = not quiet and c.stderr_is_terminal()
    outcomes = _with_progress(fleet, jobs) if live else fleet.run()
    from kstream.store.outputname import remove_empty

    for o, dirs in zip(outcomes, created, strict=False):
        if o.value is None:
            remove_empty(dirs)
    _warnings(outcomes)
    if debug:
        for o in outcomes:
            for w in o.warnings:
                if w.startswith("debug: "):
                    c.note(f"{o.context}: {w}")
    rows: list[list[Text | str]] = []
    plain: list[str] = []
    for o in outcomes:
        r = o.value
        units = r.units if r is not None else []
        done = sum(1 for u in units if u.status == "complete")
        objs = sum(u.objects for u in units)
        size = sum(u.bytes for u in units)
        status = _status(o, r.status if r is not None else None)
        where = r.destination if r is not None else ""  # nothing written
        rows.append(
            [
                Text(o.context),
                Text(status, style=STATE_STYLE.get(status, "red")),
                f"{done}/{len(units)}" if r is not None else "",
                human_count(objs) if r is not None else "",
                human_bytes(size) if r is not None else "",
                f"{o.seconds:.1f}s",
                str(int(o.code)),
            ]
        )
        fields: list[tuple[str, object]] = [("context", o.context), ("status", status)]
        if r is not None:
            fields += [("resources", f"{done}/{len(units)}"), ("objects", objs), ("bytes", size)]
        fields += [("time", f"{o.seconds:.1f}s"), ("exit", int(o.code))]
        if where:
            fields.append(("output", where))
        if o.error:
            fields.append(("error", o.error))
        plain.append(" ".join(f"{k}={logfmt(v)}" for k, v in fields))
    code = worst([o.code for o in outcomes])
    if quiet:
        for o in outcomes:
            if o.error:
                c.note_error(f"{o.context}: {o.error}")
            elif o.value is not None and o.value.status != "complete":
                c.note(f"{o.context}: {o.value.status}: see {o.value.destination}")
        return code
    cols = [
        Col("context"),
        Col("status"),
        Col("resources", "right"),
        Col("objects", "right"),
        Col("bytes", "right"),
        Col("time", "right", optional=True),
        Col("exit", "right"),
    ]
    _emit_rows(f"kstream dump: {len(outcomes)} contexts", cols, rows, plain)
    if not plain_layout():
        for o in outcomes:
            if o.value is not None:
                c.note(f"{o.context} → {o.value.destination}")
        for o in outcomes:
            note_problems(o, units_not_read, prefix="")
    ok = sum(1 for o in outcomes if o.code == ExitCode.OK)
    c.note(f"{ok}/{len(outcomes)} contexts complete; exit {int(code)} (the worst of them)")
    return code


def _with_progress(fleet: Fleet[DumpResult], jobs: dict[str, DumpJob]) -> list[Outcome[DumpResult]]:
    """The run, with a live table on stderr: one row per context."""
    import time

    from rich.live import Live

    t0 = time.monotonic()

    def view() -> FitTable:
        rows: list[list[Text | str]] = []
        for i, t in enumerate(fleet.targets):
            state = fleet.state(i)
            job = jobs.get(t.context)
            units = job.run.units if job is not None else []
            finished = sum(
                1 for u in units if u.phase not in ("waiting", "streaming", "listing", "retrying")
            )
            shown = {"running": "streaming", "abandoned": "stopped"}.get(state, state)
            if state == "done" and fleet.outcomes[i].error:
                shown = "failed"
            rows.append(
                [
                    Text(t.context),
                    Text(shown, style=STATE_STYLE.get(shown, "")),
                    f"{finished}/{len(units)}" if units else "",
                    human_count(sum(u.objects for u in units)) if units else "",
                    human_bytes(sum(u.bytes for u in units)) if units else "",
                ]
            )
        rows.append([Text(f"{time.monotonic() - t0:.0f}s", style="dim"), "", "", "", ""])
        cols = [
            Col("context"),
            Col("state"),
            Col("resources", "right"),
            Col("objects", "right"),
            Col("bytes", "right"),
        ]
        return FitTable(cols, rows, reserve_lines=2)

    with Live(view(), console=c.consoles.err, refresh_per_second=8, transient=True) as live:
        return fleet.run(tick=lambda: live.update(view()))


# --------------------------------------------------------------------------- count


def run_count_fleet(
    targets: Sequence[Target],
    scope: Scope,
    live: LiveOptions,
    grouping: Grouping,
    estimate: bool,
    parallel: int,
    quiet: bool,
    output: str,
) -> ExitCode:
    from kstream.count import count_live, estimate_live
    from kstream.fleet import consume

    def work(t: Target, stop: Stop, warn: Any) -> tuple[CountResult, ExitCode]:
        opts = replace(live, context=t.context)
        if estimate:
            stop.running()  # a few requests: stopped with the process
            result = estimate_live(scope, opts, grouping, warn)
            return result, result.exit_code()

        def drive(run: Any) -> ExitCode | None:
            if not stop.running():  # stopped while connecting
                return stop.code
            return None if consume(run.events(), stop) else stop.code

        result, interrupted = count_live(scope, opts, grouping, drive, warn)
        return result, interrupted if interrupted is not None else result.exit_code()

    outcomes = Fleet(targets, work, parallel).run()
    _warnings(outcomes)
    code = worst([o.code for o in outcomes])
    if output == "json":
        doc = {
            "kind": "kstream-count-contexts",
            "schemaVersion": 1,
            "estimate": estimate,
            "by": grouping.text,
            "contexts": [
                {
                    "context": o.context,
                    "server": o.target.server or None,
                    "exitCode": int(o.code),
                    "error": o.error or None,
                    "count": o.value.to_json() if o.value is not None else None,
                }
                for o in outcomes
            ],
            "total": {
                "objects": sum(o.value.total_objects for o in outcomes if o.value),
                "bytes": None
                if estimate
                else sum(o.value.total_bytes or 0 for o in outcomes if o.value),
            },
        }
        c.consoles.out.file.write(json.dumps(doc, indent=2) + "\n")
    elif output == "ndjson":
        for o in outcomes:
            if o.value is None:
                continue
            for r in o.value.rows:
                row = {"context": o.context, **r.to_json(grouping)}
                c.consoles.out.file.write(json.dumps(row, separators=(",", ":")) + "\n")
    else:
        _count_table(outcomes, estimate)
    c.consoles.out.file.flush()
    for o in outcomes:
        note_problems(o, lambda r: [(m.label, m.status, m.error) for m in r.incomplete])
    return code


def _count_table(outcomes: Sequence[Outcome[CountResult]], estimate: bool) -> None:
    from rich.table import Table

    t = Table(box=None, header_style="bold", pad_edge=False)
    t.add_column("context", overflow="fold")
    t.add_column("server", overflow="fold")
    t.add_column("rows", justify="right", no_wrap=True)
    t.add_column("~objects" if estimate else "objects", justify="right", no_wrap=True)
    if not estimate:
        t.add_column("bytes", justify="right", no_wrap=True)
    t.add_column("status", no_wrap=True)
    total_objects = total_bytes = 0
    for o in outcomes:
        r = o.value
        if r is None:
            status = _status(o, None)
            cells: list[Any] = [Text(o.context), Text(o.target.server), "", ""]
        else:
            status = "complete" if r.complete else "incomplete"
            nonempty = sum(1 for row in r.rows if row.objects)
            cells = [
                Text(o.context),
                Text(r.server or o.target.server),
                str(nonempty),
                human_count(r.total_objects),
            ]
            total_objects += r.total_objects
            total_bytes += r.total_bytes or 0
        if not estimate:
            cells.append(human_bytes(r.total_bytes or 0) if r is not None else "")
        cells.append(Text(status, style=STATE_STYLE.get(status, "red")))
        t.add_row(*cells)
    total: list[Any] = [Text("total", style="bold"), "", ""]
    total.append(Text(human_count(total_objects), style="bold"))
    if not estimate:
        total.append(Text(human_bytes(total_bytes), style="bold"))
    total.append("")
    t.add_row(*total)
    out = c.consoles.out
    if not out.is_terminal:
        from rich.measure import Measurement

        out.width = max(
            out.width, Measurement.get(out, out.options.update_width(10_000), t).maximum
        )
    title = "kstream count: " + str(len(outcomes)) + " contexts"
    if estimate:
        title += "  ESTIMATES (remainingItemCount), no bytes"
    out.print(Text(title, style="bold"), soft_wrap=True)
    out.print(t)
