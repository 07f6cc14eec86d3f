"""Generated artefacts cannot drift, and the CLI documents itself: docs/cli.md and
completions/* equal what `make docs completions` writes; every command and option
has help text, every command examples."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer._click import Command, Context  # typer >= 0.29 vendors click
from typer.core import TyperGroup, TyperOption

from kstream.cli.app import app
from tests.conftest import REPO
from tools import gencompletions, gendocs


def commands() -> Iterator[tuple[str, Command, Context]]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    root = group.make_context("kstream", [], resilient_parsing=True)
    yield "kstream", group, root
    for name in group.list_commands(root):
        cmd = group.get_command(root, name)
        assert cmd is not None
        yield (
            f"kstream {name}",
            cmd,
            cmd.make_context(name, [], parent=root, resilient_parsing=True),
        )


COMMANDS = [name for name, _, _ in commands()]


def test_cli_reference_is_current() -> None:
    assert (REPO / "docs" / "cli.md").read_text() == gendocs.render(), (
        "docs/cli.md is stale: run `make docs`"
    )


def test_cli_reference_covers_every_command() -> None:
    text = (REPO / "docs" / "cli.md").read_text()
    for name in COMMANDS:
        assert f"\n## {name}\n" in text
        assert f"Usage: {name} " in text
    assert "## Exit codes" in text


@pytest.mark.parametrize("name", sorted(gencompletions.FILES))
def test_completion_script_is_current(name: str) -> None:
    path = REPO / "completions" / name
    assert path.exists(), f"completions/{name} is missing: run `make completions`"
    assert path.read_text() == gencompletions.FILES[name](), (
        f"completions/{name} is stale: run `make completions`"
    )
    if name in gencompletions.EXECUTABLE:
        assert os.access(path, os.X_OK)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_and_option_has_help(name: str) -> None:
    _, cmd, ctx = next(c for c in commands() if c[0] == name)
    assert (cmd.help or "").strip(), f"{name} has no help text"
    if name != "kstream":
        assert (cmd.short_help or cmd.help or "").strip()
    for param in cmd.get_params(ctx):
        label = "/".join(param.opts)
        help_text = getattr(param, "help", None)
        assert help_text and help_text.strip(), f"{name} {label} has no help text"


TYPE_METAVAR = re.compile(r"<(str|path|int|float|list\[|[a-z]+ range)")


@pytest.mark.parametrize("name", COMMANDS)
def test_options_have_readable_metavars(name: str) -> None:
    """FILE, NAME[,NAME...], N rather than Typer's <str>, <list[str]>, <int range>
    (choices such as <auto|always|never> are fine)."""
    _, cmd, ctx = next(c for c in commands() if c[0] == name)
    ugly = []
    for param in cmd.get_params(ctx):
        if isinstance(param, TyperOption) and not param.is_flag and not param.count:
            record = param.get_help_record(ctx)
            if record is not None and TYPE_METAVAR.search(record[0]):
                ugly.append(record[0])
    assert not ugly, f"{name}: add metavar= to {ugly}"


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "kstream"])
def test_every_command_has_examples_shown_line_by_line(name: str) -> None:
    sub = name.split()[1]
    module = importlib.import_module(f"kstream.cli.{sub}")
    examples = [
        line.strip()
        for line in module.EXAMPLES.splitlines()
        if line.strip().startswith(("kstream ", "kubectl kstream "))
    ]
    assert examples, f"kstream/cli/{sub}.py: EXAMPLES has no example command"
    shown = {line.strip() for line in gendocs.help_text(sub).splitlines()}
    for ex in examples:
        assert ex in shown, (
            f"{name} --help rewraps the example {ex!r}: start the EXAMPLES block with '\\b'"
        )


def test_help_width_is_fixed() -> None:
    """docs/cli.md does not depend on the terminal of whoever ran `make docs`."""
    lines = gendocs.help_text("dump").splitlines()
    assert max(len(x) for x in lines) <= gendocs.COLUMNS
    assert any(len(x) > 80 for x in lines)


def test_docs_and_readme_point_to_each_other() -> None:
    readme = (REPO / "completions" / "README.md").read_text()
    for name in ("kstream.bash", "_kstream", "kstream.fish", "kubectl_complete-kstream"):
        assert name in readme
    assert "completions/README.md" in (REPO / "docs" / "cli.md").read_text()


def test_gen_check_modes(tmp_path: Path) -> None:
    assert gendocs.main(["--check"]) == 0
    assert gencompletions.main(["--check"]) == 0
