"""kstream count: how many objects and bytes, per resource, namespace or label."""

from __future__ import annotations

import functools
import inspect
import json
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kstream.cli import common as c
from kstream.errors import StdoutClosed, UsageError
from kstream.exitcodes import ExitCode
from kstream.printable import visible

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from kstream.cluster.plan import LiveOptions
    from kstream.count import CountResult, Grouping, Row
    from kstream.selector import Scope

EXAMPLES = """
Examples:

\b
  kstream count                                # live, per resource, sorted by count
  kstream count --by namespace --sort size     # where the bytes are
  kstream count --by namespace,resource -n prod
  kstream count -r configmaps --by label:app -o json
  kstream count --estimate                     # fast: one LIST limit=1 per resource
  kstream count snap.ndjson.zst                # from a dump (its manifest: instant)
  kstream count --all-contexts                 # one row per context
  kstream count journal/@2026-11-29T14:00:00Z  # a journal's state at an instant
  kstream count journal/ --events --by manager --since 5m   # who is writing
"""

SCHEMA_HELP = """\b
-o json prints one document (schema version 1, see docs/count.md):
  {"kind": "kstream-count", "schemaVersion": 1, "source": "live"|"snapshot",
   "snapshot": PATH|null, "server": URL|null, "estimate": BOOL, "by": "resource",
   "complete": BOOL, "problem": STR|null,
   "rows": [{"group", "version", "resource", "kind",   (when by has resource)
             "namespace": STR|null,                   (when by has namespace)
             "label": STR|null,                       (when by has label:KEY)
             "objects": INT, "bytes": INT|null}],     (bytes null for estimates)
   "total": {"rows": INT, "objects": INT, "bytes": INT|null},
   "incomplete": [{"name", "namespace", "status", "error"}],
   "notEstimated": [STR]}
-o ndjson prints the rows only, one JSON object per line, in the sort order."""

BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"


journal_option = functools.partial(typer.Option, rich_help_panel="Journal")


class Sort(str, Enum):
    by_count = "count"
    by_size = "size"
    by_name = "name"


class Output(str, Enum):
    table = "table"
    json = "json"
    ndjson = "ndjson"


