"""The page reader's fast path (candidate item ends found by str.find, checked
by msgspec) against its exact path and json.loads: the items whose layout
invites false candidates (`},{"metadata":` and `},{"apiVersion":...` in nested
lists, in strings, after backslashes), pages cut into chunks at any offset,
truncated and malformed bodies. No cluster."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream import listpage
from kstream.listpage import HAS_API_VERSION, HAS_KIND, NOT_OBJECT, PageError, PageReader

API = "demo.kstream.dev/v1"


@contextmanager
def batch(size: int) -> Iterator[None]:
    """Cut as soon as `size` bytes are gathered (the reader waits for 64 KB)."""
    with mock.patch.object(listpage, "BATCH", size):
        yield


@contextmanager
def exact_only() -> Iterator[None]:
    """The reader without its fast path (as without msgspec)."""
    with mock.patch.object(listpage, "_typemeta_decoder", lambda: None):
        yield


def read(body: bytes, cuts: list[int]) -> tuple[list[tuple[bytes, int]], PageReader]:
    r = PageReader()
    out: list[tuple[bytes, int]] = []
    prev = 0
    for c in sorted(cuts):
        out.extend(r.feed(body[prev:c]))
        prev = c
    out.extend(r.feed(body[prev:]))
    out.extend(r.close())
    return out, r


def outcome(body: bytes, cuts: list[int]) -> tuple[list[tuple[bytes, int]], Any, int]:
    """(items, error as (truncated, message) or None, items cut by the fast path);
    on an error, the items are those handed out before it."""
    r = PageReader()
    out: list[tuple[bytes, int]] = []
    prev = 0
    try:
        for c in [*sorted(cuts), len(body)]:
            out.extend(r.feed(body[prev:c]))
            prev = c
        out.extend(r.close())
    except PageError as e:
        return out, (e.truncated, str(e)), r.fast_items
    return out, None, r.fast_items


def go(v: Any, sort: bool = False) -> str:
    """Compact JSON as the server writes it (a lone surrogate escaped)."""
    text = json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=sort)
    return text.replace("\ud800", "\\ud800")


# strings that look like item boundaries once escaped, or end in backslashes
TRICKY = st.sampled_from(
    [
        '},{"metadata":',
        '},{"apiVersion":"' + API + '","kind":',
        "\\",
        '\\"},{"metadata":',
        'a\\\\"},{"apiVersion":',
        '"',
        "}]},{",
        "é ☃ \u2028 \x7f",
        "<&>",
        "\ud800",  # a lone surrogate (escaped as \\ud800 by json.dumps)
    ]
)


def scalars() -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=6)
        | TRICKY
    )


def values(head_key: str) -> st.SearchStrategy[Any]:
    """JSON values holding lists of objects that start like items do."""
    lookalike = st.fixed_dictionaries(
        {head_key: st.dictionaries(st.sampled_from(["name", "x"]), scalars(), max_size=2)}
    )
    if head_key == "apiVersion":
        lookalike = st.fixed_dictionaries(
            {"apiVersion": st.just(API), "kind": st.just("Widget"), "metadata": scalars()}
        )
    return st.recursive(
        scalars() | lookalike,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=6) | TRICKY, inner, max_size=3)
            | st.lists(lookalike, min_size=2, max_size=4)
        ),
        max_leaves=12,
    )


VALUES = {k: values(k) for k in ("metadata", "apiVersion")}


@st.composite
def pages(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[int]]:
    """A LIST page in the built-in layout (`metadata` first, no TypeMeta in the
    items) or the custom-resource layout (keys sorted), and its items' texts."""
    cr = draw(st.booleans())
    n = draw(st.integers(0, 8))
    items: list[str] = []
    flags: list[int] = []
    for k in range(n):
        md = {"name": f"o{k}", "namespace": draw(st.text(max_size=4) | TRICKY)}
        spec = draw(VALUES["apiVersion" if cr else "metadata"])
        if cr:
            items.append(
                go({"apiVersion": API, "kind": "Widget", "metadata": md, "spec": spec}, True)
            )
            flags.append(HAS_KIND | HAS_API_VERSION)
        else:
            items.append(go({"metadata": md, "spec": spec}))
            flags.append(0)
    meta = '{"resourceVersion":"7","continue":"c"}'
    if cr:
        body = '{"apiVersion":"' + API + '","items":[' + ",".join(items)
        body += '],"kind":"WidgetList","metadata":' + meta + "}"
    else:
        body = '{"kind":"ConfigMapList","apiVersion":"v1","metadata":' + meta
        body += ',"items":[' + ",".join(items) + "]}"
    return body.encode(), [i.encode() for i in items], flags


