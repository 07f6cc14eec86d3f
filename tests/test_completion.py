"""Shell completion, driven through each shell's own machinery.

bash and zsh run interactively on a pseudo-terminal: the checked-in script is
loaded as a user would (zsh: from $fpath and by `source`; bash: with and without
the bash-completion package), a line is typed followed by TAB, and the candidates
the shell computed are captured (bash: COMPREPLY of the function `complete -p`
names; zsh: the matches handed to compadd). fish answers `complete -C`. kubectl's
plugin completion runs `kubectl_complete-kstream`.

A missing shell skips its tests, except with CI=true: scripts/install-shells.sh
installs them from Debian packages.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kstream import completion
from kstream.resources import Resource
from tests.conftest import KUBECTL, REPO, VENV_BIN, completion_refresh

COMPLETIONS = REPO / "completions"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
SERVER_A = "https://192.0.2.10:6443"  # TEST-NET: never contacted
SERVER_B = "https://192.0.2.20:6443"
ARN = "arn:aws:eks:eu-west-1:123456789012:cluster/prod"

KUBECONFIG_A = f"""
apiVersion: v1
kind: Config
current-context: alpha
contexts:
- name: alpha
  context: {{cluster: ca, user: ua, namespace: team-a}}
clusters:
- name: ca
  cluster: {{server: "{SERVER_A}"}}
users:
- name: ua
  user: {{token: not-a-real-token}}
"""
KUBECONFIG_B = f"""
apiVersion: v1
kind: Config
current-context: beta
contexts:
- name: beta
  context: {{cluster: cb, user: ub}}
- name: alpha
  context: {{cluster: cb, user: ub}}
- name: "{ARN}"
  context: {{cluster: cb, user: ub}}
clusters:
- name: cb
  cluster: {{server: "{SERVER_B}"}}
users:
- name: ub
  user: {{token: not-a-real-token}}
"""


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        msg = f"{shell} is not installed (scripts/install-shells.sh installs it)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def resources() -> list[Resource]:
    lw = frozenset({"list", "watch", "get"})
    return [
        Resource("", "v1", "configmaps", "ConfigMap", True, lw),
        Resource("", "v1", "secrets", "Secret", True, lw),
        Resource("", "v1", "events", "Event", True, lw),
        Resource("events.k8s.io", "v1", "events", "Event", True, lw),
        Resource("demo.kstream.dev", "v1", "widgets", "Widget", True, lw),
        Resource("", "v1", "bindings", "Binding", True, frozenset({"create"})),
        Resource("", "v1", "pods/log", "Pod", True, frozenset({"get"})),
    ]


@dataclass
class Env:
    root: Path
    work: Path
    kube_a: Path
    kube_b: Path
    vars: dict[str, str]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("completion")
    kube_a, kube_b = root / "a.yaml", root / "b.yaml"
    kube_a.write_text(KUBECONFIG_A)
    kube_b.write_text(KUBECONFIG_B)
    work = root / "work"
    (work / "snaps" / "sub").mkdir(parents=True)
    for name in ("a.ndjson.zst", "b.txt", "c.ndjson", ".hidden.zst"):
        (work / "snaps" / name).write_text("")
    (root / "home").mkdir()
    v = {
        k: val
        for k, val in os.environ.items()
        if not k.startswith(("_KSTREAM", "_TYPER", "KSTREAM", "NO_COLOR", "COMP_"))
    }
    v.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(root / "home"),
        XDG_CACHE_HOME=str(root / "cache"),
        KUBECONFIG=f"{kube_a}{os.pathsep}{kube_b}",
        KSTREAM_COMPLETION_REFRESH="0",
        TERM="dumb",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", v["XDG_CACHE_HOME"])
        completion.save_discovery_cache(SERVER_A, resources(), ["demo-0", "demo-1", "kube-system"])
    yield Env(root, work, kube_a, kube_b, v)


# ------------------------------------------------------------------ drivers


def _read(fd: int, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def pty_complete(
    argv: list[str], env: Env, line: str, capture: Path, timeout: float = 30
) -> list[str]:
    """Start an interactive shell on a pty, wait for its rc to print READY, type
    `line` and TAB, and return what the rc's hook wrote to `capture`."""
    capture.unlink(missing_ok=True)
    e = dict(env.vars, CAPTURE=str(capture))
    master, slave = os.openpty()
    p = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=e, cwd=env.work, start_new_session=True
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + timeout
        while b"READY" not in seen and time.monotonic() < deadline:
            seen += _read(master, 0.1)
        assert b"READY" in seen, f"shell did not start: {seen!r}"
        os.write(master, line.encode() + b"\t")
        while time.monotonic() < deadline:
            if capture.exists():
                return [x for x in capture.read_text().splitlines() if x]
            seen += _read(master, 0.05)
        raise AssertionError(f"no completion for {line!r} within {timeout}s: {seen[-2000:]!r}")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        os.close(master)


