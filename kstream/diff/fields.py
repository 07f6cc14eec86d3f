"""Comparing two objects leaf by leaf (`field_changes`, no recursion), and how
Secret values are shown and redacted to compare (`SecretMasker`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kstream import paths
from kstream.diff.records import MISSING, KindKey

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

HIDDEN = "(changed)"  # what a raw Secret value is shown as
DIGEST_PREFIXES = ("sha256:", "hmac-sha256:")


def _same_leaf(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and a map never equals a list."""
    if type(a) is type(b):
        return bool(a == b)
    num = (int, float)
    return (
        isinstance(a, num)
        and isinstance(b, num)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


# A path while walking: (parent, segment), () at the top. Made into a tuple only
# for a difference, so that walking down N levels costs N, not N*N.
_Trail = tuple[Any, ...]


def _path(trail: _Trail) -> paths.FieldPath:
    segs: list[str] = []
    while trail:
        trail, seg = trail
        segs.append(seg)
    segs.reverse()
    return tuple(segs)


def _pairs(
    a: Any, b: Any, trail: _Trail, out: list[tuple[paths.FieldPath, Any, Any]]
) -> Iterator[tuple[Any, Any, _Trail]]:
    """The children of two maps or two lists to compare; what only one side
    has goes straight to out, in order."""
    if isinstance(a, dict):
        for k in a:
            if k in b:
                yield a[k], b[k], (trail, k)
            else:
                out.append((_path((trail, k)), a[k], MISSING))
        for k in b:
            if k not in a:
                out.append((_path((trail, k)), MISSING, b[k]))
    else:
        for i in range(max(len(a), len(b))):
            t = (trail, str(i))
            if i >= len(b):
                out.append((_path(t), a[i], MISSING))
            elif i >= len(a):
                out.append((_path(t), MISSING, b[i]))
            else:
                yield a[i], b[i], t


def field_changes(
    old: Any, new: Any, prefix: paths.FieldPath = ()
) -> list[tuple[paths.FieldPath, Any, Any]]:
    """Leaf-level differences: (path, old, new), MISSING for an absent side.
    Depth first, in document order; no recursion (objects may be 10,000 deep)."""
    out: list[tuple[paths.FieldPath, Any, Any]] = []
    top: _Trail = ()
    for seg in prefix:
        top = (top, seg)
    stack: list[Iterator[tuple[Any, Any, _Trail]]] = [iter([(old, new, top)])]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            continue
        a, b, trail = nxt
        if (isinstance(a, dict) and isinstance(b, dict)) or (
            isinstance(a, list) and isinstance(b, list)
        ):
            stack.append(_pairs(a, b, trail, out))
        elif not _same_leaf(a, b):
            out.append((_path(trail), a, b))
    return out


class SecretMasker:
    """diff's handling of Secret values, in one place: which objects and fields
    hold them, how a value is shown (a digest as it is, anything else as
    HIDDEN), and how an object holds its values (`rule_of`: raw, or which
    digest), for the merge to digest a raw side like a redacted one."""

    @staticmethod
    def applies_to(k: KindKey) -> bool:
        return k == ("", "Secret")

    @staticmethod
    def sensitive(path: paths.FieldPath) -> bool:
        return bool(path) and (
            path[0] in ("data", "stringData")
            or (
                len(path) >= 3
                and path[:2] == ("metadata", "annotations")
                and path[2] == LAST_APPLIED
            )
        )

    @staticmethod
    def mask(v: Any) -> Any:
        """A Secret value as shown: digests as they are, anything else hidden, maps
        (of any depth) masked member by member."""

        def leaf(x: Any) -> Any:
            if x is MISSING or (isinstance(x, str) and x.startswith(DIGEST_PREFIXES)):
                return x
            return HIDDEN

        if not isinstance(v, dict):
            return leaf(v)
        top: dict[str, Any] = {}
        stack = [(v, top)]
        while stack:
            src, dst = stack.pop()
            for k, x in src.items():
                if isinstance(x, dict):
                    dst[k] = {}
                    stack.append((x, dst[k]))
                else:
                    dst[k] = leaf(x)
        return top

    @staticmethod
    def rule_of(obj: dict[str, Any]) -> str | None:
        """How a Secret object holds its values: "raw" when one of them is not a
        digest, else the digest they were written with ("sha256",
        "hmac-sha256"); None when it holds no value."""
        from kstream.transform import redacted_rule

        rule: str | None = None
        for member in ("data", "stringData"):
            values = obj.get(member)
            if not isinstance(values, dict):
                continue
            for v in values.values():
                if not isinstance(v, str):
                    continue
                r = redacted_rule(v)
                if r is None:
                    return "raw"
                rule = rule or r
        return rule
