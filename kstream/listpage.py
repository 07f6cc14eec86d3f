"""Cut the items out of a JSON List document as the bytes that were sent.

A LIST page is `{"kind":..,"apiVersion":..,"metadata":{..},"items":[..]}` with its
members in any order: built-in types put `metadata` first, custom resources
(unstructured, keys sorted) put it after `items`, and `kubectl get -o json`
pretty-prints the whole document. `PageReader` takes the body in chunks of any
size and hands back each item as soon as its last byte has arrived, exactly as
the server wrote it (nothing is re-encoded, no number is interpreted), together
with which of `kind`/`apiVersion` the item carries at its top level. The other
members (`metadata` with `continue`, `resourceVersion`, `remainingItemCount`)
are parsed as they pass, wherever they stand.

Memory: the reader holds at most one unfinished item plus the chunk being read.

Speed: the server writes the items of a page alike, so each item starts as
the one before did (`{"metadata":` for built-in types, whose LIST items carry no
TypeMeta; `{"apiVersion":"g/v","kind":` for custom resources, keys sorted). The
fast path looks for the next `},` + that start with `str.find` and checks that
what lies before it is one complete, valid JSON object with msgspec, which
validates without building Python objects and reads the item's top-level
`kind`/`apiVersion` (a JSON object has exactly one end, so a candidate that
passes IS the item's end). A candidate inside the item (a nested list of such
objects) fails as "truncated" and the next one is tried, a few at most. With
no candidate (the last item of a page), msgspec on the rest of the buffer says
whether the item is complete ("trailing characters (byte N)": the text before N,
checked) or not yet ("truncated": wait). Anything else (another error,
pretty-printed pages, items that start otherwise, msgspec missing) goes to the
exact path, which stays the reference: the C JSON decoder (`raw_decode`,
whose result is used only for the top-level keys), and for an item it refuses
(nesting deeper than the interpreter's recursion limit, an integer with more
digits than `int()` takes, or simply not complete yet) an exact iterative
scanner, which also tells "not complete yet" from "malformed". A fast-path
failure other than "truncated" turns the fast path off for the rest of the page.

Errors: `PageError` with `truncated=True` when the body ends before the
document does ("cut short" means cut short) and `truncated=False` for anything
that is not JSON.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["HAS_API_VERSION", "HAS_KIND", "NOT_OBJECT", "PageError", "PageReader", "compact"]

# flags of an item: which TypeMeta members it has at its top level
HAS_KIND = 1
HAS_API_VERSION = 2
NOT_OBJECT = -1

_WS = " \t\n\r"
# what may still follow a number at the end of the buffer
_NUMBER_TAIL = "0123456789+-.eE"
# an unfinished value shorter than this is simply waited for; a longer one is
# scanned (to tell unfinished from malformed) each time what is pending doubles.
# etcd stores no object over 1.5 MiB, so only a malformed body gets that far.
_SCAN_AFTER = 8 * 1024 * 1024
# bytes gathered before they are decoded and cut
BATCH = 64 * 1024


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON: Python's decoder takes them,
    so they are handed to the exact scanner, which refuses them."""
    raise ValueError(name)


# the C scanner behind json.loads, called directly: (value, end) or StopIteration
_scan_once = json.JSONDecoder(parse_constant=_no_constant).scan_once  # type: ignore[attr-defined]
# fast path: candidate ends tried per item before the exact path takes over
FAST_TRIES = 8
# how far into an item its start (the fast path's pattern) is looked for
_HEAD_MAX = 256
# what msgspec says of a valid JSON text that stops before its value is complete,
# and of a value followed by more than whitespace (N: 1 + the offset of what follows)
_TRUNCATED = "Input data was truncated"
_TRAILING = re.compile(r"JSON is malformed: trailing characters \(byte ([0-9]+)\)")

