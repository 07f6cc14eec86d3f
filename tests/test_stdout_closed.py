"""One rule for a closed stdout (issue 22 item 5), the same for every command: no
error line, exit 141 (what a shell reports for a process SIGPIPE ends), never a
code that means something else (1 is diff's "they differ", 7 an unwritable
output). The reading end of stdout is closed before kstream starts, so the first
write fails, however small the output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kstream.exitcodes import ExitCode
from tests.conftest import VENV_BIN
from tests.journalmaker import Journal, ev, obj, write_base
from tests.test_diff_unit import cm, write_ndjson

CM = "v1/configmaps"


def closed_stdout(*argv: str) -> tuple[int, str]:
    """kstream with a stdout nobody reads any more: its exit code and stderr."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(
            [str(VENV_BIN / "kstream"), *argv], stdout=w, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(w)
    return p.returncode, p.stderr.decode(errors="replace")


def assert_the_rule(code: int, err: str) -> None:
    assert code == ExitCode.STDOUT_CLOSED == 141, err
    for words in ("error", "Traceback", "Exception", "broken pipe", "Broken pipe"):
        assert words not in err, err


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("snaps")
    old = [cm("ns", f"c{i}", k="old") for i in range(50)]
    new = [cm("ns", f"c{i}", k="new") for i in range(50)]
    return write_ndjson(d / "old.ndjson", old), write_ndjson(d / "new.ndjson", new)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    j = Journal(tmp_path_factory.mktemp("journal") / "J")
    write_base(j.base, {CM: [obj(CM, "a", "shop", "10", data={"k": "0"})]})
    events = [
        ev(f"2026-11-29T14:00:{i:02d}.000000Z", "MODIFIED", CM,
           obj(CM, "a", "shop", str(20 + i), data={"k": str(i)}))
        for i in range(1, 30)
    ]  # fmt: skip
    j.segment(1, [events])
    return j.root


@pytest.fixture(scope="module")
def served(snaps: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An API server for dump to read: kstream serve of a snapshot."""
    kc = tmp_path_factory.mktemp("serve") / "kubeconfig"
    proc = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "serve", str(snaps[0]), "--kubeconfig-out", str(kc)],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Ctrl-C" in line:
            break
    yield kc
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


@pytest.mark.parametrize("args", [[], ["-q"], ["-o", "-", "--format", "ndjson"]])
def test_dump(args: list[str], served: Path) -> None:
    out = [] if "-o" in args else ["-o", "-"]
    assert_the_rule(*closed_stdout("dump", *out, *args, "-r", "cm", "--kubeconfig", str(served)))


@pytest.mark.parametrize("output", ["table", "json", "ndjson"])
def test_count(output: str, snaps: tuple[Path, Path], journal: Path) -> None:
    assert_the_rule(*closed_stdout("count", str(snaps[0]), "-o", output))
    assert_the_rule(*closed_stdout("count", str(journal), "--events", "-o", output))


@pytest.mark.parametrize("output", ["text", "json", "ndjson"])
def test_diff_never_says_they_differ(output: str, snaps: tuple[Path, Path]) -> None:
    assert_the_rule(*closed_stdout("diff", str(snaps[0]), str(snaps[1]), "-o", output))


@pytest.mark.parametrize("output", ["text", "json", "ndjson"])
def test_log(output: str, journal: Path) -> None:
    assert_the_rule(*closed_stdout("log", str(journal), "-o", output))


@pytest.mark.parametrize("argv", [["--help"], ["dump", "--help"], ["--version"]])
def test_help(argv: list[str]) -> None:
    assert_the_rule(*closed_stdout(*argv))


def test_serve_writes_nothing_on_stdout(snaps: tuple[Path, Path], tmp_path: Path) -> None:
    """serve says everything on stderr: a closed stdout changes nothing."""
    r, w = os.pipe()
    os.close(r)
    kc = tmp_path / "kc"
    proc = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "serve", str(snaps[0]), "--kubeconfig-out", str(kc)],
        stdout=w,
        stderr=subprocess.PIPE,
    )
    os.close(w)
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Ctrl-C" in line:
            break
    got = subprocess.run(
        [str(VENV_BIN / "kubectl"), "--kubeconfig", str(kc), "get", "cm", "-A", "-o", "json"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert len(json.loads(got.stdout)["items"]) == 50
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"error" not in err, err


def test_export_writes_nothing_on_stdout(snaps: tuple[Path, Path], tmp_path: Path) -> None:
    """export writes files and says what it did on stderr: a closed stdout changes nothing."""
    code, err = closed_stdout("export", str(snaps[0]), "-o", f"{tmp_path}/out/")
    assert code == 0 and "error" not in err, err
    assert (tmp_path / "out" / "kstream-export.index").exists()
