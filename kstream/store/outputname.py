"""Output names with placeholders: `-o 'backups/{context}/{time:%Y-%m-%dT%H%MZ}.ndjson.zst'`.

Placeholders (`{{` and `}}` are literal braces):

  {context}       the kubeconfig context ("in-cluster" inside a pod)
  {cluster}       the server's host (host:port when a port is given)
  {time:FORMAT}   UTC at the start of the dump, in strftime's FORMAT
  {time}          the same as {time:%Y%m%dT%H%M%SZ}
  {date}          the same as {time:%Y-%m-%d}

Values that come from the kubeconfig ({context}, {cluster}) are made safe for
one path component (or one part of an object key): every character outside
A-Z a-z 0-9 and `. _ - @ : + = ,` becomes `_` (so an EKS context
`arn:aws:eks:eu-west-1:1234:cluster/prod` is `arn:aws:eks:eu-west-1:1234:cluster_prod`),
and a value made only of dots (`.`, `..`) becomes `_`. The FORMAT of {time}
is the user's own: a `/` in it makes directories (`{time:%Y/%m/%d}`).
A bad template (an unknown placeholder, an unknown strftime directive, a lone
brace) is a UsageError: one line, exit 2, before anything is read.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path

from kstream.errors import UsageError

PLACEHOLDERS = ("context", "cluster", "time", "date")
DEFAULT_TIME = "%Y%m%dT%H%M%SZ"
DATE = "%Y-%m-%d"
# strftime directives that mean the same everywhere (C89 plus the common POSIX ones)
_DIRECTIVES = set("aAbBcdfHIjmMpSUwWxXyYzZGuVgCeFTDRhnt%")
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-@:+=,]")


def fields(template: str) -> list[tuple[str, str | None]]:
    """The placeholders of a template, as (name, format); UsageError if malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise UsageError(f"-o {template}: {e} (write {{{{ and }}}} for literal braces)") from None
    out: list[tuple[str, str | None]] = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if conv is not None or name not in PLACEHOLDERS:
            raise UsageError(
                f"-o {template}: unknown placeholder {{{name}{'!' + conv if conv else ''}}} "
                "(known: {context}, {cluster}, {time:FORMAT}, {date})"
            )
        if name == "time":
            fmt = spec or DEFAULT_TIME
            _check_strftime(template, fmt)
            out.append((name, fmt))
        else:
            if spec:
                raise UsageError(f"-o {template}: {{{name}}} takes no format (got {spec!r})")
            out.append((name, None))
    return out


def has_placeholders(template: str) -> bool:
    return bool(fields(template))


def uses(template: str, name: str) -> bool:
    return any(n == name for n, _ in fields(template))


def _check_strftime(template: str, fmt: str) -> None:
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            d = fmt[i + 1 : i + 2]
            if d not in _DIRECTIVES:
                shown = "%" + d if d else "a lone % at the end"
                raise UsageError(
                    f"-o {template}: {{time:{fmt}}}: unknown strftime directive {shown} "
                    "(write %% for a literal %)"
                )
            i += 2
        else:
            i += 1


def safe(value: str) -> str:
    """A kubeconfig value made safe for one path component (see the module doc)."""
    out = _UNSAFE.sub("_", value)
    if not out or set(out) == {"."}:
        return "_"
    return out


def server_host(server: str) -> str:
    """{cluster}: the host of a server URL, with its port when it has one."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(server if "://" in server else f"https://{server}")
        host = u.hostname or ""
        port = u.port
    except ValueError:
        return safe(server)
    return safe(f"{host}:{port}" if port else host)


def expand(template: str, *, context: str = "", cluster: str = "", started: dt.datetime) -> str:
    """The output name for one context; `cluster` is the server URL or host.
    `started` (UTC) fills {time} and {date}."""
    specs = fields(template)
    if not specs:
        return template.replace("{{", "{").replace("}}", "}")
    when = started.astimezone(dt.timezone.utc)
    out: list[str] = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name == "context":
            out.append(safe(context))
        elif name == "cluster":
            out.append(server_host(cluster))
        elif name == "date":
            out.append(when.strftime(DATE))
        else:
            out.append(when.strftime(spec or DEFAULT_TIME))
    return "".join(out)


def make_parents(template: str, name: str) -> list[Path]:
    """With placeholders a name is new each run, so its missing parent
    directories are created (as `mkdir -p`); a name without placeholders keeps
    the rule of plain names (its directory must exist, so a typo fails).
    Returns the directories created, deepest first (for `remove_empty`)."""
    if "://" in name or name == "-" or not has_placeholders(template):
        return []
    parent = Path(name.rstrip("/")).parent
    missing = []
    p = parent
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from kstream.errors import OutputError

        raise OutputError(f"cannot create {parent}: {e.strerror or type(e).__name__}") from None
    return missing


def remove_empty(created: Sequence[Path]) -> None:
    """Remove the directories make_parents created, deepest first, while empty
    (after a context that wrote nothing)."""
    for d in created:
        try:
            d.rmdir()
        except OSError:
            return


def check_unique(names: Sequence[tuple[str, str]]) -> None:
    """(context, output) pairs: two contexts must not write the same output."""
    seen: dict[str, str] = {}
    for ctx, name in names:
        if name in seen:
            raise UsageError(
                f"contexts {seen[name]!r} and {ctx!r} would both write {name}: "
                "add {context} (or {cluster}) to the -o name"
            )
        seen[name] = ctx


def partial_name(name: str, taken: Callable[[str], bool], tail: str = "") -> str:
    """Where an interrupted dump goes: NAME.partial, or NAME.partial2 ... when
    taken (`tail`: "/" for an object storage prefix)."""
    cand = f"{name}.partial{tail}"
    n = 1
    while taken(cand):
        n += 1
        cand = f"{name}.partial{n}{tail}"
    return cand
