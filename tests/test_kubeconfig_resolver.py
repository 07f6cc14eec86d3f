"""The small kubeconfig resolver (kstream.cluster.auth) against the `kubernetes`
package's loader (kstream.cluster.client.kubernetes_configuration, the code path kstream
used before) and, for exec plugins, against the pinned kubectl.

For every kubeconfig of the corpus, both loaders must give the same server, the
same credentials (Authorization header, client certificate and key) and the same
TLS settings (CA, verify, server name, proxy); or the small resolver declines
(Fallback) and Client uses the kubernetes package, with today's result or error.
Where kubectl defines a behaviour the kubernetes package does not follow (a failing
exec plugin is an error, not an anonymous request; KUBERNETES_EXEC_INFO), the
small resolver follows kubectl, checked here against kubectl itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from kstream.cluster import auth as kubeauth
from kstream.cluster.client import (
    Client,
    ConnectSettings,
    Urllib3Pool,
    _kubernetes_auth,
    build_pool,
    kubeconfig_files,
    kubernetes_configuration,
    resolve,
)
from kstream.cluster.httppool import Pool
from kstream.errors import AuthError, ConfigError, KstreamError
from kstream.exitcodes import ExitCode
from tests.conftest import KUBECTL, Cluster

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)
        monkeypatch.delenv(v.upper(), raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KSTREAM_CONFIG_LOADER", raising=False)


# ------------------------------------------------------------------ material


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A CA certificate and a client certificate + key (real PEM, loadable)."""
    d = tmp_path_factory.mktemp("pki")
    for name in ("ca", "client"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt")],
            check=True, capture_output=True,
        )  # fmt: skip
    return {
        "ca": (d / "ca.crt").read_bytes(),
        "cert": (d / "client.crt").read_bytes(),
        "key": (d / "client.key").read_bytes(),
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plugin(tmp: Path, name: str, body: str) -> Path:
    """An exec plugin: a Python script (body runs with json, os, sys imported)."""
    p = tmp / name
    p.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    p.chmod(0o755)
    return p


def cred(version: str = "v1", expires: str | None = None, **status: str) -> str:
    st: dict[str, Any] = dict(status)
    if expires:
        st["expirationTimestamp"] = expires
    doc = {
        "apiVersion": f"client.authentication.k8s.io/{version}",
        "kind": "ExecCredential",
        "status": st,
    }
    return json.dumps(doc)


def exec_spec(command: str, version: str = "v1", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "apiVersion": f"client.authentication.k8s.io/{version}",
        "command": command,
    }
    if version == "v1":
        spec["interactiveMode"] = "Never"
    spec.update(extra)
    return spec


def write_kc(path: Path, cluster: dict[str, Any], user: dict[str, Any] | None) -> None:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "cl", "cluster": cluster}],
        "users": [{"name": "u", "user": user}] if user is not None else [],
        "contexts": [{"name": "c", "context": {"cluster": "cl", "user": "u"}}],
    }
    path.write_text(json.dumps(doc))


# ------------------------------------------------------------------ comparing


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def via_small(kubeconfig: str | None) -> dict[str, Any]:
    r = resolve(kubeconfig_files(kubeconfig))
    t = kubeauth.from_kubeconfig(r.config, environ={})
    tls = t.tls
    return {
        "host": t.host,
        "verify": tls.verify,
        "ca": tls.ca_data if tls.ca_data is not None else _read(tls.ca_file),
        "cert": tls.cert_data if tls.cert_data is not None else _read(tls.cert_file),
        "key": tls.key_data if tls.key_data is not None else _read(tls.key_file),
        "server_name": tls.server_name,
        "proxy": tls.proxy_url,
        "auth": t.auth(),
    }


