"""`-` (stdin) takes every format a file name takes (issue 22 item 4): an archive,
NDJSON, zstd-compressed NDJSON, a JSON List (`kubectl get -o json`), told apart by
the first bytes; an archive is copied to a temporary file, removed afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard

from kstream.store.snapshot import JSON_LIST_PEEK
from tests.conftest import kstream
from tests.test_diff_unit import cm, write_ndjson, write_snapshot

OBJS = [cm("ns", f"c{i}", data="v" * (i % 7)) for i in range(40)] + [cm("other", "x")]


def _formats(tmp_path: Path, objs: list[dict[str, Any]]) -> dict[str, Path]:
    nd = write_ndjson(tmp_path / "s.ndjson", objs)
    zst = tmp_path / "s.ndjson.zstd"  # compressed NDJSON, not an archive
    zst.write_bytes(zstandard.ZstdCompressor().compress(nd.read_bytes()))
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, indent=4))
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps({"kind": "List", "items": objs, "apiVersion": "v1"}))
    return {
        "archive": write_snapshot(tmp_path / "s.ndjson.zst", objs),
        "ndjson": nd,
        "ndjson.zst": zst,
        "json-list": pretty,
        "json-list-compact": compact,
    }


def _count(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> Any:
    r = kstream("count", *args, "-o", "json", input=input, env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    del doc["snapshot"]
    return doc


@pytest.mark.parametrize(
    "fmt", ["archive", "ndjson", "ndjson.zst", "json-list", "json-list-compact"]
)
def test_stdin_reads_every_format_a_file_name_reads(fmt: str, tmp_path: Path) -> None:
    path = _formats(tmp_path, OBJS)[fmt]
    data = path.read_bytes()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    assert _count("-", input=data, env=env) == _count(str(path))
    other = write_ndjson(tmp_path / "o.ndjson", OBJS)
    r = kstream("diff", str(other), "-", "-o", "ndjson", input=data, env=env)
    assert (r.code, r.out) == (0, b""), r.err
    changed = write_ndjson(tmp_path / "c.ndjson", [*OBJS[1:], cm("ns", "new")])
    r = kstream("diff", "-", str(changed), "-o", "ndjson", input=data, env=env)
    assert r.code == 1, r.err
    assert sorted(json.loads(x)["change"] for x in r.out.splitlines()) == ["added", "removed"]
    assert list(tmp.iterdir()) == []  # a spooled archive is removed


def test_a_json_list_longer_than_the_sniffed_bytes(tmp_path: Path) -> None:
    """kubectl's JSON of a real cluster is larger than what is read to tell the
    format: the rest streams after the bytes read first."""
    objs = [cm("ns", f"big{i}", data="x" * 1000) for i in range(3 * JSON_LIST_PEEK // 1000)]
    path = _formats(tmp_path, objs)["json-list"]
    assert path.stat().st_size > 3 * JSON_LIST_PEEK
    doc = _count("-", input=path.read_bytes())
    assert doc["total"]["objects"] == len(objs) and doc == _count(str(path))


@pytest.mark.parametrize(
    "data, words",
    [
        (b"not json\n", "-: not a kstream snapshot"),
        (b'{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Con', "-: the JSON document is cut short"),
        (b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}}', "-: the last line is cut short"),
    ],
)  # fmt: skip
def test_bad_input_on_stdin_is_a_corrupted_snapshot(data: bytes, words: str) -> None:
    r = kstream("count", "-", input=data)
    assert r.code == 6 and words in r.err, r.err


def test_an_archive_cut_short_on_stdin(tmp_path: Path) -> None:
    data = _formats(tmp_path, OBJS)["archive"].read_bytes()
    r = kstream("count", "-", input=data[:-100])
    assert r.code == 6 and "-: truncated archive" in r.err, r.err


def test_empty_stdin_is_an_empty_snapshot() -> None:
    """`dump -o -` of nothing writes nothing: reading that is an empty snapshot."""
    r = kstream("count", "-", "-o", "json", input=b"")
    assert r.code == 0 and json.loads(r.out)["total"]["objects"] == 0


@pytest.mark.parametrize("fmt", ["json-list", "archive"])
def test_serve_stdin(fmt: str, tmp_path: Path) -> None:
    """`kubectl get -o json | kstream serve -`: kubectl reads the objects back."""
    path = _formats(tmp_path, OBJS)[fmt]
    kubeconfig = tmp_path / "kc"
    bin_ = Path(sys.executable).parent
    with path.open("rb") as stdin:
        proc = subprocess.Popen(
            [str(bin_ / "kstream"), "serve", "-", "--kubeconfig-out", str(kubeconfig)],
            stdin=stdin,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if b"Ctrl-C" in line or b"error" in line:
                break
        got = subprocess.run(
            [str(bin_ / "kubectl"), "--kubeconfig", str(kubeconfig), "get", "cm", "-A", "-o", "name"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert len(got.stdout.splitlines()) == len(OBJS)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
