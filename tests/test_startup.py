"""Start-up: what `kstream --help`, shell completion and a small dump import.

Measured with `python -X importtime` in a subprocess (no timing assertions): the
commands a user runs most often must not pay for the `kubernetes` package, the
zstd library, an object-storage library, pydantic (typer's option conversion,
replaced by kstream.cli.fastcoerce) or the modules of the other commands.
"""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster

# never on the paths below (msgspec: only the LIST path's page reader uses it)
HEAVY = ("kubernetes", "zstandard", "pydantic", "boto3", "botocore", "fsspec", "s3fs",
         "obstore", "google.cloud", "azure.storage", "minio", "msgspec")  # fmt: skip


def imports(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """The modules `python -m kstream ARGS` imported, and its stdout."""
    e = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("_KSTREAM", "KSTREAM", "COMP_", "KUBECONFIG"))
    }
    e.update(env or {})
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kstream", *args],
        capture_output=True,
        env=e,
        timeout=120,
    )
    err = p.stderr.decode(errors="replace")
    mods = {ln.split("|")[-1].strip() for ln in err.splitlines() if ln.startswith("import time:")}
    assert "kstream.cli.app" in mods, err[-2000:]
    return mods, p.stdout.decode(errors="replace")


def heavy(mods: set[str], also: tuple[str, ...] = ()) -> list[str]:
    names = HEAVY + also
    return sorted(m for m in mods if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A kubeconfig (unreachable server: nothing here may connect) and a cache dir."""
    d = tmp_path_factory.mktemp("startup")
    kc = d / "config"
    kc.write_text(
        json.dumps(
            {
                "current-context": "alpha",
                "clusters": [{"name": "a", "cluster": {"server": "https://192.0.2.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "alpha", "context": {"cluster": "a", "user": "u"}},
                    {"name": "beta", "context": {"cluster": "a", "user": "u"}},
                ],
            }
        )
    )
    (d / "snaps").mkdir()
    (d / "snaps" / "s.ndjson.zst").write_bytes(b"")
    return {
        "KUBECONFIG": str(kc),
        "HOME": str(d),
        "XDG_CACHE_HOME": str(d / "cache"),
        "KSTREAM_COMPLETION_REFRESH": "0",
        "PWD": str(d),
    }


COMMANDS = ("kstream.cli.render", "kstream.cluster.stream", "kstream.cluster.client", "kstream.count",
            "kstream.diff", "kstream.store.writers", "rich", "urllib3", "yaml")  # fmt: skip
OTHERS = {"dump": ("kstream.cli.count", "kstream.cli.diff"),
          "count": ("kstream.cli.dump", "kstream.cli.diff"),
          "diff": ("kstream.cli.dump", "kstream.cli.count"),
          "serve": ("kstream.cli.dump", "kstream.cli.count", "kstream.cli.diff", "kstream.serve.api",
                    "http.server", "ssl")}  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [["--help"], ["dump", "--help"], ["count", "-h"], ["diff", "--help"], ["serve", "--help"], []],
)
def test_help_imports_little(args: list[str], kube: dict[str, str]) -> None:
    mods, out = imports(*args, env=kube)
    assert "Usage:" in out
    assert heavy(mods, COMMANDS) == []
    if args and args[0] in OTHERS:  # one command's help: the other commands are not loaded
        assert heavy(mods, OTHERS[args[0]]) == []
    else:  # the root help lists every command
        assert {"dump", "count", "diff"} <= {ln.split()[0] for ln in out.splitlines() if ln.strip()}


@pytest.mark.parametrize("shell", ["bash", "fish"])
@pytest.mark.parametrize(
    "words, want",
    [
        ("kstream dump -r con", "configmaps"),
        ("kstream dump --context b", "beta"),
        ("kstream count -n kube", None),
        ("kstream count snaps/", "snaps/s.ndjson.zst"),
        ("kstream di", "diff"),
        ("kstream ", "count"),
        ("kstream diff --context ", "alpha"),
    ],
)
def test_completion_imports_little(
    shell: str, words: str, want: str | None, kube: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tab press, driven as bash and as fish (and kubectl's plugin script) drive it."""
    monkeypatch.chdir(Path(kube["HOME"]))
    env = dict(kube, _KSTREAM_COMPLETE=f"complete_{shell}")
    if shell == "bash":
        env.update(
            COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1))
        )
    else:
        env.update(_TYPER_COMPLETE_ARGS=words, _TYPER_COMPLETE_FISH_ACTION="get-args")
    mods, out = imports(env=env)
    if want is not None:
        assert want in [ln.split("\t")[0] for ln in out.splitlines()], out
    assert (
        heavy(mods, ("kstream.cluster.stream", "kstream.count", "kstream.diff", "rich", "urllib3"))
        == []
    )
    parts = words.split()  # the command word is complete when a word follows it
    first = parts[1] if len(parts) > 2 or (len(parts) == 2 and words.endswith(" ")) else ""
    if first in OTHERS:  # inside one command: the others are not loaded
        assert heavy(mods, OTHERS[first]) == []


