"""The CLI in-process through kstream.cli.app.run(): argv in, exit code out,
stdout and stderr captured as streams (no subprocess, no cluster)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from kstream import __version__
from kstream.exitcodes import ExitCode
from tests.fakes import Streams


def cm(name: str, data: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns"},
            "data": {"k": data},
        }
    )


def test_version() -> None:
    code, out, err = Streams()("--version")
    assert code == ExitCode.OK and __version__ in out and err == ""


def test_help() -> None:
    code, out, err = Streams()("--help")
    assert code == ExitCode.OK and "count" in out and "diff" in out and "Exit codes" in out
    assert err == ""


def test_usage_error_is_one_line_on_stderr() -> None:
    code, out, err = Streams()("count", "--no-such-option")
    assert code == ExitCode.USAGE and out == ""
    assert err.count("\n") == 1 and err.startswith("kstream: error: ") and "--no-such-option" in err


def test_run_puts_back_the_signal_handlers() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    Streams()("--version")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_count_of_a_small_snapshot(tmp_path: Path) -> None:
    snap = tmp_path / "snap.ndjson"
    snap.write_text(cm("a", "1") + "\n" + cm("b", "2") + "\n")
    code, out, err = Streams()("count", str(snap), "-o", "json")
    assert code == ExitCode.OK, err
    rows = json.loads(out)["rows"]
    assert sum(r["objects"] for r in rows) == 2


def test_diff_of_two_small_snapshots(tmp_path: Path) -> None:
    old, new = tmp_path / "old.ndjson", tmp_path / "new.ndjson"
    old.write_text(cm("a", "1") + "\n" + cm("b", "2") + "\n")
    new.write_text(cm("a", "1") + "\n" + cm("b", "3") + "\n")
    code, out, err = Streams()("diff", str(old), str(new), "-o", "ndjson")
    assert code == ExitCode.DIFFERENCES, err
    [rec] = [json.loads(line) for line in out.splitlines()]
    [f] = rec["fields"]
    assert (rec["change"], rec["name"], f["old"], f["new"]) == ("modified", "b", "2", "3")
    assert Streams()("diff", str(old), str(old))[0] == ExitCode.OK
