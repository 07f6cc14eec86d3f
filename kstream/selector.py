"""Label and field selectors, with the grammar of the API server
(k8s.io/apimachinery labels.Parse and fields.ParseSelector), so that a
selector means the same thing live (where the server evaluates it) and on a
snapshot (where kstream does), and a bad one is refused before any request.

Label selectors: requirements joined by commas, all of which must hold:
`key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`,
`key notin (v1,v2)`, `key>N`, `key<N` (N a 64-bit integer). A key is an
optional DNS-subdomain prefix and `/`, then a name of at most 63 characters
([A-Za-z0-9] at both ends, `-_.` inside); a value is empty or like a name.
Spaces, tabs and newlines may stand between tokens.

`Scope` is the whole selection of a command (resources, exclusions,
namespaces and the two selectors), used by the live plan, count and diff.

Field selectors: `field=value`, `field==value` or `field!=value`, joined by
commas; `\\`, `,` and `=` in a value are escaped with a backslash. Nothing is
trimmed. Which fields exist depends on the resource: the server checks that;
only an empty field name or one with blanks, which no resource has, is refused
here too.
"""

from __future__ import annotations

import re
from typing import Any

from kstream.dataclass import dataclass
from kstream.errors import UsageError

__all__ = [
    "FieldRequirement",
    "LabelSelector",
    "MetadataFieldSelector",
    "Requirement",
    "Scope",
    "SelectorError",
    "check",
    "parse_fields",
    "parse_labels",
]


class SelectorError(ValueError):
    """A selector the server would refuse (HTTP 400); the message says why."""


