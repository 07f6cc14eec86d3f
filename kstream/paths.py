"""Field paths in objects: `metadata.managedFields`, `status`, `spec.*.image`,
`metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`.
A `*` segment matches any key or list index."""

from __future__ import annotations

import re
from typing import Any

_SEG = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)')
_BRACKET = re.compile(r'\["(?:[^"\\]|\\.)*"\]')
# inside ["..."]: \" is a quote and \\ a backslash; any other backslash stays as written
_UNESCAPE = re.compile(r'\\([\\"])')

FieldPath = tuple[str, ...]  # one field path, e.g. ("metadata", "annotations", "x/y")


def parse(text: str) -> FieldPath:
    """Split a dotted path; bracketed segments keep dots and slashes.

    Grammar: an optional leading `.` (kubectl's jsonpath habit), then segments
    joined by `.`; a `["key"]` segment may also follow the previous one directly.
    An empty path, an empty segment (`a..b`, `a.`) or an empty key (`[""]`) is an
    error: such a path would quietly match something else or nothing."""
    s = text.strip()
    if not s:
        raise ValueError("empty path")
    segs: list[str] = []
    pos = 1 if s.startswith(".") else 0
    want_segment = True
    while pos < len(s) or want_segment:
        if want_segment:
            m = _SEG.match(s, pos) if pos < len(s) else None
            if m is None:
                if pos >= len(s) or s[pos] == ".":
                    raise ValueError(f"bad path {s!r}: empty segment at position {pos + 1}")
                raise ValueError(f"bad path {s!r} at position {pos + 1}")
            if m.group(1) is not None:
                if not m.group(1):
                    raise ValueError(f'bad path {s!r}: empty key [""] at position {pos + 1}')
                segs.append(_UNESCAPE.sub(r"\1", m.group(1)))
            else:
                segs.append(m.group(2))
            pos = m.end()
            want_segment = False
        elif s[pos] == ".":
            pos += 1
            want_segment = True
        elif s[pos] == "[":
            want_segment = True
        else:
            raise ValueError(f"bad path {s!r} at position {pos + 1}")
    return tuple(segs)


def parse_list(values: list[str] | tuple[str, ...]) -> list[FieldPath]:
    """Paths from repeated options, each of which may hold several joined by
    commas (a comma inside ["..."] belongs to the key). Empty entries are errors."""
    out: list[FieldPath] = []
    for value in values:
        parts: list[str] = []
        cur = ""
        pos = 0
        while pos < len(value):
            m = _BRACKET.match(value, pos)
            if m is not None:
                cur += m.group(0)
                pos = m.end()
            elif value[pos] == ",":
                parts.append(cur)
                cur = ""
                pos += 1
            else:
                cur += value[pos]
                pos += 1
        parts.append(cur)
        for part in parts:
            if not part.strip():
                raise ValueError(f"empty path in {value!r}" if value.strip() else "empty path")
            out.append(parse(part))
    return out


def render(path: FieldPath) -> str:
    out = ""
    for seg in path:
        if seg == "*" or re.fullmatch(r"[A-Za-z0-9_\-]+", seg):
            out += ("." if out else "") + seg
        else:
            out += '["' + seg.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def matches(path: FieldPath, pattern: FieldPath) -> bool:
    """True when `path` is `pattern` or lies below it (wildcards allowed)."""
    if len(path) < len(pattern):
        return False
    return all(p in ("*", s) for s, p in zip(path, pattern, strict=False))


def _delete_here(obj: Any, head: str) -> None:
    """The last segment: remove what it names."""
    if isinstance(obj, dict):
        if head == "*":
            obj.clear()
        elif head in obj:
            del obj[head]
    elif isinstance(obj, list):
        if head == "*":
            obj.clear()
        elif head.isdigit() and int(head) < len(obj):
            del obj[int(head)]


def _below(obj: Any, head: str) -> list[Any]:
    """The keys or indexes a segment leads to (before the last one)."""
    if isinstance(obj, dict):
        if head == "*":
            return [k for k, v in obj.items() if isinstance(v, (dict, list)) and v]
        v = obj.get(head)
        return [head] if isinstance(v, (dict, list)) and v else []
    if isinstance(obj, list):
        if head == "*":
            return list(range(len(obj)))
        if head.isdigit() and int(head) < len(obj):
            return [int(head)]
    return []


def delete(obj: Any, pattern: FieldPath, prune: bool = False) -> None:
    """Remove every value at `pattern` from obj (in place). With prune, maps
    the deletion left empty are removed from their parent map too. No
    recursion: a pattern may be as long as an object is deep."""
    if not pattern:
        return
    last = len(pattern) - 1
    # [container, depth, keys still to visit, key of a map child being visited]
    stack: list[list[Any]] = [[obj, 0, None, None]]
    while stack:
        frame = stack[-1]
        node, depth, todo, visiting = frame
        if visiting is not None:
            frame[3] = None
            if prune and not node[visiting]:
                del node[visiting]
        if todo is None:
            if depth == last:
                _delete_here(node, pattern[depth])
                stack.pop()
                continue
            todo = frame[2] = iter(_below(node, pattern[depth]))
        k = next(todo, None)
        if k is None:
            stack.pop()
            continue
        if isinstance(node, dict):
            frame[3] = k
        stack.append([node[k], depth + 1, None, None])
