"""kubectl-style conventions: --version, errors on one line with exit 2, NO_COLOR and
--color, KUBECONFIG with several files, the kubectl plugin through the pinned kubectl."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kstream import __version__
from kstream.exitcodes import ExitCode
from tests.conftest import KUBECTL, VENV_BIN, Cluster, kstream

KUBECONFIG_A = """
apiVersion: v1
kind: Config
current-context: alpha
contexts:
- name: alpha
  context: {cluster: ca, user: ua}
clusters:
- name: ca
  cluster: {server: "https://192.0.2.10:6443"}
users:
- name: ua
  user: {token: not-a-real-token}
"""
KUBECONFIG_B = """
apiVersion: v1
kind: Config
contexts:
- name: beta
  context: {cluster: cb, user: ub}
- name: alpha
  context: {cluster: cb, user: ub}
clusters:
- name: cb
  cluster: {server: "https://192.0.2.20:6443"}
users:
- name: ub
  user: {token: not-a-real-token}
"""


@pytest.fixture
def kubeconfigs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(KUBECONFIG_A)
    b.write_text(KUBECONFIG_B)
    return a, b


def plugin_env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR")}
    e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '/usr/bin:/bin')}"
    return e


def test_version() -> None:
    r = kstream("--version")
    assert r.code == 0
    assert r.text.strip() == f"kstream {__version__}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("dump", "--nope"), "--nope"),
        (("nope",), "nope"),
        (("dump", "--concurrency", "0"), "--concurrency"),
        (("dump", "--color", "purple"), "--color"),
        (("dump", "-n", "a", "-A", "-o", "-"), "--all-namespaces"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    r = kstream(*args)
    assert r.code == ExitCode.USAGE
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("kstream: error: ")
    assert needle in lines[0]
    assert r.out == b""


def test_no_arguments_shows_help() -> None:
    r = kstream()
    assert "kstream: error" not in r.err
    assert "Usage: kstream" in r.text + r.err


def test_help_has_no_escape_codes_whatever_the_terminal() -> None:
    r = kstream("dump", "--help", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert r.code == 0
    assert "\x1b[" not in r.text
    assert "Usage: kstream dump" in r.text


def test_kubectl_plugin_help_through_pinned_kubectl() -> None:
    p = subprocess.run(
        [KUBECTL, "kstream", "--help"], env=plugin_env(), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: kubectl kstream [OPTIONS] COMMAND [ARGS]...")
    p = subprocess.run(
        [KUBECTL, "kstream", "dump", "--help"],
        env=plugin_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "Usage: kubectl kstream dump [OPTIONS]" in p.stdout
    p = subprocess.run(
        [KUBECTL, "kstream", "--version"], env=plugin_env(), capture_output=True, text=True
    )
    assert p.stdout.strip() == f"kstream {__version__}"


def test_kubectl_plugin_passes_exit_codes(kubeconfigs: tuple[Path, Path]) -> None:
    p = subprocess.run(
        [KUBECTL, "kstream", "dump", "--nope"], env=plugin_env(), capture_output=True, text=True
    )
    assert p.returncode == ExitCode.USAGE
    assert "kubectl kstream dump --help" in p.stderr
    a, _ = kubeconfigs
    p = subprocess.run(
        [KUBECTL, "kstream", "dump", "-o", "-", "--kubeconfig", str(a), "--context", "nope"],
        env=plugin_env(),
        capture_output=True,
        text=True,
    )
    assert p.returncode == ExitCode.CONFIG
    assert 'context "nope" not found' in p.stderr


def test_unknown_context_lists_merged_contexts(kubeconfigs: tuple[Path, Path]) -> None:
    a, b = kubeconfigs
    r = kstream("dump", "-o", "-", "--context", "nope", env={"KUBECONFIG": f"{a}{os.pathsep}{b}"})
    assert r.code == ExitCode.CONFIG
    assert "available: alpha, beta" in r.err
    assert len(r.err.strip().splitlines()) == 1


def _client_in_subprocess(env: dict[str, str], *args: str) -> list[str]:
    code = (
        "import sys\n"
        "from kstream.cluster.client import Client, ConnectSettings\n"
        "k = sys.argv[1] or None; c = sys.argv[2] or None\n"
        "cl = Client(ConnectSettings(kubeconfig=k, context=c))\n"
        "print(cl.context, cl.host)\n"
    )
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    e.update(env)
    p = subprocess.run(
        [sys.executable, "-c", code, *args], env=e, capture_output=True, text=True, check=True
    )
    return p.stdout.split()


def test_kubeconfig_env_with_several_files(kubeconfigs: tuple[Path, Path]) -> None:
    """KUBECONFIG=a:b merges like kubectl: the context may live in the second file,
    the current-context and a context defined twice come from the first."""
    a, b = kubeconfigs
    env = {"KUBECONFIG": f"{a}{os.pathsep}{b}"}
    assert _client_in_subprocess(env, "", "beta") == ["beta", "https://192.0.2.20:6443"]
    assert _client_in_subprocess(env, "", "") == ["alpha", "https://192.0.2.10:6443"]
    missing = a.parent / "missing.yaml"
    env = {"KUBECONFIG": f"{missing}{os.pathsep}{b}{os.pathsep}{a}"}  # missing files are skipped
    assert _client_in_subprocess(env, "", "") == ["alpha", "https://192.0.2.20:6443"]


def test_context_flag_without_current_context(kubeconfigs: tuple[Path, Path]) -> None:
    _, b = kubeconfigs  # b sets no current-context
    assert _client_in_subprocess({}, str(b), "beta") == ["beta", "https://192.0.2.20:6443"]


def test_kubeconfig_flag_names_one_file(kubeconfigs: tuple[Path, Path]) -> None:
    """Like kubectl, --kubeconfig is one file name (only $KUBECONFIG is a list):
    two names joined with ':' are not merged (tests/test_kubeconfig.py compares
    with kubectl)."""
    from kstream.cluster.client import Client, ConnectSettings
    from kstream.errors import ConfigError

    a, b = kubeconfigs
    with pytest.raises(ConfigError, match="kubeconfig not found"):
        Client(ConnectSettings(kubeconfig=f"{a}{os.pathsep}{b}", context="beta"))
    c = Client(ConnectSettings(kubeconfig=str(b), context="beta"))
    assert (c.context, c.host) == ("beta", "https://192.0.2.20:6443")


def test_kubeconfig_env_read_when_connecting(
    kubeconfigs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kubernetes.config  # noqa: F401  (imported before KUBECONFIG changes)

    from kstream.cluster.client import Client, ConnectSettings

    a, b = kubeconfigs
    monkeypatch.setenv("KUBECONFIG", f"{b}{os.pathsep}{a}")
    c = Client(ConnectSettings(context="alpha"))
    assert c.host == "https://192.0.2.20:6443"  # alpha of the first file, b


@pytest.mark.cluster
def test_no_color_and_color_flag(cluster: Cluster, tmp_path: Path) -> None:
    """rich is made to believe stderr is a terminal (FORCE_COLOR); NO_COLOR still wins
    under --color auto, and --color always/never override both."""
    args = ("dump", "-o", "-", "-r", "configmaps", "-n", "demo-0")
    forced = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
    r = kstream(*args, kubeconfig=cluster.kubeconfig, env={**forced, "NO_COLOR": "1"})
    assert r.code == 0, r.err
    assert "configmaps" in r.err
    assert "\x1b[" not in r.err
    r = kstream(*args, "--color", "never", kubeconfig=cluster.kubeconfig, env=forced)
    assert "\x1b[" not in r.err
    for ci in ("", "true"):  # the table layout, and the key=value lines CI logs get
        env = {"NO_COLOR": "1", "CI": ci}
        r = kstream(*args, "--color", "always", kubeconfig=cluster.kubeconfig, env=env)
        assert r.code == 0, r.err
        assert "\x1b[32m" in r.err, (ci, r.err)  # complete, in green
        assert b"\x1b[" not in r.out  # the data on stdout is never coloured


def test_debug_shows_traceback_only_with_debug(tmp_path: Path) -> None:
    kc = tmp_path / "kc.yaml"
    kc.write_text(KUBECONFIG_A.replace("https://192.0.2.10:6443", "https://127.0.0.1:9"))
    r = kstream("dump", "-o", "-", "--timeout", "1", kubeconfig=kc)
    assert r.code == ExitCode.CONNECTION
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err
    r = kstream("dump", "-o", "-", "--timeout", "1", "--debug", kubeconfig=kc)
    assert r.code == ExitCode.CONNECTION
    assert "Traceback" in r.err
    assert "not-a-real-token" not in r.err