@pytest.mark.cluster
def test_small_dump_imports_only_what_it_uses(cluster: Cluster) -> None:
    """An NDJSON dump: neither the kubernetes package nor zstd, pydantic, or the
    count and diff modules."""
    mods, out = imports(
        "dump",
        "-r",
        "configmaps",
        "-n",
        "kube-system",
        "-o",
        "-",
        env={"KUBECONFIG": str(cluster.kubeconfig)},
    )
    assert "extension-apiserver-authentication" in out
    assert heavy(mods, ("kstream.count", "kstream.diff")) == []
    assert "kstream.cluster.auth" in mods


@pytest.mark.cluster
def test_quiet_dump_imports_no_rich(cluster: Cluster, tmp_path: Path) -> None:
    """issue 15's start-up row: `dump -r configmaps -n NS -o FILE -q` prints nothing,
    so it imports no rich; one context (no --context) needs no kstream.fleet, and
    aggregated discovery no thread pool (concurrent.futures)."""
    out = tmp_path / "s.ndjson"
    mods, _ = imports(
        "dump", "-r", "configmaps", "-n", "kube-system", "-o", str(out), "--force", "-q",
        env={"KUBECONFIG": str(cluster.kubeconfig)},
    )  # fmt: skip
    assert b"extension-apiserver-authentication" in out.read_bytes()
    assert heavy(mods, ("rich", "kstream.fleet", "concurrent.futures")) == []
    assert heavy(mods, ("kstream.count", "kstream.diff")) == []


# ------------------------------------------------------------------ fastcoerce


def _samples(ann: Any) -> list[Any]:
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        vals = [m.value for m in ann]
        return [*vals, *list(ann), "bogus", str(vals[0]).upper(), ""]
    return {
        str: ["abc", "", "-", "a b", "ü"],
        bool: [True, False, "true", "no"],
        int: ["5", "0", "1", "-3", "64", "65", "abc", "1.5", "99999", " 7", "+7", "007", 5, 0, ""],
        float: ["1", "1.5", "0.5", "60", "abc", "1e3", "-1", 2, 2.5, ""],
    }.get(ann, ["x/y", "", "abc"])


def _run(rp: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        out = rp.coerce(value, param=param, ctx=ctx)
        return "ok", (type(out), out)
    except Exception as e:
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        return "error", (type(e).__name__, msg)


def test_fast_option_values_same_as_typer() -> None:
    """For every parameter of every command, kstream.cli.fastcoerce gives what
    typer's own (pydantic) converter gives: the same value and type, or the same
    error message."""
    import typer.main
    from typer._click import Context
    from typer._coercion import build_runtime_param

    from kstream.cli import fastcoerce
    from kstream.cli.app import app

    assert fastcoerce.install()
    root = typer.main.get_command(app)
    checked = fast_used = 0
    for cmd in [root, *getattr(root, "commands", {}).values()]:
        ctx = Context(cmd)
        for p in [*cmd.params, cmd.get_help_option(ctx)]:
            if p is None:
                continue
            desc = p.type_descriptor
            multiple = p.multiple or p.nargs == -1
            values: list[Any] = (
                [("a", "b"), (), ["x"], None] if multiple else [*_samples(desc.annotation), None]
            )
            for v in values:
                p._runtime_param = None
                fast = p.get_runtime_param()
                assert type(fast).__name__ == "Fast"
                got = _run(fast, v, p, ctx)
                want = _run(build_runtime_param(desc), v, p, ctx)
                assert got == want, (cmd.name, p.name, v)
                checked += 1
                fast_used += isinstance(p._runtime_param, type(fast))
    assert checked > 300 and fast_used > 200


def test_completion_descriptions_same_as_typer_rich_rendering() -> None:
    """zsh/fish descriptions skip rich only where rich would not change them."""
    from typer.rich_utils import rich_render_text

    from kstream.cli.fastcoerce import plain_help_text
    from kstream.completion import COMMON_RESOURCES

    samples = [d for _, d in COMMON_RESOURCES] + [
        "cluster kstream-local, current", "x" * 79, "x" * 80, "x" * 200, "tab\there", "a  b",
        "[bold]x[/bold]", "a [b] c", "back\\slash", ":smile: face", "ü", "", " lead", "trail ",
        "Namespace demo-0", "snapshot (zst archive)",
    ]  # fmt: skip
    fast = 0
    for text in samples:
        assert plain_help_text(text, rich_render_text) == rich_render_text(text), text
        fast += plain_help_text(text, lambda t: "slow") != "slow"
    assert fast >= len(COMMON_RESOURCES)
