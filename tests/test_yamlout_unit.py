"""kstream/yamlout.py: what it writes, a YAML reader reads back as the same JSON
value (PyYAML, a YAML 1.1 reader as kubectl's go-yaml is; with libyaml when the
test environment has it), and the same value always gives the same bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream import yamlout

yaml = pytest.importorskip("yaml")


def load(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_pure(text: str) -> Any:
    return yaml.load(text, Loader=yaml.SafeLoader)


TRICKY = [
    "",
    " ",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "N",
    "null",
    "Null",
    "~",
    "true",
    "False",
    "1",
    "0x1f",
    "1e3",
    "1_000",
    ".inf",
    "-.Inf",
    ".nan",
    "2026-12-07",
    "12:30:00",
    "<<",
    "- x",
    "? x",
    ": x",
    "a: b",
    "a #b",
    "#c",
    "'q'",
    '"d"',
    "@at",
    "`bt`",
    "%p",
    "!tag",
    "&anchor",
    "*alias",
    "{a}",
    "[a]",
    "|",
    ">",
    "a\nb",
    "a\n",
    "a\n\n",
    "\n",
    "\na",
    " a\nb",
    "a\n b\n",
    "\ta\nb",
    "a\tb\n",
    "a  \nb",
    "a\r\nb",
    "x\x85y",
    "x\u2028y",
    "\ufeffbom",
    "del\x7f",
    "c1\x9b",
    "nul\x00",
    "e\x1b[0m",
    "smile \U0001f600",
    "caf\u00e9",
    "\\back",
    "/slash",
    "cHctYQ==",
    "app.kubernetes.io/name",
    "a-b_c.d/e",
    "ends with space ",
    "k8s",
    "Y2",
    "on-call",
    "NO_PROXY",
    "x" * 1100,
]


@pytest.mark.parametrize("s", TRICKY)
def test_tricky_strings_read_back(s: str) -> None:
    doc = {"k": s, s or "empty": [s, {"n": s}], "l": [[s]]}
    text = yamlout.dumps(doc)
    assert load(text) == doc, text
    assert load_pure(text) == doc, text


def test_kubectl_style_and_literal_blocks() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "1"}},
        "data": {"conf": "a = 1\nb = 2\n", "empty": "", "on": "yes"},
        "list": [{"name": "main", "ports": [80, 443]}, [], {}],
        "n": 1.5,
        "big": 10**20,
        "f": 1e20,
        "nothing": None,
    }
    text = yamlout.dumps(doc)
    assert text == (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: web\n"
        "  labels:\n"
        "    app: web\n"
        '    tier: "1"\n'
        "data:\n"
        "  conf: |\n"
        "    a = 1\n"
        "    b = 2\n"
        '  empty: ""\n'
        '  "on": "yes"\n'
        "list:\n"
        "- name: main\n"
        "  ports:\n"
        "  - 80\n"
        "  - 443\n"
        "- []\n"
        "- {}\n"
        '"n": 1.5\n'
        "big: 100000000000000000000\n"
        "f: 1.0e+20\n"
        "nothing: null\n"
    )
    assert load(text) == doc


def test_deep_objects_go_flow_and_read_back() -> None:
    doc: Any = {"leaf": "x\u2028y"}
    for i in range(200):
        doc = {"d": doc, "i": i}
    text = yamlout.dumps(doc)
    assert max(len(line) - len(line.lstrip(" ")) for line in text.splitlines()) <= 2 * 64
    assert load(text) == doc


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_property_round_trip(doc: dict[str, Any]) -> None:
    text = yamlout.dumps(doc)
    back = load(text)
    # compared as JSON values: 1.0 and 1 differ in JSON text, not in value
    assert back == doc, text
    assert json.dumps(load_pure(text), sort_keys=True) == json.dumps(doc, sort_keys=True)
    assert yamlout.dumps(back) == text  # deterministic


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.text(alphabet=" \n\tab:#-|>\"'\u2028\r\x85", max_size=30), max_size=4),
    st.text(alphabet="ab \n-:", max_size=6),
)
def test_property_multiline_strings(values: list[str], key: str) -> None:
    doc = {"data": {f"k{i}": v for i, v in enumerate(values)}, key or "e": values}
    text = yamlout.dumps(doc)
    assert load(text) == doc, text
    assert load_pure(text) == doc, text
