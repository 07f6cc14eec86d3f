"""kstream dump: copy the cluster's objects out, one watch-list stream per resource."""

from __future__ import annotations

import datetime as dt
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from kstream import __version__, paths
from kstream.cli import common as c
from kstream.errors import UsageError
from kstream.exitcodes import ExitCode


class Format(str, Enum):
    auto = "auto"
    ndjson = "ndjson"
    zst = "zst"
    dir = "dir"


class Secrets(str, Enum):
    redact = "redact"
    include = "include"
    exclude = "exclude"


EXAMPLES = """
Examples:

\b
  kstream dump -o snap.ndjson.zst            # everything, as a zstd archive
  kstream dump -o - -r configmaps,secrets | jq .metadata.name
  kstream dump -o snapdir/ -n prod -l app=web --clean
"""


def dump(
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write: FILE.ndjson (or .jsonl), FILE.ndjson.zst (archive; or .zst, .zstd), DIR/ (one file per resource), or - for stdout. Other names are refused: a name without an extension needs the slash of DIR/ (or --format).",
            metavar="PATH",
            rich_help_panel=c.HELP_OUTPUT,
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="Output format; auto goes by the name.",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = Format.auto,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing output file, or a directory holding a kstream snapshot (never a directory with anything else in it), once the new dump is complete.",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = False,
    secrets: Annotated[
        Secrets,
        typer.Option(
            "--secrets",
            help="Secret values: redact (replace each by its sha256 digest, also inside last-applied-configuration), include as they are, or exclude Secrets.",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = Secrets.redact,
    secret_key_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-key-file",
            help="Key file: redact with HMAC-SHA256 under this key instead of plain sha256 (resists guessing short values). Same key, comparable digests.",
            metavar="FILE",
            rich_help_panel=c.HELP_OUTPUT,
            show_default=False,
        ),
    ] = None,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help="Drop metadata.managedFields and the last-applied-configuration annotation.",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = False,
    strip: Annotated[
        list[str] | None,
        typer.Option(
            "--strip",
            help='Drop a field path from every object (repeatable), e.g. status or metadata.annotations["x/y"].',
            metavar="PATH",
            rich_help_panel=c.HELP_OUTPUT,
            show_default=False,
        ),
    ] = None,
    level: Annotated[
        int,
        typer.Option(
            "--level",
            min=1,
            max=22,
            metavar="1-22",
            help="zstd compression level for archives.",
            rich_help_panel=c.HELP_OUTPUT,
        ),
    ] = 3,
    resource: c.ResourceOpt = None,
    exclude: c.ExcludeOpt = None,
    namespace: c.NamespaceOpt = None,
    all_namespaces: c.AllNamespacesOpt = False,
    selector: c.SelectorOpt = "",
    field_selector: c.FieldSelectorOpt = "",
    kubeconfig: c.KubeconfigOpt = None,
    context: c.ContextOpt = None,
    method: c.MethodOpt = c.Method.auto,
    concurrency: c.ConcurrencyOpt = 4,
    timeout: c.TimeoutOpt = 60.0,
    retries: c.RetriesOpt = 8,
    quiet: c.QuietOpt = False,
    debug: c.DebugOpt = False,
    color: c.ColorOpt = c.Color.auto,
) -> None:
    """Copy every object out of the cluster, streaming, into NDJSON or a zstd archive.

    One watch-list stream per resource (LIST fallback where the server refuses
    it); each object is written as the bytes the server sent, as it arrives.
    Secret values are redacted by default.
    """
    c.setup_consoles(color)
    if namespace and all_namespaces:
        raise UsageError("--namespace and --all-namespaces cannot be used together")
    if output is None:
        if sys.stdout.isatty():
            raise UsageError(
                "say where to write: -o snap.ndjson.zst, -o snap.ndjson, -o DIR/, or -o - for stdout"
            )
        output = "-"
    from kstream.archive import check_output, output_format

    f = output_format(output, fmt.value)
    if output == "-" and f != "ndjson":
        raise UsageError(f"-o - writes NDJSON; --format {f} needs a file or directory")
    try:
        strip_paths = tuple(paths.parse_list(strip or []))
    except ValueError as e:
        raise UsageError(f"--strip: {e}") from None
    if clean:
        from kstream.transform import CLEAN_PATHS

        strip_paths += tuple(paths.parse(p) for p in CLEAN_PATHS)
    key: bytes | None = None
    if secret_key_file is not None:
        try:
            key = secret_key_file.read_bytes().strip()
        except OSError as e:
            raise UsageError(f"--secret-key-file: {e.strerror}: {secret_key_file}") from None
        if not key:
            raise UsageError(f"--secret-key-file: {secret_key_file} is empty")
    check_output(output, f, force)  # before connecting: a bad name costs no cluster work
    code = run_dump(
        output=output,
        fmt=f,
        force=force,
        level=level,
        secrets=secrets.value,
        secret_key=key,
        strip=strip_paths,
        target=c.Target(
            c.split(resource), c.split(exclude), c.split(namespace), selector, field_selector
        ),
        kubeconfig=kubeconfig,
        context=context,
        method=method.value,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        quiet=quiet,
        debug=debug,
    )
    raise typer.Exit(int(code))


