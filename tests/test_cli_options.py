"""The options several commands share are declared once (kstream.cli.common's option
groups): each command that takes a group checks and reads it the same way."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from kstream.cli import common as c
from kstream.cli.app import run
from kstream.exitcodes import ExitCode


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = run(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["dump", "-o", "x.ndjson"],
        ["count", "snap.ndjson"],
        ["log", "journal/"],
    ],
)
def test_namespace_and_all_namespaces_refused_by_every_command(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, *argv, "-n", "a", "-A")
    assert code == ExitCode.USAGE
    assert err == "kstream: error: --namespace and --all-namespaces cannot be used together\n"


def test_resume_names_the_selection_options_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = _run(
        capsys, "dump", "--resume", str(tmp_path / "j"), "-A", "--field-selector", "a=b",
        "-r", "cm", "--clean",
    )  # fmt: skip
    assert code == ExitCode.USAGE
    assert err.endswith("drop -r, -A, --field-selector, --clean\n"), err


def test_groups_keep_each_commands_options_and_order() -> None:
    """typer sees the groups' options in place of the group, in the group's order."""
    from kstream.cli.count import count
    from kstream.cli.diff import diff
    from kstream.cli.dump import dump
    from kstream.cli.log import log

    tail = ["method", "concurrency", "timeout", "retries", "quiet", "debug", "color"]
    cluster = ["kubeconfig", "context", "as_user", "as_group", "as_uid"]
    selection = ["resource", "exclude", "namespace", "all_namespaces", "selector"]
    fleet = ["all_contexts", "parallel_contexts"]
    for cmd in (dump, count):
        names = list(inspect.signature(cmd).parameters)
        want = [*selection, "field_selector", *cluster, *fleet, *tail]
        assert names[-len(want) :] == want
    names = list(inspect.signature(diff).parameters)
    want = ["namespace", "selector", *cluster, *tail]
    assert names[-len(want) :] == want
    assert list(inspect.signature(log).parameters)[-9:] == [
        *selection, "field_selector", "quiet", "debug", "color",
    ]  # fmt: skip


def test_group_values_reach_the_command() -> None:
    seen: dict[str, object] = {}

    @c.option_groups
    def cmd(x: int = 1, *, sel: c.Selection, ui: c.Ui) -> None:
        seen.update(x=x, sel=sel, ui=ui)

    cmd(x=2, resource=["cm"], exclude=None, namespace=["a"], all_namespaces=False,
        selector="app=web", field_selector="", quiet=True, debug=False, color=c.Color.never)  # fmt: skip
    assert seen["x"] == 2
    assert seen["sel"] == c.Selection(resource=["cm"], namespace=["a"], selector="app=web")
    assert seen["ui"] == c.Ui(quiet=True, color=c.Color.never)
    assert c.Selection(resource=["cm"], selector="a=b").given() == ["-r", "-l"]
