"""Impersonation, as kubectl does it: a kubeconfig user's `as`, `as-uid`,
`as-groups`, `as-user-extra` and the --as, --as-uid, --as-group flags become
client-go's Impersonate-* headers, with either loader (the `kubernetes` package
knows nothing of impersonation, so kstream adds the headers on both paths).

The headers are compared with the ones the pinned kubectl sends to a loopback
server that records them; on the control plane, an impersonated dump sees what
the impersonated identity may see, and nothing else (the objects compared with
`kubectl --as`)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstream.cli.common import impersonation
from kstream.cluster.client import Client, ConnectSettings
from kstream.errors import ConfigError, KstreamError, UsageError
from tests.conftest import KUBECTL, Cluster, kstream, kubectl_json, one_line
from tests.loopback import JsonHandler, serving
from tests.seed import grant

# ------------------------------------------------------------------ header capture


class _Recorder(JsonHandler):
    def do_GET(self) -> None:
        self.server.seen.append(list(self.headers.items()))  # type: ignore[attr-defined]
        self.reply(200, b'{"major":"1","minor":"36","gitVersion":"v1.36.3"}')


@pytest.fixture
def recorder() -> Iterator[http.server.HTTPServer]:
    with serving(_Recorder, seen=[]) as srv:
        yield srv


def write_kc(path: Path, server: str, user: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "cl", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "cl", "user": "u"}}],
    }
    path.write_text(json.dumps(doc))
    return path


def impersonate_headers(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The Impersonate-* lines: names lowercased (HTTP names are case-insensitive;
    Go canonicalises them), grouped by name, each name's values in order."""
    imp = [(k.lower(), v) for k, v in lines if k.lower().startswith("impersonate-")]
    return sorted(imp, key=lambda kv: kv[0])  # stable: values keep their order


def kubectl_headers(srv: http.server.HTTPServer, kc: Path, *flags: str) -> list[tuple[str, str]]:
    srv.seen.clear()  # type: ignore[attr-defined]
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), *flags, "get", "--raw", "/version"],
        check=True, capture_output=True, env=e, timeout=60,
    )  # fmt: skip
    return impersonate_headers(srv.seen[-1])  # type: ignore[attr-defined]


def kstream_headers(
    srv: http.server.HTTPServer,
    kc: Path,
    flags: dict[str, Any],
    loader: str,
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[str, str]]:
    monkeypatch.setenv("KSTREAM_CONFIG_LOADER", loader)
    srv.seen.clear()  # type: ignore[attr-defined]
    imp = impersonation(flags.get("as", ""), flags.get("as-group"), flags.get("as-uid", ""))
    client = Client(ConnectSettings(kubeconfig=str(kc), impersonate=imp))
    assert client.loader == ("kubernetes" if loader == "kubernetes" else "kstream")
    assert client.get_json("/version")["gitVersion"] == "v1.36.3"
    return impersonate_headers(srv.seen[-1])  # type: ignore[attr-defined]


def _argv(flags: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if flags.get("as"):
        out += ["--as", flags["as"]]
    for g in flags.get("as-group") or []:
        out += ["--as-group", g]
    if flags.get("as-uid"):
        out += ["--as-uid", flags["as-uid"]]
    return out


HEADER_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "kubeconfig-everything": (
        {"token": "t", "as": "alice", "as-uid": "u-1", "as-groups": ["g1", "g2"],
         "as-user-extra": {"Reason a/b%": ["x", "y"], "scopes": ["s"], "none": []}},
        {},
    ),
    "flags-replace-kubeconfig": (
        {"token": "t", "as": "alice", "as-groups": ["g1"], "as-uid": "7"},
        {"as": "bob", "as-group": ["x", "y"], "as-uid": "9"},
    ),
    "flag-as-keeps-kubeconfig-groups-and-uid": (
        {"token": "t", "as": "alice", "as-groups": ["g1"], "as-uid": "7"},
        {"as": "bob"},
    ),
    "flags-only": ({"token": "t"}, {"as": "system:serviceaccount:ns:sa", "as-group": ["a,b"]}),
    "service-account-user": ({"as": "system:serviceaccount:ns:sa"}, {}),
    "empty-as-is-none": ({"token": "t", "as": ""}, {}),
    "no-impersonation": ({"token": "t"}, {}),
}  # fmt: skip


