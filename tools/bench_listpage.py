"""Micro-benchmark of the LIST page reader (kstream/listpage.py): CPU per object
to cut the items out of a LIST page, against splitting the same objects out of
watch events (what the watch-list path does per object).

    python -m tools.bench_listpage                 # 500 objects a page, 20 pages
    python -m tools.bench_listpage --objects 2000 --pages 5

The objects are the benchmark's ConfigMaps and Secrets (tools/bench_data.py),
written as kube-apiserver writes them: the built-in layout (Go struct order,
`metadata` first, no kind/apiVersion in LIST items, one managedFields entry) and
the custom-resource layout (unstructured: keys sorted, kind/apiVersion in each
item, two managedFields entries whose `},{"apiVersion":` is a false item end).
The page is fed as the server sends it, in HTTP chunks of about one item, and
as the LIST path reads it since it reads whole batches (64 KB reads).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from tools.bench_data import obj


def _go(v: Any) -> str:
    """Compact JSON as Go's encoder writes it (<, >, & escaped)."""
    s = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fields(o: dict[str, Any]) -> dict[str, Any]:
    f: dict[str, Any] = {"f:data": {".": {}, **{f"f:{k}": {} for k in o["data"]}}}
    f["f:metadata"] = {"f:labels": {".": {}, **{f"f:{k}": {} for k in o["metadata"]["labels"]}}}
    if "type" in o:
        f["f:type"] = {}
    return f


def builtin_item(i: int) -> bytes:
    _, o = obj(i)
    md = o["metadata"]
    item: dict[str, Any] = {
        "metadata": {
            "name": md["name"],
            "namespace": md["namespace"],
            "uid": f"0c4b5a7e-{i:04x}-4d1e-9f3a-{i:012x}",
            "resourceVersion": str(1000 + i),
            "creationTimestamp": "2026-11-29T07:00:00Z",
            "labels": md["labels"],
            "managedFields": [
                {
                    "manager": "python-requests",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-29T07:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": _fields(o),
                }
            ],
        },
        "data": o["data"],
    }
    if "type" in o:
        item["type"] = o["type"]
    return _go(item).encode()


def cr_item(i: int) -> bytes:
    _, o = obj(i)
    md = o["metadata"]
    entry = {
        "apiVersion": "bench.example.com/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": _fields(o),
        "manager": "kubectl-client-side-apply",
        "operation": "Update",
        "time": "2026-11-29T07:00:00Z",
    }
    item = {
        "apiVersion": "bench.example.com/v1",
        "kind": "Widget",
        "metadata": {
            "creationTimestamp": "2026-11-29T07:00:00Z",
            "generation": 1,
            "labels": md["labels"],
            "managedFields": [entry, {**entry, "manager": "widget-controller"}],
            "name": md["name"],
            "namespace": md["namespace"],
            "resourceVersion": str(1000 + i),
            "uid": f"0c4b5a7e-{i:04x}-4d1e-9f3a-{i:012x}",
        },
        "spec": o["data"],
    }
    return json.dumps(item, separators=(",", ":"), sort_keys=True).encode()


def page(items: list[bytes], layout: str) -> list[bytes]:
    """The page as the chunks the server sends: the head, one per item, the tail."""
    md = b'{"resourceVersion":"99999","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ","remainingItemCount":9500}'
    if layout == "builtin":
        head = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":' + md + b',"items":['
        tail = b"]}"
    else:
        head = b'{"apiVersion":"bench.example.com/v1","items":['
        tail = b'],"kind":"WidgetList","metadata":' + md + b"}"
    chunks = [head]
    for k, it in enumerate(items):
        chunks.append((b"," if k else b"") + it)
    chunks.append(tail)
    return chunks


def batches(chunks: list[bytes], size: int) -> list[bytes]:
    body = b"".join(chunks)
    return [body[k : k + size] for k in range(0, len(body), size)]


def cut_page(chunks: list[bytes]) -> int:
    from kstream.listpage import PageReader

    r = PageReader()
    n = 0
    for c in chunks:
        n += len(r.feed(c))
    n += len(r.close())
    return n


def watch_events(items: list[bytes]) -> list[bytes]:
    return [b'{"type":"ADDED","object":' + it + b"}\n" for it in items]


def split_events(chunks: list[bytes]) -> int:
    """What the watch-list path does per object: split lines, strip the event."""
    from kstream.jsonlines import iter_lines

    prefix = b'{"type":"ADDED","object":'
    n = 0
    for line in iter_lines(chunks):
        if line.startswith(prefix) and line.endswith(b"}"):
            _ = line[len(prefix) : -1]
            n += 1
    return n


def per_object(fn: Callable[[list[bytes]], int], chunks: list[bytes], pages: int) -> float:
    """Best of three runs of `pages` pages, microseconds of CPU per object."""
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        n = 0
        for _ in range(pages):
            n += fn(chunks)
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=500, help="objects a page (default 500)")
    ap.add_argument("--pages", type=int, default=20, help="pages per run (default 20)")
    args = ap.parse_args()
    from kstream.listpage import BATCH

    for layout, make in (("builtin", builtin_item), ("cr", cr_item)):
        items = [make(i) for i in range(args.objects)]
        size = sum(map(len, items)) / len(items)
        chunks = page(items, layout)
        assert cut_page(chunks) == len(items)
        by_item = per_object(cut_page, chunks, args.pages)
        by_batch = per_object(cut_page, batches(chunks, BATCH), args.pages)
        split = per_object(split_events, watch_events(items), args.pages)
        print(
            f"{layout:8} {len(items)} objects, {size / 1024:.1f} KB on average: LIST page reader "
            f"{by_item:.1f} us/object (one chunk per item), {by_batch:.1f} (64 KB reads); "
            f"watch-event split {split:.1f} us/object"
        )


if __name__ == "__main__":
    main()
