"""An exec plugin's token that the server rejects (401) before its
expirationTimestamp (revoked, rotated): like client-go, kstream runs the plugin
again; the request that got the 401 is retried once with the new token, and a
second 401 fails the command as before (exit 4). Never a loop, and one re-run
for all the requests that saw the same stale token."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kstream.cluster.client import Client, ConnectSettings
from kstream.errors import AuthError
from tests.conftest import KUBECTL, Cluster, kstream, one_line
from tests.loopback import JsonHandler, serving

LATER = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def counting_plugin(tmp: Path, tokens: list[str], token_file: Path | None = None) -> Path:
    """A v1 exec plugin: its n-th run prints tokens[n] (the last one from then on;
    "@file" is the content of token_file), valid until LATER; each run is counted
    in tmp/runs."""
    runs = tmp / "runs"
    runs.write_text("")
    p = tmp / "plug"
    p.write_text(
        f"#!{sys.executable}\nimport json\n"
        f"runs = open({str(runs)!r}).read()\n"
        f"open({str(runs)!r}, 'a').write('x')\n"
        f"tokens = {tokens!r}\n"
        "tok = tokens[min(len(runs), len(tokens) - 1)]\n"
        f"if tok == '@file':\n    tok = open({str(token_file)!r}).read().strip()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
        " 'kind': 'ExecCredential',"
        f" 'status': {{'token': tok, 'expirationTimestamp': {LATER!r}}}}}))\n"
    )
    p.chmod(0o755)
    return p


def runs(tmp: Path) -> int:
    return len((tmp / "runs").read_text())


def exec_kubeconfig(path: Path, server: str, plugin: Path, cluster: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "cl", "cluster": {**cluster, "server": server}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(plugin),
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "cl", "user": "u"}}],
    }
    path.write_text(json.dumps(doc))
    return path


# ------------------------------------------------------------------ a loopback server


class _OnlyGood(JsonHandler):
    """200 for "Bearer good", 401 for anything else; counts the answers."""

    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == "Bearer good"
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.answers.append(200 if ok else 401)  # type: ignore[attr-defined]
        body = b'{"gitVersion":"v1.36.3"}' if ok else b'{"kind":"Status","code":401}'
        self.reply(200 if ok else 401, body)


@pytest.fixture
def only_good() -> Iterator[http.server.ThreadingHTTPServer]:
    with serving(_OnlyGood, answers=[], lock=threading.Lock()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _kstream_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KSTREAM_CONFIG_LOADER", raising=False)
    for v in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(v, raising=False)
        monkeypatch.delenv(v.upper(), raising=False)


def test_401_runs_the_plugin_once_for_all_requests_that_saw_the_stale_token(
    only_good: http.server.ThreadingHTTPServer, tmp_path: Path
) -> None:
    """8 requests at once get 401 with the first token: the plugin runs once more
    (not once per request), each request is retried once and succeeds."""
    p = counting_plugin(tmp_path, ["stale", "good"])
    kc = exec_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{only_good.server_port}", p, {})
    client = Client(ConnectSettings(kubeconfig=str(kc), pool_size=8))
    assert runs(tmp_path) == 1  # the credential, read when connecting
    barrier = threading.Barrier(8)

    def one(_: int) -> Any:
        barrier.wait()
        return client.get_json("/version")

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(8)))
    assert all(r["gitVersion"] == "v1.36.3" for r in results)
    assert runs(tmp_path) == 2
    answers = only_good.answers  # type: ignore[attr-defined]
    assert answers.count(200) == 8 and answers.count(401) <= 8
    # the new token is kept (valid until LATER): no more runs, no more 401s
    before = len(answers)
    client.get_json("/version")
    assert runs(tmp_path) == 2 and answers[before:] == [200]


def test_401_again_after_the_rerun_fails_without_a_loop(
    only_good: http.server.ThreadingHTTPServer, tmp_path: Path
) -> None:
    p = counting_plugin(tmp_path, ["stale", "still-bad"])
    kc = exec_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{only_good.server_port}", p, {})
    client = Client(ConnectSettings(kubeconfig=str(kc)))
    with pytest.raises(AuthError, match="401 Unauthorized"):
        client.get_json("/version")
    assert runs(tmp_path) == 2
    assert only_good.answers == [401, 401]  # type: ignore[attr-defined]
    # the plugin's fresh token was rejected as well: later requests fail at once,
    # without running it again (until the credential expires)
    with pytest.raises(AuthError, match="401 Unauthorized"):
        client.get_json("/version", what="again")
    assert runs(tmp_path) == 2
    assert only_good.answers == [401, 401, 401]  # type: ignore[attr-defined]
    # the same token again from the plugin: no pointless retry
    p = counting_plugin(tmp_path, ["stale"])
    client = Client(ConnectSettings(kubeconfig=str(kc)))
    only_good.answers.clear()  # type: ignore[attr-defined]
    with pytest.raises(AuthError):
        client.get_json("/version")
    assert runs(tmp_path) == 2 and only_good.answers == [401]  # type: ignore[attr-defined]


def test_a_static_token_is_not_retried(
    only_good: http.server.ThreadingHTTPServer, tmp_path: Path
) -> None:
    kc = tmp_path / "config"
    doc = json.loads(
        exec_kubeconfig(kc, f"http://127.0.0.1:{only_good.server_port}", kc, {}).read_text()
    )
    doc["users"][0]["user"] = {"token": "stale"}
    kc.write_text(json.dumps(doc))
    with pytest.raises(AuthError):
        Client(ConnectSettings(kubeconfig=str(kc))).get_json("/version")
    assert only_good.answers == [401]  # type: ignore[attr-defined]


# ------------------------------------------------------------------ on the control plane


def _cluster_kc(cluster: Cluster, tmp: Path, plugin: Path) -> Path:
    doc = json.loads(cluster.kubeconfig.read_text())
    c = doc["clusters"][0]["cluster"]
    return exec_kubeconfig(tmp / "config", c["server"], plugin, c)


def _env() -> dict[str, str]:
    return {"KSTREAM_CONFIG_LOADER": ""}


@pytest.mark.cluster
def test_cluster_rejected_exec_token_is_refreshed_once(cluster: Cluster, tmp_path: Path) -> None:
    """First token invalid, the second the admin's; both valid for two hours by
    their expirationTimestamp: the dump succeeds, the plugin ran twice."""
    token_file = cluster.cp.dir / "admin.token"
    p = counting_plugin(tmp_path, ["not-a-valid-token", "@file"], token_file)
    kc = _cluster_kc(cluster, tmp_path, p)
    r = kstream(
        "dump", "-r", "configmaps", "-n", "kube-system", "-o", "-", "-q", kubeconfig=kc,
        env=_env(),
    )  # fmt: skip
    assert r.code == 0, r.err
    names = [json.loads(ln)["metadata"]["name"] for ln in r.out.splitlines()]
    assert "extension-apiserver-authentication" in names
    assert runs(tmp_path) == 2
    # client-go re-runs the plugin after the 401 as well (kubectl then fails that
    # one request; the next uses the new token): the plugin ran twice there too
    p = counting_plugin(tmp_path, ["not-a-valid-token", "@file"], token_file)
    k = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "--raw", "/version"],
        capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
    )  # fmt: skip
    assert runs(tmp_path) == 2
    assert k.returncode != 0 and b"Unauthorized" in k.stderr, k.stderr


@pytest.mark.cluster
def test_cluster_exec_token_rejected_twice_is_exit_4(cluster: Cluster, tmp_path: Path) -> None:
    p = counting_plugin(tmp_path, ["not-a-valid-token", "still-not-valid"])
    kc = _cluster_kc(cluster, tmp_path, p)
    r = kstream("count", "-r", "configmaps", "-n", "kube-system", kubeconfig=kc, env=_env())
    one_line(r, 4, "401 Unauthorized")
    assert "not-a-valid" not in r.err and "still-not" not in r.err
    assert runs(tmp_path) == 2
