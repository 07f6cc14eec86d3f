"""kstream dump: copy the cluster's objects out, one watch-list stream per resource."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from kstream import paths
from kstream.cli import common as c
from kstream.errors import UsageError


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
  kstream dump -o s3://backups/prod/snap.ndjson.zst   # multipart upload as it is written
"""


def dump(
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write: FILE.ndjson (or .jsonl), FILE.ndjson.zst (archive; or .zst, .zstd), DIR/ (one file per resource), or - for stdout; s3://BUCKET/KEY.ndjson.zst or s3://BUCKET/PREFIX/ uploads to object storage (AWS_ENDPOINT_URL, AWS_PROFILE ... as for the aws CLI). Other names are refused: a name without an extension needs the slash of DIR/ (or --format).",
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
    from kstream.dump import DumpSettings
    from kstream.plan import LiveOptions

    settings = DumpSettings(
        output=output,
        fmt=f,
        scope=c.scope(resource, exclude, namespace, selector, field_selector),
        live=LiveOptions(kubeconfig, context, method.value, concurrency, timeout, retries),
        force=force,
        level=level,
        secrets=secrets.value,
        secret_key=key,
        strip=strip_paths,
    )
    from kstream.cli.render import run_dump

    code = run_dump(settings, quiet=quiet, debug=debug)
    raise typer.Exit(int(code))