BASH_RC = """
PS1='$ '
if [ -n "$WITH_BASH_COMPLETION" ]; then source {bash_completion}; fi
source {script}
__kstream_fn=$(complete -p kstream | sed -E 's/.* -F ([^ ]+) .*/\\1/')
__capture() {{
    "$__kstream_fn" "$@"
    printf '%s\\n' "${{COMPREPLY[@]}}" > "$CAPTURE.part"
    compopt >> "$CAPTURE.part"
    mv "$CAPTURE.part" "$CAPTURE"
}}
eval "$(complete -p kstream | sed -E 's/ -F [^ ]+ / -F __capture /')"
echo READY
"""

ZSH_RC = """
PROMPT='$ '
unsetopt beep
{load}
compadd() {{
    if (( ${{@[(I)-[OAD]]}} )); then builtin compadd "$@"; return; fi
    local -a __hits
    builtin compadd -O __hits "$@"
    (( $#__hits )) && print -rl -- $__hits >> $CAPTURE.part
    builtin compadd "$@"
}}
__capture_done() {{ touch $CAPTURE.part; mv $CAPTURE.part $CAPTURE }}
comppostfuncs=(__capture_done)
print READY
"""
ZSH_FPATH = "fpath=({dir} $fpath); autoload -Uz compinit; compinit -u -d $ZDOTDIR/.zcompdump"
ZSH_SOURCE = "autoload -Uz compinit; compinit -u -d $ZDOTDIR/.zcompdump; source {dir}/_kstream"


def bash_complete(env: Env, line: str, bash_completion: bool = False) -> list[str]:
    """COMPREPLY after TAB (and last, the `compopt` options in force)."""
    bash = need("bash")
    rc = env.root / "bashrc"
    rc.write_text(
        BASH_RC.format(bash_completion=BASH_COMPLETION, script=COMPLETIONS / "kstream.bash")
    )
    if bash_completion:
        if not BASH_COMPLETION.exists():
            if os.environ.get("CI", "").lower() in ("true", "1"):
                pytest.fail("bash-completion is not installed (scripts/install-shells.sh)")
            pytest.skip("bash-completion is not installed (scripts/install-shells.sh)")
        env = Env(**{**env.__dict__, "vars": dict(env.vars, WITH_BASH_COMPLETION="1")})
    argv = [bash, "--noprofile", "--rcfile", str(rc), "-i"]
    return pty_complete(argv, env, line, env.root / "bash.out")


def bash_candidates(env: Env, line: str, bash_completion: bool = False) -> list[str]:
    return [x for x in bash_complete(env, line, bash_completion) if not x.startswith("compopt ")]


def zsh_complete(env: Env, line: str, mode: str = "fpath") -> list[str]:
    zsh = need("zsh")
    zdot = env.root / f"zsh-{mode}"
    zdot.mkdir(exist_ok=True)
    load = (ZSH_FPATH if mode == "fpath" else ZSH_SOURCE).format(dir=COMPLETIONS)
    (zdot / ".zshrc").write_text(ZSH_RC.format(load=load))
    e = Env(**{**env.__dict__, "vars": dict(env.vars, ZDOTDIR=str(zdot))})
    return pty_complete([zsh, "-i"], e, line, env.root / "zsh.out")


