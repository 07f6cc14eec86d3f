"""No string makes a text output crash (issue 22 item 3). Every text output is fed
arbitrary JSON strings (lone surrogates, control characters, bidi marks, NUL, line
breaks, 100 KB values): the command ends with its normal exit code, its output is
UTF-8 a terminal shows safely (those characters written as escapes,
kstream/printable.py), and the JSON outputs hold the very strings."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kstream.cluster.stream import Unit
from kstream.jsonlines import go_json
from kstream.printable import visible
from kstream.resources import Resource
from kstream.serve.table import table
from tests.fakes import Streams
from tests.journalmaker import Journal, ev, obj, write_base

SPECIAL = ["\ud800", "\udfff", "\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\u202e", "\u2066",
           "\u200f", "\u200b", "\ufeff", "\r\n", "\n", "\t", "\u2028", "\U000e0041", "\\u202e",
           "é", "漢", "😀", "[bold]", "%s"]  # fmt: skip
BIG = "x" * 100_000 + "\u202e\ud800" + "y" * 10

strange = st.one_of(
    st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=4)), max_size=8).map("".join),
    st.text(
        st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Lo"]), max_size=12
    ),
)
FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# what may never reach a text output raw (\n ends lines, nothing else is hidden)
HIDDEN = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) != "\n"} | {
    "\u202e", "\u2066", "\u200f", "\u200b", "\ufeff", "\u2028", "\U000e0041",
}  # fmt: skip


def shown_safely(text: str) -> None:
    raw = [ch for ch in text if ch in HIDDEN or "\ud800" <= ch <= "\udfff"]
    if raw:
        pytest.fail(f"shown raw: {raw[:5]!r}")


def read(s: str) -> str:
    """`s` written as JSON and read back: "\\ud800\\udfff" is one character then."""
    return str(json.loads(json.dumps(s)))


def shows(part: str, text: str) -> None:
    """`part` (escaped, as JSON reads it: a surrogate pair is one character) is in
    the output; a table may elide a 100 KB cell."""
    part = read(part)
    if len(part) < 1000 and visible(part) not in text:
        pytest.fail(f"{visible(part)[:80]!r} not in the output")


def cm(name: str, ns: str, value: str, label: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "uid": f"u-{name}", "labels": {"app": label}},
        "data": {"k": value},
    }


def ndjson(path: Path, objs: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))  # \ud800 as its JSON escape
    return str(path)


@FAST
@given(value=strange, ns=strange)
@example(value=BIG, ns="\x1b]0;title\x07")
def test_count_tables(value: str, ns: str, tmp_path: Path) -> None:
    snap = ndjson(tmp_path / "s.ndjson", [cm("a", ns, "v", value), cm("b", "ns", "v", value)])
    for by in ("label:app", "namespace,resource"):
        code, out, err = Streams()("count", snap, "--by", by, "--color", "never")
        assert code == 0, err
        shown_safely(out)
        shows(value if by == "label:app" else ns, out)
    code, out, _ = Streams()("count", snap, "--by", "label:app", "-o", "ndjson")
    assert code == 0
    if {json.loads(x)["label"] for x in out.split("\n")[:-1]} != {read(value)}:
        pytest.fail("-o ndjson: not the label as written")


@FAST
@given(value=strange)
@example(value=BIG)
def test_diff_text_and_records(value: str, tmp_path: Path) -> None:
    a = ndjson(tmp_path / "a.ndjson", [cm("a", "ns", "old", "l")])
    b = ndjson(tmp_path / "b.ndjson", [cm("a", "ns", value, "l")])
    code, out, err = Streams()("diff", a, b, "--color", "never")
    assert code == (0 if value == "old" else 1), err
    if any("\ud800" <= ch <= "\udfff" for ch in out):
        pytest.fail("a surrogate in the output")
    code, out, _ = Streams()("diff", a, b, "-o", "ndjson")
    if value != "old":
        [rec] = [json.loads(x) for x in out.split("\n")[:-1]]
        if rec["fields"] != [{"path": "data.k", "old": "old", "new": read(value)}]:
            pytest.fail("-o ndjson: not the value as written")


CM = "v1/configmaps"


@FAST
@given(value=strange, manager=strange)
@example(value=BIG, manager="\u202eevil")
def test_log_lines(value: str, manager: str, tmp_path: Path) -> None:
    j = Journal(tmp_path / "J")
    write_base(j.base, {CM: [obj(CM, "a", "shop", "10", data={"k": "0"})]})
    changed = obj(CM, "a", "shop", "11", data={"k": value})
    changed["metadata"]["managedFields"] = [
        {"manager": manager, "operation": "Update", "time": "2026-11-29T14:00:01Z"}
    ]
    j.segment(1, [[ev("2026-11-29T14:00:01.000000Z", "MODIFIED", CM, changed)]])
    code, out, err = Streams()("log", str(j.root), "--color", "never")
    assert code == 0, err
    shown_safely(out)
    shows(manager, out)
    code, out, err = Streams()("log", str(j.root), "-o", "ndjson")
    assert code == 0, err
    [rec] = [json.loads(x) for x in out.split("\n")[:-1]]
    if (manager and rec["manager"] != read(manager)) or (
        value != "0" and rec["fields"] != [{"path": "data.k", "old": "0", "new": read(value)}]
    ):
        pytest.fail("-o ndjson: not the strings as written")


@FAST
@given(name=strange, reason=strange)
@example(name=BIG, reason="\x00\u2066")
def test_serve_table_cells(name: str, reason: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-11-29T14:00:00Z"},
        "status": {"phase": "Failed", "reason": reason, "containerStatuses": []},
    }
    doc = table("Pod", "", [pod], 1_800_000_000.0, {})
    body = json.loads(go_json(doc))  # encodes, whatever the object holds
    for row in body["rows"]:
        for cell in row["cells"]:
            if isinstance(cell, str):
                shown_safely(cell)
    if body["rows"][0]["cells"][0] != visible(name):
        pytest.fail("the NAME cell is not the name, escaped")


@FAST
@given(error=strange, ns=strange)
@example(error=BIG, ns="\u202e")
def test_dump_summary(error: str, ns: str) -> None:
    from rich.console import Console

    from kstream.cli import render

    u = Unit(Resource("", "v1", "configmaps", "ConfigMap", True), ns or None)
    u.status, u.method, u.error, u.objects = "failed", "list", error, 0
    ok = Unit(Resource("", "v1", "secrets", "Secret", True), None)
    ok.status, ok.method, ok.objects = "complete", "watch-list", 3
    for plain in (False, True):
        f = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        console = Console(file=f, width=100, color_system=None)
        if plain:
            for line in render.summary_lines([u, ok], "kstream dump → x"):
                console.print(render.styled_line(line), soft_wrap=True)
        else:
            console.print(render.summary([u, ok], "kstream dump → x"))
        buf = f.buffer
        assert isinstance(buf, io.BytesIO)
        shown_safely(buf.getvalue().decode("utf-8"))


@pytest.mark.parametrize("s", ["plain", "é漢😀", "a b", "[bold]"])
def test_visible_leaves_ordinary_text_alone(s: str) -> None:
    assert visible(s) == s


@given(s=strange)
def test_visible_escapes_are_json_escapes(s: str) -> None:
    """In a JSON string, what visible() writes means the string it was given."""
    if "\\" not in s and '"' not in s:
        assert json.loads(f'"{visible(s)}"') == json.loads(json.dumps(s))  # as JSON reads s