def run_dump(
    *,
    output: str,
    fmt: str,
    force: bool,
    level: int,
    secrets: str,
    secret_key: bytes | None,
    strip: tuple[paths.Path, ...],
    target: c.Target,
    kubeconfig: str | None,
    context: str | None,
    method: str,
    concurrency: int,
    timeout: float,
    retries: int,
    quiet: bool,
    debug: bool = False,
) -> ExitCode:
    from kstream.archive import Entry, Spool, open_writer, unit_file_name
    from kstream.cli.render import drive
    from kstream.runner import Run
    from kstream.stream import Unit
    from kstream.transform import TransformOptions, make_transform

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    plan, reader = c.open_live(
        target,
        kubeconfig,
        context,
        method,
        concurrency,
        timeout,
        retries,
        skip_secrets=secrets == "exclude",
    )
    from kstream.completion import save_discovery_cache

    save_discovery_cache(plan.server, plan.discovery.resources)  # for shell completion
    options: dict[str, Any] = {
        "resources": target.resources,
        "exclude": target.exclude,
        "namespaces": target.namespaces,
        "labelSelector": target.selector,
        "fieldSelector": target.field_selector,
        "secrets": secrets,
        "secretDigest": "hmac-sha256" if secret_key else "sha256",
        "strip": [paths.render(p) for p in strip],
        "method": method,
    }
    header = {"created": started.isoformat(), "tool": f"kstream {__version__}"}
    writer = open_writer(output, fmt, force, level, header)
    topts = TransformOptions(secrets=secrets, secret_key=secret_key, strip=strip)

    def make_sink(u: Unit) -> Spool:
        name = unit_file_name(
            u.resource.group, u.resource.version, u.resource.resource, u.namespace
        )
        return writer.new_spool(name, make_transform(u.resource, topts))

    def entry(u: Unit, sink: Spool | None) -> Entry:
        r = u.resource
        return Entry(
            group=r.group,
            version=r.version,
            resource=r.resource,
            kind=r.kind,
            namespaced=r.namespaced,
            namespace=u.namespace,
            status=u.status or "incomplete",
            method=u.method,
            resourceVersion=u.resource_version,
            objects=sink.objects if sink else 0,
            bytes=sink.size if sink else 0,
            duration=round(u.duration, 3),
            retries=u.retries,
            error=u.error or None,
            fallback=u.fallback_reason or None,
            fallbackCode=u.fallback or None,
            sha256=sink.sha.hexdigest() if sink else "",
        )

    written: dict[int, Entry] = {}  # what reached the output, by unit index

    def deliver(u: Unit, sink: Spool) -> None:
        e = entry(u, sink)
        writer.append(e, sink)
        written[u.index] = e

    run = Run(
        reader,
        plan.units,
        make_sink,
        deliver,
        concurrency,
        estimate=not quiet and c.stderr_is_terminal(),
    )
    try:
        interrupted = drive(run, quiet)
    except BaseException:
        writer.abort()
        raise
    if interrupted is not None and output == "-":
        writer.abort()
        c.note("interrupted: the output on stdout is incomplete")
        return interrupted
    # the summary and the manifest say what the output holds: a unit an
    # interrupt cut off is not in it (its objects so far are dropped, like a
    # cut stream's), whatever it had read
    shown = [_as_written(u, written.get(u.index), interrupted, run.at_cancel) for u in plan.units]
    missing = [u for u in shown if u.index not in written]
    status = "complete"
    if interrupted is not None:
        status = "interrupted"
    elif any(u.status != "complete" for u in plan.units) or plan.discovery.failures:
        status = "partial"
    manifest = {
        "format": "kstream-archive",
        "version": 1,
        "tool": f"kstream {__version__}",
        "status": status,
        "server": {"url": plan.server, "version": plan.server_version},
        "context": plan.context,
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
        "duration": round(time.monotonic() - t0, 3),
        "options": options,
        "excludedByDefault": [r.name for r in plan.selection.excluded_by_default],
        # left out because they cannot be watched (read only when named with -r)
        "notWatchable": [r.name for r in plan.selection.not_watchable],
        "discoveryFailures": [
            {"groupVersion": f.group, "error": f.error} for f in plan.discovery.failures
        ],
        "notRead": [entry(u, None).to_json() for u in missing],
    }
    try:
        where = writer.finish(manifest, interrupted=interrupted is not None)
    except BaseException:
        writer.abort()
        raise
    _report(plan, shown, where, status, quiet, debug)
    if interrupted is not None:
        c.note(f"interrupted: what was read so far is in {where}, marked incomplete")
        return interrupted
    return ExitCode.OK if status == "complete" else ExitCode.PARTIAL


