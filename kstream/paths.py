"""Field paths in objects: `metadata.managedFields`, `status`, `spec.*.image`,
`metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`.
A `*` segment matches any key or list index."""

from __future__ import annotations

import re
from typing import Any

_SEG = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)')

Path = tuple[str, ...]


def parse(text: str) -> Path:
    """Split a dotted path; bracketed segments keep dots and slashes."""
    text = text.strip()
    if not text:
        raise ValueError("empty path")
    segs: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
            continue
        m = _SEG.match(text, pos)
        if m is None:
            raise ValueError(f"bad path {text!r}")
        segs.append(m.group(1).replace('\\"', '"') if m.group(1) is not None else m.group(2))
        pos = m.end()
    return tuple(segs)


def render(path: Path) -> str:
    out = ""
    for seg in path:
        if seg == "*" or re.fullmatch(r"[A-Za-z0-9_\-]+", seg):
            out += ("." if out else "") + seg
        else:
            out += '["' + seg.replace('"', '\\"') + '"]'
    return out


def matches(path: Path, pattern: Path) -> bool:
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


def delete(obj: Any, pattern: Path, prune: bool = False) -> None:
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
