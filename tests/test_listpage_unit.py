"""The LIST page reader against json.loads: any member order, compact or
pretty, any chunking; items come out as the exact bytes sent."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstream.listpage import HAS_API_VERSION, HAS_KIND, NOT_OBJECT, PageError, PageReader, compact


def read(body: bytes, cuts: list[int] | None = None) -> tuple[list[tuple[bytes, int]], PageReader]:
    r = PageReader()
    out: list[tuple[bytes, int]] = []
    prev = 0
    for c in sorted(cuts or []):
        out.extend(r.feed(body[prev:c]))
        prev = c
    out.extend(r.feed(body[prev:]))
    out.extend(r.close())
    return out, r


def json_values() -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )


def dump(v: object, pretty: bool, ascii_only: bool) -> str:
    if pretty:
        return json.dumps(v, indent=2, ensure_ascii=ascii_only)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=ascii_only)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(json_values(), max_size=6),
    cont=st.text(max_size=12),
    order=st.permutations(["kind", "apiVersion", "metadata", "items", "extra"]),
    pretty=st.booleans(),
    ascii_only=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_items_are_the_bytes_sent(
    items: list[object], cont: str, order: list[str], pretty: bool, ascii_only: bool, seed: int
) -> None:
    values = {
        "kind": "ThingList",
        "apiVersion": "x/v1",
        "metadata": {"continue": cont, "resourceVersion": "42", "remainingItemCount": 3},
        "extra": {"nested": [1, {"items": []}]},
    }
    sep = ",\n  " if pretty else ","
    parts = []
    item_texts = [dump(i, pretty, ascii_only) for i in items]
    for k in order:
        if k == "items":
            parts.append('"items":' + ("[" + sep.join(item_texts) + "]"))
        else:
            parts.append(json.dumps(k) + ":" + dump(values[k], pretty, ascii_only))
    body = ("{" + sep.join(parts) + "}").encode()
    assert json.loads(body)["items"] == items  # the document is what we think
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(body)), min(len(body) - 1, rnd.randint(0, 12))))
    out, r = read(body, cuts)
    assert [b for b, _ in out] == [t.encode() for t in item_texts]
    assert [json.loads(b) for b, _ in out] == items
    assert r.continue_token == cont and r.resource_version == "42" and r.remaining == 3
    for (_, flags), item in zip(out, items, strict=True):
        if isinstance(item, dict):
            assert flags == (HAS_KIND if "kind" in item else 0) | (
                HAS_API_VERSION if "apiVersion" in item else 0
            )
        else:
            assert flags == NOT_OBJECT
    # cut anywhere before the end: an error that says so, never fewer items silently
    for cut in {len(body) - 1, len(body) // 2, *cuts}:
        if not body[:cut].strip() or body[:cut].rstrip() == body.rstrip():
            continue
        with pytest.raises(PageError) as e:
            read(body[:cut])
        assert e.value.truncated


@settings(max_examples=200, deadline=None)
@given(v=json_values(), pretty=st.booleans())
def test_compact_is_what_go_would_write(v: object, pretty: bool) -> None:
    text = json.dumps(v, indent=2 if pretty else None, ensure_ascii=False)
    assert (
        compact(text.encode()) == json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()
    )


def test_depth_of_ten_thousand_and_huge_integers() -> None:
    deep = '{"metadata":{"name":"d"},"spec":' + '{"a":' * 10000 + "1" + "}" * 10000 + "}"
    huge = '{"n":' + "9" * 5000 + "}"  # more digits than int() takes
    body = ('{"kind":"L","items":[' + deep + "," + huge + '],"metadata":{"continue":"c"}}').encode()
    for cuts in ([], list(range(1000, len(body), 1000))):
        out, r = read(body, cuts)
        assert [b for b, _ in out] == [deep.encode(), huge.encode()] and r.continue_token == "c"


@pytest.mark.parametrize(
    "body",
    [
        b'{"items":[{"a":1}}',
        b'{"items":[{"a":1},]}',
        b'{"items":[{"a":01}]}',
        b'{"items":[{"a":"\x01"}]}',
        b'{"items":[{"a":1}]} x',
        b'{"items":{"a":1}}',
        b'["items"]',
        b'{"items":[{"a":tru}]}',
        b'{"items":[1],"items":[2]}',
        # Python's decoder takes these; JSON (and the exact scanner) does not
        b'{"items":[{"a":NaN}]}',
        b'{"items":[{"a":[Infinity]}]}',
        b'{"items":[{"a":-Infinity},{"b":1}]}',
    ],
)
@pytest.mark.parametrize("batch", [None, 1])
def test_malformed_bodies_are_not_cut_short(
    body: bytes, batch: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if batch is not None:  # cut at every byte as it comes, not at close()
        import kstream.listpage as lp

        monkeypatch.setattr(lp, "BATCH", batch)
        monkeypatch.setattr(lp, "_SCAN_AFTER", 0)
    with pytest.raises(PageError) as e:
        read(body, list(range(1, len(body))))
    assert not e.value.truncated


def test_large_item_arriving_in_small_chunks_is_read_once() -> None:
    item = json.dumps(
        {"metadata": {"name": "big"}, "data": {"k": "v" * 1_500_000}}, separators=(",", ":")
    )
    body = ('{"metadata":{"resourceVersion":"1"},"items":[' + item + "," + item + "]}").encode()
    out, _ = read(body, list(range(4096, len(body), 4096)))
    assert [b for b, _ in out] == [item.encode()] * 2


def test_items_null_and_empty() -> None:
    assert read(b'{"items":null,"metadata":{"resourceVersion":"3"}}')[0] == []
    out, r = read(b'{"metadata":{"resourceVersion":"3"},"items":[]}')
    assert out == [] and r.resource_version == "3" and r.continue_token == ""


@pytest.mark.parametrize(("batch", "scan_after"), [(1, None), (1, 0), (7, 0)])
@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(json_values(), max_size=6),
    cont=st.text(max_size=12),
    order=st.permutations(["kind", "apiVersion", "metadata", "items", "extra"]),
    pretty=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_items_are_the_bytes_sent_in_any_chunks(
    batch: int,
    scan_after: int | None,
    items: list[object],
    cont: str,
    order: list[str],
    pretty: bool,
    seed: int,
) -> None:
    """As test_items_are_the_bytes_sent, with the reader working on every chunk
    it is fed: it gathers BATCH (64 KiB) before cutting, so bodies that small
    are otherwise read at close() in one piece and chunk boundaries are never
    met. scan_after=0 sends every unfinished item to the exact scanner (which
    tells unfinished from malformed) instead of waiting for more."""
    import kstream.listpage as lp

    values = {
        "kind": "ThingList",
        "apiVersion": "x/v1",
        "metadata": {"continue": cont, "resourceVersion": "42", "remainingItemCount": 3},
        "extra": {"nested": [1.5e16, {"items": []}, "]}"]},
    }
    sep = ",\n  " if pretty else ","
    item_texts = [dump(i, pretty, ascii_only=False) for i in items]
    parts = []
    for k in order:
        if k == "items":
            parts.append('"items":' + ("[" + sep.join(item_texts) + "]"))
        else:
            parts.append(json.dumps(k) + ":" + dump(values[k], pretty, ascii_only=False))
    body = ("{" + sep.join(parts) + "}").encode()
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(body)), min(len(body) - 1, rnd.randint(0, 40))))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lp, "BATCH", batch)
        if scan_after is not None:
            mp.setattr(lp, "_SCAN_AFTER", scan_after)
        out, r = read(body, cuts)
        assert [b for b, _ in out] == [t.encode() for t in item_texts]
        assert r.continue_token == cont and r.resource_version == "42" and r.remaining == 3
        # cut short anywhere, fed in the same chunks: an error, never fewer items
        for cut in {len(body) - 1, len(body) // 2, *cuts}:
            if not body[:cut].strip() or body[:cut].rstrip() == body.rstrip():
                continue
            with pytest.raises(PageError) as e:
                read(body[:cut], [c for c in cuts if c < cut])
            assert e.value.truncated