@pytest.mark.parametrize("loader", ["kstream", "kubernetes"])
@pytest.mark.parametrize("name", sorted(HEADER_CASES))
def test_impersonation_headers_same_as_kubectl(
    name: str,
    loader: str,
    recorder: http.server.HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, flags = HEADER_CASES[name]
    kc = write_kc(tmp_path / "config", f"http://127.0.0.1:{recorder.server_port}", user)
    want = kubectl_headers(recorder, kc, *_argv(flags))
    got = kstream_headers(recorder, kc, flags, loader, monkeypatch)
    assert got == want
    if name not in ("empty-as-is-none", "no-impersonation"):
        assert ("impersonate-user", flags.get("as") or user["as"]) in got


def test_impersonation_without_a_user_is_refused_like_kubectl(tmp_path: Path) -> None:
    """Groups, uid or extra without a user to impersonate: kubectl refuses to run;
    so does kstream, before any request: exit 4 for the kubeconfig's own, exit 2
    when the flags ask for it."""
    server = "https://127.0.0.1:1"  # never reached
    for user, flags, code, words in (
        ({"token": "t", "as-groups": ["g"]}, [], 4, ('user "u"', "without a user to impersonate")),
        ({"token": "t", "as-user-extra": {"k": ["v"]}}, [], 4, ("without a user",)),
        ({"token": "t"}, ["--as-group", "g"], 2, ("--as-group", "--as USER")),
        ({"token": "t"}, ["--as-uid", "1"], 2, ("--as-uid", "--as USER")),
    ):
        kc = write_kc(tmp_path / "config", server, user)
        k = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kc), *flags, "get", "--raw", "/version"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert k.returncode != 0 and "without impersonating a user" in k.stderr, k.stderr
        r = kstream("count", "-r", "configmaps", *flags, kubeconfig=kc, timeout=60)
        one_line(r, code, *words)
        assert "refused" not in r.err  # stopped before connecting
    # with a user in the kubeconfig, --as-group alone is fine (kubectl too)
    kc = write_kc(tmp_path / "config", server, {"token": "t", "as": "alice"})
    c = Client(ConnectSettings(kubeconfig=str(kc), impersonate=impersonation("", ["g"], "")))
    assert ("Impersonate-Group", "g") in c.header_fields("application/json")


@pytest.mark.parametrize(
    "field, value",
    [("as", 5), ("as-uid", ["x"]), ("as-groups", "secret-group"),
     ("as-groups", [1]), ("as-user-extra", ["x"]), ("as-user-extra", {"k": "secret-v"})],
)  # fmt: skip
def test_impersonation_bad_values_like_kubectl(field: str, value: Any, tmp_path: Path) -> None:
    """A value of the wrong type: kubectl cannot load the file; kstream says which
    field (exit 4), with either loader, never the value."""
    kc = write_kc(
        tmp_path / "config", "https://127.0.0.1:1", {"token": "t", "as": "a", field: value}
    )
    k = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "--raw", "/version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert k.returncode != 0 and "cannot unmarshal" in k.stderr, k.stderr
    for loader in ("", "kubernetes"):
        r = kstream("count", "-r", "cm", kubeconfig=kc, env={"KSTREAM_CONFIG_LOADER": loader})
        one_line(r, 4, f'user "u": {field} is not')
        assert "secret" not in r.err


def test_impersonation_errors_are_kstream_errors(tmp_path: Path) -> None:
    kc = write_kc(tmp_path / "config", "https://127.0.0.1:1", {"as-uid": "1"})
    with pytest.raises(ConfigError):
        Client(ConnectSettings(kubeconfig=str(kc)))
    kc = write_kc(tmp_path / "config", "https://127.0.0.1:1", {})
    with pytest.raises(UsageError):
        Client(ConnectSettings(kubeconfig=str(kc), impersonate=impersonation("", ["g"], "")))
    try:
        Client(ConnectSettings(kubeconfig=str(kc), impersonate=impersonation("x", None, "")))
    except KstreamError as e:  # pragma: no cover - must not fail
        raise AssertionError(e) from None