@settings(max_examples=300, deadline=None)
@given(page=pages(), size=st.sampled_from([1, 50, 400, 65536]), seed=st.integers(0, 2**32))
def test_fast_path_cuts_the_bytes_sent(
    page: tuple[bytes, list[bytes], list[int]], size: int, seed: int
) -> None:
    body, items, flags = page
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(body)), min(len(body) - 1, rnd.randint(0, 40))))
    with batch(size):
        out, r = read(body, cuts)
        assert [b for b, _ in out] == items
        assert [f for _, f in out] == flags
        assert r.continue_token == "c" and r.resource_version == "7"
        with exact_only():
            assert read(body, cuts)[0] == out
        # cut short anywhere: an error that says so, never fewer items silently
        for cut in {len(body) - 1, len(body) // 2, *cuts}:
            got, err, _ = outcome(body[:cut], [c for c in cuts if c < cut])
            assert err is not None and err[0], cut
            assert got == out[: len(got)]


@settings(max_examples=300, deadline=None)
@given(page=pages(), size=st.sampled_from([1, 300, 65536]), data=st.data())
def test_a_damaged_page_reads_as_without_the_fast_path(
    page: tuple[bytes, list[bytes], list[int]], size: int, data: st.DataObject
) -> None:
    """One byte changed, dropped or inserted: the fast path and the exact path
    agree on every item and on the error."""
    body = bytearray(page[0])
    at = data.draw(st.integers(0, len(body) - 1))
    byte = data.draw(st.sampled_from(b'{}[],:"\\ 0-e.tnx\x01\xff'))
    how = data.draw(st.sampled_from(["set", "drop", "insert"]))
    if how == "set":
        body[at] = byte
    elif how == "drop":
        del body[at]
    else:
        body.insert(at, byte)
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=8)))
    with batch(size):
        fast = outcome(bytes(body), cuts)
        with exact_only():
            exact = outcome(bytes(body), cuts)
    assert fast[:2] == exact[:2]


def kubernetes_page(n: int, cr: bool) -> tuple[bytes, list[bytes]]:
    items = []
    for k in range(n):
        md = {
            "name": f"cm-{k}",
            "namespace": "ns",
            "managedFields": [
                {"manager": "a", "apiVersion": "v1" if not cr else API, "fieldsV1": {"f:x": {}}},
                {"manager": "b", "apiVersion": "v1" if not cr else API, "fieldsV1": {"f:y": {}}},
            ],
        }
        data = {"conf": 'line one\nline \\ two "quoted" {},{} ' * (k % 7)}
        if cr:
            items.append(
                go({"apiVersion": API, "kind": "Widget", "metadata": md, "spec": data}, True)
            )
        else:
            items.append(go({"metadata": md, "data": data}))
    body = '{"kind":"L","apiVersion":"v1","metadata":{},"items":[' + ",".join(items) + "]}"
    return body.encode(), [i.encode() for i in items]


@pytest.mark.parametrize("cr", [False, True])
def test_the_fast_path_cuts_a_kubernetes_page(cr: bool) -> None:
    body, items = kubernetes_page(300, cr)
    # about one HTTP chunk per item, as the server sends them
    cuts = [body.index(i) for i in items[1:]]
    out, r = read(body, cuts)
    assert [b for b, _ in out] == items
    # the first item teaches the layout; the exact path cuts none of the others
    assert r.fast_items == len(items) - 1
    out, r = read(body, [])
    assert [b for b, _ in out] == items and r.fast_items == len(items) - 1


def test_many_lookalikes_inside_one_item_turn_the_fast_path_off() -> None:
    nested = [{"metadata": {"name": f"v{k}"}} for k in range(3 * listpage.FAST_TRIES)]
    items = [go({"metadata": {"name": "a"}})]
    items += [go({"metadata": {"name": f"s{k}"}, "spec": {"t": nested}}) for k in range(5)]
    body = ('{"items":[' + ",".join(items) + "]}").encode()
    out, r = read(body, [])
    assert [b for b, _ in out] == [i.encode() for i in items]
    assert r.fast_items == 0  # given up on the first such item, then the exact path only


def test_a_changed_layout_goes_to_the_exact_path() -> None:
    """Items that do not start alike (and a pretty-printed one) still come out whole."""
    items = [
        go({"metadata": {"name": "a"}}),
        go({"metadata": {"name": "b"}}),
        go({"kind": "X", "metadata": {"name": "c"}}),
        json.dumps({"metadata": {"name": "d"}}, indent=1),
        go({"metadata": {"name": "e"}}),
        go({"metadata": {"name": "f"}}),
        go([1, {"metadata": 2}]),
        go({"metadata": {"name": "g"}}),
    ]
    body = ('{"items":[' + ",".join(items) + "]}").encode()
    for size in (1, 65536):
        with batch(size):
            out, _ = read(body, list(range(1, len(body))))
        assert [b for b, _ in out] == [i.encode() for i in items]
        assert [f for _, f in out] == [0, 0, HAS_KIND, 0, 0, 0, NOT_OBJECT, 0]