def fish_complete(env: Env, line: str) -> list[str]:
    fish = need("fish")
    script = COMPLETIONS / "kstream.fish"
    cmd = f"source {script}; complete -C {_fish_quote(line)}"
    p = subprocess.run(
        [fish, "--no-config", "-c", cmd],
        env=env.vars,
        cwd=env.work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return [x.split("\t")[0] for x in p.stdout.splitlines() if x]


def _fish_quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


SHELLS = {"bash": bash_candidates, "zsh": zsh_complete, "fish": fish_complete}

# (line typed before TAB, candidates that must be offered, candidates that must not)
CASES = [
    ("kstream d", {"dump", "diff"}, {"count"}),
    ("kstream co", {"count"}, set()),
    ("kstream dump --con", {"--context", "--concurrency"}, {"--color"}),
    ("kstream dump --context ", {"alpha", "beta", ARN}, set()),
    ("kstream dump --context b", {"beta"}, {"alpha"}),
    ("kstream dump --kubeconfig ../a.yaml --context ", {"alpha"}, {"beta"}),
    ("kstream dump --color ", {"auto", "always", "never"}, set()),
    ("kstream dump --method w", {"watch-list"}, set()),
    ("kstream dump -r wid", {"widgets"}, set()),
    ("kstream dump --resource configmaps,", {"configmaps,secrets", "configmaps,widgets"}, set()),
    ("kstream dump -r ev", {"events", "events.events.k8s.io"}, set()),
    ("kstream dump --exclude sec", {"secrets"}, set()),
    ("kstream dump -n demo", {"demo-0", "demo-1"}, {"kube-system"}),
    ("kstream dump --context beta -r conf", {"configmaps"}, set()),  # no cache: built-ins
    (
        "kstream count snaps/",
        {"snaps/a.ndjson.zst", "snaps/c.ndjson", "snaps/sub/"},
        {"snaps/b.txt"},
    ),
    ("kstream diff snaps/a", {"snaps/a.ndjson.zst"}, set()),
]


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize(("line", "want", "unwanted"), CASES, ids=[c[0] for c in CASES])
def test_shell_completes(
    shell: str, line: str, want: set[str], unwanted: set[str], env: Env
) -> None:
    got = set(SHELLS[shell](env, line))
    assert want <= got, f"{shell}: {line!r} offered {sorted(got)}"
    assert not (unwanted & got), f"{shell}: {line!r} offered {sorted(unwanted & got)}"


@pytest.mark.parametrize(
    ("line", "want"),
    [("kstream du", {"dump"}), ("kstream dump --context al", {"alpha"})],
)
def test_zsh_completes_when_sourced(line: str, want: set[str], env: Env) -> None:
    assert want <= set(zsh_complete(env, line, mode="source"))


def test_bash_with_bash_completion_keeps_colons(env: Env) -> None:
    # bash splits words at ':'; with bash-completion loaded the script completes the
    # whole context name and hands bash only the part after the typed colons.
    got = bash_candidates(env, "kstream dump --context arn:aws:eks:eu", bash_completion=True)
    assert got == [ARN.removeprefix("arn:aws:eks:")]
    assert "dump" in bash_candidates(env, "kstream du", bash_completion=True)


def test_bash_directory_gets_no_space(env: Env, tmp_path: Path) -> None:
    """A lone directory candidate gets no space after it (so TAB can go on into it);
    other values do. A stand-in `kstream` answers with a directory."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "kstream").write_text("#!/bin/sh\necho snaps/sub/\n")
    (fake / "kstream").chmod(0o755)
    e = Env(
        **{**env.__dict__, "vars": dict(env.vars, PATH=f"{fake}{os.pathsep}{env.vars['PATH']}")}
    )
    out = bash_complete(e, "kstream count snaps/s")
    assert out[0] == "snaps/sub/"
    assert "-o nospace" in out[-1]
    out = bash_complete(env, "kstream dump --context b")
    assert out[0] == "beta"
    assert "-o nospace" not in out[-1]


def test_completion_is_fast_and_offline(env: Env) -> None:
    """A tab press reads local files only: no cache, unreachable server, still instant."""
    e = dict(
        env.vars,
        _KSTREAM_COMPLETE="complete_bash",
        COMP_WORDS="kstream dump --context beta -r ",
        COMP_CWORD="5",
    )
    t0 = time.monotonic()
    p = subprocess.run([str(VENV_BIN / "kstream")], env=e, capture_output=True, text=True)
    assert time.monotonic() - t0 < 5
    assert "configmaps" in p.stdout.split()


def test_kubectl_plugin_completion(env: Env) -> None:
    """`kubectl kstream <TAB>` goes through kubectl_complete-kstream on PATH."""
    e = dict(env.vars, PATH=f"{COMPLETIONS}{os.pathsep}{env.vars['PATH']}")
    p = subprocess.run(
        [KUBECTL, "__complete", "kstream", "dump", "--context", ""],
        env=e,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = p.stdout.splitlines()
    assert {"alpha", "beta"} <= {x.split("\t")[0] for x in lines}, p.stdout + p.stderr
    assert lines[-1] == ":4"
    p = subprocess.run(
        [KUBECTL, "__complete", "kstream", "du"], env=e, capture_output=True, text=True, timeout=60
    )
    assert p.stdout.splitlines()[0].split("\t")[0] == "dump"


# ------------------------------------------------------------------ values, without a shell


def test_contexts_merge_like_kubectl(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{env.kube_a}{os.pathsep}{env.kube_b}")
    view = completion.read_kubeconfig(None)
    assert list(view.contexts) == ["alpha", "beta", ARN]
    assert view.current == "alpha"  # the first file that sets it wins
    assert view.server("alpha") == SERVER_A  # so does the first definition of a name
    assert view.server("beta") == SERVER_B
    assert view.server(None) == SERVER_A
    assert view.server("nope") is None
    names = dict(completion.context_names(None))
    assert names["alpha"] == "cluster ca, namespace team-a, current"


def test_completion_reads_the_kubeconfig_kstream_connects_with(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Completion offers the contexts and namespaces of the kubeconfig kstream
    resolves (kubeclient: no `~` expansion, --kubeconfig is one file name), not
    those of a reading of its own."""
    from kstream.cluster.client import kubeconfig_files, resolve

    home = tmp_path / "home"
    home.mkdir()
    (home / "a.yaml").write_text(KUBECONFIG_A)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", env.vars["XDG_CACHE_HOME"])
    # KUBECONFIG='~/a.yaml:b.yaml' (quoted): "~/a.yaml" names no file, b.yaml wins
    monkeypatch.chdir(env.root)
    monkeypatch.setenv("KUBECONFIG", f"~/a.yaml{os.pathsep}b.yaml")
    live = resolve(kubeconfig_files(None))
    assert (live.context, live.server, live.namespace) == ("beta", SERVER_B, "default")
    view = completion.read_kubeconfig(None)
    assert view.current == live.context and view.server(None) == live.server
    assert [n for n, d in completion.context_names(None) if "current" in d] == ["beta"]
    assert dict(completion.context_names(None))["alpha"] == "cluster cb"  # b's alpha
    # alpha as kstream connects to it: b's, with no namespace (a's team-a is not offered)
    assert resolve(kubeconfig_files(None), "alpha").namespace == "default"
    assert "team-a" not in dict(completion.namespace_names(None, "alpha"))
    # --kubeconfig with a ':' in the file's name: that one file, as kstream reads it
    colon = tmp_path / "x:y.yaml"
    colon.write_text(KUBECONFIG_A)
    assert resolve(kubeconfig_files(str(colon))).context == "alpha"
    assert [n for n, _ in completion.context_names(str(colon))] == ["alpha"]
    assert dict(completion.namespace_names(str(colon), None))["team-a"] == "the context's namespace"


def test_kubeconfig_env_and_missing_files(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{env.root / 'missing.yaml'}{os.pathsep}{env.kube_b}")
    assert [n for n, _ in completion.context_names(None)] == ["beta", "alpha", ARN]
    (env.root / "broken.yaml").write_text("contexts: [")
    assert completion.context_names(str(env.root / "broken.yaml")) == []
    monkeypatch.setenv("KUBECONFIG", "")
    monkeypatch.setenv("HOME", str(env.root / "home"))
    assert completion.context_names(None) == []


def test_resource_candidates_from_cache(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", env.vars["XDG_CACHE_HOME"])
    doc = completion.load_cache(SERVER_A)
    assert doc is not None and doc["server"] == SERVER_A
    names = dict(completion.resource_candidates(doc))
    assert names["widgets"] == "Widget (demo.kstream.dev)"
    assert "events.events.k8s.io" in names and "events" in names  # ambiguous plural
    assert "configmaps.v1" not in names and "bindings" not in names  # not list+watch
    assert not any("/" in n for n in names)  # subresources
    assert dict(completion.resource_candidates(None))["pods"] == "Pod"


def test_comma_list() -> None:
    cands = [("configmaps", ""), ("secrets", ""), ("services", "")]
    assert [v for v, _ in completion.comma_list("", cands)] == ["configmaps", "secrets", "services"]
    assert [v for v, _ in completion.comma_list("configmaps,se", cands)] == [
        "configmaps,secrets",
        "configmaps,services",
    ]
    assert [v for v, _ in completion.comma_list("secrets,", cands)] == [
        "secrets,configmaps",
        "secrets,services",
    ]


def test_snapshot_paths(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(env.work)
    assert [v for v, _ in completion.snapshot_paths("")] == ["snaps/"]
    assert [v for v, _ in completion.snapshot_paths("snaps/")] == [
        "snaps/a.ndjson.zst",
        "snaps/c.ndjson",
        "snaps/sub/",
    ]
    assert [v for v, _ in completion.snapshot_paths("snaps/.")] == ["snaps/.hidden.zst"]
    assert completion.snapshot_paths("nowhere/x") == []
    monkeypatch.setenv("HOME", str(env.work))
    assert [v for v, _ in completion.snapshot_paths("~/snaps/c")] == ["~/snaps/c.ndjson"]


def test_stale_cache_refreshes_in_background_once(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(completion.REFRESH_ENV, "1")
    started: list[list[str]] = []

    class FakePopen:
        def __init__(self, cmd: list[str], **kw: object) -> None:
            assert kw.get("start_new_session") is True  # detached
            assert kw.get("stdin") == subprocess.DEVNULL
            started.append(cmd)

    monkeypatch.setattr(completion.subprocess, "Popen", FakePopen)
    kc = str(env.kube_a)
    # no cache: built-in names at once, one refresh started
    assert "configmaps" in dict(completion.resource_names(kc, None))
    assert started == [[sys.executable, "-m", "kstream.completion", "refresh", "--kubeconfig", kc]]
    # a second tab press within REFRESH_BACKOFF starts none
    completion.resource_names(kc, None)
    assert len(started) == 1
    # a stale cache is still used while it is refreshed
    path = completion.save_discovery_cache(SERVER_A, resources(), ["ns1"])
    assert path is not None
    doc = json.loads(path.read_text())
    doc["written"] -= completion.CACHE_TTL + 1
    path.write_text(json.dumps(doc))
    completion.cache_file(SERVER_A).with_suffix(".refresh").unlink()
    assert "widgets" in dict(completion.resource_names(kc, "alpha"))
    assert [n for n, _ in completion.namespace_names(kc, "alpha")] == ["ns1", "team-a"]
    assert started[-1][-2:] == ["--context", "alpha"] and len(started) == 2
    # fresh cache: no refresh
    completion.save_discovery_cache(SERVER_A, resources())
    completion.resource_names(kc, None)
    assert len(started) == 2
    # turned off
    monkeypatch.setenv(completion.REFRESH_ENV, "0")
    completion.cache_file(SERVER_A).unlink()
    completion.cache_file(SERVER_A).with_suffix(".refresh").unlink()
    completion.resource_names(kc, None)
    assert len(started) == 2


def test_save_keeps_namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    completion.save_discovery_cache(SERVER_A + "/", resources(), ["a", "b"])
    completion.save_discovery_cache(SERVER_A, resources())  # e.g. from kstream dump
    doc = completion.load_cache(SERVER_A)
    assert doc is not None and doc["namespaces"] == ["a", "b"]
    assert list(tmp_path.glob("kstream/discovery/*.tmp")) == []
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # unwritable
    assert completion.save_discovery_cache(SERVER_A, resources()) is None


@pytest.mark.cluster
def test_refresh_from_the_control_plane(cluster: object, tmp_path: Path) -> None:
    from tests.conftest import Cluster

    assert isinstance(cluster, Cluster)
    doc = completion_refresh(cluster.kubeconfig, tmp_path)
    names = dict(completion.resource_candidates(doc))
    assert {"widgets", "configmaps", "deployments", "namespaces"} <= set(names)
    assert {"demo-0", "demo-1", "demo-2", "default"} <= set(doc["namespaces"])
