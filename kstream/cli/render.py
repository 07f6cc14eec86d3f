"""The live progress display and the summary table (stderr, rich).

Both fit the terminal: numbers and states are never cut; names wrap instead,
and columns nobody needs (retries when nobody retried, time at very narrow
widths) are left out. With CI set or stderr not a terminal, the summary is
plain text, one `key=value` line per resource (logs, grep), never cut.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from kstream.cli.common import consoles, stderr_is_terminal
from kstream.cluster.stream import FIELD_SELECTOR_REFUSED, Unit, refused_field_selector
from kstream.dataclass import dataclass
from kstream.exitcodes import ExitCode
from kstream.printable import human_bytes, visible

if TYPE_CHECKING:  # rich is imported where something is drawn: a quiet dump never is
    from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
    from rich.live import Live
    from rich.text import Text

    from kstream.cluster.runner import Run
    from kstream.dump import DumpResult, DumpSettings

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
    "interrupted": "red",
}
MAX_ROWS = 14

# --------------------------------------------------------------------------- fallbacks

FALLBACK_EXPLAINED = {
    "watch-list off": "the server refused watch-list streams (feature off or not served); "
    "read with paginated LIST instead",
    "watch forbidden": "this identity may list but not watch; read with LIST",
    "no watch verb": "the resource cannot be watched; read with LIST",
    "watch not served": "the server does not serve watch for the resource "
    "(HTTP 404, 405 or 406); read with LIST",
    "ERROR event": "the watch-list stream sent an ERROR event; read with LIST",
    "streams broke": "watch-list streams kept breaking or ended without their end marker; "
    "read with LIST",
    "fallback": "read with LIST instead of watch-list",
}


def method_cell(unit: Unit) -> str:
    """`watch-list`, `list`, or `list (watch-list off)` when it fell back."""
    code = unit.fallback
    method = unit.method or ("list" if code else "")
    return f"{method} ({code})" if code and method == "list" else method


def fallback_notes(units: Sequence[Unit]) -> list[str]:
    """One line per kind of fallback, under the table (never per resource)."""
    out = fallback_lines([u.fallback for u in units if u.fallback])
    if out:
        out.append("the server's own words: in the manifest, and on stderr with --debug")
    return out


def fallback_lines(codes: Sequence[str]) -> list[str]:
    """`list (CODE): what it means (N resources)` for each fallback code, in
    the order first seen."""
    seen: dict[str, int] = {}
    for code in codes:
        seen[code] = seen.get(code, 0) + 1
    out = []
    for code, n in seen.items():
        what = FALLBACK_EXPLAINED.get(code, FALLBACK_EXPLAINED["fallback"])
        out.append(f"list ({code}): {what} ({n} resource{'s' if n != 1 else ''})")
    return out


def field_selector_refused(u: Unit) -> bool:
    """The server refused the field selector for this unit's resource."""
    return _refused(u.error)


def _refused(error: str) -> bool:
    return error.startswith(FIELD_SELECTOR_REFUSED + ":")


def refused_notes(units: Sequence[Unit]) -> list[str]:
    """One line for all the units the server refused the field selector for."""
    refused = [u.label for u in units if field_selector_refused(u)]
    return [refused_field_selector(refused)] if refused else []


def problem_lines(problems: Sequence[tuple[str, str, str]]) -> list[str]:
    """`label: status: error` for each resource not read (label, status, error),
    those whose field selector the server refused in one line at the end."""
    refused = [label for label, _, error in problems if _refused(error)]
    out = [
        f"{label}: {status or 'incomplete'}" + (f": {error}" if error else "")
        for label, status, error in problems
        if not _refused(error)
    ]
    return out + ([refused_field_selector(refused)] if refused else [])


def unit_notes(units: Sequence[Unit]) -> list[str]:
    """What the reader noted about each unit (Unit.notes: changes folded before
    the end marker, a 410 restart...), one line per unit that has any, the
    empty complete ones included (they have no row)."""
    return [f"{u.label}: {'; '.join(u.notes)}" for u in units if u.notes]


# --------------------------------------------------------------------------- numbers


def human_count(n: float) -> str:
    return f"{n:,.0f}"