# one token of JSON, after optional whitespace
_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:
      ("[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*")  # 1 string
    | (-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)          # 2 number
    | (true|false|null)                                              # 3 literal
    | ([{}\[\]:,])                                                   # 4 punctuation
    )""",
    re.VERBOSE,
)
# what a token cut off by the end of the buffer may look like
_PARTIAL = re.compile(
    r"""[ \t\n\r]*(?:
      "[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*(?:\\(?:u[0-9a-fA-F]{0,3})?)?
    | -?(?:0|[1-9][0-9]*)?(?:\.[0-9]*)?(?:[eE][+-]?[0-9]*)?
    | t(?:r(?:u)?)? | f(?:a(?:l(?:s)?)?)? | n(?:u(?:l)?)?
    )""",
    re.VERBOSE,
)


class PageError(ValueError):
    """The body is not a whole JSON object: cut short, or not JSON at all."""

    def __init__(self, message: str, truncated: bool) -> None:
        super().__init__(message)
        self.truncated = truncated


class _Incomplete(Exception):
    """More bytes are needed to finish the value."""


def _scan(s: str, i: int, eof: bool) -> tuple[int, int]:
    """The end of the JSON value at s[i:] and its TypeMeta flags, without
    recursion (any depth). Raises _Incomplete or PageError(truncated=False)."""
    n = len(s)
    stack: list[str] = []  # "{" or "["
    # what may come next: 0 a value, 1 a value or "]", 2 a key or "}", 3 a key,
    # 4 ":", 5 "," or the closing bracket of stack[-1]
    expect = 0
    flags = NOT_OBJECT
    top_key = False  # the key being read is a key of the top-level object
    match = _TOKEN.match
    while True:
        m = match(s, i)
        if m is None or m.end() == i:
            rest = s[i:]
            if not rest.strip(_WS) or _PARTIAL.fullmatch(rest):
                if eof:
                    raise PageError("the document ends inside a value", truncated=True)
                raise _Incomplete()
            raise PageError(
                f"invalid JSON at offset {i + len(rest) - len(rest.lstrip(_WS))}", False
            )
        j = m.end()
        string, number, _literal, punct = m.group(1, 2, 3, 4)
        if number is not None and not s[j:].strip(_NUMBER_TAIL):
            # "1.5" may be the start of "1.5e+16"
            if not eof:
                raise _Incomplete()
            if j < n:
                raise PageError("the document ends inside a number", truncated=True)
        value_done = False
        if expect in (0, 1):
            if punct == "{":
                stack.append("{")
                if len(stack) == 1:
                    flags = 0
                expect = 2
            elif punct == "[":
                stack.append("[")
                expect = 1
            elif punct == "]" and expect == 1:
                stack.pop()
                value_done = True
            elif punct is None:
                value_done = True
            else:
                raise PageError(f"invalid JSON at offset {j - 1}", False)
        elif expect in (2, 3):
            if string is not None:
                top_key = len(stack) == 1
                if top_key:
                    if string == '"kind"':
                        flags |= HAS_KIND
                    elif string == '"apiVersion"':
                        flags |= HAS_API_VERSION
                expect = 4
            elif punct == "}" and expect == 2:
                stack.pop()
                value_done = True
            else:
                raise PageError(f"invalid JSON at offset {j - 1}", False)
        elif expect == 4:
            if punct != ":":
                raise PageError(f"invalid JSON at offset {j - 1}", False)
            expect = 0
        else:  # 5
            if punct == ",":
                expect = 3 if stack[-1] == "{" else 0
            elif (punct == "}" and stack[-1] == "{") or (punct == "]" and stack[-1] == "["):
                stack.pop()
                value_done = True
            else:
                raise PageError(f"invalid JSON at offset {j - 1}", False)
        i = j
        if value_done:
            if not stack:
                return i, flags
            expect = 5


def _value(s: str, i: int, eof: bool) -> tuple[Any, int, int]:
    """(parsed value or None, end, flags) of the value at s[i:]; the parsed
    value is None when only the scanner could delimit it."""
    try:
        v, end = _scan_once(s, i)
    except (StopIteration, json.JSONDecodeError):
        # most likely not all there yet: the scanner decides at the end of the
        # body, or once what is pending is larger than any Kubernetes object
        if not eof and len(s) - i < _SCAN_AFTER:
            raise _Incomplete() from None
        end, flags = _scan(s, i, eof)
        return None, end, flags
    except (RecursionError, ValueError):
        # deeper than the C decoder goes, or an integer longer than int() takes
        end, flags = _scan(s, i, eof)
        return None, end, flags
    if not isinstance(v, (dict, list, str)) and not s[end:].strip(_NUMBER_TAIL):
        # "1.5" may be the start of "1.5e+16"
        if not eof:
            raise _Incomplete()
        if end < len(s):
            raise PageError("the document ends inside a number", truncated=True)
    if isinstance(v, dict):
        flags = (HAS_KIND if "kind" in v else 0) | (HAS_API_VERSION if "apiVersion" in v else 0)
    else:
        flags = NOT_OBJECT
    return v, end, flags


_typemeta: Callable[[bytes], Any] | None = None
_typemeta_tried = False


def _typemeta_decoder() -> Callable[[bytes], Any] | None:
    """msgspec's decoder of a JSON object into its top-level `kind` and
    `apiVersion` as raw JSON (empty when absent), everything else validated and
    skipped; None without msgspec. Imported on first use: only the LIST path
    needs it."""
    global _typemeta, _typemeta_tried
    if not _typemeta_tried:
        # streams start on several threads at once: "tried" is set only once
        # the decoder is there (a thread that comes meanwhile makes its own)
        try:
            import msgspec
        except ImportError:  # pragma: no cover - a declared dependency
            _typemeta_tried = True
            return None

        absent = msgspec.Raw()
        typemeta = msgspec.defstruct(
            "TypeMeta",
            [("kind", msgspec.Raw, absent), ("apiVersion", msgspec.Raw, absent)],
            gc=False,
        )
        _typemeta = msgspec.json.Decoder(typemeta).decode
        _typemeta_tried = True
    return _typemeta


def _head(s: str, i: int, end: int) -> str:
    """How the compact object s[i:end] starts, as the pattern that the next
    item's start is looked for by: its first member name (`{"metadata":`), and
    when the first member is a plain string (`"apiVersion"` of a custom
    resource: keys sorted) its value and the second name too. "" when the
    object does not start that way (pretty-printed, escapes in the names)."""
    if not s.startswith('{"', i):
        return ""
    limit = min(end, i + _HEAD_MAX)
    k = s.find('":', i + 2, limit)
    if k < 0 or "\\" in s[i + 2 : k] or '"' in s[i + 2 : k]:
        return ""
    if s.startswith('"', k + 2):
        q = s.find('"', k + 3, limit)
        if q > 0 and "\\" not in s[k + 3 : q] and s.startswith(',"', q + 1):
            k2 = s.find('":', q + 3, limit)
            if k2 > 0 and "\\" not in s[q + 3 : k2] and '"' not in s[q + 3 : k2]:
                return s[i : k2 + 2]
    return s[i : k + 2]


# top-level states
_START, _KEY_OR_END, _KEY, _COLON, _MEMBER, _ITEMS_OPEN, _ITEM_OR_END, _ITEM, _ITEM_SEP = range(9)
_MEMBER_SEP, _DONE = 9, 10
_WAIT = 11  # the fast path's answer: the item is not complete yet


class FastPath:
    """The fast path of one page (see the module's docstring): items that start
    as the one before did (`head`) cut with `str.find` and checked by msgspec.
    `off` once it has failed otherwise than "truncated" (the exact path reads
    the rest of the page); `items`: how many items it cut."""

    def __init__(self) -> None:
        self.head = ""
        self.off = False
        self.items = 0

    def cut(self, s: str, i: int, eof: bool, out: list[tuple[bytes, int]]) -> tuple[int, int]:
        """Cut the items from s[i:] (an item that starts as the last one did)
        while the fast path can, appending them to `out`. Returns (position,
        state): _ITEM: the item at position is for the exact path; _ITEM_SEP:
        position is just after the last item cut, whose follower does not start
        alike (or is not there yet); _WAIT: the item at position is not
        complete yet."""
        decode = _typemeta_decoder()
        if decode is None:
            self.off, self.head = True, ""
            return i, _ITEM
        mark, skip, find = "}," + self.head, len(self.head), s.find
        c = i + skip
        tries = 0
        while True:
            c = find(mark, c)
            if c < 0:
                # no candidate: the item is not all here, it is the last one, or
                # the next one starts otherwise: msgspec on the rest tells which
                n = len(s)
                item = s[i:].encode("utf-8", "surrogateescape")
                try:
                    tm = decode(item)
                except (ValueError, RecursionError) as e:
                    msg = str(e)
                    if msg == _TRUNCATED:
                        return (i, _WAIT) if not eof and n - i < _SCAN_AFTER else (i, _ITEM)
                    m = _TRAILING.fullmatch(msg)
                    if m is None:
                        return i, _ITEM
                    # a whole value and more: the item is that value, if it checks
                    item = item[: int(m.group(1)) - 1].rstrip(b" \t\n\r")
                    try:
                        tm = decode(item)
                    except (ValueError, RecursionError):
                        return i, _ITEM
                    end = i + (
                        len(item) if s.isascii() else len(item.decode("utf-8", "surrogateescape"))
                    )
                else:
                    if not s.endswith("}"):
                        return i, _ITEM
                    # the buffer ends just after the item
                    end = n
                out.append(
                    (item, (HAS_KIND if tm.kind else 0) | (HAS_API_VERSION if tm.apiVersion else 0))
                )
                self.items += 1
                return end, _ITEM_SEP
            item = s[i : c + 1].encode("utf-8", "surrogateescape")
            try:
                tm = decode(item)
            except (ValueError, RecursionError) as e:
                tries += 1
                if str(e) == _TRUNCATED and tries < FAST_TRIES:
                    c += 1  # a candidate inside the item: a nested list of objects
                    continue
                # malformed, more than one item, or too many candidates inside
                # one item: the exact path decides, and this page goes without
                self.off, self.head = True, ""
                return i, _ITEM
            out.append(
                (item, (HAS_KIND if tm.kind else 0) | (HAS_API_VERSION if tm.apiVersion else 0))
            )
            self.items += 1
            # the next item starts just after the comma, as this one did
            i = c + 2
            c = i + skip
            tries = 0


class PageReader:
    """Feed the body chunk by chunk; `feed()` and `close()` return the items
    finished so far as (bytes, flags). `members` holds the other top-level
    members (parsed; a member only the scanner could delimit is left out)."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._buf = ""
        self._pos = 0
        self._state = _START
        self._key = ""
        self._wait = 0  # don't retry an unfinished value before the buffer has this size
        self._raw: list[bytes] = []  # chunks not decoded yet
        self._raw_size = 0
        self._offset = 0  # characters dropped from the front of the buffer
        self.members: dict[str, Any] = {}
        self.items_seen = False
        # the fast path: how the last item started ("" = unknown), whether it
        # is off for this page, and how many items it cut
        self._fastpath = FastPath()

    @property
    def fast_items(self) -> int:
        """How many items the fast path cut."""
        return self._fastpath.items

    # -- the top-level members of a Kubernetes list
    @property
    def metadata(self) -> dict[str, Any]:
        md = self.members.get("metadata")
        return md if isinstance(md, dict) else {}

    @property
    def continue_token(self) -> str:
        c = self.metadata.get("continue")
        return c if isinstance(c, str) else ""

    @property
    def resource_version(self) -> str:
        rv = self.metadata.get("resourceVersion")
        return rv if isinstance(rv, str) else ""

    @property
    def remaining(self) -> int | None:
        r = self.metadata.get("remainingItemCount")
        return r if isinstance(r, int) and not isinstance(r, bool) else None

    # -- input
    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        # Servers send a page in small HTTP chunks (about one per item): gather
        # BATCH bytes before decoding, so an item is seldom tried unfinished.
        self._raw.append(chunk)
        self._raw_size += len(chunk)
        if self._raw_size < BATCH or len(self._buf) - self._pos + self._raw_size < self._wait:
            return []
        self._take(final=False)
        return self._run(eof=False)

    def close(self) -> list[tuple[bytes, int]]:
        """The end of the body: the rest of the items, or PageError."""
        self._take(final=True)
        out = self._run(eof=True)
        if self._state != _DONE:
            raise PageError("the body ends before the document does", truncated=True)
        return out

    def _take(self, final: bool) -> None:
        """Move the gathered bytes into the text buffer, dropping what is read."""
        text = self._utf8.decode(b"".join(self._raw), final=final)
        self._raw.clear()
        self._raw_size = 0
        self._offset += self._pos
        self._buf = self._buf[self._pos :] + text if self._pos < len(self._buf) else text
        self._pos = 0

    def _skip(self) -> int:
        s, i, n = self._buf, self._pos, len(self._buf)
        while i < n and s[i] in _WS:
            i += 1
        return i

    def _bad(self, i: int, what: str) -> PageError:
        return PageError(f"{what} at offset {self._offset + i}", truncated=False)

    def _again(self, e: PageError, i: int) -> PageError:
        """An error from a value that starts at i, with the body's offset."""
        if e.truncated:
            return e
        return self._bad(i, str(e).split(" at offset")[0] + " in a value")

    def _run(self, eof: bool) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        fp = self._fastpath
        s = self._buf
        n = len(s)
        self._wait = 0
        while True:
            state = self._state
            if state in (_ITEM_OR_END, _ITEM):
                # the hot loop: one item after another
                i = self._pos
                while True:
                    if i < n and s[i] in _WS:
                        while i < n and s[i] in _WS:
                            i += 1
                    if i >= n:
                        self._pos = i
                        self._state = state
                        return out
                    if state == _ITEM_OR_END and s[i] == "]":
                        self._pos = i + 1
                        self._state = _MEMBER_SEP
                        break
                    end = -1
                    if not eof and n - i < len(fp.head) and fp.head.startswith(s[i:]):
                        # the buffer ends inside the start of an item: wait (the
                        # exact path would try it, and JSONDecodeError counts the
                        # lines of the whole buffer)
                        self._pos = i
                        self._state = state
                        return out
                    if fp.head and s.startswith(fp.head, i):
                        i, fast = fp.cut(s, i, eof, out)
                        if fast == _WAIT:
                            self._pos = i
                            self._state = _ITEM
                            self._wait = 2 * (n - i)  # retry once what is pending has doubled
                            return out
                        if fast == _ITEM_SEP:
                            end = i  # just after the last item it cut
                        state = _ITEM
                    if end < 0:
                        try:
                            _, end, flags = _value(s, i, eof)
                        except _Incomplete:
                            self._pos = i
                            self._wait = 2 * (n - i)  # retry once what is pending has doubled
                            self._state = state
                            return out
                        except PageError as e:
                            raise self._again(e, i) from None
                        out.append((s[i:end].encode("utf-8", "surrogateescape"), flags))
                        if not fp.off:
                            fp.head = _head(s, i, end)
                    i = end
                    while i < n and s[i] in _WS:
                        i += 1
                    if i >= n:
                        self._pos = i
                        self._state = _ITEM_SEP
                        return out
                    c = s[i]
                    if c == ",":
                        i += 1
                        state = _ITEM
                    elif c == "]":
                        self._pos = i + 1
                        self._state = _MEMBER_SEP
                        break
                    else:
                        raise self._bad(i, "expected ',' or ']' after an item")
                continue
            i = self._skip()
            if i >= n:
                self._pos = i
                if state == _DONE or not eof:
                    return out
                raise PageError("the body ends before the document does", truncated=True)
            c = s[i]
            if state == _START:
                if c != "{":
                    raise self._bad(i, "the body is not a JSON object")
                self._pos, self._state = i + 1, _KEY_OR_END
            elif state in (_KEY_OR_END, _KEY):
                if c == "}" and state == _KEY_OR_END:
                    self._pos, self._state = i + 1, _DONE
                    continue
                if c != '"':
                    raise self._bad(i, "expected a member name")
                try:
                    key, end, _ = _value(s, i, eof)
                except _Incomplete:
                    self._pos = i
                    return out
                except PageError as e:
                    raise self._again(e, i) from None
                self._key = key if isinstance(key, str) else ""
                self._pos, self._state = end, _COLON
            elif state == _COLON:
                if c != ":":
                    raise self._bad(i, "expected ':'")
                self._pos = i + 1
                self._state = _ITEMS_OPEN if self._key == "items" else _MEMBER
            elif state == _ITEMS_OPEN:
                if self.items_seen:
                    raise self._bad(i, "two 'items' members")
                if c == "n":
                    # "items":null (how Go writes an empty list it never filled)
                    if n - i < 4 and not eof and "null".startswith(s[i:]):
                        self._pos = i
                        return out
                    if not s.startswith("null", i):
                        raise self._bad(i, "'items' is not an array")
                    self.items_seen = True
                    self._pos, self._state = i + 4, _MEMBER_SEP
                    continue
                if c != "[":
                    raise self._bad(i, "'items' is not an array")
                self.items_seen = True
                self._pos, self._state = i + 1, _ITEM_OR_END
            elif state == _ITEM_SEP:
                if c == ",":
                    self._pos, self._state = i + 1, _ITEM
                elif c == "]":
                    self._pos, self._state = i + 1, _MEMBER_SEP
                else:
                    raise self._bad(i, "expected ',' or ']' after an item")
            elif state == _MEMBER:
                try:
                    v, end, _ = _value(s, i, eof)
                except _Incomplete:
                    self._pos = i
                    self._wait = 2 * (n - i)
                    return out
                except PageError as e:
                    raise self._again(e, i) from None
                if v is not None:
                    self.members[self._key] = v
                self._pos, self._state = end, _MEMBER_SEP
            elif state == _MEMBER_SEP:
                if c == ",":
                    self._pos, self._state = i + 1, _KEY
                elif c == "}":
                    self._pos, self._state = i + 1, _DONE
                else:
                    raise self._bad(i, "expected ',' or '}' after a member")
            else:  # _DONE: only whitespace may follow
                raise self._bad(i, "data after the end of the document")


# --------------------------------------------------------------------------- compaction

_STRING_OR_WS = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)


def compact(item: bytes) -> bytes:
    """The item without whitespace outside strings: what Go's encoder writes
    for a value that was pretty-printed (json.MarshalIndent = Marshal + Indent),
    strings and numbers untouched. Used only when an item holds a line break."""
    return _STRING_OR_WS.sub(lambda m: m.group(1) or b"", item)