def via_kubernetes(kubeconfig: str | None) -> dict[str, Any]:
    r = resolve(kubeconfig_files(kubeconfig))
    cfg = kubernetes_configuration(r)
    return {
        "host": cfg.host,
        "verify": cfg.verify_ssl,
        "ca": _read(cfg.ssl_ca_cert),
        "cert": _read(cfg.cert_file),
        "key": _read(cfg.key_file),
        "server_name": cfg.tls_server_name,
        "proxy": cfg.proxy,
        "auth": _kubernetes_auth(cfg),
    }


def outcome(fn: Any, kubeconfig: str) -> tuple[str, Any]:
    try:
        return "ok", fn(kubeconfig)
    except kubeauth.Fallback as e:
        return "fallback", str(e)
    except KstreamError as e:
        return "error", (type(e).__name__, int(e.exit_code), e.message)


def client_outcome(kubeconfig: str, loader: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    if loader:
        monkeypatch.setenv("KSTREAM_CONFIG_LOADER", loader)
    else:
        monkeypatch.delenv("KSTREAM_CONFIG_LOADER", raising=False)
    try:
        c = Client(ConnectSettings(kubeconfig=kubeconfig))
        return ("ok", c.host, c._headers("application/json").get("authorization"), c.loader)
    except KstreamError as e:
        return ("error", type(e).__name__, int(e.exit_code), e.message)


# ------------------------------------------------------------------ the corpus


@dataclass
class Case:
    cluster: dict[str, Any]
    user: dict[str, Any] | None
    expect: str  # "same": the small resolver handles it, same result; "fallback"
    files: dict[str, bytes] = field(default_factory=dict)  # relative to the kubeconfig dir


SERVER = "https://192.0.2.10:6443"


def corpus(pki: dict[str, bytes]) -> dict[str, Case]:
    ca, cert, key = pki["ca"], pki["cert"], pki["key"]
    ca_data = {"server": SERVER, "certificate-authority-data": b64(ca)}
    return {
        "token": Case(ca_data, {"token": "tok-123"}, "same"),
        "token-file-relative": Case(
            {"server": SERVER, "certificate-authority": "pki/ca.pem"},
            {"tokenFile": "secret/tok"},
            "same",
            {"pki/ca.pem": ca, "secret/tok": b"file-tok"},
        ),
        "token-wins-over-token-file": Case(
            ca_data, {"token": "inline", "tokenFile": "tok"}, "same", {"tok": b"from-file"}
        ),
        "cert-key-files": Case(
            ca_data,
            {"client-certificate": "c.crt", "client-key": "k/c.key"},
            "same",
            {"c.crt": cert, "k/c.key": key},
        ),
        "cert-key-data": Case(
            ca_data, {"client-certificate-data": b64(cert), "client-key-data": b64(key)}, "same"
        ),
        "cert-and-token": Case(
            ca_data,
            {"token": "t", "client-certificate-data": b64(cert), "client-key-data": b64(key)},
            "same",
        ),
        "data-wins-over-file": Case(
            {"server": SERVER, "certificate-authority": "nowhere.pem", **ca_data}, {}, "same"
        ),
        "ca-file-absolute": Case({"server": SERVER, "certificate-authority": "ABS:ca.pem"}, {}, "same", {"ca.pem": ca}),
        "no-ca-system-roots": Case({"server": SERVER}, {"token": "t"}, "same"),
        "insecure-skip-tls-verify": Case(
            {"server": SERVER, "insecure-skip-tls-verify": True}, {"token": "t"}, "same"
        ),
        "tls-server-name": Case({**ca_data, "tls-server-name": "api.internal"}, {"token": "t"}, "same"),
        "proxy-url": Case({**ca_data, "proxy-url": "http://127.0.0.1:3128"}, {"token": "t"}, "same"),
        "http-server-ignores-tls-files": Case(
            {"server": "http://192.0.2.10:8080", "certificate-authority": "missing.pem"},
            {"token": "t"},
            "same",
        ),
        "anonymous-no-user": Case(ca_data, None, "same"),
        "empty-user": Case(ca_data, {}, "same"),
        "token-with-impersonation": Case(ca_data, {"token": "t", "as": "someone"}, "same"),
        "trailing-slash-server": Case({**ca_data, "server": SERVER + "/"}, {"token": "t"}, "same"),
        # declined: the kubernetes package decides (same result or error as before)
        "auth-provider": Case(
            ca_data,
            {"auth-provider": {"name": "oidc", "config": {"id-token": "a.b.c", "client-id": "x"}}},
            "fallback",
        ),
        "basic-auth": Case(ca_data, {"username": "admin", "password": "pw"}, "fallback"),
        "socks-proxy": Case({**ca_data, "proxy-url": "socks5://127.0.0.1:1080"}, {"token": "t"}, "fallback"),
        "skip-verify-not-bool": Case({**ca_data, "insecure-skip-tls-verify": "yes"}, {"token": "t"}, "fallback"),
        "token-not-string": Case(ca_data, {"token": 12345}, "fallback"),
        "missing-cert-file": Case(ca_data, {"client-certificate": "gone.crt", "client-key": "k.key"}, "fallback", {"k.key": key}),
        "missing-key-file": Case(ca_data, {"client-certificate": "c.crt", "client-key": "gone.key"}, "fallback", {"c.crt": cert}),
        "ca-is-a-directory": Case({"server": SERVER, "certificate-authority": "cadir"}, {"token": "t"}, "fallback", {"cadir/x": b""}),
        "missing-ca-file": Case({"server": SERVER, "certificate-authority": "nope.pem"}, {"token": "t"}, "fallback"),
        "bad-base64-ca": Case({"server": SERVER, "certificate-authority-data": "abc"}, {"token": "t"}, "fallback"),
        "bad-base64-cert": Case(ca_data, {"client-certificate-data": "x", "client-key-data": b64(key)}, "fallback"),
        "missing-token-file": Case(ca_data, {"tokenFile": "no-such-token"}, "fallback"),
        "exec-old-api-version": Case(
            ca_data, {"exec": exec_spec("true", version="v1alpha1")}, "fallback"
        ),
    }  # fmt: skip


def materialize(tmp: Path, case: Case) -> str:
    for rel, data in case.files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    cluster = {
        k: (str(tmp / v[4:]) if isinstance(v, str) and v.startswith("ABS:") else v)
        for k, v in case.cluster.items()
    }
    kc = tmp / "config"
    write_kc(kc, cluster, case.user)
    return str(kc)


CASES = list(corpus({"ca": b"", "cert": b"", "key": b""}))


@pytest.mark.filterwarnings("ignore:SOCKS support")  # urllib3, for the socks case
@pytest.mark.parametrize("name", CASES)
def test_corpus_same_as_kubernetes_package(
    name: str, pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = corpus(pki)[name]
    kc = materialize(tmp_path, case)
    monkeypatch.chdir(tmp_path.parent)  # relative paths resolve against the file, not the cwd
    small = outcome(via_small, kc)
    old = outcome(via_kubernetes, kc)
    if case.expect == "same":
        assert small[0] == "ok", small
        assert old == small
    else:
        assert small[0] == "fallback", small
    # the Client as a whole: exactly what the kubernetes path gives (host, header, error)
    new_client = client_outcome(kc, None, monkeypatch)
    old_client = client_outcome(kc, "kubernetes", monkeypatch)
    assert new_client[:3] == old_client[:3] if new_client[0] == "ok" else new_client == old_client
    if new_client[0] == "ok":
        assert new_client[3] == ("kstream" if case.expect == "same" else "kubernetes")


def test_bad_values_keep_todays_errors(
    pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing files and bad base64 are reported as before: one line, exit 4 (config),
    no secret in the message."""
    c = corpus(pki)
    for name in ("missing-cert-file", "missing-ca-file", "bad-base64-ca", "missing-token-file"):
        d = tmp_path / name
        d.mkdir()
        kc = materialize(d, c[name])
        got = client_outcome(kc, None, monkeypatch)
        assert got[0] == "error" and got[1] == "ConfigError", (name, got)
        assert got[2] == ExitCode.CONFIG
        assert "\n" not in got[3] and "tok" not in got[3].replace("token", "")


def test_proxy_from_environment_falls_back(
    pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kc = materialize(tmp_path, corpus(pki)["token"])
    r = resolve(kubeconfig_files(kc))
    with pytest.raises(kubeauth.Fallback):
        kubeauth.from_kubeconfig(r.config, environ={"HTTPS_PROXY": "http://127.0.0.1:3128"})
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert Client(ConnectSettings(kubeconfig=kc)).loader == "kubernetes"
    # NO_PROXY alone changes nothing without a proxy; with a proxy-url it may
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("NO_PROXY", "192.0.2.10")
    assert Client(ConnectSettings(kubeconfig=kc)).loader == "kstream"
    assert via_small(kc) == via_kubernetes(kc)
    (tmp_path / "p").mkdir()
    kc2 = materialize(tmp_path / "p", corpus(pki)["proxy-url"])
    assert Client(ConnectSettings(kubeconfig=kc2)).loader == "kubernetes"


def test_merged_kubeconfig_list_relative_paths(
    pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG=a:b, cluster in one file, user in the other, each with files
    relative to its own directory: both loaders read the same files."""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "pki").mkdir(parents=True)
    (b / "creds").mkdir(parents=True)
    (a / "pki" / "ca.pem").write_bytes(pki["ca"])
    (b / "creds" / "c.crt").write_bytes(pki["cert"])
    (b / "creds" / "c.key").write_bytes(pki["key"])
    (a / "config").write_text(
        json.dumps(
            {
                "current-context": "c",
                "clusters": [
                    {
                        "name": "cl",
                        "cluster": {"server": SERVER, "certificate-authority": "pki/ca.pem"},
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "cl", "user": "u"}}],
            }
        )
    )
    (b / "config").write_text(
        json.dumps(
            {
                "users": [
                    {"name": "u", "user": {"client-certificate": "creds/c.crt", "client-key": "creds/c.key"}},
                    {"name": "other", "user": {"token": "x"}},
                ],
            }
        )
    )  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", f"{a / 'config'}{os.pathsep}{b / 'config'}")
    monkeypatch.chdir(tmp_path)
    small = via_small(None)
    assert small == via_kubernetes(None)
    assert small["ca"] == pki["ca"] and small["cert"] == pki["cert"] and small["auth"] is None


def test_pool_loads_certificate_data_without_leaving_files(
    pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t = kubeauth.TlsSettings(ca_data=pki["ca"], cert_data=pki["cert"], key_data=pki["key"])
    pool = build_pool(t, 4, SERVER)
    assert isinstance(pool, Pool) and pool.context is not None
    assert pool.context.cert_store_stats()["x509_ca"] == 1  # the kubeconfig's CA only
    assert list(tmp_path.iterdir()) == []  # the key was on disk only while loading
    from kstream.errors import TLSError

    with pytest.raises(TLSError, match="cannot load TLS material"):
        build_pool(kubeauth.TlsSettings(cert_data=pki["cert"], key_data=b"not a key"), 4, SERVER)
    # a proxy-url goes through urllib3's ProxyManager, with the same context
    proxied = build_pool(replace(t, proxy_url="http://127.0.0.1:3128"), 4, SERVER)
    assert isinstance(proxied, Urllib3Pool)
    assert proxied.manager.connection_pool_kw["ssl_context"] is not None


def test_token_file_like_client_go(tmp_path: Path) -> None:
    """Where the kubernetes package differs from client-go, kubectl's rule: the
    token file's content is trimmed (the package would send "Bearer tok\n", which
    no HTTP client accepts), and an empty `token` leaves the word to `tokenFile`."""
    (tmp_path / "tok").write_text("file-tok\n")
    for user in ({"tokenFile": "tok"}, {"token": "", "tokenFile": "tok"}):
        write_kc(tmp_path / "config", {"server": SERVER}, user)
        assert via_small(str(tmp_path / "config"))["auth"] == "Bearer file-tok"
        kc = tmp_path / "config"
        k = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kc), "config", "view", "--raw", "-o", "json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(k.stdout)["users"][0]["user"]["tokenFile"].endswith("tok")


# ------------------------------------------------------------------ exec plugins


def test_exec_token_same_as_kubernetes_package(
    pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("v1", "v1beta1"):
        p = plugin(tmp_path, f"plug-{version}", f"print({cred(version, token='exec-tok')!r})")
        kc = tmp_path / f"config-{version}"
        write_kc(
            kc,
            {"server": SERVER, "certificate-authority-data": b64(pki["ca"])},
            {"exec": exec_spec(str(p), version=version)},
        )
        small = via_small(str(kc))
        assert small["auth"] == "Bearer exec-tok" and small["ca"] == pki["ca"]
        assert small == via_kubernetes(str(kc))


def test_exec_client_certificate_same_as_kubernetes_package(
    pki: dict[str, bytes], tmp_path: Path
) -> None:
    out = cred(
        version="v1beta1",
        clientCertificateData=pki["cert"].decode(),
        clientKeyData=pki["key"].decode(),
    )
    p = plugin(tmp_path, "plug", f"print({out!r})")
    kc = tmp_path / "config"
    write_kc(
        kc,
        {"server": SERVER, "certificate-authority-data": b64(pki["ca"])},
        {"exec": exec_spec(str(p), version="v1beta1")},
    )
    small = via_small(str(kc))
    assert small["cert"] == pki["cert"] and small["key"] == pki["key"] and small["auth"] is None
    assert small == via_kubernetes(str(kc))


def test_exec_relative_command_and_env(tmp_path: Path) -> None:
    """A command with a path separator is relative to the kubeconfig's directory; env
    entries reach the plugin; the credential is the one it prints."""
    (tmp_path / "bin").mkdir()
    plugin(
        tmp_path / "bin",
        "plug",
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': {'token': os.environ['PLUG_A'] + sys.argv[1]}}))",
    )
    kc = tmp_path / "config"
    write_kc(
        kc,
        {"server": SERVER},
        {"exec": exec_spec("./bin/plug", args=["-arg"], env=[{"name": "PLUG_A", "value": "va"}])},
    )
    assert via_small(str(kc))["auth"] == "Bearer va-arg"


def _kubectl_exec(kc: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    e.update(env or {})
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "--raw", "/version", "--request-timeout=5s"],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_exec_info_and_env_same_as_kubectl(pki: dict[str, bytes], tmp_path: Path) -> None:
    """KUBERNETES_EXEC_INFO (provideClusterInfo: server, tls-server-name, CA as data,
    proxy-url, the exec extension as config; interactive) and the plugin's
    environment are what kubectl gives the plugin."""
    record = tmp_path / "seen.json"
    body = (
        f"open({str(record)!r}, 'w').write(json.dumps({{'info': json.loads(os.environ['KUBERNETES_EXEC_INFO']), "
        "'env': {k: v for k, v in os.environ.items() if k.startswith('PLUG_')}, "
        "'stdin_tty': os.isatty(0)}))\n"
        f"print({cred(token='t')!r})"
    )
    p = plugin(tmp_path, "plug", body)
    (tmp_path / "ca.pem").write_bytes(pki["ca"])
    cluster = {
        "server": "https://127.0.0.1:1",
        "certificate-authority": str(tmp_path / "ca.pem"),
        "tls-server-name": "api.internal",
        "proxy-url": "http://127.0.0.1:2",
        "extensions": [
            {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "kstream"}},
            {"name": "other", "extension": {"x": 1}},
        ],
    }
    for pci in (True, False):
        kc = tmp_path / f"config-{pci}"
        spec = exec_spec(
            str(p), provideClusterInfo=pci, env=[{"name": "PLUG_X", "value": "1"}], installHint="x"
        )
        write_kc(kc, cluster, {"exec": spec})
        _kubectl_exec(kc, {"PLUG_Y": "from-parent"})
        want = json.loads(record.read_text())
        record.unlink()
        r = resolve(kubeconfig_files(str(kc)))
        t = kubeauth.from_kubeconfig(r.config, environ={**os.environ, "PLUG_Y": "from-parent"})
        assert t.auth() == "Bearer t"
        got = json.loads(record.read_text())
        assert got == want
        assert ("cluster" in got["info"]["spec"]) is pci


@pytest.mark.parametrize(
    "name, spec_extra, body, kubectl_says, ours",
    [
        ("not-found", {"installHint": "install it with\n  brew install plug"}, None,
         "not found", r'exec plugin "[^"]*no-such-plugin" not found \(install it with brew install plug\)'),
        ("bad-json", {}, "print('{not json')", "decod", "printed no valid JSON"),
        ("exit-1", {}, "sys.exit(1)", "exit", "failed with exit code 1"),
        ("wrong-version", {}, f"print({cred(version='v1beta1', token='t')!r})", "version", "apiVersion"),
        ("no-credential", {}, f"print({cred()!r})", "", "neither a token nor a client certificate"),
        ("no-interactive-mode", {"interactiveMode": None}, f"print({cred(token='t')!r})",
         "interactiveMode", "interactiveMode must be specified"),
        ("always-needs-terminal", {"interactiveMode": "Always"}, f"print({cred(token='t')!r})",
         "", "needs an interactive terminal"),
    ],
)  # fmt: skip
def test_exec_failures_are_errors_like_kubectl(
    name: str,
    spec_extra: dict[str, Any],
    body: str | None,
    kubectl_says: str,
    ours: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kubectl fails the command when the plugin fails (the kubernetes package logs
    it and goes on without credentials): so does kstream, exit 4, one line, with
    the install hint, never the plugin's output."""
    cmd = str(plugin(tmp_path, "plug", body)) if body else "kstream-no-such-plugin"
    spec = exec_spec(cmd)
    spec.update(spec_extra)
    spec = {k: v for k, v in spec.items() if v is not None}
    kc = tmp_path / "config"
    write_kc(kc, {"server": "https://127.0.0.1:1"}, {"exec": spec})
    k = _kubectl_exec(kc)
    assert k.returncode != 0
    assert "refused" not in k.stderr, k.stderr  # kubectl stopped at the plugin, too
    assert kubectl_says.lower() in k.stderr.lower()
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    got = client_outcome(str(kc), None, monkeypatch)
    assert got[0] == "error" and got[1] == "AuthError" and got[2] == ExitCode.CONFIG, got
    import re

    assert re.search(ours, got[3]), got[3]
    assert "\n" not in got[3] and "not json" not in got[3]


def test_exec_credential_cached_until_expiry(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    past = "2020-01-01T00:00:00Z"
    for expires, want_runs in ((later, 1), (past, 4), (None, 1)):
        runs.write_text("")
        body = f"open({str(runs)!r}, 'a').write('x')\nprint({cred(token='t', expires=expires)!r})"
        p = plugin(tmp_path, "plug", body)
        kc = tmp_path / "config"
        write_kc(kc, {"server": SERVER}, {"exec": exec_spec(str(p))})
        t = kubeauth.from_kubeconfig(resolve(kubeconfig_files(str(kc))).config, environ={})
        for _ in range(3):
            assert t.auth() == "Bearer t"
        assert len(runs.read_text()) == want_runs, expires


def test_exec_bad_expiration_is_an_error(tmp_path: Path) -> None:
    p = plugin(tmp_path, "plug", f"print({cred(token='t', expires='tomorrow')!r})")
    kc = tmp_path / "config"
    write_kc(kc, {"server": SERVER}, {"exec": exec_spec(str(p))})
    with pytest.raises(AuthError, match="expirationTimestamp"):
        kubeauth.from_kubeconfig(resolve(kubeconfig_files(str(kc))).config, environ={})


# ------------------------------------------------------------------ in-cluster


def test_in_cluster_same_as_kubernetes_package(
    pki: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.client import Configuration
    from kubernetes.config.incluster_config import InClusterConfigLoader

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(pki["ca"])
    for host, port in (("10.0.0.1", "443"), ("fd00::1", "6443")):
        env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
        t = kubeauth.in_cluster(env, mount=str(tmp_path))
        cfg = Configuration()
        InClusterConfigLoader(
            token_filename=str(tmp_path / "token"),
            cert_filename=str(tmp_path / "ca.crt"),
            environ=env,
        ).load_and_set(cfg)
        assert t.host == cfg.host
        assert _read(t.tls.ca_file) == _read(cfg.ssl_ca_cert) == pki["ca"]
        assert t.tls.verify and cfg.verify_ssl
        # same token; client-go writes "Bearer", the kubernetes package "bearer"
        assert (t.auth() or "").lower() == (_kubernetes_auth(cfg) or "").lower()
        assert t.auth() == "Bearer sa-token" and t.kind == "in-cluster"
    with pytest.raises(kubeauth.Fallback):
        kubeauth.in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, mount=str(tmp_path))
    with pytest.raises(kubeauth.Fallback):
        kubeauth.in_cluster(
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            mount=str(tmp_path / "nowhere"),
        )


def test_in_cluster_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubeconfig file, KUBERNETES_SERVICE_HOST set: the Client goes in-cluster
    (outside a pod the mount is missing: the kubernetes package reports it, as before)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "sa").mkdir()
    (tmp_path / "sa" / "token").write_text("sa-token\n")
    (tmp_path / "sa" / "ca.crt").write_text("x")
    monkeypatch.setattr(kubeauth, "SERVICE_ACCOUNT_DIR", str(tmp_path / "sa"))
    c = Client(ConnectSettings())
    assert (c.context, c.loader, c.host) == ("in-cluster", "kstream", "https://10.0.0.1:443")
    assert c._headers("application/json")["authorization"] == "Bearer sa-token"
    with pytest.raises(ConfigError, match="--context needs a kubeconfig"):
        Client(ConnectSettings(context="x"))


# ------------------------------------------------------------------ on the control plane


def _dump_without_kubernetes(kubeconfig: Path, env: dict[str, str] | None = None) -> bytes:
    """`kstream dump` in a subprocess with -X importtime: it must work, and neither
    the kubernetes package nor urllib3 must have been imported."""
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KSTREAM_CONFIG_LOADER")}
    e.update(env or {})
    e["KUBECONFIG"] = str(kubeconfig)
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kstream", "dump", "-r", "configmaps",
         "-n", "kube-system", "-o", "-", "--quiet"],
        capture_output=True, env=e, timeout=120,
    )  # fmt: skip
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err[-2000:]
    modules = {
        ln.split("|")[-1].strip() for ln in err.splitlines() if ln.startswith("import time:")
    }
    assert "kstream.cluster.client" in modules  # the import list is there
    assert not {m for m in modules if m == "kubernetes" or m.startswith("kubernetes.")}
    assert "urllib3" not in modules  # kstream's own pool (cluster/httppool)
    names = [json.loads(ln)["metadata"]["name"] for ln in p.stdout.splitlines()]
    assert "extension-apiserver-authentication" in names
    return p.stdout


