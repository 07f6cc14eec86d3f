"""kstream export: a snapshot as a tree of clean YAML (or JSON) files, one object
per file, ready for git and for kubectl apply."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from kstream.cli import common as c

if TYPE_CHECKING:
    from kstream.export import ExportResult

EXAMPLES = """
Examples:

\b
  kstream export snap.ndjson.zst -o backup/               # clean YAML, one object per file
  kstream export snap.ndjson.zst -o backup/ --force       # again: only changed files change
  kstream export snap.ndjson.zst -o shop/ -n shop --format json
  kstream export journal/@2026-11-29T14:00:00Z -o then/   # a journal's state at an instant
\b
Restore (docs/export.md):
  CRDS=backup/_cluster/customresourcedefinitions.apiextensions.k8s.io
  kubectl apply --server-side -R -f $CRDS/
  kubectl wait --for condition=Established -R -f $CRDS/
  kubectl apply --server-side -R -f backup/
"""


class Format(str, Enum):
    yaml = "yaml"
    json = "json"


@c.option_groups
def export(
    source: Annotated[
        str,
        c.snapshot_argument(
            "SOURCE",
            "What to export: a snapshot (archive .zst, NDJSON file, zstd-compressed "
            "NDJSON, directory, a JSON List such as kubectl get -o json writes, - for "
            "stdin, s3://BUCKET/KEY), or a journal (JOURNAL/, JOURNAL/@TIME; a directory or "
            "s3://BUCKET/PREFIX/).",
        ),
    ],
    output: Annotated[
        str,
        c.output_option(
            "--output",
            "-o",
            metavar="DIR/",
            help="The directory to write: DIR/NAMESPACE/RESOURCE/NAME.yaml, cluster-scoped "
            "objects under DIR/_cluster/, and DIR/kstream-export.index (the files, in apply "
            "order).",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        Format,
        c.output_option(
            "--format",
            help="yaml or json files.",
        ),
    ] = Format.yaml,
    keep: Annotated[
        bool,
        c.output_option(
            "--keep",
            help="Keep every field as the snapshot has it (no cleaning: status, "
            "managedFields, uid, resourceVersion, server-filled fields stay).",
        ),
    ] = False,
    everything: Annotated[
        bool,
        c.select_option(
            "--all",
            help="Also write the objects left out by default as not to be applied back "
            "(controller-owned children, ServiceAccount token Secrets, kube-root-ca.crt, "
            "control-plane Endpoints/EndpointSlices, Events, Leases and Nodes, objects "
            "the control plane made).",
        ),
    ] = False,
    placeholders: Annotated[
        bool,
        c.output_option(
            "--secret-placeholders",
            help="A snapshot with redacted Secrets: write them anyway, each value "
            "its digest (which the API server refuses until it is replaced by the "
            "real base64 value). Without it they are not written (exit 3).",
        ),
    ] = False,
    force: Annotated[
        bool,
        c.output_option(
            "--force",
            "-f",
            help="Export into an existing directory: replaces the files of a previous "
            "export (only those that changed) and removes its files no longer exported; "
            "files kstream did not write are never changed or removed.",
        ),
    ] = False,
    *,
    sel: c.Selection,
    ui: c.Ui,
) -> None:
    """Write a snapshot as files to apply back, one cleaned object per file.

    Cleaned like kubectl-neat: status, managedFields, uid, resourceVersion,
    generation, creationTimestamp, ownerReferences, the last-applied annotation
    and fields the server fills in (a Service's cluster IPs, a PVC's volumeName,
    ...) are removed; --keep keeps everything. Objects that must not be applied
    back are left out and counted on stderr; --all writes them. Keys are in a
    fixed order and a re-export of the same snapshot writes the same bytes, so
    a changed object changes only its own file.

    Secrets of a snapshot dumped with redacted values (the default of dump) are
    not written, and the command says so and exits 3; dump with --secrets
    include to export them.
    """
    from kstream.export import ExportSettings
    from kstream.export import export as run_export

    c.setup_consoles(ui)
    scope = sel.scope()
    settings = ExportSettings(
        source, output, fmt.value, scope, keep, everything, placeholders, force
    )
    result = run_export(settings)
    report(result, ui.quiet)
    raise typer.Exit(int(result.exit_code))


def report(result: ExportResult, quiet: bool) -> None:
    from kstream.neat import REASONS

    d = result.directory.rstrip("/") + "/"
    if result.problem:
        c.note_error(f"kstream: error: {result.problem}")
    if not quiet:
        for line in result.notes:
            c.note(line)
        c.note(
            f"exported {result.objects} objects to {d}: {result.written} files written, "
            f"{result.unchanged} unchanged, {result.removed} removed"
        )
        for reason in REASONS:
            n = result.left_out.get(reason, 0)
            if n:
                some = ", ".join(result.examples.get(reason, []))
                more = ", ..." if n > len(result.examples.get(reason, [])) else ""
                c.note(f"  left out: {n} {reason}: {some}{more}")
        if result.placeholders:
            c.note(
                f"  {result.placeholders} Secrets written with placeholders: replace each "
                "digest by the base64 value before applying"
            )
    for what in result.incomplete:
        c.note(f"kstream: warning: {what}")
    if result.secrets_withheld:
        c.note(
            f"kstream: warning: {result.secrets_withheld} Secrets not written: the snapshot "
            "holds only digests of their values (dump --secrets include keeps them; "
            "--secret-placeholders writes them with the digests)"
        )
