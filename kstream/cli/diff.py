"""kstream diff: what changed between two snapshots, or a snapshot and the cluster."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kstream import deepjson
from kstream.cli import common as c
from kstream.errors import UsageError
from kstream.exitcodes import ExitCode
from kstream.printable import json_text, visible

if TYPE_CHECKING:
    from rich.text import Text

    from kstream.cluster.plan import LiveOptions
    from kstream.diff import Settings
    from kstream.store.snapshot import Snapshot

EXAMPLES_ONLY = """
Examples:

\b
  kstream diff old.ndjson.zst new.ndjson.zst          # what changed, field by field
  kstream diff old.ndjson.zst new.ndjson.zst --stat   # counts per resource only
  kstream diff snap.ndjson.zst --live -n prod         # the snapshot against the cluster now
  kstream diff --live --context staging --context prod  # drift between two live clusters
  kstream diff a/ b/ -o ndjson | jq 'select(.change=="modified") | .fields[].path'
  kstream diff a.ndjson b.ndjson --ignore 'metadata.labels["pod-template-hash"]' --ignore 'spec.*.image'
  kstream diff --explain                              # which fields are ignored, and why
"""

SCHEMA_HELP = """
\b
-o ndjson: one record per changed object:
  {"change": "added|removed|modified|recreated", "group": "apps", "version": "v1",
   "resource": "deployments", "kind": "Deployment", "namespace": "prod" | null,
   "name": "web", "fields": [{"path": "spec.replicas", "old": 2, "new": 3}]}
