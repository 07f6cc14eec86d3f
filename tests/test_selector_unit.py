"""The one label/field selector grammar (kstream.selector), without a cluster.
The verdicts in LABEL_CASES and FIELD_CASES are the API server's (v1.36): the
cluster tests (test_selector_cluster.py) check them against a real LIST."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream.errors import UsageError
from kstream.exitcodes import ExitCode
from kstream.selector import (
    LabelSelector,
    SelectorError,
    check,
    parse_fields,
    parse_labels,
)
from tests.conftest import kstream

# (selector, the server accepts it)
LABEL_CASES: list[tuple[str, bool]] = [
    ("", True),
    ("  ", True),
    ("tier", True),
    ("!tier", True),
    ("! tier", True),
    ("tier=web", True),
    ("tier==web", True),
    ("tier!=web", True),
    ("tier=", True),  # the empty value
    ("tier!=", True),
    ("tier in (web,db)", True),
    ("tier notin (web, db)", True),
    ("tier in ()", True),  # () is the empty value
    ("tier in (,)", True),
    ("tier in (web,)", True),
    ("tier\tin\t(web)", True),
    ("tier\nin (web)", True),
    ("tier in(web)", True),
    ("num>1", True),
    ("num<10", True),
    ("num> 1", True),
    ("num >1", True),
    ("num>007", True),
    ("num>9223372036854775807", True),
    ("num<10,tier", True),
    ("in", True),  # a key named in
    ("in=in", True),
    ("tier notin (in)", True),
    ("example.com/team=a", True),
    ("a.b.c/d", True),
    ("a_b=c", True),
    ("x" * 63, True),
    ("tier=" + "x" * 63, True),
    ("a=\x00b", True),  # the server's lexer consumes a NUL after an operator
    ("a \x00 b", True),  # and stops at one where a token starts
    ("a=b=c", False),
    ("x/y/z=1", False),
    ("Example.com/a=1", False),  # the prefix is lower case
    ("/b", False),
    ("a/", False),
    ("a-.b/c", False),
    ("-a=b", False),
    ("_a=b", False),
    ("a=b_", False),
    ("x" * 64, False),
    ("tier=" + "x" * 64, False),
    ("num>-1", False),  # '-1' is no label value
    ("num>+1", False),
    ("num>x", False),
    ("num>", False),
    ("num>99999999999999999999", False),
    ("num>9223372036854775808", False),
    ("a,", False),
    (",a", False),
    ("!a=b", False),
    ("ain (b)", False),
    ("a===b", False),
    ("a in (b c)", False),
    ("a=(b)", False),
    ("a in b", False),
    ("a in (b", False),
    ("a b", False),
    ("a=b\x00junk", False),
]

# (field selector, the grammar accepts it); metadata.name and metadata.namespace
# are fields of every resource
FIELD_CASES: list[tuple[str, bool]] = [
    ("", True),
    ("metadata.name=x", True),
    ("metadata.name==x", True),
    ("metadata.name!=x", True),
    ("metadata.name=", True),
    ("metadata.name=a\\=b", True),
    ("metadata.name=a\\\\", True),
    ("metadata.name=a\\,b,metadata.namespace=x", True),
    (",,metadata.name=x,", True),
    ("metadata.name", False),
    ("metadata.name!x", False),
    ("=x", False),
    ("metadata.name=a=b", False),
    ("metadata.name=a,b", False),
    ("metadata.name=a\\x", False),
    ("metadata.name=a\\", False),
    ("metadata.name =x", False),
    (" metadata.name=x", False),
]


def valid_labels(text: str) -> bool:
    try:
        parse_labels(text)
    except SelectorError:
        return False
    return True


@pytest.mark.parametrize(("text", "ok"), LABEL_CASES)
def test_label_selector_grammar(text: str, ok: bool) -> None:
    assert valid_labels(text) is ok


@pytest.mark.parametrize(("text", "ok"), FIELD_CASES)
def test_field_selector_grammar(text: str, ok: bool) -> None:
    try:
        parse_fields(text)
    except SelectorError:
        assert not ok
    else:
        assert ok


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": ""}, False),
        ("tier=", {"tier": ""}, True),
        ("tier=", {}, False),
        ("tier!=web", {}, True),
        ("tier notin (web)", {}, True),
        ("tier in ()", {"tier": ""}, True),
        ("tier in (a,,b)", {"tier": ""}, True),
        ("num>1", {"num": "2"}, True),
        ("num>1", {"num": "1"}, False),
        ("num>1", {"num": "x"}, False),
        ("num>1", {}, False),
        ("num<1", {}, False),
        ("num<10", {"num": "09"}, True),
        ("num>9223372036854775806", {"num": "9223372036854775807"}, True),
        ("num>1", {"num": "99999999999999999999"}, False),  # not an int64
        ("in=in", {"in": "in"}, True),
        ("a,b=c", {"a": "", "b": "c"}, True),
        ("a,b=c", {"b": "c"}, False),
    ],
)
def test_matching(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector(text).matches(labels) is expected


_ALPHABET = ["a", "b", "x/y", "1", "-1", "=", "==", "!", "!=", "<", ">", "(", ")", ",", " ",
             "in", "notin", "A.b/c", "_", "\t"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=10).map("".join))
def test_parser_only_ever_says_why(text: str) -> None:
    """Any input either parses, and then prints back to an equal selector, or
    is refused with SelectorError (never another exception)."""
    try:
        reqs = parse_labels(text)
    except SelectorError as e:
        assert str(e)
        return
    again = parse_labels(",".join(str(r) for r in reqs))
    assert again == reqs


def test_errors_are_one_usage_line() -> None:
    with pytest.raises(UsageError, match=r"^--selector: unable to parse requirement: "):
        check("x/y/z=1", "")
    with pytest.raises(UsageError, match=r"^--field-selector: invalid field selector"):
        check("", "metadata.name=a\\x")
    check("tier in (a,b),!x", "metadata.name!=a")


@pytest.mark.parametrize(
    "args",
    [
        ("dump", "-o", "OUT", "-l", "tier>-1"),
        ("dump", "-o", "OUT", "--field-selector", "metadata.name"),
        ("count", "-l", "a in (b"),
        ("count", "--field-selector", "metadata.name=a=b"),
    ],
)
def test_bad_selectors_stop_live_commands_before_any_request(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The kubeconfig names a server nobody listens on: reaching it would be
    another error. Nothing is written, not even a .partial."""
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    out = tmp_path / "snap.ndjson"
    res = kstream(*(str(out) if a == "OUT" else a for a in args), kubeconfig=kc)
    assert res.code == ExitCode.USAGE, res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "selector" in lines[0], res.err
    assert list(tmp_path.iterdir()) == [kc]


