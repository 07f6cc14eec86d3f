"""Strings from a cluster or a snapshot, as text outputs show them.

Any JSON string may reach a text output: a label value, a manager's name, an
error the server wrote, an object name in a file another tool made. Printed as
they are, some would break the output or the terminal: a lone surrogate (a valid
JSON escape such as "\\ud800") cannot be encoded at all, control characters move
the cursor or recolour the terminal (ESC), bidi controls and other invisible
format characters reorder or hide what follows, NUL and line breaks cut lines
and table cells. `visible()` writes each of those as a JSON-style escape
(`\\u001b`, `\\u202e`, `\\ud800`, `\\n`), so the text stays on its line and shows
what is there; in JSON text its escapes mean the same string (`json_text()`).
"""

from __future__ import annotations

import re
import unicodedata

# categories shown escaped: controls, format characters (bidi, zero-width, BOM),
# surrogates, line and paragraph separators
_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(ch: str) -> str:
    short = _SHORT.get(ch)
    if short is not None:
        return short
    n = ord(ch)
    if n > 0xFFFF:  # as JSON writes it: a surrogate pair
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def visible(s: str) -> str:
    """`s` with every control, format (bidi, zero-width), surrogate and line
    separator character written as an escape; other text unchanged."""
    if s.isprintable():  # nearly every string: no copy
        return s
    return "".join(_escape(ch) if unicodedata.category(ch) in _HIDDEN else ch for ch in s)


def json_text(text: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) that stdout can take:
    a lone surrogate, which no UTF-8 holds, as its escape (the same JSON string)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: _escape(m.group()), text)


def human_bytes(n: float) -> str:
    """A size as text outputs show it: "512 B", "4.0 KiB", ... "3.2 GiB"."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
