"""kstream/journal/remote.py and the follow options of an s3:// journal, without a
server: the stage's default place, the prefix's form, the option rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from kstream.cli.follow import follow_options
from kstream.errors import OutputError, UsageError
from kstream.journal import remote


def test_default_stage_is_one_per_target_and_stable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = remote.default_stage("s3://bkt/prod/")
    assert a == remote.default_stage("s3://bkt/prod/")  # the same on every run
    assert a.parent == tmp_path / "kstream" / "stage"
    assert a.name.startswith("bkt-")
    assert remote.default_stage("s3://bkt/prod") == a  # the prefix it names
    assert remote.default_stage("s3://bkt/staging/") != a
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert remote.default_stage("s3://bkt/prod/").parent == (
        tmp_path / "home" / ".cache" / "kstream" / "stage"
    )


def test_prepare_stage_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    made = remote.prepare_stage(str(tmp_path / "a" / "b"), "s3://bkt/p/")
    assert made.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot make the staging directory"):
        remote.prepare_stage(str(blocker / "s"), "s3://bkt/p/")
    with pytest.raises(OutputError, match=r"--stage .*file"):  # a file in the way
        remote.prepare_stage(str(blocker), "s3://bkt/p/")


def test_a_journal_in_object_storage_is_a_prefix() -> None:
    assert remote.prefix_of("s3://bkt/p/q/").key == "p/q/"
    for bad in ("s3://bkt/p", "s3://bkt/", "s3://bkt"):
        with pytest.raises(UsageError, match="trailing slash"):
            remote.prefix_of(bad)


def opts(**kw: object) -> object:
    args: dict[str, object] = {
        "follow_for": None,
        "rotate_size": "64MiB",
        "rotate_interval": None,
        "level": 1,
        "timeout": 60.0,
        "output": None,
        "resume": None,
        "fmt": "auto",
    }
    args.update(kw)
    return follow_options(**args)  # type: ignore[arg-type]


def test_rotate_interval_defaults_to_1m_for_s3_and_1h_for_a_directory() -> None:
    assert opts(output="j/").rotate_interval == 3600  # type: ignore[attr-defined]
    assert opts(output="s3://b/p/").rotate_interval == 60  # type: ignore[attr-defined]
    assert opts(resume="s3://b/p/").rotate_interval == 60  # type: ignore[attr-defined]
    assert opts(output="s3://b/p/", rotate_interval="5m").rotate_interval == 300  # type: ignore[attr-defined]


def test_stage_is_for_object_storage_only() -> None:
    with pytest.raises(UsageError, match="--stage is for a journal in object storage"):
        opts(output="j/", stage="/tmp/x")
    assert opts(output="s3://b/p/", stage="/tmp/x").stage == "/tmp/x"  # type: ignore[attr-defined]