def plain_layout() -> bool:
    """Logs rather than a terminal: CI set, or stderr not a terminal."""
    return bool(os.environ.get("CI")) or not consoles.err.is_terminal


# --------------------------------------------------------------------------- fitting


@dataclass
class Col:
    header: str
    justify: str = "left"
    flex: bool = False  # may wrap at spaces (the method); numbers and states never
    optional: bool = False  # left out when nothing else makes room


def _width(cell: Text | str) -> int:
    from rich.cells import cell_len
    from rich.text import Text

    s = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in s.splitlines()), default=0)


def _longest_word(cell: Text | str) -> int:
    """The narrowest a cell wraps to: its longest word, or "(group of words)"."""
    from rich.cells import cell_len
    from rich.text import Text

    s = cell.plain if isinstance(cell, Text) else cell
    parts = re.findall(r"\([^)]*\)|\S+", s)
    return max((cell_len(w) for w in parts), default=0)


class FitTable:
    """A borderless table that fits the width it is drawn at: the first column
    holds names, the others (numbers, states) are never cut. Flexible columns
    wrap at spaces, the gap narrows, optional columns go; a name wider than
    what is left for it goes on a line of its own above its row, so names are
    never folded into slivers."""

    MIN_NAME = 12  # narrower than this, every name gets its own line

    def __init__(
        self,
        cols: Sequence[Col],
        rows: Sequence[Sequence[Text | str]],
        reserve_lines: int | None = None,
    ) -> None:
        """With reserve_lines, the table leaves that many lines of the terminal
        free (a live view taller than the screen is cut by rich): the rows that
        do not fit are counted in a last line."""
        from rich.text import Text

        self.cols = list(cols)
        self.rows = [[c if isinstance(c, Text) else Text(c) for c in r] for r in rows]
        self.reserve_lines = reserve_lines

    def layout(self, width: int) -> tuple[list[int], dict[int, int], int]:
        """(kept columns after the first, their widths, the gap)."""
        from rich.cells import cell_len

        cols, rows = self.cols, self.rows
        natural = {
            i: max([cell_len(cols[i].header)] + [_width(r[i]) for r in rows])
            for i in range(1, len(cols))
        }
        floor = {
            i: max([_longest_word(cols[i].header)] + [_longest_word(r[i]) for r in rows])
            if cols[i].flex
            else natural[i]
            for i in natural
        }
        name = max([cell_len(cols[0].header)] + [_width(r[0]) for r in rows])
        want = min(name, 24)  # names this wide (or all of them) on the row itself
        keep = list(natural)
        for gap in (2, 1):
            widths = dict(natural)
            room = width - sum(widths.values()) - gap * len(keep)
            for i in sorted(keep, key=lambda i: -widths[i]):
                if room >= want:
                    break
                if cols[i].flex:
                    give = min(widths[i] - floor[i], want - room)
                    widths[i] -= give
                    room += give
            if room >= want:
                return keep, widths, gap
        while sum(floor[i] for i in keep) + len(keep) > width and any(
            cols[i].optional for i in keep
        ):
            keep.remove([i for i in keep if cols[i].optional][-1])
        widths = {i: floor[i] for i in keep}
        return keep, widths, 1

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        width = options.max_width
        keep, widths, gap = self.layout(width)
        rest = sum(widths[i] for i in keep) + gap * len(keep)
        name_w = max(0, width - rest)
        if name_w < self.MIN_NAME:
            name_w = 0
        limit = None
        if self.reserve_lines is not None:
            limit = max(3, (options.height or console.height) - self.reserve_lines)
        header = [Text(c.header, style="bold") for c in self.cols]
        out = list(self._row(console, header, keep, widths, gap, name_w, width))
        for n, r in enumerate(self.rows):
            lines = list(self._row(console, r, keep, widths, gap, name_w, width))
            last = n == len(self.rows) - 1
            if limit is not None and len(out) + len(lines) + (0 if last else 1) > limit:
                out.append(Text(f"+{len(self.rows) - n} more", style="dim"))
                break
            out += lines
        yield from out

    def _row(
        self,
        console: Console,
        row: Sequence[Text],
        keep: list[int],
        widths: dict[int, int],
        gap: int,
        name_w: int,
        width: int,
    ) -> Iterator[Text]:
        from rich.cells import cell_len
        from rich.text import Text

        name = row[0]
        if cell_len(name.plain) > name_w:  # a line of its own, above the numbers
            for part in name.wrap(console, max(1, width), overflow="fold"):
                part.no_wrap = True
                yield part
            name = Text("")
        cells: list[list[Text]] = [list(name.wrap(console, max(1, name_w), overflow="fold"))]
        for i in keep:
            t = row[i]
            if self.cols[i].flex and cell_len(t.plain) > widths[i] and " (" in t.plain:
                t = Text(t.plain.replace(" (", "\n(", 1), style=t.style)  # list / (why)
            lines = list(t.wrap(console, widths[i], overflow="fold")) if self.cols[i].flex else [t]
            cells.append(lines)
        height = max(len(c) for c in cells)
        for k in range(height):
            line = Text(no_wrap=True, end="\n")
            for j, c in enumerate(cells):
                w = name_w if j == 0 else widths[keep[j - 1]]
                part = c[k].copy() if k < len(c) else Text("")
                part.end = ""
                just = "left" if j == 0 else self.cols[keep[j - 1]].justify
                part.align("right" if just == "right" else "left", w)
                if j > 0 and (name_w or j > 1):
                    line.append(" " * gap)
                line.append_text(part)
            line.rstrip()
            yield line