@pytest.mark.cluster
def test_cluster_token_without_kubernetes_package(cluster: Cluster) -> None:
    _dump_without_kubernetes(cluster.kubeconfig)


@pytest.mark.cluster
def test_cluster_client_certificate_without_kubernetes_package(
    cluster: Cluster, tmp_path: Path
) -> None:
    kc = cluster.cp.add_user("resolver-cert-user")  # certificate and key as data
    subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "create", "clusterrolebinding",
         "resolver-cert-user", "--clusterrole=cluster-admin", "--user=resolver-cert-user"],
        check=True, capture_output=True,
    )  # fmt: skip
    _dump_without_kubernetes(kc)
    # the same user with files, relative to the kubeconfig
    doc = json.loads(kc.read_text())
    user = doc["users"][0]["user"]
    (tmp_path / "u.crt").write_bytes(base64.b64decode(user.pop("client-certificate-data")))
    (tmp_path / "u.key").write_bytes(base64.b64decode(user.pop("client-key-data")))
    user.update({"client-certificate": "u.crt", "client-key": "u.key"})
    (tmp_path / "config").write_text(json.dumps(doc))
    _dump_without_kubernetes(tmp_path / "config")


@pytest.mark.cluster
def test_cluster_exec_plugin_without_kubernetes_package(cluster: Cluster, tmp_path: Path) -> None:
    token_file = cluster.cp.dir / "admin.token"
    p = plugin(
        tmp_path,
        "plug",
        f"tok = open({str(token_file)!r}).read().strip()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': {'token': tok}}))",
    )
    doc = json.loads(cluster.kubeconfig.read_text())
    doc["users"][0]["user"] = {"exec": exec_spec(str(p), provideClusterInfo=True)}
    kc = tmp_path / "config"
    kc.write_text(json.dumps(doc))
    _dump_without_kubernetes(kc)


