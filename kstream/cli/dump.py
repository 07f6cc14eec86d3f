"""kstream dump: copy the cluster's objects out, one watch-list stream per resource."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kstream import paths
from kstream.cli import common as c
from kstream.errors import UsageError

if TYPE_CHECKING:
    from kstream import fleet


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
  kstream dump --all-contexts -o 'backups/{context}/{time:%Y-%m-%dT%H%MZ}.ndjson.zst'
  kstream dump -o s3://backups/prod/snap.ndjson.zst   # multipart upload as it is written
  kstream dump --follow -o journal/ --follow-for 1h   # snapshot, then every change
  kstream dump --follow --resume journal/              # carry on after a stop or crash
"""

follow_option = functools.partial(typer.Option, rich_help_panel="Follow (journal)")


@c.option_groups
def dump(
    ctx: typer.Context,
    output: Annotated[
        str | None,
        c.output_option(
            "--output",
            "-o",
            help="Where to write: FILE.ndjson (or .jsonl), FILE.ndjson.zst (archive; or .zst, .zstd), DIR/ (one file per resource), or - for stdout; s3://BUCKET/KEY.ndjson.zst or s3://BUCKET/PREFIX/ uploads to object storage (AWS_ENDPOINT_URL, AWS_PROFILE ... as for the aws CLI). Other names are refused: a name without an extension needs the slash of DIR/ (or --format). Placeholders: {context}, {cluster} (server host), {time:FORMAT} (UTC, strftime), {date}; with them, missing parent directories are created.",
            metavar="PATH",
        ),
    ] = None,
    fmt: Annotated[
        Format,
        c.output_option(
            "--format",
            "-f",
            help="Output format; auto goes by the name.",
        ),
    ] = Format.auto,
    force: Annotated[
        bool,
        c.output_option(
            "--force",
            help="Replace an existing output file, or a directory holding a kstream snapshot (never a directory with anything else in it), once the new dump is complete.",
        ),
    ] = False,
    secrets: Annotated[
        Secrets,
        c.output_option(
            "--secrets",
            help="Secret values: redact (replace each by its sha256 digest, also inside last-applied-configuration), include as they are, or exclude Secrets.",
        ),
    ] = Secrets.redact,
    secret_key_file: Annotated[
        Path | None,
        c.key_file_option(
            "Key file: redact with HMAC-SHA256 under this key instead of plain sha256 (resists guessing short values). Same key, comparable digests."
        ),
    ] = None,
    clean: Annotated[
        bool,
        c.output_option(
            "--clean",
            help="Drop metadata.managedFields and the last-applied-configuration annotation.",
        ),
    ] = False,
    strip: Annotated[
        list[str] | None,
        c.output_option(
            "--strip",
            help='Drop a field path from every object (repeatable), e.g. status or metadata.annotations["x/y"].',
            metavar="PATH",
        ),
    ] = None,
    level: Annotated[
        int,
        c.output_option(
            "--level",
            min=1,
            max=22,
            metavar="1-22",
            help="zstd compression level for archives.",
        ),
    ] = 1,
    follow: Annotated[
        bool,
        follow_option(
            "--follow",
            help="After the snapshot, keep every stream open and record each change (and bookmark) in a journal: -o JOURNAL/ holds base.ndjson.zst and segments/. Ends on Ctrl-C or SIGTERM (exit 0), --follow-for, or a fatal error.",
        ),
    ] = False,
    resume: Annotated[
        str | None,
        follow_option(
            "--resume",
            help="Carry on following the journal JOURNAL/ or s3://BUCKET/PREFIX/ (implies --follow; replaces -o): seal a segment a crash left open, then watch on from each resource's last recorded resourceVersion (a resync for a resource new since then, or after 410 Gone). Selection, --secrets, --strip and --clean are the journal's own.",
            metavar="JOURNAL/",
        ),
    ] = None,
    resume_or_start: Annotated[
        bool,
        follow_option(
            "--resume-or-start",
            help="With --follow -o TARGET: carry on with the journal TARGET holds (as --resume TARGET; the selection given is then ignored: the journal's own applies), or start a new one when it holds none. What a recorder restarted with the same arguments runs.",
        ),
    ] = False,
    stage: Annotated[
        str | None,
        follow_option(
            "--stage",
            help="With -o s3://BUCKET/PREFIX/ (or --resume s3://...): the local directory where the journal is written before each complete file is uploaded (the open segment stays there). Default: $XDG_CACHE_HOME/kstream/stage/BUCKET-DIGEST (~/.cache without XDG_CACHE_HOME), one per target, the same on every run, so a restart finds what a killed run left.",
            metavar="DIR",
        ),
    ] = None,
    follow_for: Annotated[
        str | None,
        follow_option(
            "--follow-for",
            help="Stop following after this long, e.g. 30s, 5m, 1h30m.",
            metavar="DURATION",
        ),
    ] = None,
    rotate_size: Annotated[
        str,
        follow_option(
            "--rotate-size",
            help="Seal the open segment and start a new one past this many (uncompressed) bytes of events.",
            metavar="SIZE",
        ),
    ] = "64MiB",
    rotate_interval: Annotated[
        str | None,
        follow_option(
            "--rotate-interval",
            help="Seal the open segment and start a new one after this long (default: 1h for a directory, 1m for s3://, where each sealed segment is uploaded).",
            metavar="DURATION",
            show_default=False,
        ),
    ] = None,
    outage_limit: Annotated[
        str,
        follow_option(
            "--outage-limit",
            help="Keep retrying a stream that cannot reach the API server (refused, 5xx, 429) for this long before that resource counts as failed; the time it was down is recorded as a gap.",
            metavar="DURATION",
        ),
    ] = "10m",
    rebase_every: Annotated[
        str | None,
        follow_option(
            "--rebase-every",
            help="Write a new base (bases/NNNNNN.ndjson.zst: the state after the segments so far) once per period, e.g. 24h (periods aligned on UTC midnight) or 5s; reading JOURNAL/@T then folds at most one period of events. Off by default.",
            metavar="DURATION",
        ),
    ] = None,
    retain: Annotated[
        str | None,
        follow_option(
            "--retain",
            help="After each new base, remove the bases and segments no instant of the last DURATION needs (the journal then starts at its oldest base). Needs --rebase-every, and at least as long.",
            metavar="DURATION",
        ),
    ] = None,
    health_port: Annotated[
        int,
        follow_option(
            "--health-port",
            min=0,
            max=65535,
            help="Answer GET /healthz on this port, on every interface (for a pod's liveness probe): 200 while the follow makes progress, 503 with the reason once it has not for a while (docs/journal.md). 0: off.",
            metavar="PORT",
        ),
    ] = 0,
    *,
    sel: c.Selection,
    cluster: c.Clusters,
    tuning: c.Tuning,
    ui: c.Ui,
) -> None:
    """Copy every object out of the cluster, streaming, into NDJSON or a zstd archive.

    One watch-list stream per resource (LIST fallback where the server refuses
    it); each object is written as the bytes the server sent, as it arrives.
    Secret values are redacted by default.
    """
    c.setup_consoles(ui)
    from kstream.store import outputname

    started = dt.datetime.now(dt.timezone.utc)
    many = False  # without --context or --all-contexts, one context: kstream.fleet not imported
    if cluster.context or cluster.all_contexts:
        from kstream import fleet

        many = fleet.is_many(cluster.contexts, cluster.all_contexts)
    one_context = cluster.first_context
    fopts = None
    if follow or resume is not None:
        if many:
            raise UsageError("--follow and --resume follow one context: give --context once")
        for name in (output, resume):
            if name is not None and "://" in name and not name.lower().startswith("s3://"):
                raise UsageError(
                    f"--follow writes a journal directory or s3://BUCKET/PREFIX/: not {name}"
                )
        from kstream.cli.follow import follow_options

        fopts = follow_options(
            follow_for,
            rotate_size,
            rotate_interval,
            level,
            tuning.timeout,
            output,
            resume,
            fmt.value,
            outage_limit,
            health_port,
            stage,
            rebase_every,
            retain,
        )
        if health_port:  # before connecting; closed with the command
            from kstream.cli.follow import serve_health

            ctx.call_on_close(serve_health(fopts).close)
    elif (
        follow_for is not None
        or rotate_size != "64MiB"
        or rotate_interval is not None
        or outage_limit != "10m"
        or health_port
        or stage is not None
        or resume_or_start
        or rebase_every is not None
        or retain is not None
    ):
        raise UsageError(
            "--follow-for, --rotate-size, --rotate-interval, --outage-limit, --rebase-every, "
            "--retain, --health-port, --stage and --resume-or-start need --follow"
        )
    if resume_or_start and resume is not None:
        raise UsageError("--resume-or-start goes with -o TARGET, not with --resume")
    if resume is not None:
        given = sel.given() + [
            n
            for n, v in (
                ("--strip", strip),
                ("--clean", clean),
                ("--secrets", secrets is not Secrets.redact),
                ("--force", force),
            )
            if v
        ]
        if given:
            raise UsageError(
                f"--resume carries on with the journal's own selection and rules: drop {', '.join(given)}"
            )
        from kstream.cli.follow import run_resume

        assert fopts is not None
        key = c.read_key(secret_key_file)
        live = tuning.live(cluster, one_context)
        raise typer.Exit(int(run_resume(resume, live, key, fopts, ui.quiet)))
    if follow and output is None:
        raise UsageError("--follow writes a journal directory: -o JOURNAL/")
    if output is None:
        if sys.stdout.isatty() or many:
            raise UsageError(
                "say where to write: -o snap.ndjson.zst, -o snap.ndjson, -o DIR/, or -o - for stdout"
            )
        output = "-"
    template = output
    outputname.fields(template)  # a bad template is refused before anything else
    from kstream.store.outputs import check_output, output_format

    if output == "-" and not follow and output_format(output, fmt.value) != "ndjson":
        raise UsageError(f"-o - writes NDJSON; --format {fmt.value} needs a file or directory")
    try:
        strip_paths = tuple(paths.parse_list(strip or []))
    except ValueError as e:
        raise UsageError(f"--strip: {e}") from None
    if clean:
        from kstream.transform import CLEAN_PATHS

        strip_paths += tuple(paths.parse(p) for p in CLEAN_PATHS)
    key = c.read_key(secret_key_file)
    # the selection is checked before the kubeconfig is read (for the names)
    scope = sel.scope()
    targets: list[fleet.Target] = []
    names = [output]
    if many:
        from kstream.cli.fleet import outputs

        targets = fleet.select_targets(cluster.kubeconfig, cluster.contexts, cluster.all_contexts)
        names = outputs(template, targets, started)
    elif outputname.has_placeholders(template):
        from kstream import fleet

        t = fleet.single_target(cluster.kubeconfig, one_context)
        names = [outputname.expand(template, context=t.context, cluster=t.server, started=started)]
    formats = ["dir" if follow else output_format(n, fmt.value) for n in names]
    if fopts is not None and resume_or_start:
        from kstream.cli.follow import holds_journal, run_resume

        if holds_journal(names[0], stage):
            live = tuning.live(cluster, one_context)
            raise typer.Exit(int(run_resume(names[0], live, key, fopts, ui.quiet)))
    created: list[list[Path]] = []  # directories made for each output
    try:
        for n, nf in zip(names, formats, strict=True):
            created.append(outputname.make_parents(template, n))
            if follow:  # before connecting: a bad name costs no cluster work
                from kstream.journal.directory import check_new_journal
                from kstream.store.objstore import is_url

                if is_url(n):
                    from kstream.journal.remote import check_new_remote

                    check_new_remote(n, force)
                else:
                    check_new_journal(n, force)
            else:
                check_output(n, nf, force)
    except BaseException:
        for dirs in created:
            outputname.remove_empty(dirs)
        raise
    from kstream.dump import DumpSettings

    contexts = [t.context for t in targets] if many else [one_context]
    settings = [
        DumpSettings(
            output=n,
            fmt=nf,
            scope=scope,
            live=tuning.live(cluster, ctx),
            force=force,
            level=level,
            secrets=secrets.value,
            secret_key=key,
            strip=strip_paths,
            started=started,
        )
        for n, nf, ctx in zip(names, formats, contexts, strict=True)
    ]
    if many:
        from kstream.cli.fleet import run_dump_fleet

        code = run_dump_fleet(
            settings, targets, cluster.parallel_contexts, ui.quiet, ui.debug, created
        )
        raise typer.Exit(int(code))
    if fopts is not None:
        from kstream.cli.follow import run_new

        try:
            code = run_new(settings[0], fopts, ui.quiet, ui.debug)
        except BaseException:
            outputname.remove_empty(created[0])
            raise
        raise typer.Exit(int(code))
    from kstream.cli.render import run_dump

    try:
        code = run_dump(settings[0], quiet=ui.quiet, debug=ui.debug)
    except BaseException:  # nothing written (a written dump returns its code)
        outputname.remove_empty(created[0])
        raise
    raise typer.Exit(int(code))
