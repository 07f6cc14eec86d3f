"""`dataclass`: the standard library's decorator, cheaper to apply.

kstream's classes of settings and results are dataclasses, and every command
creates ~40 of them at start-up. On Python 3.11 and 3.12 the decorator writes
the source of each generated method and compiles it apart (`exec` per method):
~0.15 ms per method, 0.4-0.9 ms per class: the 42 classes an empty dump creates
took 22 ms of its ~100 ms (15 ms with this decorator).
Here `__eq__`, `__repr__` and (frozen) `__hash__` are shared functions that read
the class's fields, and only `__init__` (and a frozen class's `__setattr__` and
`__delattr__`) are generated: the class is a real dataclass (`fields()`,
`replace()`, `asdict()` work), and it compares, prints and hashes as the standard
library's would (tests/test_dataclass.py checks each against it).

Any option beyond `frozen` (eq=False, order, unsafe_hash, slots...) is handed to
the standard library's decorator as is. For type checkers this *is*
`dataclasses.dataclass`."""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

__all__ = ["dataclass"]

# per class: (names compared, names hashed, (name, repr) pairs shown)
_SHAPES: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
_repr_running: set[tuple[int, int]] = set()


def _shape(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    shape = _SHAPES.get(cls)
    if shape is None:
        fs = dataclasses.fields(cls)
        shape = _SHAPES[cls] = (
            tuple(f.name for f in fs if f.compare),
            tuple(f.name for f in fs if (f.compare if f.hash is None else f.hash)),
            tuple(f.name for f in fs if f.repr),
        )
    return shape


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        names = _shape(self.__class__)[0]
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n in _shape(self.__class__)[1]))


def _repr(self: Any) -> str:
    key = (id(self), threading.get_ident())
    if key in _repr_running:  # as reprlib.recursive_repr, which the standard library uses
        return "..."
    _repr_running.add(key)
    try:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _shape(self.__class__)[2])
    finally:
        _repr_running.discard(key)
    return f"{self.__class__.__qualname__}({inner})"


def _apply(cls: type, frozen: bool) -> type:
    own = cls.__dict__
    # as the standard library decides it: a class body defining __eq__ gets
    # __hash__ = None from Python itself, which is not an explicit hash
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    has_eq, has_repr = "__eq__" in own, "__repr__" in own
    cls = dataclasses.dataclass(cls, frozen=frozen, eq=False, repr=False)
    if not has_repr:
        cls.__repr__ = _repr  # type: ignore[assignment]
    if not has_eq:
        cls.__eq__ = _eq  # type: ignore[assignment,method-assign]
    if not explicit_hash:
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    return cls


if TYPE_CHECKING:
    from dataclasses import dataclass
else:

    def dataclass(cls=None, /, *, frozen=False, **options):
        if options:
            return dataclasses.dataclass(cls, frozen=frozen, **options)

        def wrap(c):
            return _apply(c, frozen)

        return wrap if cls is None else wrap(cls)
