"""Watch streams: the watch-list of a unit up to the end-of-initial-events
marker (`watch_list`), and a plain watch from a resourceVersion for
`dump --follow` (`watch_from`).

A watch-list is `watch=1&sendInitialEvents=true&allowWatchBookmarks=true&
resourceVersionMatch=NotOlderThan`, read up to the BOOKMARK annotated
`k8s.io/initial-events-end`. Each ADDED event's object is handed to the sink as
the exact bytes the server sent (runs of them at once); nothing is parsed
unless an event is not a plain ADDED one (old servers interleave changes
before the marker: those are folded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kstream import deepjson
from kstream.cluster.unit import Sink, Unit, WriteBlock
from kstream.cluster.wire import Wire
from kstream.errors import StreamError
from kstream.jsonlines import go_json, iter_line_blocks, iter_lines, object_key

ADDED_PREFIX = b'{"type":"ADDED","object":'
# between two ADDED events of a run of lines: the end of one, the start of the next
ADDED_SEP = b"}\n" + ADDED_PREFIX
END_ANNOTATION = "k8s.io/initial-events-end"


def watch_list(wire: Wire, unit: Unit, sink: Sink) -> str:
    path, selectors = wire.target(unit)
    q = [
        ("watch", "1"),
        ("sendInitialEvents", "true"),
        ("allowWatchBookmarks", "true"),
        ("resourceVersionMatch", "NotOlderThan"),
        ("resourceVersion", wire.opts.resource_version),
        ("timeoutSeconds", str(wire.opts.watch_timeout)),
        *selectors,
    ]
    resp = wire.client.open(path, q, what=f"watch {unit.label}")
    wire.track(resp)
    folded: dict[tuple[str, str], bytes | None] = {}
    plen = len(ADDED_PREFIX)
    write = sink.write
    write_block: WriteBlock = getattr(sink, "write_block", None) or _writer_of_blocks(write)
    try:
        for block in iter_line_blocks(wire.body(resp)):
            # a run of ADDED events (nearly every block before the end marker):
            # their objects cut out all at once, as the line loop below would
            if not folded and block.startswith(ADDED_PREFIX) and block.endswith(b"}\n"):
                # one line (find stops at the first newline), or count them
                n = 1 if block.find(b"\n") == len(block) - 1 else block.count(b"\n")
                if n == 1 or block.count(ADDED_SEP) == n - 1:
                    objs = memoryview(block.replace(ADDED_SEP, b"\n") if n > 1 else block)
                    objs = objs[plen:-2]
                    write_block(objs, n)
                    unit.objects += n
                    unit.bytes += len(objs) - (n - 1)
                    continue
            for line in block.split(b"\n")[:-1]:
                if not folded and line.startswith(ADDED_PREFIX) and line.endswith(b"}"):
                    obj = line[plen:-1]
                    write(obj)
                    unit.objects += 1
                    unit.bytes += len(obj)
                    continue
                if not line.strip():
                    continue
                try:
                    ev = deepjson.loads(line)
                    typ, o = ev["type"], ev["object"]
                except (ValueError, KeyError, TypeError):
                    raise StreamError(f"watch {unit.label}: unreadable event") from None
                if typ == "BOOKMARK":
                    md = o.get("metadata") or {}
                    if (md.get("annotations") or {}).get(END_ANNOTATION) == "true":
                        if folded:
                            sink.fold(folded)
                            unit.notes.append(f"{len(folded)} changes folded before the marker")
                        return str(md.get("resourceVersion", ""))
                    continue
                if typ == "ERROR":
                    raise error_event(unit, o)
                key = object_key(o)
                if typ == "ADDED" and not folded:
                    obj = go_json(o)
                    write(obj)
                    unit.objects += 1
                    unit.bytes += len(obj)
                elif typ == "DELETED":
                    folded[key] = None
                elif typ in ("ADDED", "MODIFIED"):
                    folded[key] = go_json(o)
        raise StreamError(
            f"watch {unit.label}: stream ended before the end-of-initial-events marker"
        )
    finally:
        wire.untrack(resp)


def server_time(md: Any) -> str:
    """The newest time an object's metadata states (RFC 3339, seconds, as the
    server writes them): its managedFields entries' `time`, its
    `deletionTimestamp`, its `creationTimestamp`; "" when it states none."""
    if not isinstance(md, dict):
        return ""
    best = ""
    for k in ("creationTimestamp", "deletionTimestamp"):
        t = md.get(k)
        if isinstance(t, str) and t > best:
            best = t
    mf = md.get("managedFields")
    if isinstance(mf, list):
        for e in mf:
            t = e.get("time") if isinstance(e, dict) else None
            if isinstance(t, str) and t > best:
                best = t
    return best


def watch_from(
    wire: Wire, unit: Unit, rv: str, timeout_seconds: int
) -> Iterator[tuple[str, bytes | None, str, str]]:
    """The changes after `rv`: (type, object, rv, stated) for each ADDED,
    MODIFIED, DELETED (the object as the bytes the server sent; `stated`: the
    newest time the object itself states, `server_time()`) and BOOKMARK (no
    object, no time); ends when the server ends the stream (timeoutSeconds). An
    ERROR event raises StreamError with its code (410: rv too old)."""
    path, selectors = wire.target(unit)
    q = [
        ("watch", "1"),
        ("resourceVersion", rv),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(timeout_seconds)),
        *selectors,
    ]
    resp = wire.client.open(path, q, what=f"watch {unit.label}")
    wire.track(resp)
    try:
        for line in iter_lines(wire.chunks(resp)):
            if not line.strip():
                continue
            try:
                ev = deepjson.loads(line)
                typ, o = ev["type"], ev["object"]
                md = o.get("metadata") or {}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise StreamError(f"watch {unit.label}: unreadable event") from None
            if typ == "ERROR":
                raise error_event(unit, o)
            new_rv = str(md.get("resourceVersion") or "")
            if typ == "BOOKMARK":
                yield typ, None, new_rv, ""
            elif typ in ("ADDED", "MODIFIED", "DELETED"):
                prefix = b'{"type":"' + typ.encode() + b'","object":'
                if line.startswith(prefix) and line.endswith(b"}"):
                    obj = line[len(prefix) : -1]
                else:
                    obj = go_json(o)
                yield typ, obj, new_rv, server_time(md)
    finally:
        wire.untrack(resp)


def _writer_of_blocks(write: Callable[[bytes], None]) -> WriteBlock:
    """write_block for a sink that has only write()."""

    def write_block(objs: memoryview, n: int) -> None:
        for obj in bytes(objs).split(b"\n"):
            write(obj)

    return write_block


def error_event(unit: Unit, o: Any) -> StreamError:
    """The error of a watch's ERROR event (a Status object)."""
    return StreamError(
        f"watch {unit.label}: {o.get('message', 'error event')}",
        status=int(o.get("code") or 0),
        reason=str(o.get("reason") or ""),
    )