def test_count_and_diff_select_the_same_objects(tmp_path: Path) -> None:
    """`-l 'tier>1'` means the same to count and diff (diff once took it for a
    key and selected nothing)."""
    snap = tmp_path / "snap.ndjson"
    base = tmp_path / "base.ndjson"  # only t1, which none of the selectors below selects
    tiers = {"t0": "0", "t1": "1", "t2": "2", "t10": "10", "tx": "x", "none": None}
    lines = {}
    for name, tier in tiers.items():
        md: dict[str, Any] = {"name": name, "namespace": "ns"}
        if tier is not None:
            md["labels"] = {"tier": tier}
        lines[name] = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md})
    snap.write_text("".join(line + "\n" for line in lines.values()))
    base.write_text(lines["t1"] + "\n")
    for sel, want in (("tier>1", {"t2", "t10"}), ("tier<1", {"t0"}), ("!tier", {"none"})):
        res = kstream("count", str(snap), "-l", sel, "-o", "json", "--by", "label:tier")
        assert res.code == 0, res.err
        counted = {r["label"]: r["objects"] for r in json.loads(res.out)["rows"]}
        assert counted == {tiers[n]: 1 for n in want}
        res = kstream("diff", str(base), str(snap), "-l", sel, "-o", "ndjson")
        assert res.code == ExitCode.DIFFERENCES, res.err
        assert {json.loads(line)["name"] for line in res.out.splitlines()} == want
