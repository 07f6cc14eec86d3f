"""kstream count: how many objects and bytes, per resource and namespace."""

from __future__ import annotations

import typer

EXAMPLES = "Examples:\n\n  kstream count\n"


def count() -> None:
    """Count objects and bytes per resource (not implemented yet)."""
    typer.echo("kstream count: not implemented yet", err=True)
    raise typer.Exit(70)