"fields" for modified and recreated ("old" absent: the field was added; "new" absent:
removed); "uid": {"old", "new"} only for recreated. "resource" is "" when only plain NDJSON
snapshots were compared (they do not know it).
-o json: {"summary": {RESOURCE: {"added", "removed", "modified", "recreated",
"unchanged"}}, "total": {...}, "skipped": [{"resource", "reason"}], "apiVersionOnly": N,
"notes": [...], "changes": [records]}.
Full description: docs/diff.md.
"""
EXAMPLES = EXAMPLES_ONLY + SCHEMA_HELP

MAX_VALUE = 300  # characters of a value shown in text output
CONTEXT = 60  # characters shown before the first difference of two long values
MAX_DIFF_LINES = 60  # lines of a multi-line string's diff shown in text output


@c.option_groups
def diff(
    old: Annotated[
        str | None,
        c.snapshot_argument(
            "OLD",
            "The older snapshot: archive (.ndjson.zst), NDJSON file (plain or compressed), directory, JSON List, or - for any of them on stdin; s3://BUCKET/KEY for one in object storage.",
        ),
    ] = None,
    new: Annotated[
        str | None,
        c.snapshot_argument(
            "NEW",
            "The newer snapshot (omit with --live / --live-old).",
        ),
    ] = None,
    live: Annotated[
        bool,
        c.cluster_option(
            "--live",
            help="Compare the snapshot (OLD) with the live cluster (NEW).",
        ),
    ] = False,
    live_old: Annotated[
        bool,
        c.cluster_option(
            "--live-old",
            help="The live cluster is OLD and the snapshot NEW.",
        ),
    ] = False,
    output: Annotated[
        c.Report,
        c.output_option(
            "--output",
            "-o",
            metavar="text|json|ndjson",
            help="text (coloured, on stdout), json or ndjson (schema below).",
        ),
    ] = c.Report.text,
    stat: Annotated[
        bool,
        c.output_option(
            "--stat",
            help="Only the summary per resource (with -o json: no changes list).",
        ),
    ] = False,
    ignore: Annotated[
        list[str] | None,
        c.output_option(
            "--ignore",
            help='Also ignore this field path (repeatable; * matches any key or index), e.g. spec.*.image or metadata.labels["a/b"].',
            metavar="PATH",
        ),
    ] = None,
    include_status: Annotated[
        bool,
        c.output_option(
            "--include-status",
            help="Compare status too (ignored by default).",
        ),
    ] = False,
    no_default_ignores: Annotated[
        bool,
        c.output_option(
            "--no-default-ignores",
            help="Compare every field but status (see --explain), plus --ignore.",
        ),
    ] = False,
    explain: Annotated[
        bool,
        c.output_option(
            "--explain",
            help="List the ignored field paths with the reason for each, and exit.",
        ),
    ] = False,
    secret_key_file: Annotated[
        Path | None,
        c.key_file_option(
            "The key a snapshot's Secrets were HMAC-redacted with: needed by --live for such a snapshot, and to compare it with raw values."
        ),
    ] = None,
    show_api_version_changes: Annotated[
        bool,
        c.output_option(
            "--show-api-version-changes",
            help="Report objects that differ only in apiVersion (same group and kind, e.g. after a CRD's preferred version changed) as modified; by default they count as unchanged.",
        ),
    ] = False,
    sort_buffer: Annotated[
        int,
        typer.Option(
            "--sort-buffer", min=1, hidden=True, help="MiB of lines sorted in memory at a time."
        ),
    ] = 64,
    resource: c.ResourceOpt = None,
    exclude: c.ExcludeOpt = None,
    namespace: c.NamespaceOpt = None,
    selector: Annotated[
        str,
        c.select_option(
            "--selector",
            "-l",
            metavar="SELECTOR",
            help="Label selector (a=b,c!=d,e in (x,y),f,!g), applied to both sides.",
        ),
    ] = "",
    *,
    cluster: c.Cluster,
    tuning: c.Tuning,
    ui: c.Ui,
) -> None:
    """Compare two snapshots written by dump (or one and the live cluster).

    Objects are matched by API group, kind, namespace and name: only in OLD is
    removed, only in NEW added, another metadata.uid under the same name
    recreated, different fields modified. Server-maintained noise
    (resourceVersion, managedFields, status, ...) is ignored: see --explain.
    Secrets compare by their redacted digests; raw values are never shown.
    The --resource/--exclude/-n/-l selection applies to both sides; when the
    two dumps selected differently (see their manifests), only what both
    selected is compared, and a note says what was left out. A change of
    apiVersion alone (a CRD's new preferred version) is not a change unless
    --show-api-version-changes. Memory stays bounded whatever the snapshots' size.

    Exit status as diff(1): 0 no differences, 1 differences, more than 1 trouble
    (3: some resources were not compared because a snapshot lacks them; 6: a
    snapshot is truncated, corrupted or incomplete).
    """
    from kstream.diff import Settings, ignore_list

    c.setup_consoles(ui)
    ignores = ignore_list(ignore or [], include_status, not no_default_ignores)
    if explain:
        _explain(ignores)
        raise typer.Exit(0)
    if live and live_old:
        raise UsageError("--live and --live-old cannot be used together")
    two = _two_contexts(cluster.contexts, live, live_old, old, new)
    is_live = (live or live_old) and two is None
    if two is not None:
        pass
    elif is_live:
        if old is None:
            raise UsageError(
                "--live needs the snapshot to compare with: kstream diff SNAPSHOT --live"
            )
        if new is not None:
            raise UsageError("with --live give one snapshot, not two")
    elif old is None or new is None:
        raise UsageError("give two snapshots (OLD NEW), or one with --live")
    elif old == "-" and new == "-":
        raise UsageError("only one side can be read from stdin")
    # the selectors are checked here, before reading anything: exit 2, one line
    scope = c.scope(resource, exclude, namespace, selector)
    key = c.read_key(secret_key_file)
    settings = Settings(
        ignore=tuple(ignores),
        scope=scope,
        secret_key=key,
        sort_buffer=sort_buffer * 1024 * 1024,
        show_api_version_changes=show_api_version_changes,
    )
    live_dir: str | None = None
    try:
        if two is not None:
            live_dir = tempfile.mkdtemp(prefix="kstream-diff-live-")
            live_opts = tuning.live(cluster, None)
            settings = dataclasses.replace(settings, same_cluster=False)
            a, b = _dump_two(two, live_dir, settings, live_opts)
            code = run_diff(
                a,
                b,
                settings,
                output,
                stat,
                ui.quiet,
                names=(f"context {two[0]}", f"context {two[1]}"),
            )
            raise typer.Exit(int(code))
        if is_live:
            assert old is not None
            live_dir = tempfile.mkdtemp(prefix="kstream-diff-live-")
            live_opts = tuning.live(cluster, cluster.first_context)
            snap, live_path, settings = _dump_live(
                old, live_dir, settings, live_opts, ui.quiet, ui.debug
            )
            sides: tuple[str | Snapshot, str | Snapshot] = (
                (snap, live_path) if live else (live_path, snap)
            )
        else:
            assert old is not None and new is not None
            sides = (old, new)
        code = run_diff(
            *sides, settings, output, stat, ui.quiet, "new" if live else "old" if live_old else ""
        )
    finally:
        if live_dir is not None:
            shutil.rmtree(live_dir, ignore_errors=True)
    raise typer.Exit(int(code))


def _explain(ignores: list[Any]) -> None:
    from rich.text import Text

    out = c.consoles.out
    out.print(Text("Field paths ignored when comparing objects (and below them):", style="bold"))
    for i in ignores:
        line = Text(i.text, style="bold")
        if i.kind:
            line.append(f"  ({i.kind[1]} only)")
        out.print(line, soft_wrap=True)
        out.print(Text("    " + i.reason, style="dim"), soft_wrap=True)


# --------------------------------------------------------------------------- live


def _two_contexts(
    contexts: list[str], live: bool, live_old: bool, old: str | None, new: str | None
) -> tuple[str, str] | None:
    """`--live --context A --context B`: the two contexts (A old, B new), else None.
    Globs are refused: which cluster is OLD and which NEW must be said."""
    if len(contexts) == 1 and (live or live_old) and any(ch in contexts[0] for ch in "*?["):
        raise UsageError(
            f"diff --live takes exact context names, not a glob ({contexts[0]}): "
            "--live --context OLD --context NEW compares two clusters, "
            "SNAPSHOT --live --context NAME a snapshot with one"
        )
    if len(contexts) <= 1:
        return None
    if len(contexts) != 2 or len(set(contexts)) != 2:
        raise UsageError("diff compares two live clusters: --live --context OLD --context NEW")
    if any(ch in "".join(contexts) for ch in "*?["):
        raise UsageError("diff --live takes two context names, not globs")
    if not live or live_old or old is not None or new is not None:
        raise UsageError(
            "two contexts are compared live, without a snapshot: "
            "kstream diff --live --context OLD --context NEW"
        )
    return contexts[0], contexts[1]


def _dump_two(
    contexts: tuple[str, str], tmpdir: str, settings: Settings, live: LiveOptions
) -> tuple[str, str]:
    """Dump both contexts at the same time, selected alike, into temporary
    archives; exits with the worst code when either cannot be read."""
    from kstream.cli.fleet import note_problems, note_warnings, units_not_read
    from kstream.dump import DumpResult, DumpSettings
    from kstream.fleet import Fleet, Stop, Target, dump_one, select_targets, worst

    targets = select_targets(live.kubeconfig, list(contexts), False)
    paths_ = {t.context: os.path.join(tmpdir, f"{i}.ndjson.zst") for i, t in enumerate(targets)}

    def work(t: Target, stop: Stop, warn: Callable[[str], None]) -> tuple[DumpResult, ExitCode]:
        dump = DumpSettings(
            output=paths_[t.context],
            fmt="zst",
            scope=settings.scope,
            live=dataclasses.replace(live, context=t.context),
            level=1,
            secrets="redact",
            secret_key=settings.secret_key,
        )
        r = dump_one(dump, stop, warn)
        return r, r.exit_code

    outcomes = Fleet(targets, work, 2).run()
    for o in outcomes:
        note_warnings(o)
        note_problems(o, units_not_read)
    code = worst([o.code for o in outcomes])
    if code not in (ExitCode.OK, ExitCode.PARTIAL):
        raise typer.Exit(int(code))
    return paths_[contexts[0]], paths_[contexts[1]]


def _dump_live(
    snapshot: str,
    tmpdir: str,
    settings: Settings,
    live: LiveOptions,
    quiet: bool,
    debug: bool = False,
) -> tuple[Snapshot, str, Settings]:
    """Dump the cluster like the snapshot was dumped, into a temporary archive;
    the settings with the selection the snapshot's dump made, where the user
    made none. With debug, why a resource was read with LIST (the server's
    words) goes to stderr, as for dump --debug."""
    from kstream.cli.render import run_dump
    from kstream.diff import dump_like
    from kstream.sources import open_source

    snap = open_source(snapshot)
    out = os.path.join(tmpdir, "live.ndjson.zst")
    dump, new, inherited = dump_like(snap, settings, live, out)
    if inherited and not quiet:
        c.note(f"reading the cluster as {snapshot} was dumped: {'; '.join(inherited)}")
    held = () if snap.manifest or settings.scope.namespaces else dump.scope.namespaces
    if held and not quiet:
        c.note(
            f"{snapshot} has no manifest and all its objects are in namespace"
            f"{'s' if len(held) > 1 else ''} {','.join(held)}: reading the cluster there "
            "only (-n chooses)"
        )
    code = run_dump(dump, quiet=True, debug=debug, partial_line=False)
    if code not in (ExitCode.OK, ExitCode.PARTIAL):
        raise typer.Exit(int(code))
    return snap, out, new


# --------------------------------------------------------------------------- diff


def run_diff(
    old: str | Snapshot,
    new: str | Snapshot,
    settings: Settings,
    output: c.Report,
    stat: bool,
    quiet: bool,
    live: str = "",
    names: tuple[str, str] | None = None,
) -> ExitCode:
    from rich.text import Text

    from kstream.cluster.stream import FIELD_SELECTOR_REFUSED, refused_field_selector
    from kstream.diff import Comparison
    from kstream.sources import open_source

    a = open_source(old) if isinstance(old, str) else old  # --live: already open
    b = open_source(new) if isinstance(new, str) else new
    spinner: AbstractContextManager[Any] = nullcontext()
    if not quiet and c.stderr_is_terminal():
        spinner = c.consoles.err.status("reading the snapshots")
    with Comparison(a, b, settings, live=live) as cmp:
        if names is not None:  # two live clusters: say which is which
            cmp.old.where, cmp.new.where = names
        with spinner as status:
            if status is not None:
                cmp.progress = lambda msg: status.update(Text(msg))
            cmp.prepare()
        for w in cmp.warnings:
            c.note(f"warning: {w}")
        refused = [name for name, why in cmp.skipped if f"{FIELD_SELECTOR_REFUSED}:" in why]
        for name, why in cmp.skipped:
            if name not in refused:  # those: one line, below
                c.note(f"warning: {name} not compared: {why}")
        if refused:
            c.note(f"warning: {refused_field_selector(sorted(refused), 'not compared')}")
        if cmp.selection_note:
            c.note(f"note: {cmp.selection_note}")
        changes = cmp.changes()
        if output is c.Report.ndjson:
            _write_ndjson(changes, stat)
        elif output is c.Report.json:
            _write_json(changes, cmp, stat)
        else:
            _write_text(changes, cmp, stat, quiet)
        total = cmp.total
        hidden = _api_version_note(cmp)
        if hidden and output is not c.Report.text and not quiet:
            c.note(f"note: {hidden}")
    if cmp.skipped:
        return ExitCode.PARTIAL
    return ExitCode.DIFFERENCES if total.changed else ExitCode.OK


def _dumps(v: Any) -> str:
    # a lone surrogate as its escape: inside a JSON string, the same string
    return json_text(deepjson.dumps(v, ensure_ascii=False, separators=(",", ":")))


def _write_ndjson(changes: Iterator[Any], stat: bool) -> None:
    out = sys.stdout
    for ch in changes:
        if not stat:
            out.write(_dumps(ch.to_json()) + "\n")


def _write_json(changes: Iterator[Any], cmp: Any, stat: bool) -> None:
    # the summary comes first but is known last: spool the records meanwhile
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for ch in changes:
            if not stat:
                spool.write(_dumps(ch.to_json()) + "\n")
        head = {
            "summary": {name: cnt.to_json() for name, cnt in cmp.summary.items()},
            "total": cmp.total.to_json(),
            "skipped": [{"resource": r, "reason": why} for r, why in cmp.skipped],
            "apiVersionOnly": sum(cmp.api_version_only.values()),
            "notes": [n for n in (cmp.selection_note, _api_version_note(cmp)) if n],
        }
        out = sys.stdout
        out.write(_dumps(head)[:-1] + ',"changes":[')
        spool.seek(0)
        for i, line in enumerate(spool):
            out.write(("," if i else "") + line.rstrip("\n"))
        out.write("]}\n")


STYLE = {"added": "green", "removed": "red", "modified": "yellow", "recreated": "magenta"}
SIGN = {"added": "+", "removed": "-", "modified": "~", "recreated": "±"}


def _api_version_note(cmp: Any) -> str:
    n = sum(cmp.api_version_only.values())
    if not n:
        return ""
    return (
        f"{n} object{'s differ' if n != 1 else ' differs'} only in apiVersion, hidden "
        "(--show-api-version-changes shows them)"
    )


def _value(v: Any) -> str:
    s = _dumps(v)
    if len(s) > MAX_VALUE:
        s = s[:MAX_VALUE] + f"… ({len(s):,} chars)"
    return s


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))  # a[:lo] == b[:lo]; binary search, C-speed compares
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _where_they_differ(a: str, b: str) -> tuple[int, str, str]:
    """Offset of the first difference of two long strings, and an excerpt of
    each around it (JSON-quoted, … where cut)."""
    start = _common_prefix(a, b)
    tail = _common_prefix(a[start:][::-1], b[start:][::-1])

    def excerpt(s: str) -> str:
        lo = max(0, start - CONTEXT)
        hi = min(len(s), max(len(s) - tail, start) + CONTEXT, lo + MAX_VALUE)
        return ("…" if lo else "") + _dumps(s[lo:hi]) + ("…" if hi < len(s) else "")

    return start, excerpt(a), excerpt(b)


def _long_change(
    path: str, old: Any, new: Any, old_json: str, new_json: str, pr: Callable[[Text], None]
) -> None:
    """A change between values too long to show whole (`*_json`: their encoding):
    where they first differ."""
    from rich.text import Text

    both_str = isinstance(old, str) and isinstance(new, str)
    a, b = (old, new) if both_str else (old_json, new_json)
    at, ea, eb = _where_they_differ(a, b)
    what = "chars" if both_str else "chars of JSON"
    head = Text("    " + path + ": ", style="bold")
    head.append(f"{len(a):,} → {len(b):,} {what}, first difference at offset {at:,}", style="dim")
    pr(head)
    pr(Text("      - " + ea, style="red"))
    pr(Text("      + " + eb, style="green"))


def _write_text(changes: Iterator[Any], cmp: Any, stat: bool, quiet: bool) -> None:
    from rich.text import Text

    from kstream.diff import MISSING

    out = c.consoles.out
    pr: Callable[[Text], None] = lambda t: out.print(t, soft_wrap=True)  # noqa: E731
    for ch in changes:
        if stat:
            continue
        head = Text(f"{SIGN[ch.change]} ", style=STYLE[ch.change] + " bold")
        head.append(visible(ch.resource_name), style="bold")
        head.append(visible(" " + (f"{ch.namespace}/" if ch.namespace else "") + ch.name))
        head.append(f"  {ch.change}", style=STYLE[ch.change])
        if ch.change == "recreated":
            head.append(visible(f" (uid {ch.old_uid} → {ch.new_uid})"), style="dim")
        pr(head)
        for f in ch.fields:
            path = visible(f.path)
            line = Text("    ")
            if f.old is MISSING:
                line.append("+ " + path + ": ", style="green")
                line.append(_value(f.new), style="green")
            elif f.new is MISSING:
                line.append("- " + path + ": ", style="red")
                line.append(_value(f.old), style="red")
            elif (
                isinstance(f.old, str)
                and isinstance(f.new, str)
                and ("\n" in f.old or "\n" in f.new)
            ):
                line.append(path + ":", style="bold")
                pr(line)
                _text_diff(f.old, f.new, pr)
                continue
            else:
                a, b = _dumps(f.old), _dumps(f.new)
                if len(a) > MAX_VALUE or len(b) > MAX_VALUE:
                    _long_change(path, f.old, f.new, a, b, pr)
                    continue
                line.append(path + ": ", style="bold")
                line.append(a, style="red")
                line.append(" → ")
                line.append(b, style="green")
            pr(line)
    rows = [(name, cnt) for name, cnt in cmp.summary.items() if cnt.changed]
    total = cmp.total
    if rows:
        if not stat:
            out.print()
        from rich.table import Table

        t = Table(box=None, pad_edge=False, header_style="bold")
        t.add_column("resource")
        for col in ("added", "removed", "modified", "recreated", "unchanged"):
            t.add_column(col, justify="right")
        for name, cnt in rows:
            t.add_row(
                Text(visible(name)),
                *(
                    Text(str(getattr(cnt, k)), style=STYLE[k] if getattr(cnt, k) else "")
                    for k in ("added", "removed", "modified", "recreated")
                ),
                Text(str(cnt.unchanged), style="dim"),
            )
        out.print(t)
    if not quiet or rows:
        msg = (
            f"{total.added} added, {total.removed} removed, {total.modified} modified, "
            f"{total.recreated} recreated, {total.unchanged} unchanged in {len(cmp.summary)} resources"
        )
        hidden = _api_version_note(cmp)
        if rows:
            out.print(Text(msg))
            if hidden:
                out.print(Text(hidden))
        else:
            c.note(f"no differences ({msg})")
            if hidden:
                c.note(hidden)


def _text_diff(old: str, new: str, pr: Callable[[Text], None]) -> None:
    import difflib

    from rich.text import Text

    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1))[2:]
    # a long line cut at MAX_VALUE could hide its change: show a removed and an
    # added line paired in a hunk around their first difference instead
    shown = list(lines)
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].startswith("-"):
            j += 1
        k = j
        while k < len(lines) and lines[k].startswith("+"):
            k += 1
        for m in range(min(j - i, k - j)):
            a, b = lines[i + m][1:], lines[j + m][1:]
            if len(a) > MAX_VALUE or len(b) > MAX_VALUE:
                at, ea, eb = _where_they_differ(a, b)
                shown[i + m] = f"-{ea}  (column {at:,})"
                shown[j + m] = f"+{eb}  (column {at:,})"
        i = max(k, i + 1)
    for i, ln in enumerate(shown):
        if i >= MAX_DIFF_LINES:
            pr(Text(f"      … {len(shown) - i} more lines", style="dim"))
            return
        style = (
            "green"
            if ln.startswith("+")
            else "red"
            if ln.startswith("-")
            else "cyan"
            if ln.startswith("@@")
            else "dim"
        )
        if len(ln) > MAX_VALUE and ln == lines[i]:
            ln = ln[:MAX_VALUE] + f"… ({len(ln) - 1:,} chars)"
        pr(Text("      " + visible(ln), style=style))
