"""The paginated LIST of a unit (limit/continue), read when the server refuses
watch-list for a resource or `--method list` asks for it, and the one-item
LIST behind estimates. `listpage.PageReader` cuts each item out of a page as
the bytes the server sent; kind/apiVersion are added where the server leaves
them out, so the LIST path writes the same bytes as the watch-list path."""

from __future__ import annotations

import json

from kstream.cluster.unit import Sink, Unit
from kstream.cluster.wire import Wire
from kstream.errors import TransportError
from kstream.listpage import (
    BATCH,
    HAS_API_VERSION,
    HAS_KIND,
    NOT_OBJECT,
    PageError,
    PageReader,
    compact,
)


def list_pages(wire: Wire, unit: Unit, sink: Sink) -> str:
    r = unit.resource
    path, selectors = wire.target(unit)
    kind, api = json.dumps(r.kind), json.dumps(r.api_version)
    # what goes before an item's own members, by the TypeMeta it lacks
    heads = {
        0: f'{{"kind":{kind},"apiVersion":{api}'.encode(),
        HAS_KIND: f'{{"apiVersion":{api}'.encode(),
        HAS_API_VERSION: f'{{"kind":{kind}'.encode(),
    }
    typed = HAS_KIND | HAS_API_VERSION
    cont = ""
    rv = ""
    write = sink.write
    while True:
        q = [("limit", str(wire.opts.page_size)), *selectors]
        if cont:
            q.append(("continue", cont))
        resp = wire.client.open(path, q, what=f"list {unit.label}")
        wire.track(resp)
        page = PageReader()

        def put(items: list[tuple[bytes, int]]) -> None:
            size = 0
            for item, flags in items:
                if flags != typed:
                    item = _typed(item, flags, heads, unit)
                elif b"\n" in item or b"\r" in item:
                    item = compact(item)
                write(item)
                size += len(item)
            unit.objects += len(items)
            unit.bytes += size

        try:
            for chunk in wire.chunks(resp, fill=BATCH):
                items = page.feed(chunk)
                if items:
                    put(items)
            put(page.close())
        except PageError as e:
            raise page_error(unit, e) from None
        finally:
            wire.untrack(resp)
        if not page.items_seen:
            raise TransportError(f"list {unit.label}: the server sent a list without items")
        # all pages are one snapshot at the first page's resourceVersion
        rv = rv or page.resource_version
        cont = page.continue_token
        remaining = page.remaining
        if remaining is not None:
            unit.estimate = unit.objects + remaining
        if not cont:
            return rv


def estimate_count(wire: Wire, unit: Unit) -> int | None:
    """Objects in a unit from one LIST with limit=1: the item plus the
    server's remainingItemCount; None when the server does not say (it
    never does with selectors). Errors are raised."""
    path, selectors = wire.target(unit)
    resp = wire.client.open(path, [("limit", "1"), *selectors], what=f"list {unit.label}")
    wire.track(resp)
    page = PageReader()
    n = 0
    try:
        for chunk in wire.chunks(resp):
            n += len(page.feed(chunk))
        n += len(page.close())
    except PageError as e:
        raise page_error(unit, e) from None
    finally:
        wire.untrack(resp)
    if not page.continue_token:
        return n
    rem = page.remaining
    return None if rem is None else n + rem


def _typed(item: bytes, flags: int, heads: dict[int, bytes], unit: Unit) -> bytes:
    """A LIST item as a watch event carries it: kind and apiVersion first
    (LIST items of built-in types carry neither), compact."""
    if flags == NOT_OBJECT:
        raise TransportError(f"list {unit.label}: an item of the list is not an object")
    if b"\n" in item or b"\r" in item:
        item = compact(item)
    if item[1:2] not in b" \t}":
        return b"".join((heads[flags], b",", memoryview(item)[1:]))  # one copy of the item
    rest = item[1:].lstrip(b" \t")
    if rest.startswith(b"}"):
        return heads[flags] + b"}"
    return heads[flags] + b"," + rest


def page_error(unit: Unit, e: PageError) -> TransportError:
    if e.truncated:
        return TransportError(f"list {unit.label}: the body was cut short ({e})")
    return TransportError(f"list {unit.label}: the server sent invalid JSON ({e})")
