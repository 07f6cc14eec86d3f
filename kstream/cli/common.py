"""Options shared by the commands, the two consoles, and connecting."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kstream.dataclass import dataclass

if TYPE_CHECKING:
    from rich.console import Console

    from kstream.cluster.auth import Impersonation
    from kstream.cluster.plan import LiveOptions
    from kstream.selector import Scope

# ------------------------------------------------------------------ consoles


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class Consoles:
    """stderr (`err`) and stdout (`out`), each made on first use: rich costs about
    20 ms to import, and `--help` or a tab press never print through it. Either
    may be set (tests set their own)."""

    err: Console  # made by __getattr__ on first use
    out: Console

    def __init__(self) -> None:
        self.kw: dict[str, object] = {}  # colour settings of setup_consoles()
        self.quiet = False  # -q: no warnings and notes (note() says nothing)

    def __getattr__(self, name: str) -> Console:
        if name not in ("err", "out"):
            raise AttributeError(name)
        console = self._make(stderr=name == "err")
        setattr(self, name, console)
        return console

    def reset(self) -> None:
        """Both made again on next use (with new colour settings)."""
        self.__dict__.pop("err", None)
        self.__dict__.pop("out", None)

    def _make(self, stderr: bool) -> Console:
        """A console whose closed pipe is kstream's rule, not rich's (which exits 1):
        a closed stdout raises StdoutClosed (exit 141, no error line); on a closed
        stderr the messages stop and the command carries on."""
        from rich.console import Console

        console = Console(stderr=stderr, highlight=False, **self.kw)  # type: ignore[arg-type]

        def closed() -> None:
            console.quiet = True
            if not stderr:
                from kstream.errors import StdoutClosed

                raise StdoutClosed()

        console.on_broken_pipe = closed  # type: ignore[method-assign]
        return console


consoles = Consoles()


def setup_consoles(ui: Ui) -> None:
    """The consoles' colour settings and -q; each console is made when first used
    (a quiet dump that prints nothing never imports rich)."""
    color = ui.color
    no_color = "NO_COLOR" in os.environ and os.environ["NO_COLOR"] != ""
    if color is Color.never or (color is Color.auto and no_color):
        kw: dict[str, object] = {"no_color": True, "color_system": None}
    elif color is Color.always:
        kw = {"force_terminal": True, "color_system": "standard", "no_color": False}
    else:
        kw = {}
    consoles.kw = kw
    consoles.reset()
    consoles.quiet = ui.quiet


def note(msg: str) -> None:
    """A warning or a note on stderr, none with -q (which keeps errors only);
    cluster strings are never interpreted as markup."""
    if not consoles.quiet:
        note_error(msg)


def note_error(msg: str) -> None:
    """An error of one part of the run (a context that failed, among several) on
    stderr, -q or not; what it quotes from a cluster shown with visible()."""
    from kstream.printable import visible

    text = "\n".join(visible(line) for line in msg.split("\n"))
    consoles.err.print(text, markup=False, highlight=False, soft_wrap=True)


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
    """For snapshot arguments: directories and *.zst / *.ndjson files."""
    from kstream.completion import snapshot_paths

    return snapshot_paths(incomplete)


def snapshot_argument(metavar: str, help: str) -> Any:
    """typer.Argument naming a snapshot or a journal (count, diff, log, serve)."""
    return typer.Argument(help=help, metavar=metavar, autocompletion=complete_snapshot)


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

# typer.Option in each help panel (with rich help; kstream's plain help lists the
# options in their order)
cluster_option = functools.partial(typer.Option, rich_help_panel="Cluster")
select_option = functools.partial(typer.Option, rich_help_panel="Selection")
output_option = functools.partial(typer.Option, rich_help_panel="Output")
tuning_option = functools.partial(typer.Option, rich_help_panel="Tuning")
# -r and --exclude: resource names
resources_option = functools.partial(
    select_option, metavar="NAME[,NAME...]", autocompletion=complete_resource
)


def key_file_option(help: str) -> Any:
    """--secret-key-file (dump, diff)."""
    return output_option("--secret-key-file", help=help, metavar="FILE")


KubeconfigOpt = Annotated[
    str | None,
    cluster_option(
        "--kubeconfig",
        help="Kubeconfig file, one name as in kubectl (default: $KUBECONFIG, a list of files, else ~/.kube/config; in a pod, the in-cluster config).",
        metavar="FILE",
    ),
]
ContextsOpt = Annotated[
    list[str] | None,
    cluster_option(
        "--context",
        help="Kubeconfig context to use (default: the current context). Repeat it, or give a glob ('prod-*'), to run on several contexts at once (the -o name then needs {context}).",
        metavar="NAME",
        autocompletion=complete_context,
    ),
]
AsOpt = Annotated[
    str,
    cluster_option(
        "--as",
        help="Username to impersonate for every request, as kubectl --as (a user, or system:serviceaccount:NS:NAME); replaces the kubeconfig user's `as`.",
        metavar="USER",
    ),
]
AsGroupOpt = Annotated[
    list[str] | None,
    cluster_option(
        "--as-group",
        help="Group to impersonate, as kubectl --as-group (repeatable; needs a user to impersonate).",
        metavar="GROUP",
    ),
]
AsUidOpt = Annotated[
    str,
    cluster_option(
        "--as-uid",
        help="UID to impersonate, as kubectl --as-uid (needs a user to impersonate).",
        metavar="UID",
    ),
]
AllContextsOpt = Annotated[
    bool,
    cluster_option(
        "--all-contexts",
        help="Run on every context of the kubeconfig (the -o name then needs {context}).",
    ),
]
ParallelContextsOpt = Annotated[
    int,
    tuning_option(
        "--parallel-contexts",
        min=1,
        max=64,
        help="With several contexts: how many run at the same time.",
        metavar="N",
    ),
]
ResourceOpt = Annotated[
    list[str] | None,
    resources_option(
        "--resource",
        "-r",
        help="Resources to read, kubectl-style (plural, singular, short name, kind, resource.group, resource.version.group for a version other than the preferred one); repeatable or comma-separated. Default: every resource that supports list and watch.",
        callback=_resources_checked,
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    resources_option(
        "--exclude",
        help="Resources to leave out, same names as --resource.",
        callback=_exclude_checked,
    ),
]
NamespaceOpt = Annotated[
    list[str] | None,
    select_option(
        "--namespace",
        "-n",
        help="Only these namespaces (repeatable or comma-separated); cluster-scoped resources are then left out unless named with -r. Default: all namespaces.",
        metavar="NS[,NS...]",
        autocompletion=complete_namespace,
        callback=_namespaces_checked,
    ),
]
AllNamespacesOpt = Annotated[
    bool,
    select_option(
        "--all-namespaces",
        "-A",
        help="All namespaces (the default; accepted for kubectl habits).",
    ),
]
SelectorOpt = Annotated[
    str,
    select_option(
        "--selector",
        "-l",
        help="Label selector, evaluated by the server (e.g. app=web,tier!=db).",
        metavar="SELECTOR",
    ),
]
FieldSelectorOpt = Annotated[
    str,
    select_option(
        "--field-selector",
        help="Field selector, evaluated by the server (e.g. metadata.name=x).",
        metavar="SELECTOR",
    ),
]


class Report(str, Enum):
    """-o of diff and log: text for people, json or ndjson for scripts."""

    text = "text"
    json = "json"
    ndjson = "ndjson"


class Method(str, Enum):
    auto = "auto"
    watch_list = "watch-list"
    list = "list"


MethodOpt = Annotated[
    Method,
    tuning_option(
        "--method",
        help="How to read: watch-list with LIST fallback (auto), or force one (a forced method never falls back: a resource it cannot read fails, with the reason).",
        metavar="[auto|watch-list|list]",
    ),
]
ConcurrencyOpt = Annotated[
    int,
    tuning_option(
        "--concurrency",
        "-c",
        min=1,
        max=64,
        help="Resources streamed at the same time.",
        metavar="N",
    ),
]
TimeoutOpt = Annotated[
    float,
    tuning_option(
        "--timeout",
        min=1,
        help="Seconds of silence tolerated inside a stream before it is retried.",
        metavar="SECONDS",
    ),
]
RetriesOpt = Annotated[
    int,
    tuning_option(
        "--retries",
        min=0,
        max=100,
        help="Retries per resource on 429, 5xx and broken streams (with backoff).",
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


# ------------------------------------------------------------------ option groups
# The options several commands share are declared once, in groups. A command takes
# a group as one keyword-only parameter (`sel: c.Selection`); `@c.option_groups`
# shows typer the group's options in its place, in the group's order, and hands the
# command the group built from their values.


class OptionGroup:
    """Base of the option groups: frozen dataclasses whose fields are typer options."""


@dataclass(frozen=True)
class Selection(OptionGroup):
    """-r, --exclude, -n, -A, -l, --field-selector (dump, count, log)."""

    resource: ResourceOpt = None
    exclude: ExcludeOpt = None
    namespace: NamespaceOpt = None
    all_namespaces: AllNamespacesOpt = False
    selector: SelectorOpt = ""
    field_selector: FieldSelectorOpt = ""

    def __post_init__(self) -> None:
        if self.namespace and self.all_namespaces:
            from kstream.errors import UsageError

            raise UsageError("--namespace and --all-namespaces cannot be used together")

    def given(self) -> list[str]:
        """The options given, each by its shortest name (-r, --exclude, ...)."""
        return given(self)

    def scope(self) -> Scope:
        return scope(
            self.resource, self.exclude, self.namespace, self.selector, self.field_selector
        )


@dataclass(frozen=True)
class Cluster(OptionGroup):
    """--kubeconfig, --context (repeatable), --as, --as-group, --as-uid (diff)."""

    kubeconfig: KubeconfigOpt = None
    context: ContextsOpt = None
    as_user: AsOpt = ""
    as_group: AsGroupOpt = None
    as_uid: AsUidOpt = ""

    @property
    def contexts(self) -> list[str]:
        return list(self.context or [])

    @property
    def first_context(self) -> str | None:
        """The one context named (None: the kubeconfig's current one)."""
        return self.context[0] if self.context else None

    def impersonation(self) -> Impersonation | None:
        return impersonation(self.as_user, self.as_group, self.as_uid)


@dataclass(frozen=True)
class Clusters(Cluster):
    """Cluster's options, then --all-contexts and --parallel-contexts (dump, count)."""

    all_contexts: AllContextsOpt = False
    parallel_contexts: ParallelContextsOpt = 4


@dataclass(frozen=True)
class Tuning(OptionGroup):
    """--method, --concurrency, --timeout, --retries (dump, count, diff)."""

    method: MethodOpt = Method.auto
    concurrency: ConcurrencyOpt = 4
    timeout: TimeoutOpt = 60.0
    retries: RetriesOpt = 8

    def live(self, cluster: Cluster, context: str | None) -> LiveOptions:
        """How to reach `context` (None: the current one) and read from it."""
        from kstream.cluster.plan import LiveOptions

        return LiveOptions(
            cluster.kubeconfig,
            context,
            self.method.value,
            self.concurrency,
            self.timeout,
            self.retries,
            cluster.impersonation(),
        )


@dataclass(frozen=True)
class Ui(OptionGroup):
    """-q, --debug, --color (dump, count, diff, log)."""

    quiet: QuietOpt = False
    debug: DebugOpt = False
    color: ColorOpt = Color.auto


def given(group: OptionGroup) -> list[str]:
    """The options of a group that were given (a true value), each by its shortest
    name, as its typer option declares them."""
    hints = typing.get_type_hints(type(group), include_extras=True)
    out = []
    for f in dataclasses.fields(group):  # type: ignore[arg-type]
        if getattr(group, f.name):
            info = hints[f.name].__metadata__[0]  # the typer.Option of the Annotated type
            out.append(min([info.default, *info.param_decls], key=len))
    return out


def option_groups(command: Callable[..., None]) -> Callable[..., None]:
    """The command with each OptionGroup parameter replaced, for typer, by the
    group's own options (keyword-only, in the group's order); called, it gets
    each group as one value built from them."""
    sig = inspect.signature(command, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[OptionGroup], list[str]]] = {}
    for p in sig.parameters.values():
        group = p.annotation
        if not (isinstance(group, type) and issubclass(group, OptionGroup)):
            params.append(p)
            continue
        hints = typing.get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)  # type: ignore[arg-type]
        groups[p.name] = (group, [f.name for f in fields])
        params += [
            inspect.Parameter(f.name, p.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
            for f in fields
        ]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        for name, (group, fields) in groups.items():
            values[name] = group(**{f: values.pop(f) for f in fields})
        command(**values)

    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__annotations__["return"] = sig.return_annotation
    return run


def read_key(path: Path | None) -> bytes | None:
    """The key in a --secret-key-file (None: none given); UsageError for a file
    that cannot be read or is empty."""
    if path is None:
        return None
    from kstream.errors import UsageError

    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise UsageError(f"--secret-key-file: {e.strerror}: {path}") from None
    if not key:
        raise UsageError(f"--secret-key-file: {path} is empty")
    return key


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
