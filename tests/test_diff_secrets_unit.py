"""Secrets compare equal whatever tool wrote them (issue 22.2): a side holding raw
values (a kubectl JSON List, plain NDJSON, a dump with `--secrets include`) is
digested with the other side's rule (sha256, or HMAC under `--secret-key-file`)
before comparing, so equal values are equal and a changed one shows as a changed
digest."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kstream import diff as d
from kstream.selector import Scope
from kstream.sources import open_source
from kstream.transform import digest, redact_secret
from tests.conftest import kstream
from tests.journalmaker import Journal, ev, obj, write_base
from tests.test_diff_unit import cm, line, secret_obj, write_snapshot

KEY = b"a key of our own"
RULES = {"sha256": None, "hmac-sha256": KEY}


def raw_objects() -> list[dict[str, Any]]:
    s = secret_obj("s", password="aHVudGVyMg==", user="YWRtaW4=")
    s["metadata"]["annotations"] = {"note": "kept"}
    return [s, secret_obj("t", token="c2VjcmV0"), cm("a", "plain")]


def redacted(objs: list[dict[str, Any]], key: bytes | None) -> list[dict[str, Any]]:
    out = copy.deepcopy(objs)
    for o in out:
        if o["kind"] == "Secret":
            redact_secret(o, key)
    return out


def kubectl_list(path: Path, objs: list[dict[str, Any]]) -> Path:
    """What `kubectl get secrets,cm -A -o json` writes: a pretty-printed List."""
    doc = {"apiVersion": "v1", "items": objs, "kind": "List", "metadata": {"resourceVersion": ""}}
    path.write_text(json.dumps(doc, indent=4) + "\n")
    return path


def ndjson(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(line(o) + b"\n" for o in objs))
    return path


def raw_side(fmt: str, path: Path, objs: list[dict[str, Any]]) -> Path:
    if fmt == "kubectl-json":
        return kubectl_list(path.with_suffix(".json"), objs)
    if fmt == "ndjson":
        return ndjson(path.with_suffix(".ndjson"), objs)
    opts = {"secrets": "include"}
    if fmt == "zst-include":
        return write_snapshot(path.with_suffix(".ndjson.zst"), objs, "zst", options=opts)
    return write_snapshot(path, objs, "dir", options=opts)  # dir-include


def redacted_side(fmt: str, rule: str, path: Path, objs: list[dict[str, Any]]) -> Path:
    objs = redacted(objs, RULES[rule])
    if fmt == "ndjson":  # a dump's NDJSON: no manifest, the digests say the rule
        return ndjson(path.with_suffix(".ndjson"), objs)
    opts = {"secrets": "redact", "secretDigest": rule}
    if fmt == "zst":
        return write_snapshot(path.with_suffix(".ndjson.zst"), objs, "zst", options=opts)
    return write_snapshot(path, objs, "dir", options=opts)


def changes(old: Path, new: Path, key: bytes | None) -> list[d.Change]:
    settings = d.Settings(ignore=tuple(d.ignore_list()), scope=Scope(), secret_key=key)
    with d.Comparison(open_source(str(old)), open_source(str(new)), settings) as c:
        return list(c.changes())


RAW = ["kubectl-json", "ndjson", "zst-include", "dir-include"]
REDACTED = ["zst", "dir", "ndjson"]


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("redacted_fmt", REDACTED)
@pytest.mark.parametrize("raw_fmt", RAW)
def test_raw_values_equal_to_digests_compare_equal(
    tmp_path: Path, raw_fmt: str, redacted_fmt: str, rule: str
) -> None:
    raw = raw_side(raw_fmt, tmp_path / "raw", raw_objects())
    red = redacted_side(redacted_fmt, rule, tmp_path / "red", raw_objects())
    assert changes(red, raw, RULES[rule]) == []
    assert changes(raw, red, RULES[rule]) == []
    # a value that did change shows as the changed digest, never hidden
    changed = raw_objects()
    changed[1]["data"]["token"] = "bmV3"
    raw2 = raw_side(raw_fmt, tmp_path / "raw2", changed)
    [ch] = changes(red, raw2, RULES[rule])
    assert (ch.kind, ch.name, ch.change) == ("Secret", "t", "modified")
    [f] = ch.fields
    want_old = digest(b"secret", RULES[rule])
    want_new = digest(b"new", RULES[rule])
    assert (f.path, f.old, f.new) == ("data.token", want_old, want_new)
    [ch] = changes(raw2, red, RULES[rule])
    assert [(f.path, f.old, f.new) for f in ch.fields] == [("data.token", want_new, want_old)]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_kubectl_json_against_a_snapshot_on_the_command_line(tmp_path: Path, rule: str) -> None:
    red = redacted_side("zst", rule, tmp_path / "snap", raw_objects())
    raw = raw_side("kubectl-json", tmp_path / "all", raw_objects())
    key_args: list[str] = []
    if rule == "hmac-sha256":
        keyfile = tmp_path / "key"
        keyfile.write_bytes(KEY)
        key_args = ["--secret-key-file", str(keyfile)]
    r = kstream("diff", str(red), str(raw), *key_args)
    assert r.code == 0, (r.out, r.err)
    assert r.out == b"" and "no differences" in r.err


def test_hmac_digests_without_the_key_say_so(tmp_path: Path) -> None:
    red = redacted_side("zst", "hmac-sha256", tmp_path / "snap", raw_objects())
    raw = raw_side("kubectl-json", tmp_path / "all", raw_objects())
    r = kstream("diff", str(red), str(raw), "-o", "ndjson")
    assert r.code == 1
    assert "HMAC-keyed Secret digests" in r.err and "--secret-key-file" in r.err
    assert b"aHVudGVyMg==" not in r.out  # raw values are never shown


def test_both_raw_still_hidden(tmp_path: Path) -> None:
    a = raw_side("kubectl-json", tmp_path / "a", raw_objects())
    changed = raw_objects()
    changed[1]["data"]["token"] = "bmV3"
    b = raw_side("ndjson", tmp_path / "b", changed)
    [ch] = changes(a, b, None)
    assert [(f.path, f.old, f.new) for f in ch.fields] == [("data.token", d.HIDDEN, d.HIDDEN)]


# ---------------------------------------------------------------- a journal's state


SECRETS = "v1/secrets"


def jsecret(name: str, rv: str, **data: str) -> dict[str, Any]:
    return obj(SECRETS, name, "shop", rv, type="Opaque", data=dict(data))


def test_journal_instant_against_kubectl_json(tmp_path: Path) -> None:
    """`diff J/@T kubectl.json`: the journal holds digests (dump's default), kubectl
    the values; equal at T, different where a value changed after T."""
    j = Journal(tmp_path / "J")
    base = [jsecret("s", "10", pw="b2xk"), jsecret("u", "11", pw="dQ==")]
    write_base(j.base, {SECRETS: redacted(base, None)})
    later = redacted([jsecret("s", "20", pw="bmV3")], None)[0]
    j.segment(1, [[ev("2026-11-29T14:00:05.000000Z", "MODIFIED", SECRETS, later)]])
    at = f"{j.root}/@2026-11-29T14:00:00Z"
    now = f"{j.root}/"
    kube_then = kubectl_list(tmp_path / "then.json", base)
    r = kstream("diff", at, str(kube_then))
    assert r.code == 0, (r.out, r.err)
    kube_now = kubectl_list(
        tmp_path / "now.json", [jsecret("s", "20", pw="bmV3"), jsecret("u", "11", pw="dQ==")]
    )
    r = kstream("diff", now, str(kube_now))
    assert r.code == 0, (r.out, r.err)
    r = kstream("diff", at, str(kube_now), "-o", "ndjson")
    assert r.code == 1, r.err
    [rec] = [json.loads(x) for x in r.out.splitlines()]
    assert (rec["name"], rec["fields"]) == (
        "s",
        [{"path": "data.pw", "old": digest(b"old", None), "new": digest(b"new", None)}],
    )
