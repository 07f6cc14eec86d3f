"""kstream log: the change history of objects in a journal, one line per event."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kstream.cli import common as c
from kstream.errors import StdoutClosed
from kstream.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.text import Text

    from kstream.journal.events import LogEntry

EXAMPLES = """
Examples:

\b
  kstream log journal/                                  # every change, oldest first
  kstream log journal/ -r deploy -n shop web            # one Deployment's history
  kstream log journal/ -r cm --since 5m                 # ConfigMap changes of the last 5 minutes
  kstream log journal/ --since 2026-11-29T14:00:00Z --until 2026-11-29T14:05:00Z -o ndjson

\b
-o ndjson: one record per event:
  {"time", "type": "ADDED|MODIFIED|DELETED", "group", "version", "resource", "kind",
   "namespace": STR|null, "name", "resourceVersion", "manager",
   "fields": [{"path": "spec.replicas", "old": 2, "new": 3}]}
"fields" (MODIFIED, and ADDED over a known earlier state) against the object's previous
state in the journal; absent when there is none. -o json: {"kind": "kstream-log",
"schemaVersion": 1, "journal", "since", "until", "events": [records]}.
Full description: docs/journal.md.
"""

SHORT_VALUE = 40  # a scalar value shown in text when its JSON is at most this long
MAX_FIELDS = 8  # fields named on a text line before "+N more"


@c.option_groups
def log(
    journal: Annotated[
        str,
        c.snapshot_argument(
            "JOURNAL",
            "The journal: a directory written by dump --follow, or s3://BUCKET/PREFIX/ holding one.",
        ),
    ],
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only objects with these names.",
            metavar="NAME",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME|DURATION",
            help="Only events after this instant (RFC 3339, or a duration before now: 5m, 1h).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="TIME|DURATION",
            help="Only events up to this instant (included).",
        ),
    ] = None,
    output: Annotated[
        c.Report,
        typer.Option("--output", "-o", help="text (one line per event), json or ndjson."),
    ] = c.Report.text,
    *,
    sel: c.Selection,
    ui: c.Ui,
) -> None:
    """The change history of matching objects in a journal: one line per change event
    (time, type, resource, namespace/name, who wrote it, which fields changed).

    Fields are compared with the object's previous state in the journal; the noise
    diff ignores (resourceVersion, managedFields, generation, ...) is left out,
    status is shown. -l and --field-selector (metadata.name, metadata.namespace)
    are checked on each event's object. A corrupted segment exits 6.
    """
    from kstream.journal.events import log as log_events
    from kstream.journal.events import window_bounds

    c.setup_consoles(ui)
    scope = sel.scope()
    lo, hi = window_bounds(since, until)
    entries = log_events(journal, scope, tuple(names or ()), lo, hi)
    n = 0
    try:
        out = c.consoles.out
        f = out.file
        if output is c.Report.json:
            head = {
                "kind": "kstream-log",
                "schemaVersion": 1,
                "journal": journal,
                "since": lo,
                "until": hi,
            }
            text = json.dumps(head, indent=2)
            f.write(text[:-2] + ',\n  "events": [')
            for e in entries:
                f.write(("," if n else "") + "\n    " + _dumps(e.to_json()))
                n += 1
            f.write("\n  ]\n}\n" if n else "]\n}\n")
        elif output is c.Report.ndjson:
            for e in entries:
                f.write(_dumps(e.to_json()) + "\n")
                n += 1
        else:
            for e in entries:
                out.print(line(e), soft_wrap=True)
                n += 1
        f.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None
    if n == 0 and not ui.quiet:
        c.note("no change events match")
    raise typer.Exit(int(ExitCode.OK))


def _dumps(v: Any) -> str:
    from kstream import deepjson
    from kstream.printable import json_text

    return json_text(deepjson.dumps(v, ensure_ascii=False, separators=(",", ":")))


_STYLE = {"ADDED": "green", "MODIFIED": "yellow", "DELETED": "red", "GAP": "red"}


def line(e: LogEntry) -> Text:
    from rich.text import Text

    from kstream.journal.events import resource_label
    from kstream.printable import visible

    t = Text()
    t.append(visible(e.time))
    t.append("  ")
    t.append(f"{e.type:<8}", style=_STYLE.get(e.type, ""))
    t.append(visible(f"  {resource_label(e.resource)}  "))
    if e.gap is not None:
        t.append(visible(f"-n {e.namespace}  ") if e.namespace else "", style="bold")
        t.append(describe(e), style="red")
        return t
    t.append(visible(f"{e.namespace}/{e.name}" if e.namespace else e.name), style="bold")
    t.append(visible(f"  by {e.manager}"), style="dim")
    t.append("  ")
    t.append(visible(describe(e)))
    return t


def describe(e: LogEntry) -> str:
    """What the event did, in a few words: the fields it changed."""
    from kstream.diff import MISSING

    if e.gap is not None:
        return (
            f"(gap since {e.gap['since']}: {e.gap['why']}; changes then may be missing "
            "or shown later)"
        )
    if e.type == "DELETED":
        return "(deleted)"
    if e.fields is None:
        return "(created)" if e.type == "ADDED" else "(no earlier state in the journal)"
    if not e.fields:
        return "(no field changed but ignored ones: metadata only)"
    parts = []
    for fd in e.fields[:MAX_FIELDS]:
        if fd.old is MISSING:
            parts.append(f"+{fd.path}")
        elif fd.new is MISSING:
            parts.append(f"-{fd.path}")
        else:
            a, b = _short(fd.old), _short(fd.new)
            parts.append(f"{fd.path}: {a} → {b}" if a is not None and b is not None else fd.path)
    more = len(e.fields) - MAX_FIELDS
    return ", ".join(parts) + (f", +{more} more" if more > 0 else "")


def _short(v: Any) -> str | None:
    if isinstance(v, (dict, list)):
        return None
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= SHORT_VALUE else None
