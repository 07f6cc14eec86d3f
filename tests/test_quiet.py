"""-q keeps errors only (issue 22 item 7): no warnings and no notes, the exit code
unchanged; and diff --live with a glob for --context says what it needs."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kstream.exitcodes import ExitCode
from tests.conftest import VENV_BIN, Cluster, kstream, one_line
from tests.test_diff_unit import cm, write_ndjson, write_snapshot

MISSING = ["-r", "cm", "-n", "ns,nosuch"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An API server to read from (kstream serve of ConfigMaps in namespace ns,
    which has no Namespace object: `-n ns,nosuch` gives a warning for each)."""
    d = tmp_path_factory.mktemp("serve")
    snap = write_ndjson(d / "s.ndjson", [cm("ns", f"c{i}") for i in range(5)])
    kc = d / "kubeconfig"
    proc = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "serve", str(snap), "--kubeconfig-out", str(kc)],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Ctrl-C" in line:
            break
    yield kc
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


@pytest.mark.parametrize(
    "argv",
    [
        ["dump", "-o", "-", *MISSING],
        ["count", *MISSING],
        ["count", "--estimate", *MISSING],
    ],
)
def test_quiet_live_commands_say_no_warnings(argv: list[str], served: Path) -> None:
    loud = kstream(*argv, "--kubeconfig", str(served))
    assert loud.code == 0 and 'warning: namespace "nosuch" does not exist' in loud.err
    quiet = kstream(*argv, "--kubeconfig", str(served), "-q")
    assert (quiet.code, quiet.err) == (0, "")
    assert quiet.out == loud.out or argv[0] == "count"  # count's table: same rows
    assert b"c4" in quiet.out or argv[0] == "count"


def test_quiet_snapshot_warnings_keep_the_exit_code(tmp_path: Path) -> None:
    """An interrupted snapshot: counted, exit 6, and with -q nothing on stderr;
    diff of snapshots that lack a resource: exit 3, no warning with -q."""
    snap = write_snapshot(tmp_path / "i.zst", [cm("ns", "a")], status="interrupted")
    loud, quiet = kstream("count", str(snap)), kstream("count", str(snap), "-q")
    assert loud.code == quiet.code == ExitCode.SNAPSHOT
    assert "warning:" in loud.err and quiet.err == ""
    a = write_snapshot(tmp_path / "a.zst", [cm("ns", "a")], unit_status={"configmaps": "failed"})
    b = write_snapshot(tmp_path / "b.zst", [cm("ns", "a")])
    loud = kstream("diff", str(a), str(b))
    quiet = kstream("diff", str(a), str(b), "-q")
    assert loud.code == quiet.code == ExitCode.PARTIAL
    assert "warning:" in loud.err and quiet.err == "", quiet.err


def test_quiet_keeps_errors() -> None:
    r = kstream("count", "/no/such/snapshot", "-q")
    one_line(r, ExitCode.SNAPSHOT, "no such file")


@pytest.mark.parametrize(
    "argv",
    [
        ["--live", "--context", "prod-*"],
        ["snap.zst", "--live", "--context", "prod-?"],
        ["--live-old", "--context", "[ab]"],
    ],
)
def test_diff_live_with_a_glob_says_exact_names_are_needed(argv: list[str]) -> None:
    r = kstream("diff", *argv)
    one_line(r, ExitCode.USAGE, "exact context names, not a glob", "--context OLD --context NEW")


@pytest.mark.cluster
def test_quiet_dump_as_nobody_says_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """Every resource forbidden: exit 3 (partial), and with -q no line per resource:
    one error line says the dump is partial and why (58 warning lines before)."""
    out = tmp_path / "s.zst"
    r = kstream("dump", "--as", "nobody", "-q", "-o", str(out), kubeconfig=cluster.kubeconfig)
    assert r.code == ExitCode.PARTIAL
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("partial: ") and " forbidden" in lines[0], r.err
    r = kstream(
        "dump", "--as", "nobody", "-o", str(tmp_path / "t.zst"), kubeconfig=cluster.kubeconfig
    )
    assert r.code == ExitCode.PARTIAL and "forbidden" in r.err
