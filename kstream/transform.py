"""What dump may change in an object: Secret values (redacted by default) and
fields the user asked to strip. Objects pass through untouched, as the bytes the
server sent, unless one of these applies to their resource."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import sys
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any, Literal

from kstream import deepjson, paths
from kstream.dataclass import dataclass
from kstream.jsonlines import go_escape, go_json
from kstream.resources import Resource

# what dump does with Secret values (--secrets)
SecretsMode = Literal["redact", "include", "exclude"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CLEAN_PATHS = ("metadata.managedFields", f'metadata.annotations["{LAST_APPLIED}"]')


@dataclass(frozen=True)
class TransformOptions:
    secrets: SecretsMode = "redact"
    secret_key: bytes | None = None  # HMAC key; None = plain sha256
    strip: tuple[paths.FieldPath, ...] = ()


def is_secret(r: Resource) -> bool:
    return r.group == "" and r.resource == "secrets"


def digest(value: bytes, key: bytes | None) -> str:
    if key:
        return "hmac-sha256:" + hmac.new(key, value, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(value).hexdigest()


if sys.version_info >= (3, 11):
    # strict base64 (3.11+): what it accepts, b64decode(validate=True) accepts and
    # decodes alike, and it skips b64decode's regular-expression pass
    _strict_b64: Callable[[str], bytes] = functools.partial(binascii.a2b_base64, strict_mode=True)
else:
    _strict_b64 = functools.partial(base64.b64decode, validate=True)


def _b64(v: str) -> bytes:
    """What a data value digests: `base64.b64decode(v, validate=True)`, or its
    text if it is not base64."""
    try:
        return _strict_b64(v)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return v.encode()


# A value redact_secret wrote: never a real Secret's (the server's data values
# are base64, which has no ':'), so redacting again keeps it (a dump of `kstream
# serve` of a redacted snapshot keeps its digests).
_REDACTED = re.compile(r"(?:hmac-)?sha256:[0-9a-f]{64}")
_REDACTED_HEADS = ("sha256:", "hmac-sha256:")  # checked first: the regex costs more


def redacted_rule(v: str) -> str | None:
    """The digest a redacted value was written with ("sha256", "hmac-sha256"),
    None for a value that is not one (a raw value)."""
    if v.startswith(_REDACTED_HEADS) and _REDACTED.fullmatch(v):
        return v.partition(":")[0]
    return None


def _redact_values(obj: dict[str, Any], key: bytes | None) -> None:
    data = obj.get("data")
    if isinstance(data, dict):
        for k, v in data.items():
            if not isinstance(v, str):
                continue
            if v.startswith(_REDACTED_HEADS) and _REDACTED.fullmatch(v):
                continue  # redacted already
            data[k] = digest(_b64(v), key)
    sdata = obj.get("stringData")
    if isinstance(sdata, dict):
        for k, v in sdata.items():
            if isinstance(v, str):
                sdata[k] = digest(v.encode(), key)


def _redact_applied(text: str, key: bytes | None) -> str:
    """The last-applied-configuration annotation with its Secret values redacted
    (the whole annotation digested if it is not a JSON object)."""
    try:
        fast = _fast_redact(text, key, outer=False)
    except Exception:  # anything unusual: the general code below decides
        fast = None
    if fast is not None:
        return fast
    try:
        inner = deepjson.loads(text)
        if not isinstance(inner, dict):
            raise ValueError
        _redact_values(inner, key)
        return deepjson.dumps(inner, separators=(",", ":"), sort_keys=True) + "\n"
    except ValueError:
        return digest(text.encode(), key)


def _redact_metadata(md: Any, key: bytes | None) -> None:
    ann = (md or {}).get("annotations")
    if isinstance(ann, dict) and isinstance(ann.get(LAST_APPLIED), str):
        ann[LAST_APPLIED] = _redact_applied(ann[LAST_APPLIED], key)


def redact_secret(obj: dict[str, Any], key: bytes | None) -> None:
    """Replace every Secret value by its digest, in data, stringData and the
    copy kubectl keeps in the last-applied-configuration annotation."""
    _redact_values(obj, key)
    _redact_metadata(obj.get("metadata"), key)


# --------------------------------------------------------------------------- the fast path
#
# A Secret as the server sends it is compact JSON whose bulk is the base64 of its
# values. Parsing all of it, decoding every value twice (JSON, then base64) and
# encoding it all again costs more than the digests. The fast path walks the
# object's top level with the json module's C scanner and:
# - digests each data value straight from its text: a value that strict base64
#   accepts is pure base64 alphabet, so its JSON text is its value;
# - keeps the text of every other member when re-encoding could not change it:
#   it parses (so it is valid JSON), has no number but an integer (not -0), no
#   blank and no backslash, so it is already what json.dumps writes (such
#   integers and strings are written back as they are);
# - otherwise decodes and re-encodes the member as the general path would (the
#   metadata when it holds the last-applied annotation, whose values it redacts).
# Anything else (another layout, a repeated member name at the top or in data, a
# value that is not base64, an object too deep for the C code) returns None and
# the general path does the work. What the fast path does not look for is a member
# name repeated inside a member it keeps as text (json.loads would keep the last
# one); the server's encoder does not write one (Go structs and maps).

_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

_BLANKS = " \t\n\r"
# json.dumps(v, ensure_ascii=False, separators=(",", ":")) and, for the annotation,
# json.dumps(v, separators=(",", ":"), sort_keys=True), without building an encoder per call
_ENCODE_OUTER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ENCODE_INNER = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _refuse_float(text: str) -> Any:
    raise ValueError("a float: json.dumps may write it otherwise")


def _exact_int(text: str) -> int:
    if text == "-0":
        raise ValueError("-0: json.dumps writes 0")
    return int(text)


# json.loads's scanner, refusing the numbers json.dumps would not write back the same
_scan_exact: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder(  # type: ignore[attr-defined]
    parse_float=_refuse_float, parse_int=_exact_int
).scan_once


def _plain(t: str) -> bool:
    """Whether valid JSON text t without floats has no blank and no escape: then
    json.dumps(json.loads(t), ensure_ascii=False, separators=(",", ":")) is t
    (go_json's escapes are applied to the whole result, kept text included)."""
    return not (" " in t or "\\" in t or "\n" in t or "\r" in t or "\t" in t)


def _fast_data(
    s: str, pos: int, key: bytes | None, enc: Callable[[str], str], sort: bool
) -> tuple[str, int] | None:
    """The redacted text of the data map at s[pos] and the position after it."""
    if s[pos] != "{":
        return None
    pos += 1
    if s[pos] == "}":
        return "{}", pos + 1
    members: dict[str, str] = {}
    b64 = _strict_b64
    while True:
        if s[pos] != '"':
            return None
        name, pos = _scanstring(s, pos + 1, True)
        if s[pos : pos + 2] != ':"' or name in members:
            return None
        end = s.find('"', pos + 2)
        if end < 0:
            return None
        try:
            raw = b64(s[pos + 2 : end])
        except (binascii.Error, ValueError):
            return None
        members[name] = enc(name) + ':"' + digest(raw, key) + '"'
        pos = end + 1
        c = s[pos]
        if c == "}":
            if sort:
                return "{" + ",".join(v for _, v in sorted(members.items())) + "}", pos + 1
            return "{" + ",".join(members.values()) + "}", pos + 1
        if c != ",":
            return None
        pos += 1


_SERVER_HEAD = '{"kind":"Secret","apiVersion":"v1","metadata":{'
_SERVER_TYPE = ',"type":"'


def _server_layout(s: str, key: bytes | None) -> str | None:
    """_fast_redact(s, key, outer=True) for the layout the server writes, in
    fewer steps: kind, apiVersion, metadata, data and maybe type; or None."""
    if not s.startswith(_SERVER_HEAD) or LAST_APPLIED in s:
        return None
    start = len(_SERVER_HEAD) - 1
    _, end = _scan_exact(s, start)
    md = s[start:end]
    if s[end : end + 9] != ',"data":{' or not _plain(md):
        return None
    fast = _fast_data(s, end + 8, key, encode_basestring, False)
    if fast is None:
        return None
    data, pos = fast
    tail = s[pos:]
    if tail != "}" and not (
        tail.startswith(_SERVER_TYPE)
        and tail.endswith('"}')
        and tail.count('"') == 4
        and tail.isprintable()
        and _plain(tail)
    ):
        return None
    return s[: end + 8] + data + tail


# The server's layout once more, on the bytes and with msgspec (imported on first
# use), in one C pass: msgspec validates the whole object against the layout
# (kind "Secret", apiVersion "v1", metadata, data, maybe type, nothing else),
# hands back the exact bytes of the metadata (`msgspec.Raw`) and decodes every
# data value's base64 (about four times binascii's strict decoder). The data map
# is never looked at as text: its decoded values (the last of a repeated name,
# in its first place, as json.loads keeps them) are digested. The metadata is
# kept as the bytes sent when re-encoding could not change it: no blank, no
# backslash (so its strings are plain "..." and what lies between them is the
# structure), nothing Go escapes (<, >, &, U+2028, U+2029), no float and no -0
# (checked in one table lookup per byte: every number of the structure ends with
# a digit right before ',', '}' or ']'; only when some digit does, the strings are
# cut out and the numbers looked at). As on the str path, a member name repeated
# inside the metadata is not looked for (the server does not write one). The
# type member, when there is one, is the last, and a plain string. Anything else
# (another layout, a value msgspec will not take as base64, the last-applied
# annotation, escapes) returns None and the str paths below decide, as before.
# A member repeated at the top level is decoded as json.loads keeps it (the last
# value, in the first one's place): the metadata's first copy must be that value,
# the type member (if any) must be the last, kind and apiVersion are checked.
_SERVER_HEAD_B = _SERVER_HEAD.encode()
_SERVER_PREFIX_B = _SERVER_HEAD_B[:-1]  # up to the metadata's value
_LAST_APPLIED_B = LAST_APPLIED.encode()
_LINE_SEPS_B = ("\u2028".encode(), "\u2029".encode())
# the metadata's bytes mapped: what may not be kept to '!', digits to '0', what
# follows a number in compact JSON to '}', the rest to '.'
_KEPT_MAP_B = bytes(
    ord("!") if c in b" \\\n\r\t<>&" else
    ord("0") if c in b"0123456789" else
    ord("}") if c in b",}]" else
    ord(".")
    for c in range(256)
)  # fmt: skip
# a digit right before ',', '}' or ']' in the mapped bytes (re's literal search:
# faster here than `in` with a two-byte needle)
_NUMBER_END_B = re.compile(b"0}").search
# a number with a fraction or an exponent, or -0, as it can start outside a string
# in plain text (after ':' ',' or '['); a hit inside a string is checked again
# with the strings cut out
_FLOATISH_B = re.compile(rb"[:,\[]-?[0-9]+[.eE]|[:,\[]-0")
_FLOATISH_OUTSIDE_B = re.compile(rb"[.]|[0-9][eE]|-0")
_TYPE_TAILS: dict[str, bytes] = {}  # a type value kept as sent -> the object's last bytes
_NAME_TEXTS: dict[str, str] = {}  # a data name -> its JSON text
_SHA256 = hashlib.sha256()  # copied for each value: cheaper than a new one
_codec: Callable[[bytes], Any] | None = None


def _secret_decoder() -> Callable[[bytes], Any] | None:
    """msgspec's decoder of a Secret in the server's layout; None without msgspec."""
    global _codec
    if _codec is None:
        try:
            import msgspec
        except ImportError:  # pragma: no cover - a dependency
            return None
        layout = msgspec.defstruct(
            "ServerSecret",
            [
                ("kind", Literal["Secret"]),
                ("apiVersion", Literal["v1"]),
                ("metadata", msgspec.Raw),
                ("data", dict[str, bytes]),
                ("type", str | msgspec.UnsetType, msgspec.UNSET),
            ],
            forbid_unknown_fields=True,
        )
        _codec = msgspec.json.Decoder(layout).decode
    return _codec


def _type_tail(value: str) -> bytes | None:
    """The last bytes of a Secret whose type member, the last, is `value` as
    sent (no escape, nothing Go escapes); None for a value not kept so."""
    tail = _TYPE_TAILS.get(value)
    if tail is None:
        if not (value.isascii() and value.isprintable()) or any(c in value for c in '"\\<>&'):
            return None
        tail = b',"type":"' + value.encode() + b'"}'
        if len(_TYPE_TAILS) < 64:  # a handful in a cluster
            _TYPE_TAILS[value] = tail
    return tail


def _name_text(name: str) -> str:
    """A data name as JSON text with Go's escapes (the digests need none)."""
    text = go_escape(encode_basestring(name))
    if len(_NAME_TEXTS) < 4096:  # the names Secrets use are few
        _NAME_TEXTS[name] = text
    return text


def _server_bytes(raw: bytes, key: bytes | None) -> bytes | None:
    """transform(raw) for a Secret in the server's layout, or None."""
    if not raw.startswith(_SERVER_HEAD_B):
        return None
    decode = _codec or _secret_decoder()
    if decode is None:
        return None
    try:
        # every byte is structure, inside a decoded string or skipped as valid
        # JSON; invalid UTF-8 in the metadata is found below
        obj = decode(raw)
    except ValueError:
        return None
    start = len(_SERVER_PREFIX_B)
    end = start + len(obj.metadata)
    md = raw[start:end]
    # the first metadata member is the one decoded (not repeated), and the data
    # member comes next
    if not raw.startswith(obj.metadata, start) or not raw.startswith(b',"data":', end):
        return None
    if _LAST_APPLIED_B in md:
        return None
    mapped = md.translate(_KEPT_MAP_B)
    if b"!" in mapped:
        return None
    if (
        _NUMBER_END_B(mapped)
        and _FLOATISH_B.search(md)
        and _FLOATISH_OUTSIDE_B.search(b"".join(md.split(b'"')[::2]))
    ):
        return None
    if not md.isascii():
        md.decode()  # invalid UTF-8 fails here as on the other paths
        if _LINE_SEPS_B[0] in md or _LINE_SEPS_B[1] in md:
            return None
    tail = b"}"  # without a type member: what follows data is kind, apiVersion or
    # metadata again, equal to the first ones (checked above), or data again
    kind = obj.type
    if kind.__class__ is str:
        kept = _type_tail(kind)
        if kept is None or not raw.endswith(kept):
            return None
        tail = kept
    names = _NAME_TEXTS
    parts = []
    for k, v in obj.data.items():
        name = names.get(k) or _name_text(k)
        if key:
            parts.append(f'{name}:"{digest(v, key)}"')
        else:
            h = _SHA256.copy()
            h.update(v)
            parts.append(f'{name}:"sha256:{h.hexdigest()}"')
    text = ",".join(parts).encode()
    return b"".join((_SERVER_PREFIX_B, md, b',"data":{', text, b"}", tail))


def _fast_redact(s: str, key: bytes | None, *, outer: bool) -> str | None:
    """The text of s with redact_secret applied, or None. outer: a Secret from
    the server (its text as go_json writes it, before the Go escapes);
    otherwise the last-applied annotation (sorted keys, ASCII, a newline)."""
    if outer and (whole := _server_layout(s, key)) is not None:
        return whole
    if s[:1] != "{" or s[1:2] == "}":
        return None
    enc = encode_basestring if outer else encode_basestring_ascii
    parts: dict[str, str] = {}
    pos = 1
    while True:
        if s[pos] != '"':
            return None
        name, pos = _scanstring(s, pos + 1, True)
        if s[pos] != ":" or name in parts:
            return None
        pos += 1
        fast = _fast_data(s, pos, key, enc, not outer) if name == "data" else None
        if fast is not None:
            text, pos = fast
        else:
            value, end = _scan_exact(s, pos)
            text = s[pos:end]
            pos = end
            if name in ("data", "stringData"):
                holder = {name: value}
                _redact_values(holder, key)
                text = (_ENCODE_OUTER if outer else _ENCODE_INNER)(holder[name])
            else:
                if name == "metadata" and outer:
                    _redact_metadata(value, key)
                if not outer or not _plain(text) or (name == "metadata" and LAST_APPLIED in text):
                    text = (_ENCODE_OUTER if outer else _ENCODE_INNER)(value)
        parts[name] = enc(name) + ":" + text
        c = s[pos]
        if c == "}":
            break
        if c != ",":
            return None
        pos += 1
    if s[pos + 1 :].strip(_BLANKS):
        return None
    if outer:
        return "{" + ",".join(parts.values()) + "}"
    return "{" + ",".join(v for _, v in sorted(parts.items())) + "}\n"


def make_transform(r: Resource, opts: TransformOptions) -> Callable[[bytes], bytes] | None:
    """The per-object transform for a resource, or None (bytes pass through)."""
    redact = is_secret(r) and opts.secrets == "redact"
    if not redact and not opts.strip:
        return None
    key, strip = opts.secret_key, opts.strip

    def transform(raw: bytes) -> bytes:
        if redact and not strip:
            try:
                whole = _server_bytes(raw, key)
            except Exception:  # anything unusual: the paths below decide
                whole = None
            if whole is not None:
                return whole
            try:
                fast = _fast_redact(raw.decode(), key, outer=True)
            except Exception:  # anything unusual: the general code below decides
                fast = None
            if fast is not None:
                return go_escape(fast).encode()
        obj = deepjson.loads(raw)
        if redact:
            redact_secret(obj, key)
        for p in strip:
            paths.delete(obj, p)
        return go_json(obj)

    return transform