@c.option_groups
def count(
    snapshot: Annotated[
        str | None,
        c.snapshot_argument(
            "SNAPSHOT",
            "Count this snapshot written by dump (archive .zst, NDJSON file, "
            "zstd-compressed NDJSON, directory, JSON List, or - for any of them on stdin; s3://BUCKET/KEY reads one from object storage) instead of the cluster.",
        ),
    ] = None,
    by: Annotated[
        str,
        c.output_option(
            "--by",
            metavar="resource|namespace|label:KEY[,...]",
            help="Group the counts: resource, namespace or label:KEY, or several joined by "
            "commas (namespace,resource).",
        ),
    ] = "resource",
    estimate: Annotated[
        bool,
        c.output_option(
            "--estimate",
            help="Fast approximate object counts: one LIST limit=1 per resource and the "
            "server's remainingItemCount; no objects are streamed, no bytes counted.",
        ),
    ] = False,
    verify: Annotated[
        bool,
        c.output_option(
            "--verify",
            help="Snapshot: read every object and check the checksums, even where the "
            "manifest alone would give the counts.",
        ),
    ] = False,
    sort: Annotated[
        Sort,
        c.output_option(
            "--sort",
            help="Order of the rows (count and size: biggest first).",
        ),
    ] = Sort.by_count,
    output: Annotated[
        Output,
        c.output_option(
            "--output",
            "-o",
            help="table (stdout, with bars), json or ndjson (for scripts).",
        ),
    ] = Output.table,
    events: Annotated[
        bool,
        journal_option(
            "--events",
            help="Journal (written by dump --follow): count change events (added, modified, "
            "deleted) instead of objects; --by resource, namespace, manager (the newest "
            "managedFields entry) or kind.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        journal_option(
            "--since",
            metavar="TIME|DURATION",
            help="With --events: only events after this instant (RFC 3339, or a duration "
            "before now: 5m, 1h).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        journal_option(
            "--until",
            metavar="TIME|DURATION",
            help="With --events: only events up to this instant (included).",
        ),
    ] = None,
    *,
    sel: c.Selection,
    cluster: c.Clusters,
    tuning: c.Tuning,
    ui: c.Ui,
) -> None:
    """Count objects and bytes per resource, namespace or label, live or from a snapshot.

    Live, the same streams as dump (watch-list, LIST fallback, retries) count
    instead of writing: memory does not grow with the number of objects. Bytes
    are the JSON the server sent (from a snapshot: the JSON in the snapshot,
    Secret values as dump redacted them). Resource filters also apply to
    snapshots (-l and --field-selector metadata.name/namespace client-side).

    A snapshot whose dump was interrupted is counted but reported incomplete
    (exit 6); a truncated archive or NDJSON file is not counted (exit 6); a
    partial dump or a live count with unreadable resources exits 3.
    """
    from kstream.count import Grouping, sort_rows

    c.setup_consoles(ui)
    if events or since is not None or until is not None:
        scope = sel.scope()
        code = run_events(
            snapshot, events, by, since, until, scope, estimate or verify, sort, output
        )
        raise typer.Exit(int(code))
    if {p.strip() for p in by.split(",")} & {"manager", "kind"}:
        raise UsageError("--by manager and --by kind group a journal's --events")
    grouping = Grouping.parse(by)
    scope = sel.scope()
    from kstream import fleet

    if fleet.is_many(cluster.contexts, cluster.all_contexts):
        if snapshot is not None:
            raise UsageError(
                "a snapshot is counted alone: --context/--all-contexts are for live counts"
            )
        if verify:
            raise UsageError("--verify is for snapshots (live counts read every object)")
        from kstream.cli.fleet import run_count_fleet

        targets = fleet.select_targets(cluster.kubeconfig, cluster.contexts, cluster.all_contexts)
        live = tuning.live(cluster, None)
        code = run_count_fleet(
            targets,
            scope,
            live,
            grouping,
            estimate,
            cluster.parallel_contexts,
            ui.quiet,
            output.value,
        )
        raise typer.Exit(int(code))
    live = tuning.live(cluster, cluster.first_context)
    interrupted: ExitCode | None = None
    if snapshot is None and verify:
        raise UsageError("--verify is for snapshots (live counts read every object)")
    if snapshot is not None:
        if estimate:
            raise UsageError("--estimate is for live counts; a snapshot is counted exactly")
        result = count_snapshot_cli(snapshot, grouping, scope, ui.quiet, verify)
    elif estimate:
        from kstream.count import estimate_live

        result = estimate_live(scope, live, grouping, c.note)
    else:
        result, interrupted = run_count(grouping, scope, live, ui.quiet)
    result.rows = sort_rows(result.rows, sort.value)
    emit(result, output, sort.value)
    report(result, ui.quiet)
    code = interrupted if interrupted is not None else result.exit_code()
    raise typer.Exit(int(code))


count.__doc__ = inspect.cleandoc(count.__doc__ or "") + "\n\n" + SCHEMA_HELP


# --------------------------------------------------------------------------- the three modes


def count_snapshot_cli(
    path: str, grouping: Grouping, scope: Scope, quiet: bool, verify: bool = False
) -> CountResult:
    from rich.text import Text

    from kstream.count import count_snapshot

    if quiet or not c.stderr_is_terminal():
        return count_snapshot(path, grouping, scope, force_stream=verify)
    with c.consoles.err.status(Text(f"counting {path}"), spinner="dots"):
        return count_snapshot(path, grouping, scope, force_stream=verify)


def run_count(
    grouping: Grouping, scope: Scope, live: LiveOptions, quiet: bool
) -> tuple[CountResult, ExitCode | None]:
    """The live count (`kstream.count.count_live`), driven with progress on stderr."""
    from kstream.cli.render import drive
    from kstream.count import count_live

    result, interrupted = count_live(
        scope,
        live,
        grouping,
        lambda run: drive(run, quiet),
        c.note,
        estimate=not quiet and c.stderr_is_terminal(),
    )
    if not quiet and result.excluded_by_default:
        names = ", ".join(result.excluded_by_default)
        c.note(f"excluded by default: {names} (name them with -r to include)")
    return result, interrupted


# --------------------------------------------------------------------------- output


def emit(result: CountResult, output: Output, sort: str) -> None:
    def print_table(out: Console) -> None:
        from rich.text import Text

        t, notes = table(result, sort, None if not out.is_terminal else out.width)
        _unfolded(out, t)
        out.print(title(result), soft_wrap=True)
        out.print(t)
        for line in notes:
            out.print(Text(visible(line)), soft_wrap=True)

    _write(result, output, print_table)


