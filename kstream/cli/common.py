"""Options shared by the commands, the two consoles, and connecting."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from kstream.cluster.auth import Impersonation
    from kstream.selector import Scope

# ------------------------------------------------------------------ consoles


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class Consoles:
    """stderr and stdout, each made on first use: rich costs about 20 ms to import,
    and `--help` or a tab press never print through it."""

    def __init__(self) -> None:
        self._err: Console | None = None
        self._out: Console | None = None
        self.kw: dict[str, object] = {}  # colour settings of setup_consoles()

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, **self.kw)  # type: ignore[arg-type]
        return self._err

    @err.setter
    def err(self, console: Console) -> None:
        self._err = console

    @property
    def out(self) -> Console:
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False, **self.kw)  # type: ignore[arg-type]
        return self._out

    @out.setter
    def out(self, console: Console) -> None:
        self._out = console


consoles = Consoles()


def setup_consoles(color: Color) -> None:
    """The consoles' colour settings; each console is made when first used (a
    quiet dump that prints nothing never imports rich)."""
    no_color = "NO_COLOR" in os.environ and os.environ["NO_COLOR"] != ""
    if color is Color.never or (color is Color.auto and no_color):
        kw: dict[str, object] = {"no_color": True, "color_system": None}
    elif color is Color.always:
        kw = {"force_terminal": True, "color_system": "standard", "no_color": False}
    else:
        kw = {}
    consoles.kw = kw
    consoles._err = consoles._out = None


def note(msg: str) -> None:
    """A message on stderr; cluster strings are never interpreted as markup."""
    consoles.err.print(msg, markup=False, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------ completion
# Values come from kstream.completion: local files only (kubeconfig, discovery
# cache), so a tab press never waits on the network.


def _param(ctx: typer.Context, name: str) -> str | None:
    value = ctx.params.get(name)
    if isinstance(value, (list, tuple)) and len(value) == 1:  # --context given once
        value = value[0]
    return value if isinstance(value, str) and value else None


def complete_context(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    from kstream.completion import context_names

    return [c for c in context_names(_param(ctx, "kubeconfig")) if c[0].startswith(incomplete)]


def complete_resource(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    from kstream.completion import comma_list, resource_names

    names = resource_names(_param(ctx, "kubeconfig"), _param(ctx, "context"))
    return comma_list(incomplete, names)


def complete_namespace(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    from kstream.completion import comma_list, namespace_names

    names = namespace_names(_param(ctx, "kubeconfig"), _param(ctx, "context"))
    return comma_list(incomplete, names)


def complete_snapshot(incomplete: str) -> list[tuple[str, str]]:
    """For snapshot arguments (count, diff): directories and *.zst / *.ndjson files.
    Use as `typer.Argument(..., autocompletion=complete_snapshot)`."""
    from kstream.completion import snapshot_paths

    return snapshot_paths(incomplete)


# ------------------------------------------------------------------ checking names
# -r, --exclude and -n are checked when they are parsed, for every command: an empty
# value (an unset shell variable) would quietly select everything, a repeated
# namespace would be read twice, an invalid namespace name can match nothing.

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def names(values: list[str] | None, option: str, if_left_out: str) -> list[str]:
    """Comma-separated names from a repeatable option, in order, each once.
    Raises UsageError for an empty name."""
    from kstream.errors import UsageError

    out: list[str] = []
    for v in values or []:
        items = [x.strip() for x in v.split(",")]
        if not any(items):
            raise UsageError(
                f"{option} {v!r}: no name given (an unset shell variable?); {if_left_out}"
            )
        if not all(items):
            raise UsageError(f"{option} {v!r}: empty name in the list")
        out.extend(items)
    return list(dict.fromkeys(out))


def namespace_names(values: list[str] | None) -> list[str]:
    """-n: names as `names()` gives them, each a valid namespace name (a DNS-1123
    label, as the API server validates it)."""
    from kstream.errors import UsageError

    out = names(values, "-n/--namespace", "leave -n out for all namespaces")
    for ns in out:
        if len(ns) > 63 or not DNS1123_LABEL.fullmatch(ns):
            raise UsageError(
                f"-n {ns!r}: not a valid namespace name (a lowercase RFC 1123 label: "
                "a-z, 0-9 and '-', starting and ending with a letter or digit, "
                "at most 63 characters)"
            )
    return out


def _checked(
    check: Callable[[list[str] | None], list[str]],
) -> Callable[[typer.Context, list[str] | None], list[str] | None]:
    def callback(ctx: typer.Context, value: list[str] | None) -> list[str] | None:
        if ctx.resilient_parsing or not value:  # shell completion: never fail
            return value
        return check(value)

    return callback


_resources_checked = _checked(
    lambda v: names(v, "-r/--resource", "leave -r out to read every resource")
)
_exclude_checked = _checked(
    lambda v: names(v, "--exclude", "leave --exclude out to exclude nothing")
)
_namespaces_checked = _checked(namespace_names)


# ------------------------------------------------------------------ shared options

HELP_CLUSTER = "Cluster"
HELP_SELECT = "Selection"
HELP_OUTPUT = "Output"
HELP_TUNING = "Tuning"

KubeconfigOpt = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        help="Kubeconfig file, one name as in kubectl (default: $KUBECONFIG, a list of files, else ~/.kube/config; in a pod, the in-cluster config).",
        rich_help_panel=HELP_CLUSTER,
        show_default=False,
        metavar="FILE",
    ),
]
ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="Kubeconfig context to use (default: the current context).",
        rich_help_panel=HELP_CLUSTER,
        show_default=False,
        metavar="NAME",
        autocompletion=complete_context,
    ),
]
ContextsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--context",
        help="Kubeconfig context to use (default: the current context). Repeat it, or give a glob ('prod-*'), to run on several contexts at once (the -o name then needs {context}).",
        rich_help_panel=HELP_CLUSTER,
        show_default=False,
        metavar="NAME",
        autocompletion=complete_context,
    ),
]
AsOpt = Annotated[
    str,
    typer.Option(
        "--as",
        help="Username to impersonate for every request, as kubectl --as (a user, or system:serviceaccount:NS:NAME); replaces the kubeconfig user's `as`.",
        rich_help_panel=HELP_CLUSTER,
        show_default=False,
        metavar="USER",
    ),
]
AsGroupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--as-group",
        help="Group to impersonate, as kubectl --as-group (repeatable; needs a user to impersonate).",
        rich_help_panel=HELP_CLUSTER,
        show_default=False,
        metavar="GROUP",
    ),
]
AsUidOpt = Annotated[
    str,
    typer.Option(
        "--as-uid",
        help="UID to impersonate, as kubectl --as-uid (needs a user to impersonate).",
        rich_help_panel=HELP_CLUSTER,
        show_default=False,
        metavar="UID",
    ),
]
AllContextsOpt = Annotated[
    bool,
    typer.Option(
        "--all-contexts",
        help="Run on every context of the kubeconfig (the -o name then needs {context}).",
        rich_help_panel=HELP_CLUSTER,
    ),
]
ParallelContextsOpt = Annotated[
    int,
    typer.Option(
        "--parallel-contexts",
        min=1,
        max=64,
        help="With several contexts: how many run at the same time.",
        rich_help_panel=HELP_TUNING,
        metavar="N",
    ),
]
ResourceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--resource",
        "-r",
        help="Resources to read, kubectl-style (plural, singular, short name, kind, resource.group, resource.version.group for a version other than the preferred one); repeatable or comma-separated. Default: every resource that supports list and watch.",
        rich_help_panel=HELP_SELECT,
        show_default=False,
        metavar="NAME[,NAME...]",
        autocompletion=complete_resource,
        callback=_resources_checked,
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        help="Resources to leave out, same names as --resource.",
        rich_help_panel=HELP_SELECT,
        show_default=False,
        metavar="NAME[,NAME...]",
        autocompletion=complete_resource,
        callback=_exclude_checked,
    ),
]
NamespaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Only these namespaces (repeatable or comma-separated); cluster-scoped resources are then left out unless named with -r. Default: all namespaces.",
        rich_help_panel=HELP_SELECT,
        show_default=False,
        metavar="NS[,NS...]",
        autocompletion=complete_namespace,
        callback=_namespaces_checked,
    ),
]
AllNamespacesOpt = Annotated[
    bool,
    typer.Option(
        "--all-namespaces",
        "-A",
        help="All namespaces (the default; accepted for kubectl habits).",
        rich_help_panel=HELP_SELECT,
    ),
]
SelectorOpt = Annotated[
    str,
    typer.Option(
        "--selector",
        "-l",
        help="Label selector, evaluated by the server (e.g. app=web,tier!=db).",
        rich_help_panel=HELP_SELECT,
        metavar="SELECTOR",
    ),
]
FieldSelectorOpt = Annotated[
    str,
    typer.Option(
        "--field-selector",
        help="Field selector, evaluated by the server (e.g. metadata.name=x).",
        rich_help_panel=HELP_SELECT,
        metavar="SELECTOR",
    ),
]


class Method(str, Enum):
    auto = "auto"
    watch_list = "watch-list"
    list = "list"


MethodOpt = Annotated[
    Method,
    typer.Option(
        "--method",
        help="How to read: watch-list with LIST fallback (auto), or force one (a forced method never falls back: a resource it cannot read fails, with the reason).",
        rich_help_panel=HELP_TUNING,
        metavar="[auto|watch-list|list]",
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency",
        "-c",
        min=1,
        max=64,
        help="Resources streamed at the same time.",
        rich_help_panel=HELP_TUNING,
        metavar="N",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=1,
        help="Seconds of silence tolerated inside a stream before it is retried.",
        rich_help_panel=HELP_TUNING,
        metavar="SECONDS",
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--retries",
        min=0,
        max=100,
        help="Retries per resource on 429, 5xx and broken streams (with backoff).",
        rich_help_panel=HELP_TUNING,
        metavar="N",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress and no summary; errors only."),
]
DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="Show tracebacks for errors (never with secrets)."),
]
ColorOpt = Annotated[
    Color,
    typer.Option(
        "--color",
        metavar="[auto|always|never]",
        help="Colour on stderr/stdout; NO_COLOR is honoured by auto.",
    ),
]


def scope(
    resource: list[str] | None,
    exclude: list[str] | None,
    namespace: list[str] | None,
    selector: str,
    field_selector: str = "",
) -> Scope:
    """The command's selection as one value (names already split and checked by
    the option callbacks); the selectors are checked here, before any request."""
    from kstream.selector import Scope

    return Scope(
        tuple(resource or ()),
        tuple(exclude or ()),
        tuple(namespace or ()),
        selector,
        field_selector,
    )


def impersonation(as_user: str, as_group: list[str] | None, as_uid: str) -> Impersonation | None:
    """--as, --as-group, --as-uid as one value (None: none given). Merged over the
    kubeconfig user's impersonation when connecting, as kubectl merges them."""
    if not (as_user or as_group or as_uid):
        return None
    from kstream.cluster.auth import Impersonation

    return Impersonation(user=as_user, uid=as_uid, groups=tuple(as_group or ()))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