# --------------------------------------------------------------------------- label selectors

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(s: str) -> int | None:
    """Go's strconv.ParseInt(s, 10, 64), None where it fails."""
    if not _INT64.fullmatch(s):
        return None
    n = int(s)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key, or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return "a label key has at most one '/' (an optional DNS subdomain prefix, e.g. 'example.com/name')"
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "the prefix before '/' must not be empty"
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
            return (
                "the prefix must be a DNS subdomain: at most 253 characters, "
                "lower case alphanumerics, '-' and '.'"
            )
    if not name:
        return "the name must not be empty"
    if len(name) > 63:
        return "the name must be no more than 63 characters"
    if not _NAME.fullmatch(name):
        return (
            "the name must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _NAME.fullmatch(value):
        return (
            "must be empty or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    """One requirement; op is one of = == != in notin exists ! > <."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, Any]) -> bool:
        has = self.key in labels
        v = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "==", "in"):
            return has and v in self.values
        if self.op in ("!=", "notin"):
            return not has or v not in self.values
        if not has or not isinstance(v, str):
            return False
        n, limit = _parse_int64(v), _parse_int64(self.values[0])
        if n is None or limit is None:
            return False
        return n > limit if self.op == ">" else n < limit

    def __str__(self) -> str:
        if self.op in ("exists", "!"):
            return ("!" if self.op == "!" else "") + self.key
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        return f"{self.key}{self.op}{self.values[0]}"


# The lexer's tokens (labels/selector.go): literal operators, identifiers, end.
_EOS, _ID = "end of string", "identifier"
_TOKENS = {")", ",", "!", "==", "=", ">", "in", "<", "!=", "notin", "("}
_SPECIAL = frozenset("=!(),><")
_WS = frozenset(" \t\r\n")


def _lex(s: str) -> list[tuple[str, str]]:
    """(token, literal) pairs up to the end, exactly as the server's lexer
    splits them: operators are the longest run of special characters that is
    a token, identifiers run up to a special character or a blank. As there,
    a NUL character where a token starts ends the input."""
    out: list[tuple[str, str]] = []
    n = len(s)
    pos = 0
    while True:
        while pos < n and s[pos] in _WS:
            pos += 1
        if pos >= n or s[pos] == "\0":
            out.append((_EOS, ""))
            return out
        if s[pos] in _SPECIAL:  # every special character is a token; `==` and `!=` too
            buf = s[pos]
            pos += 1
            while pos < n and s[pos] in _SPECIAL and buf + s[pos] in _TOKENS:
                buf += s[pos]
                pos += 1
            if pos < n and s[pos] == "\0":
                pos += 1  # consumed there too
            out.append((buf, buf))
        else:
            start = pos
            while pos < n and s[pos] != "\0" and s[pos] not in _SPECIAL and s[pos] not in _WS:
                pos += 1
            lit = s[start:pos]
            if pos < n and s[pos] == "\0":
                pos += 1  # the server's lexer consumes a NUL that ends an identifier
            out.append((lit if lit in ("in", "notin") else _ID, lit))


class _Parser:
    """labels.Parse's recursive-descent parser over the tokens of _lex."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def look(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[min(self.pos, len(self.items) - 1)]
        if values and tok in ("in", "notin"):  # in a value position, `in` is a word
            tok = _ID
        return tok, lit

    def take(self, values: bool = True) -> tuple[str, str]:
        t = self.look(values)
        self.pos += 1
        return t

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.look()
            if tok in (_ID, "!"):
                reqs.append(self.requirement())
                t, lit = self.take()
                if t == _EOS:
                    return reqs
                if t != ",":
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
                t2, lit2 = self.look()
                if t2 not in (_ID, "!"):
                    raise SelectorError(f"found '{lit2}', expected: identifier after ','")
            elif tok == _EOS:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        op = ""
        tok, key = self.take()
        if tok == "!":
            op = "!"
            tok, key = self.take()
        if tok != _ID:
            raise SelectorError(f"found '{key}', expected: identifier")
        why = key_problem(key)
        if why:
            raise SelectorError(f"invalid label key {key!r}: {why}")
        if self.look()[0] in (_EOS, ","):
            op = op or "exists"
        if op in ("exists", "!"):
            return Requirement(key, op)
        tok, lit = self.take(values=False)
        if tok not in ("in", "notin", "=", "==", "!=", ">", "<"):
            raise SelectorError(f"found '{lit}', expected: in, notin, =, ==, !=, >, <")
        op = tok
        values = self.set_values() if op in ("in", "notin") else self.exact_value()
        for v in values:
            why = value_problem(v)
            if why:
                raise SelectorError(f"invalid value {v!r} for label {key!r}: {why}")
        if op in (">", "<") and _parse_int64(values[0]) is None:
            raise SelectorError(
                f"invalid value {values[0]!r} for label {key!r}: "
                f"for '{op}' the value must be a 64-bit integer"
            )
        return Requirement(key, op, values)

    def set_values(self) -> tuple[str, ...]:
        tok, lit = self.take()
        if tok != "(":
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.look()
        if tok == ")":  # `()`: the empty value
            self.take()
            return ("",)
        if tok not in (_ID, ","):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:  # a list of possibly empty values
            tok, lit = self.take()
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self.look()
                if tok2 == ")":
                    break
                if tok2 != ",":
                    raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            elif tok == ",":
                if not values:
                    values.add("")  # `(,`
                tok2, _ = self.look()
                if tok2 in (")", ","):
                    values.add("")  # `,)` and `,,`
                    if tok2 == ")":
                        break
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")
        tok, _ = self.take()
        if tok != ")":  # pragma: no cover - the loop stops only before `)`
            raise SelectorError(f"found '{lit}', expected: ')'")
        return tuple(sorted(values))

    def exact_value(self) -> tuple[str, ...]:
        tok, lit = self.look()
        if tok in (_EOS, ","):
            return ("",)
        tok, lit = self.take()
        if tok != _ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        return (lit,)


def parse_labels(text: str) -> tuple[Requirement, ...]:
    """The requirements of a label selector, or SelectorError as the server
    would refuse it. An empty (or blank) selector has none: it selects all."""
    try:
        reqs = _Parser(text).parse()
    except SelectorError as e:
        raise SelectorError(f"unable to parse requirement: {e}") from None
    return tuple(sorted(reqs, key=lambda r: r.key))


class LabelSelector:
    """A parsed label selector; `matches(labels)` evaluates it as the server does.
    Raises UsageError (exit 2) for a selector the server would refuse."""

    def __init__(self, text: str, option: str = "--selector") -> None:
        self.text = text
        try:
            self.reqs = parse_labels(text)
        except SelectorError as e:
            raise UsageError(f"{option}: {e}") from None

    def __bool__(self) -> bool:
        return bool(self.reqs)

    def matches(self, labels: dict[str, Any] | None) -> bool:
        labels = labels if isinstance(labels, dict) else {}
        return all(r.matches(labels) for r in self.reqs)


# --------------------------------------------------------------------------- field selectors


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # = == !=
    value: str  # unescaped

    def matches(self, value: str) -> bool:
        return (value == self.value) == (self.op != "!=")


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped by a backslash (the backslash is kept)."""
    terms: list[str] = []
    start, escaped = 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped {ch!r} in a value")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_fields(text: str) -> tuple[FieldRequirement, ...]:
    """The terms of a field selector (fields.ParseSelector), or SelectorError.
    Each term is split at its first `!=`, `==` or `=`; nothing is trimmed."""
    out: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)) if text else []:
        if not term:
            continue
        m = re.search(r"!=|==|=", term)
        if m is None:
            raise SelectorError(f"invalid field selector: {text!r}; can't understand {term!r}")
        field, op = term[: m.start()], m.group()
        if not field or any(c in " \t\r\n" for c in field):
            # the grammar allows them, but no resource has such a field: the
            # server would refuse every request (400)
            raise SelectorError(f"invalid field selector: {field!r} is not a field name")
        out.append(FieldRequirement(field, op, _unescape(term[m.end() :])))
    return tuple(out)