# --------------------------------------------------------------------------- live progress


def _state(u: Unit) -> str:
    if u.phase == "listing":
        code = u.fallback
        return f"list ({code})" if code else "listing"
    return u.phase


_View = TypeVar("_View", bound="LiveView")


class LiveView:
    """A view drawn with rich's Live, or not at all (`live` None): a context
    manager either way."""

    live: Live | None = None

    def __enter__(self: _View) -> _View:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)


class ProgressView(LiveView):
    """Driven by unit events; draws a live table only when stderr is a terminal."""

    def __init__(self, units: Sequence[Unit], enabled: bool) -> None:
        self.units = units
        self.started = time.monotonic()
        self.touched: dict[int, float] = {}
        if enabled and stderr_is_terminal():
            from rich.live import Live

            self.live = Live(
                self._render(), console=consoles.err, refresh_per_second=8, transient=True
            )

    def update(self, unit: Unit | None) -> None:
        if unit is not None:
            self.touched[unit.index] = time.monotonic()
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Group:
        from rich.console import Group
        from rich.text import Text

        active = [u for u in self.units if u.phase in ("streaming", "listing", "retrying")]
        recent = sorted(
            (u for u in self.units if u.phase not in ("waiting",) and u not in active),
            key=lambda u: -self.touched.get(u.index, 0),
        )
        rows: list[list[Text | str]] = []
        for u in (active + recent)[:MAX_ROWS]:
            dur = max(u.duration, 1e-6)
            obj = human_count(u.objects)
            if u.estimate and u.phase not in ("done",):
                obj += f"/{human_count(u.estimate)}"
            rows.append(
                [
                    Text(u.label),
                    Text(_state(u), style=STATE_STYLE.get(u.phase, "")),
                    obj,
                    human_bytes(u.bytes),
                    f"{u.objects / dur:,.0f}/s" if u.objects else "",
                ]
            )
        cols = [
            Col("resource"),
            Col("state", flex=True),
            Col("objects", "right"),
            Col("bytes", "right"),
            Col("rate", "right", optional=True),
        ]
        return Group(FitTable(cols, rows, reserve_lines=3), self._totals())

    def _totals(self) -> Text:
        from rich.text import Text

        done = sum(
            1 for u in self.units if u.phase not in ("waiting", "streaming", "listing", "retrying")
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


# --------------------------------------------------------------------------- summary


def summary(units: Sequence[Unit], title: str) -> RenderableType:
    """The table after a dump, fitted to the width it is drawn at:
    resources that hold objects or did not complete, one row each; empty
    complete ones, fallbacks and errors are explained once under it.

    `units` should report what was written (see dump.py): objects and bytes as
    in the output, status "interrupted" for what an interrupt cut off."""
    from rich.console import Group
    from rich.text import Text

    refused = [u for u in units if field_selector_refused(u)]  # one line, no rows
    shown = [
        u for u in units if (u.objects or u.status != "complete") and not field_selector_refused(u)
    ]
    hidden = len(units) - len(shown) - len(refused)
    any_retries = any(u.retries for u in shown)
    methods = {method_cell(u) for u in shown}
    same = methods.pop() if len(methods) == 1 else None  # then said once, below
    rows = []
    for u in shown:
        status = u.status or "incomplete"
        row: list[Text | str] = [
            Text(visible(u.label)),
            Text(status, style=STATE_STYLE.get(status, "")),
            *([] if same is not None else [method_cell(u)]),
            human_count(u.objects),
            human_bytes(u.bytes),
            f"{u.duration:.1f}s",
        ]
        if any_retries:
            row.append(str(u.retries) if u.retries else "")
        rows.append(row)
    cols = [
        Col("resource"),
        Col("status"),
        *([] if same is not None else [Col("method", flex=True)]),
        Col("objects", "right"),
        Col("bytes", "right"),
        Col("time", "right", optional=True),
    ]
    if any_retries:
        cols.append(Col("retries", "right"))
    parts: list[RenderableType] = [Text(title, style="bold")]
    if rows:  # no header-only table
        parts.append(FitTable(cols, rows))
    notes = []
    if same:
        notes.append(f"method: {same} for all of them")
    if hidden:
        notes.append(f"{hidden} more resources complete and empty")
    notes += fallback_notes(shown)
    notes += problem_lines([(u.label, u.status, u.error) for u in [*shown, *refused] if u.error])
    notes += unit_notes(units)
    parts += [Text(visible(n)) for n in notes]
    return Group(*parts)


def logfmt(value: object) -> str:
    s = str(value)
    if s and all(ch.isalnum() or ch in "-._/:~" for ch in s):
        return s
    return visible(json.dumps(s, ensure_ascii=False))


def summary_lines(units: Sequence[Unit], title: str) -> list[str]:
    """The summary for logs: every resource on one `key=value` line, exact
    numbers, nothing cut; fallback explanations once at the end."""
    out = [title]
    for u in units:
        fields: list[tuple[str, object]] = [
            ("resource", u.resource.name),
            ("namespace", u.namespace or ""),
            ("status", u.status or "incomplete"),
            ("method", u.method),
            ("objects", u.objects),
            ("bytes", u.bytes),
            ("time", f"{u.duration:.1f}s"),
        ]
        if u.retries:
            fields.append(("retries", u.retries))
        code = u.fallback
        if code:
            fields.append(("fallback", code))
        if u.error:  # a refused field selector: said once, below
            fields.append(
                ("error", FIELD_SELECTOR_REFUSED if field_selector_refused(u) else u.error)
            )
        if u.notes:
            fields.append(("notes", "; ".join(u.notes)))
        out.append(" ".join(f"{k}={logfmt(v)}" for k, v in fields if v != "" or k == "method"))
    out += fallback_notes(units)
    out += refused_notes(units)
    return out


def styled_line(line: str) -> Text:
    """A log line with its status value in the status colour: a console that
    colours (a terminal, FORCE_COLOR, --color always) shows it, others drop it."""
    from rich.text import Text

    t = Text(line)
    m = re.search(r"(?:^| )status=([a-z]+)", line)
    if m:
        t.stylize(STATE_STYLE.get(m.group(1), ""), m.start(1), m.end(1))
    return t


def drive(run: Run[Any], quiet: bool) -> ExitCode | None:
    """Consume a run's events, drawing progress. Ctrl-C and SIGTERM (turned into
    exceptions by main()) cancel the run and come back as their exit code; any
    other error cancels it and propagates."""
    from kstream.errors import Interrupted, Terminated

    try:
        with ProgressView(run.units, enabled=not quiet) as view:
            for ev in run.events():
                view.update(ev)
    except (KeyboardInterrupt, Interrupted):
        run.cancel()
        run.salvage()  # finished units reach the output; run.written says which
        return ExitCode.INTERRUPTED
    except Terminated:
        run.cancel()
        run.salvage()
        return ExitCode.TERMINATED
    except BaseException:
        run.cancel()
        run.close()
        raise
    return None


def run_dump(
    settings: DumpSettings, quiet: bool, debug: bool = False, partial_line: bool = True
) -> ExitCode:
    """The dump job (`kstream.dump`), driven with progress on stderr, then its
    summary; for `dump`, and for `diff --live` (quiet, and without the partial
    line: diff says what it could not compare itself)."""
    from kstream.cli.common import note, note_error
    from kstream.dump import DumpJob

    # warnings from planning (a namespace of -n that does not exist): with a
    # summary, said under it rather than above the progress display
    held: list[str] = []
    try:
        job = DumpJob(
            settings, note if quiet else held.append, estimate=not quiet and stderr_is_terminal()
        )
        try:
            interrupted = drive(job.run, quiet)
        except BaseException:
            job.abort()
            raise
        result = job.finish(interrupted)
        if result.manifest is not None:
            report_dump(result, quiet, debug, partial_line)
    finally:
        for w in held:
            note(w)
    # the outcome of a run cut short, so said with -q too (as errors are)
    if result.manifest is None:
        note_error("interrupted: the output on stdout is incomplete")
    elif interrupted is not None:
        note_error(
            f"interrupted: what was read so far is in {result.destination}, marked incomplete"
        )
    return result.exit_code


def quiet_outcome(units: list[Unit], bad: list[Unit], plan: Any) -> None:
    """With -q a partial dump (exit 3) says so in one error line, however many
    resources were not read (each is named without -q and in the manifest)."""
    quiet_partial(
        [(u.label, u.status or "incomplete", u.error or "") for u in bad],
        len(units),
        [(f.group, f.error) for f in plan.discovery.failures],
        "read",
    )


def quiet_partial(
    bad: list[tuple[str, str, str]],
    total: int | None,
    failures: list[tuple[str, str]],
    verb: str,
) -> None:
    """The one error line -q keeps for a partial result (exit 3): how many
    resources were not `verb` (by status, the first one's error), and the API
    groups whose discovery failed."""
    from collections import Counter

    from kstream.cli.common import note_error

    if not bad and not failures:
        return
    pieces = []
    if bad:
        kinds = Counter(status for _, status, _ in bad)
        label, _, error = bad[0]
        of = f" of {total}" if total is not None else ""
        pieces.append(
            f"{len(bad)}{of} resources not {verb} ("
            + ", ".join(f"{n} {status}" for status, n in kinds.items())
            + f"; {label}: {error})"
        )
    if failures:
        group, error = failures[0]
        pieces.append(f"discovery of {len(failures)} API group(s) failed ({group}: {error})")
    note_error("partial: " + "; ".join(pieces) + "; run without -q for each")


def report_dump(result: DumpResult, quiet: bool, debug: bool, partial_line: bool = True) -> None:
    """What a dump did, on stderr: warnings, the summary table, the totals."""
    from kstream.cli.common import note

    plan, units = result.plan, result.units
    bad = [u for u in units if u.status != "complete"]
    for f in plan.discovery.failures:
        note(f"warning: discovery of {f.group} failed, skipped: {f.error}")
    if debug:
        for u in units:
            if u.fallback_reason:
                note(f"debug: {u.label}: read with LIST: {u.fallback_reason}")
    if quiet and consoles.quiet:  # the user's -q: errors only, a partial dump in one line
        if partial_line:
            quiet_outcome(units, [u for u in bad if u.status != "interrupted"], plan)
        return
    if quiet:  # no summary (diff --live's dump): what was not read, as warnings
        for u in bad:
            if u.status == "interrupted" or field_selector_refused(u):  # said once
                continue
            note(f"warning: {u.label}: {u.status or 'incomplete'}: {u.error}")
        for line in refused_notes(bad):
            note(f"warning: {line}")
        return
    title = f"kstream dump → {result.destination}"
    if plain_layout():
        for line in summary_lines(units, title):
            consoles.err.print(styled_line(line), soft_wrap=True)
    else:
        consoles.err.print(summary(units, title))
    objs = sum(u.objects for u in units)
    note(
        f"{result.status}: {len(units) - len(bad)}/{len(units)} resources, {objs:,} objects"
        + (f", {len(bad)} not read" if bad else "")
    )
    if plan.selection.excluded_by_default:
        names = ", ".join(r.name for r in plan.selection.excluded_by_default)
        note(f"excluded by default: {names} (name them with -r to include)")
