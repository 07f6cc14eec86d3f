"""A JSON List document written by another tool (`kubectl get -A -o json`,
pretty-printed, or compact) is a snapshot for count and diff: its numbers are
compared as written (never through a float), and it is read item by item, in
memory that does not grow with the document."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from kstream import diff as d
from kstream.count import Grouping, count_snapshot
from kstream.selector import Scope
from kstream.store.snapshot import open_snapshot
from tests.conftest import kstream

GROUP = "jl.kstream.dev"


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "n", "uid": f"uid-{name}"},
        "spec": spec,
    }


def json_list(path: Path, items: list[str], pretty: bool) -> Path:
    """A List document around items already encoded as JSON text (so numbers
    are written as given, not as Python would print them), kubectl's key order."""
    if pretty:
        body = ",\n".join("        " + i for i in items)
        text = (
            '{\n    "apiVersion": "v1",\n    "items": [\n'
            + body
            + '\n    ],\n    "kind": "List",\n    "metadata": {\n'
            '        "resourceVersion": ""\n    }\n}\n'
        )
    else:
        text = '{"apiVersion":"v1","items":[' + ",".join(items) + '],"kind":"List","metadata":{}}'
    path.write_text(text)
    return path


# numbers a float64 cannot tell apart from their neighbour, as JSON text
NUMBERS = {
    "i53p1": ("9007199254740993", "9007199254740992"),
    "go-big": ("12345678901234567001", "12345678901234567000"),
    "i64": ("18446744073709551617", "18446744073709551616"),
}


def with_numbers(name: str, which: int) -> str:
    text = json.dumps(widget(name, placeholder=0), separators=(",", ":"))
    nums = ",".join(f'"{k}":{v[which]}' for k, v in NUMBERS.items())
    return text.replace('"placeholder":0', nums)


@pytest.mark.parametrize(("old_pretty", "new_pretty"), [(False, True), (True, False)])
def test_diff_of_json_lists_keeps_numbers_exact(
    tmp_path: Path, old_pretty: bool, new_pretty: bool
) -> None:
    old = json_list(tmp_path / "old.json", [with_numbers("w", 0)], old_pretty)
    same = json_list(tmp_path / "same.json", [with_numbers("w", 0)], new_pretty)
    new = json_list(tmp_path / "new.json", [with_numbers("w", 1)], new_pretty)
    assert open_snapshot(str(old)).format == open_snapshot(str(new)).format == "json"
    r = kstream("diff", str(old), str(same))
    assert r.code == 0, (r.err, r.text)
    r = kstream("diff", str(old), str(new), "-o", "ndjson")
    assert r.code == 1, r.err
    [rec] = [json.loads(x) for x in r.out.splitlines()]
    assert rec["change"] == "modified"
    got = {f["path"]: (f["old"], f["new"]) for f in rec["fields"]}
    assert got.keys() == {f"spec.{k}" for k in NUMBERS}
    # the values as written, to the last digit
    for k, (a, b) in NUMBERS.items():
        assert got[f"spec.{k}"] == (int(a), int(b))


def test_a_json_list_diffs_clean_against_the_same_objects_as_ndjson(tmp_path: Path) -> None:
    items = [with_numbers(f"w{i}", 0) for i in range(3)]
    nd = tmp_path / "same.ndjson"
    nd.write_text("".join(i + "\n" for i in items))
    for pretty in (False, True):
        doc = json_list(tmp_path / f"l{pretty}.json", items, pretty)
        assert [bytes(x) for x in open_snapshot(str(doc)).lines()] == [i.encode() for i in items]
        r = kstream("diff", str(nd), str(doc))
        assert r.code == 0, (r.err, r.text)


@pytest.mark.parametrize("pretty", [False, True])
def test_counting_a_json_list_is_flat_in_its_size(tmp_path: Path, pretty: bool) -> None:
    """The document is one JSON value, yet it is never held whole: peak memory
    of count over 20,000 objects stays that of 2,000 (plus a little)."""
    peaks = []
    for n in (2_000, 20_000):
        items = [
            json.dumps(widget(f"w-{i:05d}", pad="p" * 300, i=i), separators=(",", ":"))
            for i in range(n)
        ]
        doc = json_list(tmp_path / f"l{n}.json", items, pretty)
        assert doc.stat().st_size > n * 300
        del items
        tracemalloc.start()
        r = count_snapshot(str(doc), Grouping.parse("namespace"), Scope())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert r.total_objects == n
    assert peaks[1] < 8 * 1024 * 1024, peaks
    assert peaks[1] < peaks[0] * 2 + 1024 * 1024, peaks


def test_diff_reads_a_json_list_through_the_comparison(tmp_path: Path) -> None:
    """The same documents through the library: one modified object, exact."""
    old = json_list(tmp_path / "o.json", [with_numbers("w", 0)], True)
    new = json_list(tmp_path / "n.json", [with_numbers("w", 1)], False)
    settings = d.Settings(ignore=tuple(d.ignore_list()), scope=Scope())
    with d.Comparison(open_snapshot(str(old)), open_snapshot(str(new)), settings) as c:
        [ch] = list(c.changes())
    assert ch.change == "modified" and len(ch.fields) == len(NUMBERS)