def _write(result: Any, output: Output, print_table: Callable[[Console], None]) -> None:
    """A count on stdout: one JSON document, its rows as NDJSON, or print_table's table."""
    out = c.consoles.out
    try:
        if output is Output.json:
            out.file.write(json.dumps(result.to_json(), indent=2) + "\n")
        elif output is Output.ndjson:
            for line in result.ndjson():
                out.file.write(line + "\n")
        else:
            print_table(out)
        out.file.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None


def _unfolded(out: Console, t: Table) -> None:
    """On a file or a pipe, the console as wide as the table: rows never fold."""
    if not out.is_terminal:
        from rich.measure import Measurement

        out.width = max(
            out.width, Measurement.get(out, out.options.update_width(10_000), t).maximum
        )


def bar(value: float, biggest: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a character, proportional to value/biggest."""
    if biggest <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / biggest * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def _cell(field: str, v: Any) -> Text:
    from rich.text import Text

    from kstream.count import ResKey

    if field == "resource":
        assert isinstance(v, ResKey)
        return Text(visible(v.name))
    if field == "namespace":
        return Text(visible(v)) if v else Text("(cluster)", style="dim")
    return Text(visible(v)) if v is not None else Text("<none>", style="dim")


def title(result: CountResult) -> Text:
    from rich.text import Text

    if result.source == "snapshot":
        text = f"kstream count: snapshot {result.snapshot}"
        if result.from_manifest:
            text += " (from its manifest)"
    else:
        text = "kstream count: " + (result.server or "live")
        if result.estimate:
            text += "  ESTIMATES (remainingItemCount), no bytes"
    if not result.complete:
        text += "  [INCOMPLETE]"
    return Text(visible(text), style="bold")


def table(result: CountResult, sort: str, width: int | None = None) -> tuple[Table, list[str]]:
    """The rows as a table; at a given terminal width the bars shrink before
    the names fold, and numbers are never cut."""
    from rich.table import Table
    from rich.text import Text

    from kstream.cli.render import human_count
    from kstream.printable import human_bytes

    g = result.grouping
    est = result.estimate
    bar_width = BAR_WIDTH
    if width is not None:
        name_width = sum(
            max([len(f) + 6] + [_cell(f, r.key[i]).cell_len for r in result.rows])
            for i, f in enumerate(g.fields)
        )
        numbers = 2 * len(human_count(result.total_objects)) + 10 + 5
        gaps = 2 * (len(g.fields) + 3)
        bar_width = max(8, min(BAR_WIDTH, width - name_width - numbers - gaps))
    t = Table(box=None, header_style="bold", pad_edge=False)
    for f in g.fields:
        t.add_column(f"label {g.label_key}" if f == "label" else f, overflow="fold")
    t.add_column("~objects" if est else "objects", justify="right", no_wrap=True)
    if not est:
        t.add_column("bytes", justify="right", no_wrap=True)
    by_size = sort == "size" and not est
    header = "share of " + ("bytes" if by_size else "objects")
    t.add_column(header if bar_width >= len(header) else "share", no_wrap=True)
    t.add_column("%", justify="right", no_wrap=True)

    def metric(r: Row) -> int:
        return (r.bytes or 0) if by_size else r.objects

    total_metric = (result.total_bytes or 0) if by_size else result.total_objects
    biggest = max((metric(r) for r in result.rows), default=0)
    empty = 0
    for r in result.rows:
        if r.objects == 0:
            empty += 1
            continue
        cells: list[Any] = [_cell(f, v) for f, v in zip(g.fields, r.key, strict=True)]
        cells.append(("~" if est else "") + human_count(r.objects))
        if not est:
            cells.append(human_bytes(r.bytes or 0))
        share = metric(r) / total_metric if total_metric else 0.0
        cells.append(Text(bar(metric(r), biggest, bar_width), style="cyan"))
        cells.append(f"{share * 100:.1f}")
        t.add_row(*cells)
    total: list[Any] = [Text("total", style="bold")] + [""] * (len(g.fields) - 1)
    total.append(Text(("~" if est else "") + human_count(result.total_objects), style="bold"))
    if not est:
        total.append(Text(human_bytes(result.total_bytes or 0), style="bold"))
    total += ["", ""]
    t.add_row(*total, end_section=False)
    captions: list[str] = []
    if result.problem:
        captions.append(f"incomplete snapshot: {result.problem}")
    if result.incomplete:
        names = ", ".join(m.label for m in result.incomplete[:10])
        more = f" and {len(result.incomplete) - 10} more" if len(result.incomplete) > 10 else ""
        captions.append(f"not counted (incomplete): {names}{more}")
    if result.interrupted:
        captions.append("interrupted: counts so far")
    if empty:
        captions.append(f"{empty} empty (not shown; -o json lists them)")
    if result.not_estimated:
        captions.append("not estimated: " + ", ".join(result.not_estimated))
    return t, captions


def report(result: CountResult, quiet: bool) -> None:
    """Messages on stderr: what was not counted, and why."""
    from kstream.cli.render import fallback_lines, problem_lines, quiet_partial

    if result.problem:
        c.note(f"warning: {result.snapshot}: {result.problem}")
    bad = [(m.label, m.status, m.error) for m in result.incomplete]
    if quiet:  # errors only: a partial count says so in one line
        quiet_partial(
            [(lb, st or "incomplete", er or "") for lb, st, er in bad], None, [], "counted"
        )
    for line in problem_lines(bad):  # refused field selectors: one line
        c.note(f"warning: {line}")
    if result.fallbacks and not quiet:
        for line in fallback_lines(result.fallbacks):  # one line per reason, as under dump's table
            c.note(line)
    if result.not_estimated and not quiet:
        c.note(
            "not estimated (the server gave no remaining count): " + ", ".join(result.not_estimated)
        )
    if result.interrupted:
        c.note("interrupted: the counts shown are incomplete")


# --------------------------------------------------------------------------- --events


def run_events(
    path: str | None,
    events: bool,
    by: str,
    since: str | None,
    until: str | None,
    scope: Scope,
    other_mode: bool,
    sort: Sort,
    output: Output = Output.table,
) -> ExitCode:
    from kstream.journal.events import (
        EventGrouping,
        count_events,
        sort_event_rows,
        window_bounds,
    )

    if not events:
        raise UsageError("--since and --until are for --events (a journal's change events)")
    if path is None:
        raise UsageError("--events counts a journal's events: name the journal (JOURNAL/)")
    if other_mode:
        raise UsageError("--events cannot be combined with --estimate or --verify")
    if sort is Sort.by_size:
        raise UsageError("--sort size: events have no size; use count or name")
    grouping = EventGrouping.parse(by)
    lo, hi = window_bounds(since, until)
    result = count_events(path, grouping, scope, lo, hi)
    result.rows = sort_event_rows(result.rows, sort.value)
    emit_events(result, output)
    return ExitCode.OK


def emit_events(result: Any, output: Output) -> None:
    def print_table(out: Console) -> None:
        from rich.table import Table
        from rich.text import Text

        from kstream.cli.render import human_count

        window = f"{result.since or 'the start'} .. {result.until or 'the end'}"
        out.print(
            Text(
                visible(f"kstream count: events of journal {result.journal} ({window})"),
                style="bold",
            ),
            soft_wrap=True,
        )
        t = Table(box=None, header_style="bold", pad_edge=False)
        for f in result.grouping.fields:
            t.add_column(f, overflow="fold")
        for h in ("events", "added", "modified", "deleted"):
            t.add_column(h, justify="right", no_wrap=True)
        t.add_column("share of events", no_wrap=True)
        t.add_column("%", justify="right", no_wrap=True)
        total = result.total
        biggest = max((r.events for r in result.rows), default=0)
        for r in result.rows:
            cells: list[Any] = []
            for f, v in zip(result.grouping.fields, r.key, strict=True):
                if f == "namespace" and not v:
                    cells.append(Text("(cluster)", style="dim"))
                else:
                    cells.append(Text(visible(v)))
            cells += [human_count(x) for x in (r.events, r.added, r.modified, r.deleted)]
            cells.append(Text(bar(r.events, biggest), style="cyan"))
            cells.append(f"{r.events / total.events * 100:.1f}" if total.events else "")
            t.add_row(*cells)
        row: list[Any] = [Text("total", style="bold")] + [""] * (len(result.grouping.fields) - 1)
        row += [
            Text(human_count(x), style="bold")
            for x in (total.events, total.added, total.modified, total.deleted)
        ]
        t.add_row(*row, "", "")
        _unfolded(out, t)
        out.print(t)
        if not result.rows:
            out.print(Text("no change events in this window"), soft_wrap=True)

    _write(result, output, print_table)
    for g in result.gaps:
        ns = f" -n {g['namespace']}" if g["namespace"] else ""
        c.note(
            f"gap in the journal: {g['resource']}{ns} from {g['since']} to {g['until']} "
            f"({g['why']}): its changes then may be missing or counted later"
        )
