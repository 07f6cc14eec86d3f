"""Regenerate docs/cli.md from every command's --help (`make docs`).

The help is taken from the real command (a subprocess, 100 columns, no colour), so
the reference cannot drift from what users see; tests/test_docs.py fails when the
checked-in file differs. `python -m tools.gendocs --check` exits 1 when it is stale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "cli.md"
COLUMNS = 100


def help_text(*command: str) -> str:
    """`kstream COMMAND --help` as a user with a 100-column terminal sees it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("_KSTREAM", "KUBECONFIG", "FORCE_COLOR", "LINES"))
    }
    env.update(COLUMNS=str(COLUMNS), NO_COLOR="1", TERM="dumb")
    p = subprocess.run(
        [sys.executable, "-m", "kstream", *command, "--help"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if p.returncode != 0:
        raise SystemExit(f"gendocs: kstream {' '.join(command)} --help failed: {p.stderr}")
    return "\n".join(line.rstrip() for line in p.stdout.strip("\n").splitlines())


def command_names() -> list[str]:
    import typer

    from kstream.cli.app import app

    group = typer.main.get_command(app)
    ctx = group.make_context("kstream", [], resilient_parsing=True)
    return [n for n in group.list_commands(ctx) if not group.get_command(ctx, n).hidden]  # type: ignore[union-attr]


def exit_code_table() -> str:
    from kstream.exitcodes import MEANING, ExitCode

    rows = ["| code | name | meaning |", "|---:|---|---|"]
    rows += [f"| {int(c)} | `{c.name}` | {MEANING[c]} |" for c in ExitCode]
    return "\n".join(rows)


def render() -> str:
    names = command_names()
    parts = [
        "# kstream command reference",
        "",
        "<!-- Generated from `kstream --help` by `make docs` (tools/gendocs.py); do not edit.",
        "     tests/test_docs.py fails when this file is stale. -->",
        "",
        "Commands: " + ", ".join(f"[`kstream {n}`](#kstream-{n})" for n in names) + ".",
        "",
        "The same commands run as a kubectl plugin: with `kubectl-kstream` on `PATH`,",
        "`kubectl kstream dump ...` is `kstream dump ...`. Shell completion scripts for",
        "bash, zsh and fish are in `completions/` (see `completions/README.md`).",
        "",
        "Flags follow kubectl: `--kubeconfig` (or `KUBECONFIG`, several files joined by",
        "`:`), `--context`, `-n/--namespace`, `-A/--all-namespaces`, `-l/--selector`,",
        "`--field-selector`, `-o/--output`. `NO_COLOR` (any non-empty value) turns colour",
        "off unless `--color always`; `--debug` shows tracebacks.",
        "",
        "## Exit codes",
        "",
        exit_code_table(),
        "",
        "## kstream",
        "",
        "```text",
        help_text(),
        "```",
    ]
    for name in names:
        parts += ["", f"## kstream {name}", "", "```text", help_text(name), "```"]
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    old = DOC.read_text() if DOC.exists() else None
    if "--check" in argv:
        if old != text:
            print("docs/cli.md is stale; run `make docs`", file=sys.stderr)
            return 1
        return 0
    if old != text:
        DOC.write_text(text)
        print("wrote docs/cli.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