def _as_written(u: Any, e: Any, interrupted: Any, at_cancel: dict[int, tuple[int, int]]) -> Any:
    """A copy of a unit for the summary and the manifest, with the objects and
    bytes the output holds for it; one that an interrupt cut off is
    "interrupted", with what it had read (when the run was stopped) in its error."""
    from dataclasses import replace

    if e is not None:
        return replace(u, objects=e.objects, bytes=e.bytes, status=e.status)
    status, error, retries = u.status or "incomplete", u.error, u.retries
    if interrupted is not None and u.status in ("", "complete"):
        status = "interrupted"
        read, retries = at_cancel.get(u.index, (u.objects, u.retries))
        if u.status == "complete":
            error = f"read ({read:,} objects) but not written before the interrupt"
        elif u.started:
            error = f"interrupted after reading {read:,} objects; none written"
        else:
            error = "interrupted before it started"
    return replace(u, objects=0, bytes=0, status=status, error=error, retries=retries)


def _report(plan: Any, units: Any, where: str, status: str, quiet: bool, debug: bool) -> None:
    from kstream.cli.render import plain_layout, summary, summary_lines

    bad = [u for u in units if u.status != "complete"]
    for f in plan.discovery.failures:
        c.note(f"warning: discovery of {f.group} failed, skipped: {f.error}")
    if debug:
        for u in units:
            if u.fallback_reason:
                c.note(f"debug: {u.label}: read with LIST: {u.fallback_reason}")
    if quiet:
        for u in bad:
            if u.status == "interrupted":  # the closing note says so, once
                continue
            c.note(f"warning: {u.label}: {u.status or 'incomplete'}: {u.error}")
        return
    title = f"kstream dump → {where}"
    if plain_layout():
        for line in summary_lines(units, title):
            c.note(line)
    else:
        c.consoles.err.print(summary(units, title))
    objs = sum(u.objects for u in units)
    c.note(
        f"{status}: {len(units) - len(bad)}/{len(units)} resources, {objs:,} objects"
        + (f", {len(bad)} not read" if bad else "")
    )
    if plan.selection.excluded_by_default:
        names = ", ".join(r.name for r in plan.selection.excluded_by_default)
        c.note(f"excluded by default: {names} (name them with -r to include)")
