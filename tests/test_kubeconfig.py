"""Kubeconfig merging, differential against the pinned kubectl: for a table of
multi-file kubeconfigs (KUBECONFIG=a:b...) kstream must resolve the same context,
server, cluster and user entries (credentials included, file references resolved
to the same files) and namespace as `kubectl config view --merge --minify`.

client-go's rules (tools/clientcmd/loader.go): for clusters, users and contexts
the first file that defines a name wins; current-context comes from the first file
that sets a non-empty one; empty entries and missing files are skipped; relative
file references resolve against the directory of the file they are written in;
--context overrides current-context."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kstream.cluster.client import (
    Client,
    ConnectSettings,
    KubeconfigFiles,
    kubeconfig_files,
    resolve,
)
from kstream.errors import ConfigError
from tests.conftest import KUBECTL, Cluster, kstream

# ---------------------------------------------------------------- the table


def kc(
    current: str | None = None,
    clusters: dict[str, dict[str, Any]] | None = None,
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]] | None = None,
) -> str:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if current is not None:
        doc["current-context"] = current
    doc["clusters"] = [{"name": n, "cluster": b} for n, b in (clusters or {}).items()]
    doc["users"] = [{"name": n, "user": b} for n, b in (users or {}).items()]
    doc["contexts"] = [{"name": n, "context": b} for n, b in (contexts or {}).items()]
    return json.dumps(doc, indent=1)


def srv(port: int, **extra: Any) -> dict[str, Any]:
    return {"server": f"https://192.0.2.1:{port}", **extra}


@dataclass
class Case:
    files: dict[str, str]  # relative path -> content
    kubeconfig: str  # $KUBECONFIG, relative to the case directory (the cwd)
    context: str | None = None
    data: dict[str, str] = field(default_factory=dict)  # other files (certificates...)


A_ONLY = kc(
    "ctx-a",
    {"c-a": srv(1001)},
    {"u-a": {"token": "token-a"}},
    {"ctx-a": {"cluster": "c-a", "user": "u-a", "namespace": "ns-a"}},
)
B_ONLY = kc(
    "ctx-b",
    {"c-b": srv(1002)},
    {"u-b": {"token": "token-b"}},
    {"ctx-b": {"cluster": "c-b", "user": "u-b"}},
)
# the same cluster, user and context names in both files, different contents
SHARED_A = kc(
    "x",
    {"shared": srv(2001), "only-a": srv(2003)},
    {"same": {"token": "token-from-a"}},
    {"x": {"cluster": "shared", "user": "same", "namespace": "from-a"}},
)
SHARED_B = kc(
    "y",
    {"shared": srv(2002, **{"insecure-skip-tls-verify": True})},
    {"same": {"token": "token-from-b", "username": "b"}},
    {
        "y": {"cluster": "shared", "user": "same"},
        "x": {"cluster": "only-a", "user": "same", "namespace": "from-b"},
    },
)
# certificates referenced by relative paths from two directories
CERTS_A = kc(
    "ca",
    {"cl": {**srv(3001), "certificate-authority": "ca.crt"}},
    {"us": {"client-certificate": "certs/user.crt", "client-key": "certs/user.key"}},
    {"ca": {"cluster": "cl", "user": "us"}},
)
CERTS_B = kc(
    "cb",
    {
        "cl": {**srv(3002), "certificate-authority": "other-ca.crt"},
        "cl-b": {**srv(3003), "certificate-authority": "../a/ca.crt"},
    },
    {
        "us": {"client-certificate": "b.crt", "client-key": "b.key"},
        "us-b": {"tokenFile": "token", "exec": None},
        "us-exec": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "./bin/credential-helper",
            }
        },
    },
    {
        "cb": {"cluster": "cl-b", "user": "us-b"},
        "cb-cl": {"cluster": "cl", "user": "us"},
        "cb-exec": {"cluster": "cl-b", "user": "us-exec"},
    },
)
CERT_FILES = {
    "a/ca.crt": "CA OF A\n",
    "a/certs/user.crt": "CERT OF A\n",
    "a/certs/user.key": "KEY OF A\n",
    "b/other-ca.crt": "CA OF B\n",
    "b/b.crt": "CERT OF B\n",
    "b/b.key": "KEY OF B\n",
    "b/token": "TOKEN FILE OF B\n",
}

CASES: dict[str, Case] = {
    "conflicting-current-context": Case({"a": A_ONLY, "b": B_ONLY}, "a:b"),
    "conflicting-current-context-reversed": Case({"a": A_ONLY, "b": B_ONLY}, "b:a"),
    "same-names-first-file-wins": Case({"a": SHARED_A, "b": SHARED_B}, "a:b"),
    "same-names-second-context": Case({"a": SHARED_A, "b": SHARED_B}, "a:b", context="y"),
    "same-names-reversed": Case({"a": SHARED_A, "b": SHARED_B}, "b:a"),
    "same-names-reversed-context-x": Case({"a": SHARED_A, "b": SHARED_B}, "b:a", context="x"),
    "context-only-in-second-file": Case(
        {"a": kc("ctx-b", {"c-a": srv(1001)}), "b": B_ONLY.replace('"ctx-b",', '"",', 1)}, "a:b"
    ),
    "current-context-only-in-second-file": Case(
        {"a": kc(None, {"c-b": srv(4001)}, {"u-b": {"token": "from-a"}}), "b": B_ONLY}, "a:b"
    ),
    "empty-current-context-first": Case({"a": kc("", {"c-a": srv(1)}), "b": B_ONLY}, "a:b"),
    "missing-file-in-list": Case({"a": A_ONLY, "b": B_ONLY}, "missing:b:a"),
    "empty-entries": Case({"a": A_ONLY, "b": B_ONLY}, ":b::a:"),
    "empty-file-first": Case({"empty": "", "b": B_ONLY, "a": A_ONLY}, "empty:b:a"),
    "same-file-twice": Case({"a": A_ONLY, "b": B_ONLY}, "b:a:b"),
    "context-flag-overrides": Case({"a": A_ONLY, "b": B_ONLY}, "a:b", context="ctx-b"),
    "context-flag-empty-is-current": Case({"a": A_ONLY, "b": B_ONLY}, "b:a", context=""),
    "relative-certificates": Case(
        {"a/config": CERTS_A, "b/config": CERTS_B}, "a/config:b/config", data=CERT_FILES
    ),
    "relative-certificates-reversed": Case(
        {"a/config": CERTS_A, "b/config": CERTS_B}, "b/config:a/config", data=CERT_FILES
    ),
    "relative-certificates-context-cl": Case(
        {"a/config": CERTS_A, "b/config": CERTS_B},
        "b/config:a/config",
        context="cb-cl",
        data=CERT_FILES,
    ),
    "relative-token-file": Case(
        {"a/config": CERTS_A, "b/config": CERTS_B},
        "a/config:b/config",
        context="cb",
        data=CERT_FILES,
    ),
    "relative-exec-command": Case(
        {"a/config": CERTS_A, "b/config": CERTS_B},
        "a/config:b/config",
        context="cb-exec",
        data=CERT_FILES,
    ),
}


def materialise(case: Case, d: Path) -> None:
    for name, text in {**case.files, **case.data}.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


# ---------------------------------------------------------------- kubectl's answer


def kubectl_view(d: Path, case: Case, flatten: bool) -> dict[str, Any]:
    args = [KUBECTL, "config", "view", "--merge", "--minify", "--raw", "-o", "json"]
    if flatten:
        args.append("--flatten")
    if case.context is not None:
        args += ["--context", case.context]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = case.kubeconfig.replace(":", os.pathsep)
    p = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc: dict[str, Any] = json.loads(p.stdout)
    return doc


def kubectl_current_context(d: Path, case: Case) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = case.kubeconfig.replace(":", os.pathsep)
    p = subprocess.run(
        [KUBECTL, "config", "current-context"], cwd=d, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


FILE_KEYS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
}


def flattened(body: dict[str, Any]) -> dict[str, Any]:
    """Like `kubectl config view --flatten`: file references become -data."""
    out = dict(body)
    for key, data_key in FILE_KEYS.items():
        if out.get(key):
            out[data_key] = base64.b64encode(Path(out.pop(key)).read_bytes()).decode()
    return out


def origin_of(d: Path, case: Case, section: str, name: str, body: dict[str, Any]) -> Path:
    """The file the entry kubectl shows comes from: the one whose entry of that name
    is written exactly so (the table gives entries of the same name different bodies)."""
    for path in case.kubeconfig.split(":"):
        if not path or not (d / path).is_file() or not (d / path).read_text().strip():
            continue
        doc = json.loads((d / path).read_text())
        key = section[:-1]
        for item in doc.get(section) or []:
            if item["name"] == name and {k: v for k, v in item[key].items() if v is not None} == {
                k: v for k, v in body.items() if v is not None and k in item[key]
            }:
                return d / path
    raise AssertionError(f"no file defines {section} {name} as kubectl shows it")


def _norm(body: dict[str, Any]) -> dict[str, Any]:
    """Drop the null/empty fields kubectl prints for an exec entry."""
    out = {k: v for k, v in body.items() if v is not None}
    if isinstance(out.get("exec"), dict):
        out["exec"] = {
            k: v for k, v in out["exec"].items() if v not in (None, False, [], "") or k == "command"
        }
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_resolve_matches_kubectl(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    materialise(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    files = kubeconfig_files(None, {"KUBECONFIG": case.kubeconfig.replace(":", os.pathsep)})
    got = resolve(files, case.context)

    want = kubectl_view(tmp_path, case, flatten=False)
    (kctx,) = want["contexts"]
    (kcluster,) = want["clusters"]
    if case.context is None:
        assert got.context == kubectl_current_context(tmp_path, case)
    assert got.context == want["current-context"] == kctx["name"]
    assert got.cluster == kcluster["name"]
    assert got.server == kcluster["cluster"]["server"]
    assert got.user == (kctx["context"].get("user") or "")
    assert got.namespace == (kctx["context"].get("namespace") or "default")

    # the entries themselves, with every file reference resolved as kubectl does
    ours_cluster = got.config["clusters"][0]["cluster"]
    ours_users = got.config["users"]
    theirs_users = want.get("users") or []
    assert len(ours_users) == len(theirs_users)
    flat = kubectl_view(tmp_path, case, flatten=True)
    assert flattened(ours_cluster) == flat["clusters"][0]["cluster"]
    if ours_users:
        ours_user = ours_users[0]["user"]
        assert ours_users[0]["name"] == theirs_users[0]["name"] == got.user
        # content of the CA, certificate and key files: kubectl read them itself
        assert _norm(
            {k: v for k, v in flattened(ours_user).items() if k not in ("tokenFile", "exec")}
        ) == _norm(
            {k: v for k, v in flat["users"][0]["user"].items() if k not in ("tokenFile", "exec")}
        )
        # tokenFile and an exec command with a slash: kubectl shows them as written;
        # they resolve against the directory of the file the entry is written in
        theirs = _norm(theirs_users[0]["user"])
        origin = origin_of(tmp_path, case, "users", got.user, theirs)
        if "tokenFile" in theirs:
            assert ours_user["tokenFile"] == os.path.normpath(origin.parent / theirs["tokenFile"])
            assert Path(ours_user["tokenFile"]).read_text() == "TOKEN FILE OF B\n"
        if "exec" in theirs:
            cmd = theirs["exec"]["command"]
            assert ours_user["exec"]["command"] == os.path.normpath(origin.parent / cmd)


@pytest.mark.parametrize("name", ["conflicting-current-context", "same-names-first-file-wins"])
def test_client_connects_where_kubectl_would(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection itself (not only resolve()) goes to kubectl's server, with
    kubectl's user's token."""
    case = CASES[name]
    materialise(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", case.kubeconfig.replace(":", os.pathsep))
    want = kubectl_view(tmp_path, case, flatten=False)
    client = Client(ConnectSettings(context=case.context))
    assert client.host == want["clusters"][0]["cluster"]["server"]
    assert client.context == want["current-context"]
    token = want["users"][0]["user"]["token"]
    assert client._headers("application/json")["authorization"] == f"Bearer {token}"


# ---------------------------------------------------------------- file selection


def test_kubeconfig_flag_replaces_the_environment(tmp_path: Path) -> None:
    env = {"KUBECONFIG": f"{tmp_path}/x{os.pathsep}{tmp_path}/y"}
    assert kubeconfig_files("/k/one", env) == KubeconfigFiles(("/k/one",), explicit=True)
    assert kubeconfig_files(None, env) == KubeconfigFiles(
        (f"{tmp_path}/x", f"{tmp_path}/y"), explicit=False
    )
    assert (
        kubeconfig_files(None, {"KUBECONFIG": "", "HOME": "/h"}).paths[0].endswith("/.kube/config")
    )


def test_missing_file_named_by_kubeconfig_flag_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").write_text(A_ONLY)
    files = kubeconfig_files(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"kubeconfig not found: .*missing"):
        resolve(files)
    # a list in KUBECONFIG: the missing file is skipped
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}{os.pathsep}{tmp_path / 'a'}"}
    assert resolve(kubeconfig_files(None, env)).server == "https://192.0.2.1:1001"