@pytest.mark.cluster
def test_cluster_same_objects_with_either_loader(cluster: Cluster) -> None:
    a = _dump_without_kubernetes(cluster.kubeconfig)
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    e.update(KUBECONFIG=str(cluster.kubeconfig), KSTREAM_CONFIG_LOADER="kubernetes")
    p = subprocess.run(
        [sys.executable, "-m", "kstream", "dump", "-r", "configmaps", "-n", "kube-system",
         "-o", "-", "--quiet"],
        capture_output=True, env=e, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0
    assert sorted(p.stdout.splitlines()) == sorted(a.splitlines())


@pytest.mark.cluster
def test_cluster_tls_server_name_and_insecure_through_httppool(
    cluster: Cluster, tmp_path: Path
) -> None:
    """kstream's own pool (kstream.cluster.httppool, no urllib3 imported: checked
    by _dump_without_kubernetes) against the real server: tls-server-name checked instead of the URL's host, a name the
    certificate does not hold refused, insecure-skip-tls-verify without a CA."""
    doc = json.loads(cluster.kubeconfig.read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    assert "127.0.0.1" in server  # the certificate holds localhost and 127.0.0.1

    def with_cluster(name: str, **fields: Any) -> Path:
        d = json.loads(cluster.kubeconfig.read_text())
        d["clusters"][0]["cluster"].update(fields)
        for k in [k for k, v in fields.items() if v is None]:
            del d["clusters"][0]["cluster"][k]
        p = tmp_path / name
        p.write_text(json.dumps(d))
        return p

    _dump_without_kubernetes(with_cluster("named", **{"tls-server-name": "localhost"}))
    insecure = with_cluster(
        "insecure", **{"certificate-authority-data": None, "insecure-skip-tls-verify": True}
    )
    _dump_without_kubernetes(insecure)
    e = {k: v for k, v in os.environ.items() if k != "KSTREAM_CONFIG_LOADER"}
    e["KUBECONFIG"] = str(with_cluster("wrong", **{"tls-server-name": "not.in.the.cert"}))
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kstream", "dump", "-r", "configmaps",
         "-n", "kube-system", "-o", "-", "--quiet"],
        capture_output=True, env=e, timeout=120,
    )  # fmt: skip
    err = p.stderr.decode(errors="replace")
    assert p.returncode == ExitCode.CONNECTION, err[-2000:]
    lines = [ln for ln in err.splitlines() if not ln.startswith("import time:")]
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"TLS error talking to {server}: certificate verify failed"), lines
    assert not any(ln.split("|")[-1].strip() == "urllib3" for ln in err.splitlines())
