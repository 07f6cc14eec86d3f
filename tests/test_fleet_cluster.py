"""Many contexts in one run, on the session's two real control planes: a
kubeconfig with both (one of them under a name with a slash) and an
unreachable third."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, kstream
from tests.seed import Api, namespace

pytestmark = pytest.mark.cluster

NS = "kstream-fleet"


def _closed_port() -> int:
    """A loopback port nobody listens on (connection refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def _merge(path: Path, entries: list[tuple[str, Path | None]]) -> Path:
    """A kubeconfig with one context per (name, that control plane's kubeconfig),
    None for an unreachable server."""
    cfg: dict[str, list[dict[str, object]]] = {"clusters": [], "users": [], "contexts": []}
    for i, (name, src) in enumerate(entries):
        if src is None:
            cluster: dict[str, object] = {"server": f"https://127.0.0.1:{_closed_port()}"}
            user: dict[str, object] = {"token": "nothing"}
        else:
            doc = json.loads(src.read_text())
            cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
        cfg["clusters"].append({"name": f"c{i}", "cluster": cluster})
        cfg["users"].append({"name": f"u{i}", "user": user})
        cfg["contexts"].append({"name": name, "context": {"cluster": f"c{i}", "user": f"u{i}"}})
    doc = {"apiVersion": "v1", "kind": "Config", **cfg, "current-context": entries[0][0]}
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


def _put(api: Api, name: str, data: dict[str, str]) -> None:
    api.create(
        f"/api/v1/namespaces/{NS}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data},
    )


@pytest.fixture(scope="module")
def two(
    cluster: Cluster, cluster_no_watchlist: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Contexts alpha (watch-list on), team/beta (watch-list off), gone
    (unreachable). In namespace kstream-fleet: `same` on both, `drift` with
    other data on each, `only-alpha` on alpha."""
    a, b = cluster.api, cluster_no_watchlist.api
    for api in (a, b):
        api.create(*namespace(NS), exist_ok=True)
        _put(api, "same", {"k": "v"})
    _put(a, "drift", {"k": "alpha"})
    _put(b, "drift", {"k": "beta"})
    _put(a, "only-alpha", {"k": "v"})
    d = tmp_path_factory.mktemp("fleet")
    kc = _merge(
        d / "kubeconfig",
        [
            ("alpha", cluster.kubeconfig),
            ("team/beta", cluster_no_watchlist.kubeconfig),
            ("gone", None),
        ],
    )
    try:
        yield kc
    finally:
        for api, names in ((a, ("same", "drift", "only-alpha")), (b, ("same", "drift"))):
            for n in names:
                api.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps/{n}", ok=(200, 404))
            api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 202, 404))
            fin = {"metadata": {"name": NS}, "spec": {"finalizers": []}}  # no namespace controller
            api.call("PUT", f"/api/v1/namespaces/{NS}/finalize", fin, ok=(200, 404, 409))


def _names(path: Path) -> list[str]:
    import zstandard

    with zstandard.open(path, "rb") as f:
        lines = [json.loads(x) for x in f.read().splitlines() if x.strip()]
    return sorted(o["metadata"]["name"] for o in lines)


def _kv(err: str, context: str) -> dict[str, str]:
    for line in err.splitlines():
        if line.startswith(f"context={context} ") or line.startswith(f'context="{context}" '):
            return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    raise AssertionError(f"no summary line for {context}: {err}")


def test_dump_many_contexts_one_unreachable(two: Path, tmp_path: Path) -> None:
    out = tmp_path / "b" / "{context}" / "{time:%Y-%m-%dT%H%MZ}.ndjson.zst"
    r = kstream(
        "dump", "--all-contexts", "-o", str(out), "-r", "configmaps", "-n", NS,
        kubeconfig=two, env={"CI": "true"},
    )  # fmt: skip
    assert r.code == 5, r.err  # the worst: gone is unreachable (5); the others complete
    assert "Traceback" not in r.err
    made = sorted(p.relative_to(tmp_path / "b").parts[0] for p in (tmp_path / "b").rglob("*.zst"))
    assert made == ["alpha", "team_beta"]  # "/" in a context name made safe; nothing for gone
    # the directory made for gone is removed again: it wrote nothing
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["alpha", "team_beta"]
    (alpha,) = (tmp_path / "b" / "alpha").iterdir()
    (beta,) = (tmp_path / "b" / "team_beta").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d{4}Z\.ndjson\.zst", alpha.name)
    assert alpha.name == beta.name  # one start time for the whole run
    assert _names(alpha) == ["drift", "only-alpha", "same"]
    assert _names(beta) == ["drift", "same"]
    rows = {ctx: _kv(r.err, ctx) for ctx in ("alpha", "team/beta", "gone")}
    assert rows["alpha"]["status"] == "complete" and rows["alpha"]["exit"] == "0"
    assert rows["alpha"]["objects"] == "3"
    assert rows["team/beta"]["status"] == "complete" and rows["team/beta"]["objects"] == "2"
    assert rows["gone"]["status"] == "failed" and rows["gone"]["exit"] == "5"
    assert "127.0.0.1" in rows["gone"]["error"] and "output" not in rows["gone"]


def test_dump_glob_complete_and_manifest_context(two: Path, tmp_path: Path) -> None:
    r = kstream(
        "dump", "--context", "al*", "-o", str(tmp_path / "{context}-{cluster}.ndjson.zst"),
        kubeconfig=two, env={"CI": "true"},
    )  # fmt: skip
    assert r.code == 0, r.err
    (out,) = tmp_path.glob("alpha-127.0.0.1:*.ndjson.zst")
    c = kstream("count", str(out), "-o", "json")
    doc = json.loads(c.out)
    assert doc["complete"] and doc["total"]["objects"] > 20  # everything, not a selection
    assert _kv(r.err, "alpha")["status"] == "complete"
    assert "context=gone" not in r.err and "team" not in r.err


def test_single_context_placeholders_make_parents(
    two: Path, cluster_no_watchlist: Cluster, tmp_path: Path
) -> None:
    port = cluster_no_watchlist.cp.url.rsplit(":", 1)[1]
    tmpl = str(tmp_path / "x" / "{cluster}" / "{context}" / "{date}.ndjson")
    r = kstream(
        "dump", "--context", "team/beta", "-o", tmpl, "-r", "configmaps", "-n", NS,
        kubeconfig=two,
    )  # fmt: skip
    assert r.code == 0, r.err
    (out,) = (tmp_path / "x" / f"127.0.0.1:{port}" / "team_beta").glob("*.ndjson")
    assert sorted(json.loads(x)["metadata"]["name"] for x in out.read_text().splitlines()) == [
        "drift",
        "same",
    ]
    # a plain name keeps the old rule: its directory must exist
    r = kstream(
        "dump", "--context", "alpha", "-o", str(tmp_path / "nodir" / "s.ndjson"), kubeconfig=two
    )
    assert r.code == 7, r.err
    assert not (tmp_path / "nodir").exists()


def test_count_all_contexts_json_and_table(two: Path) -> None:
    r = kstream(
        "count", "--all-contexts", "-r", "configmaps", "-n", NS, "-o", "json", kubeconfig=two
    )
    assert r.code == 5, r.err
    doc = json.loads(r.out)
    assert doc["kind"] == "kstream-count-contexts"
    by = {c["context"]: c for c in doc["contexts"]}
    assert list(by) == ["alpha", "team/beta", "gone"]
    assert by["alpha"]["exitCode"] == 0 and by["alpha"]["count"]["total"]["objects"] == 3
    assert by["team/beta"]["exitCode"] == 0 and by["team/beta"]["count"]["total"]["objects"] == 2
    assert by["gone"]["exitCode"] == 5 and by["gone"]["count"] is None and by["gone"]["error"]
    assert doc["total"]["objects"] == 5
    t = kstream(
        "count",
        "--context",
        "alpha",
        "--context",
        "team/beta",
        "-r",
        "configmaps",
        "-n",
        NS,
        kubeconfig=two,
    )
    assert t.code == 0, t.err
    lines = t.text.splitlines()
    alpha = next(x for x in lines if x.startswith("alpha "))
    beta = next(x for x in lines if x.startswith("team/beta "))
    assert alpha.split()[3] == "3" and alpha.split()[-1] == "complete"
    assert beta.split()[3] == "2"
    assert next(x for x in lines if x.startswith("total")).split()[1] == "5"
    nd = kstream(
        "count", "--context", "*", "-r", "configmaps", "-n", NS, "--by", "namespace,resource",
        "-o", "ndjson", kubeconfig=two,
    )  # fmt: skip
    assert nd.code == 5, nd.err
    got = sorted((x["context"], x["objects"]) for x in map(json.loads, nd.text.splitlines()))
    assert got == [("alpha", 3), ("team/beta", 2)]


def test_diff_two_live_clusters(two: Path) -> None:
    r = kstream(
        "diff", "--live", "--context", "alpha", "--context", "team/beta",
        "-r", "configmaps", "-n", NS, "-o", "json", kubeconfig=two,
    )  # fmt: skip
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    changes = {(ch["name"], ch["change"]) for ch in doc["changes"]}
    # `same` differs only in uid, resourceVersion, creationTimestamp: noise, not drift
    assert changes == {("drift", "modified"), ("only-alpha", "removed")}
    (drift,) = [ch for ch in doc["changes"] if ch["name"] == "drift"]
    assert [(f["path"], f["old"], f["new"]) for f in drift["fields"]] == [
        ("data.k", "alpha", "beta")
    ]
    same = kstream(
        "diff", "--live", "--context", "alpha", "--context", "alpha2",
        kubeconfig=two,
    )  # fmt: skip
    assert same.code == 4, same.err  # unknown context: exit 4, before any dump
    bad = kstream(
        "diff",
        "--live",
        "--context",
        "alpha",
        "--context",
        "gone",
        "-r",
        "configmaps",
        kubeconfig=two,
    )
    assert bad.code == 5, bad.err
    assert "gone" in bad.err and "Traceback" not in bad.err


def test_ctrl_c_does_not_wait_for_a_server_that_never_answers(two: Path, tmp_path: Path) -> None:
    """alpha finishes, `hang` accepts the connection and never answers: Ctrl-C
    ends the run at once (exit 130), alpha's dump is complete, nothing of hang."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import VENV_BIN

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads
    try:
        doc = json.loads(two.read_text())
        doc["clusters"].append(
            {"name": "hang", "cluster": {"server": f"https://127.0.0.1:{silent.getsockname()[1]}"}}
        )
        doc["contexts"].append({"name": "hang", "context": {"cluster": "hang", "user": "u0"}})
        kc = tmp_path / "kubeconfig"
        kc.write_text(json.dumps(doc))
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env.update(KUBECONFIG=str(kc), CI="true")
        p = subprocess.Popen(
            [str(VENV_BIN / "kstream"), "dump", "--context", "alpha", "--context", "hang",
             "-o", str(tmp_path / "{context}.ndjson.zst"), "-r", "configmaps", "-n", NS],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        done = tmp_path / "alpha.ndjson.zst"
        deadline = time.monotonic() + 120
        while not done.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done.exists(), "alpha's dump did not finish"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)  # not the 60 s of --timeout: hang is not waited for
        assert p.returncode == 130, err
        assert _kv(err, "alpha")["status"] == "complete"
        hang = _kv(err, "hang")
        assert hang["status"] == "interrupted" and hang["exit"] == "130"
        assert sorted(x.name for x in tmp_path.iterdir()) == ["alpha.ndjson.zst", "kubeconfig"]
        assert _names(done) == ["drift", "only-alpha", "same"]
    finally:
        silent.close()


def test_live_table_on_a_terminal(two: Path, tmp_path: Path) -> None:
    """On a terminal: a live table with a row per context while it runs (its
    `state` column), then the summary with a row per context."""
    import os
    import pty
    import subprocess

    from tests.conftest import VENV_BIN

    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "CI", "NO_COLOR")}
    env.update(KUBECONFIG=str(two), TERM="xterm", COLUMNS="100", LINES="40")
    main, side = pty.openpty()
    p = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "dump", "--context", "alpha", "--context", "team/*",
         "-o", str(tmp_path / "{context}.ndjson"), "-r", "configmaps", "-n", NS],
        env=env, stdin=subprocess.DEVNULL, stdout=side, stderr=side,
    )  # fmt: skip
    os.close(side)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert p.wait(timeout=120) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert "state" in text  # the live table's header (the summary says "status")
    summary = text[text.index("kstream dump: 2 contexts") :]
    assert re.search(r"alpha +complete +\d+/\d+ +3 ", summary), summary
    assert re.search(r"team/beta +complete +\d+/\d+ +2 ", summary), summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha.ndjson", "team_beta.ndjson"]
