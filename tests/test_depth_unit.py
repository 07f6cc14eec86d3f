"""Objects as deep as the API server accepts (10,000 nested maps and lists)
through every parser and walker, without a cluster: the JSON helpers, --strip
and --clean, Secret redaction, field paths, the watch path's slow lane, count
--verify and diff of NDJSON files."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream import deepjson, paths
from kstream.cluster.stream import Reader, StreamOptions, Unit
from kstream.diff import MISSING, SecretMasker, field_changes
from kstream.exitcodes import ExitCode
from kstream.jsonlines import go_json
from kstream.resources import Resource
from kstream.transform import CLEAN_PATHS, LAST_APPLIED, TransformOptions, digest, make_transform
from tests.conftest import kstream
from tests.fakes import FakeTransport
from tests.test_core_unit import END

DEPTH = 10_000  # kube-apiserver's JSON decoder: at most 10,000 nested maps and lists
NEST = Resource("deep.kstream.test", "v1", "nests", "Nest", True, frozenset({"list", "watch"}))
SECRETS = Resource("", "v1", "secrets", "Secret", True, frozenset({"list", "watch"}))


def nested(n: int, leaf: str = '"x"') -> str:
    """n nested containers, maps {"a": ...} and lists [...] in turn, around leaf."""
    opens = ['{"a":' if i % 2 == 0 else "[" for i in range(n)]
    closes = ["}" if i % 2 == 0 else "]" for i in reversed(range(n))]
    return "".join(opens) + leaf + "".join(closes)


def deep_object(name: str = "deep", leaf: str = '"x"', depth: int = DEPTH, extra: str = "") -> str:
    """A compact object whose deepest value sits under `depth` containers
    (the object itself counts, as in the server's decoder)."""
    return (
        '{"apiVersion":"deep.kstream.test/v1","kind":"Nest","metadata":{"name":"'
        + name
        + '","namespace":"ns","uid":"u-1"'
        + extra
        + '},"spec":'
        + nested(depth - 1, leaf)
        + "}"
    )


def depth_of(o: Any) -> int:
    best, stack = 0, [(o, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            best = max(best, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            best = max(best, d)
            stack.extend((x, d + 1) for x in v)
    return best


# ------------------------------------------------------------------ the JSON helpers


def test_loads_and_dumps_round_trip_at_the_servers_limit() -> None:
    text = deep_object()
    obj = deepjson.loads(text)
    assert depth_of(obj) == DEPTH
    assert deepjson.loads(text.encode()) is not None
    assert deepjson.dumps(obj, ensure_ascii=False, separators=(",", ":")) == text
    assert go_json(obj) == text.encode()
    assert deepjson.dumps(obj, sort_keys=True).startswith('{"apiVersion": "deep.kstream.test/v1"')


def test_the_fast_path_is_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shallow documents never reach the fallbacks (which are slower)."""
    calls: list[str] = []
    real_loads, real_dumps = deepjson.loads_deep, deepjson.dumps_deep

    def spy_loads(data: Any) -> Any:
        calls.append("loads")
        return real_loads(data)

    def spy_dumps(obj: Any, **kw: Any) -> str:
        calls.append("dumps")
        return real_dumps(obj, **kw)

    monkeypatch.setattr(deepjson, "loads_deep", spy_loads)
    monkeypatch.setattr(deepjson, "dumps_deep", spy_dumps)
    deepjson.dumps(deepjson.loads(deep_object(depth=50)))
    assert calls == []
    deepjson.dumps(deepjson.loads(deep_object()))
    assert calls == ["loads", "dumps"]


def test_deep_results_equal_the_standard_library_given_enough_stack() -> None:
    """Where CPython can be made to recurse deep enough (3.11: a thread with a
    big stack and a raised limit), its results equal the fallbacks'."""
    text = deep_object(leaf='[1.5e300,-0.0,"\\u00e9<>&\\u2028",null,true,12345678901234567890]')
    got: dict[str, Any] = {}

    def std() -> None:
        import sys

        old = sys.getrecursionlimit()
        sys.setrecursionlimit(DEPTH * 3)
        try:
            o = json.loads(text)
            got["text"] = json.dumps(o, ensure_ascii=False, separators=(",", ":"))
            got["sorted"] = json.dumps(o, sort_keys=True)
        except RecursionError:  # 3.12+: the C code's own limit
            pass
        finally:
            sys.setrecursionlimit(old)

    size = threading.stack_size(256 * 1024 * 1024)
    try:
        t = threading.Thread(target=std)
        t.start()
        t.join()
    finally:
        threading.stack_size(size)
    if not got:
        pytest.skip("this Python cannot decode 10,000 levels with the standard library")
    mine = deepjson.loads_deep(text)
    assert deepjson.dumps_deep(mine, ensure_ascii=False, separators=(",", ":")) == got["text"]
    assert deepjson.dumps_deep(mine, sort_keys=True) == got["sorted"]
    assert "12345678901234567890]" in got["sorted"]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.booleans(), st.booleans(), st.booleans())
def test_fallbacks_equal_the_standard_library(
    doc: Any, ascii_: bool, compact: bool, sort: bool
) -> None:
    kw: dict[str, Any] = {
        "ensure_ascii": ascii_,
        "separators": (",", ":") if compact else None,
        "sort_keys": sort,
    }
    text = json.dumps(doc, **kw)
    assert deepjson.dumps_deep(doc, **kw) == text
    for data in (text, text.encode(), f" \n{text}\t "):
        a, b = json.loads(data), deepjson.loads_deep(data)
        assert json.dumps(a) == json.dumps(b)
        if isinstance(a, float) and math.isnan(a):
            assert math.isnan(b)


@pytest.mark.parametrize(
    "bad",
    ["", " ", "[", "[1,]", '{"a":1,}', "{a:1}", "[1 2]", '{"a" 1}', "1 2", '"abc', "[1]]",
     "nul", "\ufeff[]", "[-]", '"\x01"', '{"a":1', "{,}", "[,1]", '{"a":}', "01", "[.5]"],
)  # fmt: skip
def test_fallback_errors_are_the_standard_librarys(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError) as std:
        json.loads(bad)
    with pytest.raises(json.JSONDecodeError) as mine:
        deepjson.loads_deep(bad)
    assert (mine.value.msg, mine.value.pos) == (std.value.msg, std.value.pos)


def test_deep_invalid_json_is_still_an_error() -> None:
    with pytest.raises(ValueError):
        deepjson.loads(deep_object()[:-1])
    with pytest.raises(ValueError):
        deepjson.loads(deep_object() + "}")
    with pytest.raises(ValueError, match="Circular"):
        a: list[Any] = []
        a.append(a)
        deepjson.dumps_deep(a)


# ------------------------------------------------------------------ dump's transforms


def test_strip_and_clean_at_depth() -> None:
    extra = (
        ',"managedFields":[{"manager":"m","fieldsV1":' + nested(9_990, "{}") + "}]"
        ',"annotations":{"' + LAST_APPLIED + '":"{}","keep":"1"}'
    )
    raw = deep_object(extra=extra).encode()
    strip = (*(paths.parse(p) for p in CLEAN_PATHS), paths.parse("spec" + ".a.0" * 4000))
    t = make_transform(NEST, TransformOptions(strip=strip))
    assert t is not None
    out = deepjson.loads(t(raw))
    md = out["metadata"]
    assert "managedFields" not in md and md["annotations"] == {"keep": "1"}
    assert depth_of(out) == 8_001  # the top, spec, 3999 x ([{"a": ...}]) and an emptied list
    want = deepjson.loads(raw)
    del want["metadata"]["managedFields"], want["metadata"]["annotations"][LAST_APPLIED]
    node = want["spec"]
    for _ in range(3999):
        node = node["a"][0]
    node["a"].clear()
    assert t(raw) == go_json(want)


def test_secret_redaction_with_a_deep_last_applied_annotation() -> None:
    applied = '{"apiVersion":"v1","data":{"k":"dmFs"},"kind":"Secret","x":' + nested(9_990) + "}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns", "annotations": {LAST_APPLIED: applied}},
        "data": {"k": "dmFs"},
    }
    t = make_transform(SECRETS, TransformOptions())
    assert t is not None
    out = deepjson.loads(t(json.dumps(secret).encode()))
    assert out["data"] == {"k": digest(b"val", None)}
    inner = deepjson.loads(out["metadata"]["annotations"][LAST_APPLIED])
    assert inner["data"] == {"k": digest(b"val", None)}
    assert depth_of(inner["x"]) == 9_990


def test_paths_delete_follows_a_pattern_as_long_as_an_object_is_deep() -> None:
    obj = deepjson.loads(nested(DEPTH - 1))
    pattern = ("a", "0") * ((DEPTH - 1) // 2)  # down to the innermost map's only key
    paths.delete(obj, (*pattern, "a"))
    assert depth_of(obj) == DEPTH - 1
    paths.delete(obj, (*pattern, "a"), prune=True)  # nothing left there: unchanged
    assert depth_of(obj) == DEPTH - 1
    # DEPTH maps: {"keep":1,"a":{"a":{..."a":"x"}}}
    obj = deepjson.loads('{"keep":1,' + '"a":{' * (DEPTH - 1) + '"a":"x"' + "}" * DEPTH)
    assert depth_of(obj) == DEPTH
    paths.delete(obj, ("a",) * DEPTH, prune=True)
    assert obj == {"keep": 1}  # every map the deletion left empty pruned on the way up


# ------------------------------------------------------------------ diff's walkers


def test_field_changes_deep_down() -> None:
    a = deepjson.loads(deep_object(leaf='"old"'))
    b = deepjson.loads(deep_object(leaf='"new"'))
    [(path, old, new)] = field_changes(a, b)
    assert (old, new) == ("old", "new")
    assert len(path) == DEPTH  # spec, then one segment per container below it
    assert path[:4] == ("spec", "a", "0", "a")
    b = deepjson.loads(deep_object(leaf='{"more":' + nested(500) + "}"))
    [(path, old, new)] = field_changes(a, b)
    assert old == "old" and depth_of(new) == 501
    assert field_changes(a, deepjson.loads(deep_object(leaf='"old"'))) == []


def test_secret_masking_of_deep_maps() -> None:
    v = deepjson.loads('{"a":' * DEPTH + '"secret"' + "}" * DEPTH)
    masked = SecretMasker.mask(v)
    text = deepjson.dumps(masked)
    assert "secret" not in text and '"(changed)"' in text
    assert SecretMasker.mask(MISSING) is MISSING


# ------------------------------------------------------------------ the watch path


class RecordingSink:
    def __init__(self) -> None:
        self.objs: list[bytes] = []
        self.folded: dict[tuple[str, str], bytes | None] = {}

    def write(self, obj: bytes) -> None:
        self.objs.append(obj)

    def reset(self) -> None:
        self.objs.clear()

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        self.folded = overrides


def test_watch_events_outside_the_fast_lane_survive_depth() -> None:
    """Events the reader must parse (spaced JSON, changes before the end
    marker of old servers) as deep as the server allows."""
    first = deep_object("a", leaf='"v1"')
    changed = deep_object("a", leaf='"v2"')
    later = deep_object("b")
    body = (
        b'{"type": "ADDED", "object": ' + first.encode() + b"}\n"  # not the server's spacing
        b'{"type":"MODIFIED","object":' + changed.encode() + b"}\n"
        b'{"type":"ADDED","object":' + later.encode() + b"}\n" + END
    )
    reader = Reader(FakeTransport([body]), StreamOptions(backoff_base=0.001), threading.Event())
    unit, sink = Unit(NEST), RecordingSink()
    reader.read(unit, sink, lambda u: None)
    assert unit.status == "complete", unit.error
    assert sink.objs == [first.encode()]
    assert sink.folded == {("ns", "a"): changed.encode(), ("ns", "b"): later.encode()}


# ------------------------------------------------------------------ count and diff of snapshots


@pytest.fixture
def snaps(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old.ndjson"
    new = tmp_path / "new.ndjson"
    cm = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns","labels":{"tier":"2"}}}'
    old.write_text(cm + "\n" + deep_object(leaf='"old"', extra=',"labels":{"tier":"3"}') + "\n")
    new.write_text(cm + "\n" + deep_object(leaf='"new"', extra=',"labels":{"tier":"3"}') + "\n")
    return old, new


def test_count_verify_of_deep_ndjson(snaps: tuple[Path, Path]) -> None:
    old, _ = snaps
    for extra in ([], ["-l", "tier>2"], ["--by", "label:tier"]):
        res = kstream("count", "--verify", "-o", "json", str(old), *extra)
        assert res.code == 0, res.err
        rows = json.loads(res.out)["rows"]
        assert sum(r["objects"] for r in rows) == (1 if extra[:1] == ["-l"] else 2)


def test_diff_of_a_deep_file_with_itself_and_with_a_change_deep_down(
    snaps: tuple[Path, Path],
) -> None:
    old, new = snaps
    for fmt in ("text", "json", "ndjson"):
        res = kstream("diff", str(old), str(old), "-o", fmt)
        assert res.code == ExitCode.OK, res.err
    res = kstream("diff", str(old), str(new), "-o", "ndjson")
    assert res.code == ExitCode.DIFFERENCES, res.err
    [rec] = [json.loads(line) for line in res.out.splitlines()]
    [f] = rec["fields"]
    assert (rec["change"], rec["name"], f["old"], f["new"]) == ("modified", "deep", "old", "new")
    assert f["path"].startswith("spec.a.0.a.0.a") and f["path"].count(".") == DEPTH - 1
    res = kstream("diff", str(old), str(new), "-o", "text")
    assert res.code == ExitCode.DIFFERENCES and '"old"' in res.text, res.err
    # a whole deep subtree that appears is printed too
    deeper = old.parent / "deeper.ndjson"
    deeper.write_text(old.read_text().replace('"old"', '{"x":' + nested(DEPTH - 2) + "}", 1))
    for fmt in ("text", "json"):
        res = kstream("diff", str(deeper), str(old), "-o", fmt)
        assert res.code == ExitCode.DIFFERENCES, res.err
    doc = deepjson.loads(res.out)
    assert depth_of(doc["changes"][0]["fields"][0]["old"]) == DEPTH - 1
