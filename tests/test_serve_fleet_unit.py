"""kstream serve with several sources at once (`NAME=SOURCE` pairs, issue 25 item 6):
the names, the one kubeconfig with a context per source, one HTTPS listener that
tells the sources apart by each context's path, Ctrl-C / SIGTERM stopping it all."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kstream.errors import UsageError
from kstream.exitcodes import ExitCode
from kstream.serve import server
from kstream.serve.server import Source, parse_sources


def cm(ns: str, name: str, value: str) -> dict[str, Any]:
    md = {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"}
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": md, "data": {"v": value}}


def write(path: Path, objs: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return str(path)


def serve_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "kstream"), "serve", *args]


def test_plain_and_named_sources() -> None:
    assert parse_sources(["/x/snap.zst"]) == [Source("kstream-snap.zst", "/x/snap.zst", False)]
    assert parse_sources(["prod=s3://b/prod/@2026-12-01T10:00:00Z", "staging=snap.ndjson.zst"]) == [
        Source("prod", "s3://b/prod/@2026-12-01T10:00:00Z", True),
        Source("staging", "snap.ndjson.zst", True),
    ]
    # a `/` before the `=`: a path, not a name (the way to serve a file named a=b)
    assert parse_sources(["./a=b.zst", "s3://b/k=v/x.zst"]) == [
        Source("kstream-a=b.zst", "./a=b.zst", False),
        Source("kstream-x.zst", "s3://b/k=v/x.zst", False),
    ]
    assert [s.context for s in parse_sources(["eu-west_1.prod@team:a+b=x"])] == [
        "eu-west_1.prod@team:a+b"
    ]
    assert [s.context for s in parse_sources(["a=x=y.zst"])] == ["a"]  # the first `=` splits
    assert parse_sources(["a=x=y.zst"])[0].path == "x=y.zst"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["=snap.zst"], "an empty context name"),
        (["pro d=snap.zst"], "context name 'pro d'"),
        (["-prod=snap.zst"], "context name '-prod'"),
        (["prod.=snap.zst"], "context name 'prod.'"),
        (["prod="], "no source after '='"),
        (["prod=a.zst", "prod=b.zst"], "context 'prod' named twice (a.zst, b.zst)"),
        (["a/snap.zst", "b/snap.zst"], "named twice (a/snap.zst, b/snap.zst); name them"),
        (["kstream-snap.zst=x.zst", "snap.zst"], "context 'kstream-snap.zst' named twice"),
        (["a=-", "b=-"], "- (stdin) can be served once only"),
    ],
)
def test_bad_or_duplicate_names_are_refused(args: list[str], words: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_sources(args)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == ExitCode.USAGE == 2


def test_the_kubeconfig_has_a_context_per_source() -> None:
    doc = server.kubeconfig_of(
        [("prod", "https://127.0.0.1:1/kstream-a"), ("staging", "https://127.0.0.1:1/kstream-b")],
        b"CA",
        "tok",
    )
    assert doc["current-context"] == "prod"
    assert [c["name"] for c in doc["contexts"]] == ["prod", "staging"]
    assert {c["name"]: c["cluster"]["server"] for c in doc["clusters"]} == {
        "prod": "https://127.0.0.1:1/kstream-a",
        "staging": "https://127.0.0.1:1/kstream-b",
    }
    assert {c["name"]: c["context"] for c in doc["contexts"]}["staging"] == {
        "cluster": "staging",
        "user": "staging",
    }
    assert all(u["user"] == {"token": "tok"} for u in doc["users"])
    assert server.kubeconfig("one", "https://h/p", b"CA", "t") == server.kubeconfig_of(
        [("one", "https://h/p")], b"CA", "t"
    )


def _get(kubeconfig: dict[str, Any], context: str, path: str) -> Any:
    ctx = next(c["context"] for c in kubeconfig["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in kubeconfig["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in kubeconfig["users"] if u["name"] == ctx["user"])
    tls = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    req = urllib.request.Request(
        cluster["server"] + path, headers={"Authorization": f"Bearer {user['token']}"}
    )
    with urllib.request.urlopen(req, context=tls, timeout=30) as resp:
        return json.loads(resp.read())


def test_one_server_serves_each_source_at_its_context(tmp_path: Path) -> None:
    """Two sources, one process and one port: each context reads its own source;
    the banner names each context and its source; SIGTERM stops it all (exit 0)
    and leaves no temporary file."""
    old = write(tmp_path / "old.ndjson", [cm("shop", "flags", "old")])
    new = write(tmp_path / "new.ndjson", [cm("shop", "flags", "new"), cm("shop", "more", "x")])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    kc = tmp_path / "fleet.kubeconfig"
    args = ["prod=" + new, old, "--kubeconfig-out", str(kc), "--port", "0"]
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(serve_cmd(*args), stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    try:
        banner = []
        for raw in proc.stderr:
            banner.append(raw.decode())
            if "Ctrl-C" in banner[-1]:
                break
        text = "".join(banner)
        assert "serving 2 sources" in text, text
        assert any("prod" in ln and new in ln for ln in banner), text
        assert any("kstream-old.ndjson" in ln and old in ln for ln in banner), text
        assert "current context prod" in text
        doc = json.loads(kc.read_text())
        assert [c["name"] for c in doc["contexts"]] == ["prod", "kstream-old.ndjson"]
        servers = {c["cluster"]["server"] for c in doc["clusters"]}
        assert len(servers) == 2 and len({s.rsplit("/", 1)[0] for s in servers}) == 1  # one port

        def flags(context: str) -> tuple[list[str], str]:
            items = _get(doc, context, "/api/v1/configmaps")["items"]
            one = _get(doc, context, "/api/v1/namespaces/shop/configmaps/flags")
            return [o["metadata"]["name"] for o in items], one["data"]["v"]

        assert flags("prod") == (["flags", "more"], "new")
        assert flags("kstream-old.ndjson") == (["flags"], "old")
        # without a context's path: the first source (the current context)
        bare = json.loads(json.dumps(doc))
        for c in bare["clusters"]:
            c["cluster"]["server"] = c["cluster"]["server"].rsplit("/", 1)[0]
        assert _get(bare, "kstream-old.ndjson", "/api/v1/namespaces/shop/configmaps/flags")[
            "data"
        ] == {"v": "new"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert list(tmp.iterdir()) == []


def test_cli_refuses_a_bad_or_duplicate_name_in_one_line(tmp_path: Path) -> None:
    snap = write(tmp_path / "s.ndjson", [cm("a", "b", "1")])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    for args, words in (
        (["pro/d=" + snap], "no such file"),  # `/` before `=`: a path (exit 6, not 2)
        (["pro d=" + snap], "context name 'pro d'"),
        (["a=" + snap, "a=" + snap], "context 'a' named twice"),
        ([snap, snap], "named twice"),
    ):
        p = subprocess.run(serve_cmd(*args), capture_output=True, text=True, env=env, timeout=60)
        code = 6 if "/d=" in args[0] else 2
        assert p.returncode == code, (args, p.stderr)
        assert len(p.stderr.splitlines()) == 1 and words in p.stderr, p.stderr
        assert list(tmp.iterdir()) == []


def test_completion_completes_the_source_after_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kstream.cli.serve import complete_source

    (tmp_path / "snap.ndjson.zst").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert [v for v, _ in complete_source("prod=sn")] == ["prod=snap.ndjson.zst"]
    assert [v for v, _ in complete_source("sn")] == ["snap.ndjson.zst"]


def test_a_replaced_file_is_said_once_for_its_context_and_changes_nothing_served(
    tmp_path: Path,
) -> None:
    """Each source's files are held as opened: a newer dump written over one
    source's name gives one warning line naming that context; both contexts
    serve what they served."""
    import threading
    import time

    from tests.test_diff_unit import write_snapshot

    prod = write_snapshot(tmp_path / "prod.ndjson.zst", [cm("shop", "flags", "p")], "zst")
    staging = write_snapshot(tmp_path / "staging.ndjson.zst", [cm("shop", "flags", "s")], "zst")
    kc = tmp_path / "fleet.kubeconfig"
    args = [f"prod={prod}", f"staging={staging}", "--kubeconfig-out", str(kc)]
    proc = subprocess.Popen(serve_cmd(*args), stderr=subprocess.PIPE)
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.append(raw.decode())
            if "Ctrl-C" in lines[-1]:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert banner.wait(120), "".join(lines)
        doc = json.loads(kc.read_text())
        newer = write_snapshot(tmp_path / "newer.ndjson.zst", [cm("shop", "other", "n")], "zst")
        os.replace(newer, staging)
        end = time.monotonic() + 120  # a guard against hanging, not a measure
        while not any("was replaced" in x for x in lines):
            assert time.monotonic() < end, "".join(lines)
            time.sleep(0.2)
        for context, value in (("prod", "p"), ("staging", "s")):
            one = _get(doc, context, "/api/v1/namespaces/shop/configmaps/flags")
            assert one["data"] == {"v": value}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0, lines
    warnings = [x for x in lines if "warning:" in x]
    assert len(warnings) == 1 and warnings[0].startswith("kstream: warning: staging: "), lines
    assert "still serving" in warnings[0], lines