def _kubectl_flag(d: Path, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [KUBECTL, *args, "--kubeconfig", kubeconfig],
        cwd=d,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubeconfig_flag_is_one_file_name_like_kubectl(tmp_path: Path) -> None:
    """--kubeconfig names ONE file, as in kubectl: a ':' is part of the name (only
    $KUBECONFIG is a list). A file called "a:b" is read; separate files a and b are
    not merged through the flag (kubectl fails on the missing "a:b")."""
    (tmp_path / "a:b").write_text(A_ONLY)
    named = str(tmp_path / "a:b")
    p = _kubectl_flag(tmp_path, named, "config", "current-context")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ctx-a"
    assert kubeconfig_files(named) == KubeconfigFiles((named,), explicit=True)
    assert resolve(kubeconfig_files(named)).context == "ctx-a"
    # two files joined with ':' on the flag: kubectl does not merge them, nor does kstream
    other = tmp_path / "other"
    other.mkdir()
    (other / "a").write_text(A_ONLY)
    (other / "b").write_text(B_ONLY)
    joined = f"{other / 'a'}{os.pathsep}{other / 'b'}"
    # (a command that loads the config: `config current-context` tolerates a missing file)
    p = _kubectl_flag(tmp_path, joined, "get", "namespaces", "--request-timeout", "5s")
    assert p.returncode != 0 and f"stat {joined}: no such file" in p.stderr, p.stderr
    with pytest.raises(ConfigError, match=r"kubeconfig not found: .*/a:.*/b$"):
        resolve(kubeconfig_files(joined))
    # the same through the command line: one clear line, the config exit code
    r = kstream("count", "-q", "-r", "namespaces", "--kubeconfig", joined)
    assert r.code == 4 and f"kubeconfig not found: {joined}" in r.err, r.err
    (tmp_path / "x:y").write_text(
        kc("here", {"c": {"server": "https://127.0.0.1:1"}}, {}, {"here": {"cluster": "c"}})
    )
    flag = str(tmp_path / "x:y")
    r = kstream("count", "-q", "-r", "namespaces", "--kubeconfig", flag, "--timeout", "5")
    assert r.code == 5 and "127.0.0.1:1" in r.err, r.err  # read, and its server tried


def test_no_tilde_expansion_like_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KUBECONFIG='~/a:b' (quoted, so the shell did not expand it): kubectl skips
    "~/a" as missing and uses b; so must kstream."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "a").write_text(A_ONLY)
    (tmp_path / "b").write_text(B_ONLY)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    env = {"KUBECONFIG": f"~/a{os.pathsep}b"}
    assert resolve(kubeconfig_files(None, env)).context == "ctx-b"
    case = Case({}, f"~/a{os.pathsep}b")
    assert kubectl_current_context(tmp_path, case) == "ctx-b"


def test_duplicate_name_in_one_file_is_an_error(tmp_path: Path) -> None:
    doc = json.loads(A_ONLY)
    doc["clusters"].append({"name": "c-a", "cluster": srv(9)})
    (tmp_path / "a").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match='duplicate name "c-a" in clusters'):
        resolve(KubeconfigFiles((str(tmp_path / "a"),)))
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = str(tmp_path / "a")
    p = subprocess.run([KUBECTL, "config", "view"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "duplicate name" in p.stderr  # kubectl refuses it too


# ---------------------------------------------------------------- on the real cluster


@pytest.mark.cluster
def test_a_colon_b_reaches_the_first_files_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """a: the real cluster, current-context kstream-local. b: another context on a
    port where nothing listens, set as b's current-context. KUBECONFIG=a:b must
    reach the real cluster (kubectl does); b:a must not."""
    real = tmp_path / "a"
    real.write_text(cluster.kubeconfig.read_text())
    bogus = tmp_path / "b"
    bogus.write_text(
        kc(
            "elsewhere",
            {"elsewhere": {"server": "https://127.0.0.1:1"}},
            {"nobody": {"token": "not-a-real-token"}},
            {"elsewhere": {"cluster": "elsewhere", "user": "nobody"}},
        )
    )
    ab = f"{real}{os.pathsep}{bogus}"
    r = kstream("count", "-q", "-o", "json", "-r", "namespaces", env={"KUBECONFIG": ab})
    assert r.code == 0, r.err
    assert json.loads(r.out)["server"] == json.loads(real.read_text())["clusters"][0]["cluster"][
        "server"
    ].rstrip("/")
    out = tmp_path / "snap.ndjson"
    r = kstream(
        "dump", "-q", "-n", "demo-0", "-r", "configmaps", "-o", str(out), env={"KUBECONFIG": ab}
    )
    assert r.code == 0, r.err
    assert out.read_text().count("\n") > 0
    sel = ("-n", "demo-0", "-r", "configmaps")
    r = kstream("diff", str(out), "--live", *sel, env={"KUBECONFIG": ab})
    assert r.code == 0, r.err  # the same cluster: no differences
    # the other order selects the unreachable context, as kubectl would
    ba = f"{bogus}{os.pathsep}{real}"
    r = kstream("count", "-q", "-r", "namespaces", "--timeout", "5", env={"KUBECONFIG": ba})
    assert r.code == 5 and "127.0.0.1:1" in r.err, r.err
    r = kstream("diff", str(out), "--live", *sel, "--timeout", "5", env={"KUBECONFIG": ba})
    assert r.code == 5 and "127.0.0.1:1" in r.err, r.err
    # and --context picks the real one back from the second file
    r = kstream(
        "count", "-q", "-o", "json", "-r", "namespaces", "--context", "kstream-local",
        env={"KUBECONFIG": ba},
    )  # fmt: skip
    assert r.code == 0, r.err