def test_in_cluster_with_as_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pod without a kubeconfig the flags still impersonate (never ignored)."""
    from kstream.cluster import auth as kubeauth

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KSTREAM_CONFIG_LOADER", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "sa").mkdir()
    (tmp_path / "sa" / "token").write_text("sa-token\n")
    (tmp_path / "sa" / "ca.crt").write_text("x")
    monkeypatch.setattr(kubeauth, "SERVICE_ACCOUNT_DIR", str(tmp_path / "sa"))
    c = Client(ConnectSettings(impersonate=impersonation("jane", ["g1", "g2"], "")))
    assert c.context == "in-cluster"
    h = c.header_fields("application/json")
    assert ("Impersonate-User", "jane") in h
    assert [v for k, v in h if k == "Impersonate-Group"] == ["g1", "g2"]


# ------------------------------------------------------------------ on the control plane

NS_A = "kauth-imp-a"  # the impersonated user may list configmaps here
NS_B = "kauth-imp-b"  # a group may list configmaps here
USER = "kauth-imp-user"
GROUP = "kauth-imp-readers"


@pytest.fixture(scope="module")
def limited(cluster: Cluster) -> Iterator[Cluster]:
    """Two namespaces of ConfigMaps; USER may list/watch those of NS_A, members
    of GROUP those of NS_B; nobody else is granted anything here."""
    api = cluster.api
    for ns in (NS_A, NS_B):
        api.create("/api/v1/namespaces", {"metadata": {"name": ns}}, exist_ok=True)
        for i in range(3):
            api.create(
                f"/api/v1/namespaces/{ns}/configmaps",
                {"metadata": {"name": f"{ns}-cm-{i}"}, "data": {"i": str(i)}},
                exist_ok=True,
            )
    grant(api, USER, ["configmaps"], ["list", "watch"], namespace=NS_A, name="kauth-imp-user")
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.create(
        f"{rbac}/namespaces/{NS_B}/roles",
        {"metadata": {"name": "kauth-imp-readers"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}]},
        exist_ok=True,
    )  # fmt: skip
    api.create(
        f"{rbac}/namespaces/{NS_B}/rolebindings",
        {"metadata": {"name": "kauth-imp-readers"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "kauth-imp-readers"},
         "subjects": [{"kind": "Group", "name": GROUP, "apiGroup": "rbac.authorization.k8s.io"}]},
        exist_ok=True,
    )  # fmt: skip
    import time

    time.sleep(1.0)  # the RBAC authorizer reads through an informer cache
    try:
        yield cluster
    finally:
        for ns in (NS_A, NS_B):
            for i in range(3):
                api.call("DELETE", f"/api/v1/namespaces/{ns}/configmaps/{ns}-cm-{i}", ok=(200, 404))
        api.call("DELETE", f"{rbac}/namespaces/{NS_A}/roles/kauth-imp-user", ok=(200, 404))
        api.call("DELETE", f"{rbac}/namespaces/{NS_A}/rolebindings/kauth-imp-user", ok=(200, 404))
        api.call("DELETE", f"{rbac}/namespaces/{NS_B}/roles/kauth-imp-readers", ok=(200, 404))
        api.call(
            "DELETE", f"{rbac}/namespaces/{NS_B}/rolebindings/kauth-imp-readers", ok=(200, 404)
        )
        for ns in (NS_A, NS_B):
            api.call("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))


def names(out: bytes) -> set[str]:
    return {json.loads(ln)["metadata"]["name"] for ln in out.splitlines() if ln.strip()}


def kubectl_names(kc: Path, ns: str, *flags: str) -> set[str]:
    return {i["metadata"]["name"] for i in kubectl_json(kc, *flags, "get", "cm", "-n", ns)["items"]}


def admin_as(cluster: Cluster, tmp_path: Path, **imp: Any) -> Path:
    """The admin kubeconfig (a token) with impersonation in its user entry."""
    doc = json.loads(cluster.kubeconfig.read_text())
    doc["users"][0]["user"].update(imp)
    kc = tmp_path / "config"
    fd = os.open(kc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    return kc


@pytest.mark.cluster
@pytest.mark.parametrize("loader", ["kstream", "kubernetes"])
def test_cluster_kubeconfig_impersonation_sees_what_the_user_may_see(
    limited: Cluster, loader: str, tmp_path: Path
) -> None:
    kc = admin_as(limited, tmp_path, **{"as": USER})
    env = {"KSTREAM_CONFIG_LOADER": loader}
    r = kstream("dump", "-r", "configmaps", "-n", NS_A, "-o", "-", "-q", kubeconfig=kc, env=env)
    assert r.code == 0, r.err
    assert names(r.out) == kubectl_names(kc, NS_A) == {f"{NS_A}-cm-{i}" for i in range(3)}
    # what the admin may read, the impersonated user may not: nothing read, exit 3
    r = kstream(
        "dump", "-r", "configmaps", "-n", NS_B, "-o", "-", "--debug", kubeconfig=kc, env=env
    )
    assert r.code == 3, r.err
    assert names(r.out) == set()
    assert f'User "{USER}" cannot' in r.err  # the server names who it saw
    k = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "cm", "-n", NS_B, "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert k.returncode != 0 and f'User "{USER}" cannot list' in k.stderr
    # the admin itself, without impersonation, reads both
    r = kstream("dump", "-r", "configmaps", "-n", NS_B, "-o", "-", "-q",
                kubeconfig=limited.kubeconfig, env=env)  # fmt: skip
    assert r.code == 0 and len(names(r.out)) == 3


@pytest.mark.cluster
def test_cluster_as_flags_like_kubectl(limited: Cluster, tmp_path: Path) -> None:
    kc = limited.kubeconfig
    # --as: dump and count see the user's namespace, not the other one
    r = kstream(
        "dump",
        "-r",
        "cm",
        "-n",
        f"{NS_A},{NS_B}",
        "--as",
        USER,
        "-o",
        "-",
        "--debug",
        kubeconfig=kc,
    )
    assert r.code == 3, r.err
    assert names(r.out) == kubectl_names(kc, NS_A, "--as", USER)
    assert f'User "{USER}" cannot' in r.err
    r = kstream("count", "-r", "cm", "-n", NS_A, "--as", USER, "-o", "json", kubeconfig=kc)
    assert r.code == 0, r.err
    assert json.loads(r.out)["total"]["objects"] == 3
    # --as with --as-group: a member of GROUP reads NS_B, not NS_A
    flags = ("--as", "someone-else", "--as-group", GROUP)
    r = kstream("dump", "-r", "cm", "-n", NS_B, *flags, "-o", "-", kubeconfig=kc)
    assert r.code == 0, r.err
    assert names(r.out) == kubectl_names(kc, NS_B, *flags) == {f"{NS_B}-cm-{i}" for i in range(3)}
    r = kstream("dump", "-r", "cm", "-n", NS_A, *flags, "-o", "-", kubeconfig=kc)
    assert r.code == 3 and names(r.out) == set()
    # --as over the kubeconfig's `as`
    kc2 = admin_as(limited, tmp_path, **{"as": "nobody-at-all"})
    r = kstream("dump", "-r", "cm", "-n", NS_A, "--as", USER, "-o", "-", kubeconfig=kc2)
    assert r.code == 0 and len(names(r.out)) == 3, r.err


@pytest.mark.cluster
def test_cluster_diff_live_as(limited: Cluster, tmp_path: Path) -> None:
    """diff --live reads the cluster as the impersonated user too."""
    kc = limited.kubeconfig
    snap = tmp_path / "s.ndjson.zst"  # its manifest: -r cm -n NS_A for the live side
    r = kstream("dump", "-r", "cm", "-n", NS_A, "-o", str(snap), "-q", kubeconfig=kc)
    assert r.code == 0, r.err
    r = kstream("diff", str(snap), "--live", "--as", USER, "-q", kubeconfig=kc)
    assert r.code == 0, (r.code, r.err)
    r = kstream("diff", str(snap), "--live", "--as", "nobody-at-all", kubeconfig=kc)
    # nothing readable: not "no differences", nor "all removed"
    assert r.code == 3 and 'User "nobody-at-all" cannot list' in r.err, (r.code, r.err)
