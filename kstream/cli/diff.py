"""kstream diff: what changed between two snapshots."""

from __future__ import annotations

import typer

EXAMPLES = "Examples:\n\n  kstream diff old.ndjson.zst new.ndjson.zst\n"


def diff() -> None:
    """Compare two snapshots (not implemented yet)."""
    typer.echo("kstream diff: not implemented yet", err=True)
    raise typer.Exit(70)
