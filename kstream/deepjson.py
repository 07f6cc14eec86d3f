"""JSON for objects of any depth the API server accepts (its decoder allows
10,000 levels).

`loads` and `dumps` call the standard library first (its C scanner and encoder:
the fast path, for every ordinary object) and only when that raises
RecursionError do the same work again without recursion. The standard library
cannot be made to go deep enough on every Python version: up to 3.11 its C code
counts against `sys.getrecursionlimit()`, which could be raised, but from 3.12
the C code has a fixed limit of its own that no setting changes. The
fallbacks give the same values and the same text as `json.loads` and
`json.dumps` with the arguments they accept, and cost nothing unless an object
is deep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from json.decoder import JSONDecodeError
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

__all__ = ["dumps", "dumps_deep", "loads", "loads_deep"]

_WS = re.compile(r"[ \t\n\r]*")
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_NUMBER = re.compile(r"(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?")
_CONSTANTS: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}
_END = object()


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads(data)`, at any depth."""
    try:
        return json.loads(data)
    except RecursionError:
        return loads_deep(data)


def dumps(
    obj: Any,
    *,
    ensure_ascii: bool = True,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """`json.dumps(obj, ensure_ascii=..., separators=..., sort_keys=...)`, at any depth."""
    try:
        return json.dumps(
            obj, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys
        )
    except RecursionError:
        return dumps_deep(
            obj, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys
        )


# --------------------------------------------------------------------------- decoding


def loads_deep(data: str | bytes | bytearray) -> Any:
    """What `json.loads` returns (or raises, as JSONDecodeError), without recursion."""
    if isinstance(data, (bytes, bytearray)):
        s = data.decode(json.detect_encoding(data), "surrogatepass")
    else:
        s = data
        if s.startswith("\ufeff"):
            raise JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", s, 0)
    value, pos = _scan(s, _skip(s, 0))
    end = _skip(s, pos)
    if end != len(s):
        raise JSONDecodeError("Extra data", s, end)
    return value


def _skip(s: str, pos: int) -> int:
    """The position of the first non-blank at or after pos."""
    m = _WS.match(s, pos)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def _key(s: str, pos: int) -> tuple[str, int]:
    """A member's name and the position after its colon (pos: after `{` or `,`)."""
    pos = _skip(s, pos)
    if s[pos : pos + 1] != '"':
        raise JSONDecodeError("Expecting property name enclosed in double quotes", s, pos)
    key, pos = _scanstring(s, pos + 1, True)
    pos = _skip(s, pos)
    if s[pos : pos + 1] != ":":
        raise JSONDecodeError("Expecting ':' delimiter", s, pos)
    return key, pos + 1


def _scan(s: str, pos: int) -> tuple[Any, int]:
    """The value starting at or after pos, and the position after it. Open
    containers are kept on an explicit stack: [container, member name]."""
    number = _NUMBER.match
    stack: list[list[Any]] = []
    while True:
        pos = _skip(s, pos)
        ch = s[pos : pos + 1]
        value: Any
        if ch == '"':
            value, pos = _scanstring(s, pos + 1, True)
        elif ch == "{":
            pos = _skip(s, pos + 1)
            if s[pos : pos + 1] == "}":
                value, pos = {}, pos + 1
            else:
                key, pos = _key(s, pos)
                stack.append([{}, key])
                continue
        elif ch == "[":
            pos = _skip(s, pos + 1)
            if s[pos : pos + 1] == "]":
                value, pos = [], pos + 1
            else:
                stack.append([[], None])
                continue
        else:
            m = number(s, pos)
            if m is not None:
                integer, frac, exp = m.groups()
                value = float(integer + (frac or "") + (exp or "")) if frac or exp else int(integer)
                pos = m.end()
            else:
                for text, const in _CONSTANTS.items():
                    if s.startswith(text, pos):
                        value, pos = const, pos + len(text)
                        break
                else:
                    raise JSONDecodeError("Expecting value", s, pos)
        # attach the value to its container; close the containers that end here
        while True:
            if not stack:
                return value, pos
            top = stack[-1]
            container = top[0]
            if isinstance(container, list):
                container.append(value)
            else:
                container[top[1]] = value
            pos = _skip(s, pos)
            ch = s[pos : pos + 1]
            if ch == ",":
                if isinstance(container, list):
                    pos += 1
                else:
                    top[1], pos = _key(s, pos + 1)
                break
            if ch == ("]" if isinstance(container, list) else "}"):
                stack.pop()
                value, pos = container, pos + 1
                continue
            raise JSONDecodeError("Expecting ',' delimiter", s, pos)


# --------------------------------------------------------------------------- encoding


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == float("inf"):
        return "Infinity"
    if o == float("-inf"):
        return "-Infinity"
    return float.__repr__(o)


def _scalar(o: Any, enc: Callable[[str], str]) -> str | None:
    """The text of a scalar; None for a container."""
    if isinstance(o, str):
        return enc(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, (list, tuple, dict)):
        return None
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _key_text(k: Any) -> str:
    if isinstance(k, str):
        return k
    if k is None or isinstance(k, (int, float)):  # bool is an int
        text = _scalar(k, str)  # written as the value would be
        if text is not None:
            return text
    raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")


def dumps_deep(
    obj: Any,
    *,
    ensure_ascii: bool = True,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """What `json.dumps` returns with these arguments, without recursion."""
    enc = encode_basestring_ascii if ensure_ascii else encode_basestring
    item_sep, key_sep = separators if separators is not None else (", ", ": ")
    out: list[str] = []
    # open containers: (iterator over items, is a map, id for the circularity check)
    stack: list[tuple[Iterator[Any], bool, int]] = []
    active: set[int] = set()
    value = obj
    first = True
    while True:
        text = _scalar(value, enc)
        if text is not None:
            out.append(text)
            first = False
        else:
            i = id(value)
            if i in active:
                raise ValueError("Circular reference detected")
            active.add(i)
            if isinstance(value, dict):
                items = sorted(value.items(), key=lambda kv: kv[0]) if sort_keys else value.items()
                out.append("{")
                stack.append((iter(items), True, i))
            else:
                out.append("[")
                stack.append((iter(value), False, i))
            first = True
        while stack:
            it, is_map, i = stack[-1]
            nxt: Any = next(it, _END)
            if nxt is _END:
                out.append("}" if is_map else "]")
                stack.pop()
                active.discard(i)
                first = False
                continue
            if not first:
                out.append(item_sep)
            if is_map:
                k, value = nxt
                out.append(enc(_key_text(k)))
                out.append(key_sep)
            else:
                value = nxt
            break
        else:
            return "".join(out)