class MetadataFieldSelector:
    """The field selectors every resource supports, evaluated by kstream (on a
    snapshot, a journal): metadata.name and metadata.namespace with =, == or
    !=; UsageError (exit 2) for any other field. `source` names what is
    filtered in that message."""

    FIELDS = ("metadata.name", "metadata.namespace")

    def __init__(self, text: str, source: str) -> None:
        self.reqs: list[tuple[str, FieldRequirement]] = []  # (metadata key, term)
        try:
            terms = parse_fields(text)
        except SelectorError as e:
            raise UsageError(f"--field-selector: {e}") from None
        for t in terms:
            if t.field not in self.FIELDS:
                raise UsageError(
                    f"--field-selector: {source} can only be filtered on "
                    f"{' and '.join(self.FIELDS)}, not {t.field}"
                )
            self.reqs.append((t.field.split(".")[1], t))

    def __bool__(self) -> bool:
        return bool(self.reqs)

    def matches(self, md: dict[str, Any]) -> bool:
        return all(t.matches(str(md.get(k) or "")) for k, t in self.reqs)


# --------------------------------------------------------------------------- the CLI's check


def check(label_selector: str, field_selector: str) -> None:
    """Refuse, before any request, selectors the server would answer with 400."""
    LabelSelector(label_selector)  # UsageError "--selector: ..."
    try:
        parse_fields(field_selector)
    except SelectorError as e:
        raise UsageError(f"--field-selector: {e}") from None


@dataclass(frozen=True)
class Scope:
    """What a command reads: resources (-r), exclusions (--exclude), namespaces
    (-n), label (-l) and field (--field-selector) selectors. Live, the plan and
    the server apply it; on a snapshot, count and diff do. The selectors are
    checked when it is made (exit 2, before any request)."""

    resources: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    field_selector: str = ""

    def __post_init__(self) -> None:
        check(self.label_selector, self.field_selector)
