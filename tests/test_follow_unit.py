"""`dump --follow` / `--resume` options without a cluster: bad input is one
line and exit 2 before anything connects; durations and sizes parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from kstream.cli.follow import parse_duration, parse_size
from kstream.errors import UsageError
from kstream.journal import JournalWriter, write_meta
from tests.conftest import NOWHERE, kstream, one_line


def test_durations_and_sizes() -> None:
    assert parse_duration("30s", "--x") == 30
    assert parse_duration("5m", "--x") == 300
    assert parse_duration("1h30m", "--x") == 5400
    assert parse_duration("90", "--x") == 90
    assert parse_size("64MiB", "--x") == 64 * 1024 * 1024
    assert parse_size("512k", "--x") == 512 * 1024
    assert parse_size("1000", "--x") == 1000
    for bad in ("", "5x", "m5", "0s", "-1", "1h x"):
        with pytest.raises(UsageError):
            parse_duration(bad, "--x")
    for bad in ("", "lots", "0", "1Q"):
        with pytest.raises(UsageError):
            parse_size(bad, "--x")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--follow"], ["-o JOURNAL/"]),
        (["--follow", "-o", "j.ndjson.zst"], ["journal directory"]),
        (["--follow", "-o", "-"], ["journal directory"]),
        (["--follow", "-o", "j/", "--format", "zst"], ["--format zst"]),
        (["--follow", "-o", "j/", "--follow-for", "soon"], ["--follow-for", "duration"]),
        (["--follow", "-o", "j/", "--rotate-size", "big"], ["--rotate-size"]),
        (["--follow", "-o", "j/", "--rotate-interval", "0"], ["--rotate-interval"]),
        (["-o", "j/", "--follow-for", "5m"], ["need --follow"]),
        (["--resume", "nojournal/"], ["no such journal"]),
    ],
)
def test_bad_follow_options(tmp_path: Path, args: list[str], words: list[str]) -> None:
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = kstream("dump", *args, env=NOWHERE)
    finally:
        os.chdir(here)
    one_line(r, 2, *words)


def journal(tmp_path: Path) -> Path:
    j = tmp_path / "j"
    j.mkdir()
    write_meta(j, {"options": {"secrets": "redact", "secretDigest": "sha256"}})
    JournalWriter(j).close()
    return j


def test_resume_keeps_the_journals_own_rules(tmp_path: Path) -> None:
    j = journal(tmp_path)
    r = kstream("dump", "--resume", f"{j}/", "-r", "pods", "--clean", env=NOWHERE)
    one_line(r, 2, "journal's own", "-r", "--clean")
    r = kstream("dump", "--resume", f"{j}/", "-o", f"{tmp_path}/other/", env=NOWHERE)
    one_line(r, 2, "drop -o")
    key = tmp_path / "key"
    key.write_text("k")
    r = kstream("dump", "--resume", f"{j}/", "--secret-key-file", str(key), env=NOWHERE)
    one_line(r, 2, "plain sha256")


def test_existing_journal_or_foreign_directory_refused(tmp_path: Path) -> None:
    j = journal(tmp_path)
    r = kstream("dump", "--follow", "-o", f"{j}/", env=NOWHERE)
    one_line(r, 2, "holds a kstream journal", "--resume", "--force")
    (j / "notes.txt").write_text("mine")
    r = kstream("dump", "--follow", "-o", f"{j}/", "--force", env=NOWHERE)
    one_line(r, 2, "not a kstream journal", "notes.txt")
    assert (j / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    r = kstream("dump", "--follow", "-o", f"{other}/", "--force", env=NOWHERE)
    one_line(r, 2, "not a kstream journal")
    r = kstream("dump", "--resume", f"{other}/", env=NOWHERE)
    one_line(r, 2, "not a kstream journal")


def test_one_writer_per_journal(tmp_path: Path) -> None:
    import fcntl
    import os

    j = journal(tmp_path)
    fd = os.open(j, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
        one_line(r, 2, "being written by another kstream")
    finally:
        os.close(fd)
    r = kstream("dump", "--resume", f"{j}/", env=NOWHERE)
    one_line(r, 6, "base.ndjson.zst")
