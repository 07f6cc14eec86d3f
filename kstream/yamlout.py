"""A small deterministic YAML emitter for JSON values (what `kstream export` writes).

Block style as kubectl prints it (sequences under a key not indented, `- ` items),
keys in the order given, and scalars written so that a YAML 1.1 reader (PyYAML,
kubectl's go-yaml) and a YAML 1.2 reader read back exactly the JSON value:

- a string is plain only when it cannot be read as anything else: it starts with a
  letter, holds only letters, digits and `_ . / -`, and is none of the words YAML 1.1
  reads as booleans or null (`yes`, `No`, `on`, `null`, `y`, ...); otherwise it is
  double-quoted, with JSON's escapes (which YAML's double-quoted style shares) and
  `\\uXXXX` for every character YAML does not allow raw (C0 and C1 controls, DEL,
  U+2028/U+2029 and NEL, which YAML 1.1 reads as line breaks, the BOM, U+FFFE/U+FFFF,
  lone surrogates);
- a multi-line string of printable characters is a literal block (`|`, `|-`, `|+`
  for one, no or several final newlines; an indentation indicator when its first
  line starts with a space), so ConfigMap files read as files;
- numbers as JSON writes them (floats always with a `.`, which YAML 1.1 needs);
  `true`, `false`, `null`; `{}` and `[]` for empty containers;
- a key longer than 1000 characters uses the explicit `? ` form (readers refuse
  implicit keys over 1024 characters);
- below `FLOW_DEPTH` levels a value is written in flow style (JSON, strings escaped
  as above), so a 10,000-level object is neither 10,000 levels of indentation nor
  a recursion error.

No library: PyYAML is not a dependency of kstream, and its emitter would choose
quoting by its own rules (and without libyaml, 10x slower). tests/test_yamlout_unit.py
checks the round trip with PyYAML (and kubectl on the real control plane).
"""

from __future__ import annotations

import json
import re
from typing import Any

from kstream import deepjson

FLOW_DEPTH = 64
LONG_KEY = 1000

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
# YAML 1.1 booleans and null (YAML 1.2 core's are a subset), any case
_RESERVED = frozenset(["y", "yes", "n", "no", "true", "false", "on", "off", "null"])
# characters a YAML stream may not hold raw (or that YAML 1.1 reads as line breaks)
_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]"
)
# in a literal block: everything unsafe above, plus tab-free control of line ends
_BLANK_LINE = re.compile(r"(?m)^ +$")
_NOT_LITERAL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]"
)


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def quoted(s: str) -> str:
    """`s` as a double-quoted YAML scalar (JSON's string syntax, made safe for YAML)."""
    return _UNSAFE.sub(_escape, json.dumps(s, ensure_ascii=False))


def plain_ok(s: str) -> bool:
    return _PLAIN.fullmatch(s) is not None and s.lower() not in _RESERVED


def scalar(v: Any) -> str:
    """A JSON scalar (str, int, float, bool, None) on one line."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    s = str(v)
    return s if plain_ok(s) else quoted(s)


def _float(v: float) -> str:
    text = repr(v)
    if text in ("inf", "-inf", "nan"):  # not JSON; YAML's own spelling
        return {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[text]
    mant, e, exp = text.partition("e")
    if "." not in mant:
        mant += ".0"
    return mant + (e + exp if e else "")


def _literal(s: str, indent: str) -> str | None:
    """`s` as a literal block under `indent` (the header and lines), or None when
    a literal block cannot hold it exactly."""
    if "\n" not in s or _NOT_LITERAL.search(s):  # (\r is in _NOT_LITERAL)
        return None
    body = s.rstrip("\n")
    if not body or body[0] in "\n\t" or _BLANK_LINE.search(body):
        # a leading blank line or tab would be read as indentation; readers
        # disagree on lines of spaces only
        return None
    trailing = len(s) - len(body)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    head = "|" + ("2" if body[0] == " " else "") + chomp
    sep = "\n" + indent
    if "\n\n" in body:  # empty lines stay empty (no indentation written on them)
        text = "".join(sep + line if line else "\n" for line in body.split("\n"))
    else:
        text = sep + body.replace("\n", sep)
    return head + text + "\n" * (trailing - 1 if trailing > 1 else 0)


def _flow(v: Any) -> str:
    """A value in flow style: JSON, with strings made safe for YAML."""
    text = deepjson.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    return _UNSAFE.sub(_escape, text)


def _key(k: str) -> tuple[str, bool]:
    """(text, explicit): the key as written before ':' (or after '? ')."""
    return scalar(k), len(k) > LONG_KEY


def _block(v: Any, indent: str, out: list[str], depth: int) -> None:
    """Append the lines of container `v` (non-empty dict or list) at `indent`."""
    if isinstance(v, dict):
        for k, item in v.items():
            text, explicit = _key(str(k))
            if explicit:
                out.append(f"{indent}? {text}\n{indent}:")
            else:
                out.append(f"{indent}{text}:")
            _value(item, indent, out, depth, in_list=False, indent_list=explicit)
    else:
        for item in v:
            out.append(f"{indent}-")
            _value(item, indent, out, depth, in_list=True)


def _value(
    v: Any, indent: str, out: list[str], depth: int, in_list: bool, indent_list: bool = False
) -> None:
    """Append `v` after a `key:` or `-` already in out[-1]."""
    if isinstance(v, (dict, list)) and v:
        if depth >= FLOW_DEPTH:
            out[-1] += " " + _flow(v)
            out.append("\n")
            return
        if isinstance(v, list) and not in_list and not indent_list:
            # kubectl's style: a list under a key is not indented
            out.append("\n")
            _block(v, indent, out, depth + 1)
            return
        if in_list:  # "- key: value" on the item's line, the rest under it
            sub: list[str] = []
            _block(v, indent + "  ", sub, depth + 1)
            first = sub[0].lstrip(" ")
            out[-1] += " " + first
            out.extend(sub[1:])
            return
        out.append("\n")
        _block(v, indent + "  ", out, depth + 1)
        return
    if isinstance(v, dict):
        out[-1] += " {}"
    elif isinstance(v, list):
        out[-1] += " []"
    elif isinstance(v, str):
        lit = _literal(v, indent + "  ")
        out[-1] += " " + (lit if lit is not None else scalar(v))
    else:
        out[-1] += " " + scalar(v)
    out.append("\n")


def dumps(doc: Any) -> str:
    """The YAML document for a JSON value (normally an object), ending in a newline."""
    if isinstance(doc, (dict, list)) and doc:
        out: list[str] = []
        _block(doc, "", out, 0)
        return "".join(out)
    return (_flow(doc) if isinstance(doc, (dict, list)) else scalar(doc)) + "\n"
