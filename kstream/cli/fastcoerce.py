"""Option values without pydantic, for start-up time.

Typer 0.29 turns every option value (defaults included) into its Python type with
a pydantic TypeAdapter built on first use: importing pydantic and building the
adapters costs 50-80 ms, more than the rest of a small dump. `install(command)`
gives each parameter a runtime converter that handles the plain, valid values of
kstream's simple types (str, bool, int, float, Enum, list[str]) itself and hands
everything else (a bad or out-of-range value, any other type) to typer's own
converter, built only then, so that results and error messages stay typer's. tests/test_startup.py
checks that both give the same result for every parameter.

If typer's internals change shape, install() does nothing (slower, same results).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Any

from kstream.dataclass import dataclass

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_NO = object()


def fast_value(annotation: Any, info: Any, value: Any, multiple: bool) -> Any:
    """The converted value, or _NO when typer's converter must decide."""
    if multiple:
        strings = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return list(value) if strings and repr(annotation) == "list[str]" else _NO
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return _NO
    if annotation is str:
        return value if isinstance(value, str) else _NO
    if annotation is bool:
        return value if isinstance(value, bool) else _NO
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        if isinstance(value, annotation):
            return value
        if isinstance(value, str) and getattr(info, "case_sensitive", True):
            for member in annotation:
                if member.value == value:
                    return member
        return _NO
    if annotation is int or annotation is float:
        if getattr(info, "clamp", False):
            return _NO
        if isinstance(value, bool):
            return _NO
        if isinstance(value, str):
            if not (_INT if annotation is int else _FLOAT).fullmatch(value):
                return _NO
            number: float = int(value) if annotation is int else float(value)
        elif isinstance(value, int) or (annotation is float and isinstance(value, float)):
            number = annotation(value)
        else:
            return _NO
        lo, hi = getattr(info, "min", None), getattr(info, "max", None)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            return _NO  # typer says what is wrong
        return number
    return _NO


def install() -> bool:
    """Make typer give every parameter (options, arguments, the --help flag click
    adds per command) the fast converter. Idempotent; False when typer's
    internals are not the expected ones (then nothing changes)."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:
        return False
    if getattr(_TyperParameter, "_kstream_fast", False):
        return True
    if not callable(getattr(_TyperParameter, "get_runtime_param", None)):
        return False

    @dataclass(frozen=True)
    class Fast(RuntimeParam):
        descriptor: Any = None
        multiple: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            out = fast_value(self.annotation, self.parameter_info, value, self.multiple)
            if out is _NO:
                slow = build_runtime_param(self.descriptor)
                param._runtime_param = slow
                return slow._coerce_value(value, param=param, ctx=ctx)
            return out

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            desc = self.type_descriptor
            if getattr(desc, "file_annotation", None) is not None:
                self._runtime_param = build_runtime_param(desc)
            else:  # other types (Path) build typer's converter only for a value
                self._runtime_param = Fast(
                    parameter_info=desc.parameter_info,
                    annotation=desc.annotation,
                    descriptor=desc,
                    multiple=bool(self.multiple or self.nargs == -1),
                )
        return self._runtime_param

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    _TyperParameter._kstream_fast = True  # type: ignore[attr-defined]
    return True


_PLAIN = re.compile(r"[ -Z^-~]{0,79}")  # printable ASCII without [ \ ] (rich markup)


def plain_help_text(text: str, slow: Callable[[str], str]) -> str:
    """What typer's rich rendering makes of a completion description: the text
    itself when it is short plain ASCII without markup, brackets, colons (emoji
    codes) or tabs; anything else goes to rich."""
    if _PLAIN.fullmatch(text) and ":" not in text:
        return text
    return slow(text)


def install_completion_help() -> bool:
    """zsh and fish completions (and kubectl's plugin completion, which uses fish's)
    pass each description through rich (typer.rich_utils, ~40 ms of imports) to
    strip markup; kstream's descriptions are plain text. Idempotent."""
    try:
        from typer import _completion_classes as cc
    except ImportError:
        return False
    slow = getattr(cc, "_sanitize_help_text", None)
    if slow is None or getattr(slow, "_kstream_fast", False):
        return slow is not None

    def sanitize(text: str) -> str:
        return plain_help_text(text, slow)

    sanitize._kstream_fast = True  # type: ignore[attr-defined]
    cc._sanitize_help_text = sanitize
    return True
