"""JSON-lines helpers shared by the readers and writers: split a byte stream
into lines, encode an object as the server does, and an object's (namespace,
name) key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kstream import deepjson

# what go_json escapes beyond json.dumps (as Go's encoder does)
GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_escape(s: str) -> str:
    """`s` (JSON text) with the escapes Go adds; translate only when needed."""
    if "<" in s or ">" in s or "&" in s or "\u2028" in s or "\u2029" in s:
        return s.translate(GO_ESCAPES)
    return s


def go_json(obj: Any) -> bytes:
    """Compact JSON escaped like Go's encoding/json (the server's encoder), so a
    re-encoded object matches what the server sends for it. A lone surrogate
    (from a "\\ud800" escape in a snapshot) is no character: Go writes "\\ufffd"."""
    text = go_escape(deepjson.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    try:
        return text.encode()
    except UnicodeEncodeError:
        import re

        return re.sub("[\ud800-\udfff]", r"\\ufffd", text).encode()


def object_key(obj: Any) -> tuple[str, str]:
    """(namespace, name); empty where the object does not say."""
    md = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(md, dict):
        return ("", "")
    return (str(md.get("namespace") or ""), str(md.get("name") or ""))


def line_key(line: bytes) -> tuple[str, str]:
    """`object_key` of one JSON line."""
    return object_key(deepjson.loads(line))


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream into lines of any length. A trailing partial line (a
    stream cut mid-event) is not yielded."""
    buf = bytearray()
    for chunk in chunks:
        start = 0
        if buf:
            i = chunk.find(b"\n")
            if i < 0:
                buf += chunk
                continue
            buf += chunk[:i]
            yield bytes(buf)
            buf.clear()
            start = i + 1
        while True:
            j = chunk.find(b"\n", start)
            if j < 0:
                break
            yield chunk[start:j]
            start = j + 1
        if start < len(chunk):
            buf += chunk[start:]


def iter_line_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The same stream as runs of whole lines: each block is one or more lines,
    every one ending with b"\\n", cut where the chunks allow (the split into
    lines is the caller's, so a block of many lines costs one step, not one per
    line). A trailing partial line (a stream cut mid-event) is not yielded."""
    buf: list[bytes] = []  # the start of a line (joined once: a 1 MB object comes in many)
    for chunk in chunks:
        k = chunk.rfind(b"\n") + 1
        if not k:
            buf.append(chunk)
            continue
        if buf:
            buf.append(chunk[:k])
            block = b"".join(buf)
            buf = []
        else:
            block = chunk if k == len(chunk) else chunk[:k]
        if k < len(chunk):
            buf.append(chunk[k:])
        yield block