def test_a_large_item_in_small_chunks_is_checked_a_few_times_only() -> None:
    """A 1.5 MB item arriving 4 KB at a time: the fast path tries it each time
    what is pending has doubled, not at every chunk."""
    big = go({"metadata": {"name": "big"}, "data": {"k": "v" * 1_500_000}})
    small = go({"metadata": {"name": "s"}})
    body = ('{"items":[' + ",".join([small, big, small, big, small]) + "]}").encode()
    # and the last item of a page as big (the exact path would decode it all)
    last = ('{"items":[' + ",".join([small, big]) + "]}").encode()
    out, r = read(last, list(range(4096, len(last), 4096)))
    assert [b for b, _ in out] == [small.encode(), big.encode()] and r.fast_items == 1
    decode = listpage._typemeta_decoder()
    assert decode is not None
    seen = [0]

    def counting(b: bytes) -> Any:
        seen[0] += len(b)
        return decode(b)

    with mock.patch.object(listpage, "_typemeta_decoder", lambda: counting):
        out, r = read(body, list(range(4096, len(body), 4096)))
    assert [b for b, _ in out] == [i.encode() for i in [small, big, small, big, small]]
    assert r.fast_items == 4
    assert seen[0] < 6 * len(body)  # per chunk it would be ~400x


def test_msgspec_says_truncated_as_the_fast_path_expects() -> None:
    decode = listpage._typemeta_decoder()
    assert decode is not None
    for text in (b'{"a":', b'{"a":[{"b":1}', b'{"metadata":{"name":"x"},"s":[{"metadata":{}}'):
        with pytest.raises(ValueError) as e:
            decode(text)
        assert str(e.value) == listpage._TRUNCATED
    with pytest.raises(ValueError) as e:
        decode(b'{"a":1},{"a":2}')
    assert str(e.value) != listpage._TRUNCATED


TOKENS = [
    b"{", b"}", b"[", b"]", b",", b":", b'"kind"', b'"apiVersion"', b'"k\\u0069nd"', b'"a"',
    b'"\\ud800"', b'"\\"', b"\\", b'"', b"01", b"-0", b"1.5e+3", b"1.", b".5", b"NaN",
    b"Infinity", b"true", b"nul", b"null", b" ", b"\t", b"\n", b"\x0b", b"\x0c", b"\x00",
    b"\x01", b"\xff", b"\xe2\x98\x83", b"\xed\xa0\x80", b"\xc3",
]  # fmt: skip
JSONISH = st.lists(st.sampled_from(TOKENS), max_size=30)


@settings(max_examples=3000, deadline=None)
@given(
    parts=JSONISH,
    wrap=st.booleans(),
)
def test_what_msgspec_accepts_json_loads_accepts_alike(parts: list[bytes], wrap: bool) -> None:
    """The fast path trusts msgspec's "valid": json.loads (what the exact
    path runs) must take the same text as one object with the same
    kind/apiVersion members."""
    text = b"".join(parts)
    if wrap:
        text = b"{" + text + b"}"
    decode = listpage._typemeta_decoder()
    assert decode is not None
    try:
        tm = decode(text)
    except (ValueError, RecursionError):
        return
    v = json.loads(text.decode("utf-8", "surrogateescape"))
    assert isinstance(v, dict)
    assert bool(tm.kind) == ("kind" in v) and bool(tm.apiVersion) == ("apiVersion" in v)


def test_the_decoder_is_there_for_a_thread_that_asks_while_another_makes_it() -> None:
    """Two LIST streams start at once: the second must not find "tried" and no
    decoder (that turned the fast path off for a whole page)."""
    import msgspec

    first_inside, release = threading.Event(), threading.Event()
    real = msgspec.defstruct
    calls = [0]

    def slow_defstruct(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:  # the first maker stops half-way
            first_inside.set()
            release.wait(10)
        return real(*args, **kwargs)

    got: list[Any] = []
    with (
        mock.patch.object(listpage, "_typemeta", None),
        mock.patch.object(listpage, "_typemeta_tried", False),
        mock.patch.object(msgspec, "defstruct", slow_defstruct),
    ):
        a = threading.Thread(target=lambda: got.append(listpage._typemeta_decoder()))
        a.start()
        assert first_inside.wait(10)
        second = listpage._typemeta_decoder()
        release.set()
        a.join(10)
    assert second is not None and got and got[0] is not None
    assert second(b'{"kind":"K"}').kind
