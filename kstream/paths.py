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


def delete(obj: Any, pattern: Path, prune: bool = False) -> None:
    """Remove every value at `pattern` from obj (in place). With prune, maps and
    lists the deletion left empty are removed too."""
    if not pattern:
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(obj, dict):
        keys = list(obj) if head == "*" else ([head] if head in obj else [])
        for k in keys:
            if not rest:
                del obj[k]
                continue
            child = obj[k]
            if isinstance(child, (dict, list)) and child:
                delete(child, rest, prune)
                if prune and not child:
                    del obj[k]
    elif isinstance(obj, list):
        if head == "*":
            if not rest:
                obj.clear()
                return
            for item in obj:
                delete(item, rest, prune)
        elif head.isdigit() and int(head) < len(obj):
            if rest:
                delete(obj[int(head)], rest, prune)
            else:
                del obj[int(head)]
