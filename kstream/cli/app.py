"""The kstream command: creates the app and registers one module per command.

main() maps every expected error to one line on stderr and its exit code
(kstream.exitcodes); --debug shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import IO, Annotated, Any

import typer
from typer._click import exceptions as click  # typer >= 0.29 vendors click

from kstream import __version__
from kstream.exitcodes import ExitCode, describe

HELP = f"""Copy the objects of a Kubernetes cluster out through watch-list streams,
count them, and diff snapshots; memory stays flat however big the cluster.

\b
Exit codes:
{describe()}
"""

_app = typer.Typer(
    name="kstream",
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        print(f"kstream {__version__}")
        raise typer.Exit(0)


@_app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """kstream: copy Kubernetes clusters out, streaming: dump (or follow), count, diff, log, serve and export; rbac prints the role a dump needs."""


# One module per command, imported when the command is registered. `kstream dump`
# (and a tab press inside it) registers dump only: count and diff are neither
# imported nor turned into click commands. Everything else (the root help, an
# unknown command, `kstream.cli.app.app` for docs and tests) registers all three.
COMMANDS = ("dump", "count", "diff", "log", "serve", "export", "rbac")
_registered: list[str] = []


def _register(names: tuple[str, ...] = COMMANDS) -> None:
    import importlib

    for name in COMMANDS:
        if name in names and name not in _registered:
            mod = importlib.import_module(f"kstream.cli.{name}")
            _app.command(name, epilog=mod.EXAMPLES)(_stdout_closed_rule(getattr(mod, name)))
            _registered.append(name)


def _stdout_closed_rule(command: Callable[..., Any]) -> Callable[..., Any]:
    """The command, with a closed stdout (`| head`) raised as StdoutClosed: click
    would turn a BrokenPipeError into exit 1, diff's "they differ"."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            from kstream.errors import StdoutClosed

            raise StdoutClosed() from None

    return run


def __getattr__(name: str) -> typer.Typer:
    """`app`: the Typer app with every command (for docs, tests, completion scripts)."""
    if name == "app":
        _register()
        return _app
    raise AttributeError(name)


def _command_word(args: list[str]) -> str | None:
    """The command a run (or a tab press) is for, when it is the first word and
    already complete; None when every command is needed. A tab press reads the
    words as typer's completion classes do, for each shell."""
    words = list(args)
    var = f"_{_prog()}_COMPLETE".replace("-", "_").upper()  # typer's complete_var
    instruction = os.environ.get(var) or ""
    if instruction:
        import shlex

        line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
        try:
            if instruction.endswith("bash"):
                cword = int(os.environ.get("COMP_CWORD", "0"))
                words = shlex.split(os.environ.get("COMP_WORDS", ""))[1:cword]
            elif instruction.endswith(("zsh", "fish")):
                words = shlex.split(line)[1:]
                if words and not line.endswith(" "):
                    words = words[:-1]  # the word being completed
            else:  # powershell and anything new: all commands
                return None
        except ValueError:  # unbalanced quotes and the like
            return None
    return words[0] if words and words[0] in COMMANDS else None


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv else "kstream"
    return "kubectl kstream" if name.startswith("kubectl-") else "kstream"


def main(argv: list[str] | None = None) -> None:
    """Entry point of `kstream` and `kubectl-kstream`."""
    code = run(argv)
    if code == ExitCode.STDOUT_CLOSED:  # what is left in stdout's buffer goes nowhere
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    # The command is done (outputs closed and renamed, stdout flushed): the process
    # exits now. Frozen objects are left out of the interpreter's last cycle
    # collection, which only frees memory the exit frees anyway (~5% of an empty
    # dump's CPU). atexit handlers and weakref finalizers still run.
    import gc

    gc.freeze()
    sys.exit(code)


def run(
    argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """Everything main() does, in-process: parse argv, run the command, map errors
    to one line on stderr; returns the exit code. stdout/stderr (text streams, with
    a .buffer where a command writes bytes) replace sys.stdout/sys.stderr meanwhile."""
    import signal

    with contextlib.ExitStack() as stack:
        for sig in (signal.SIGTERM, signal.SIGINT):  # run() sets its own; put back the caller's
            stack.callback(signal.signal, sig, signal.getsignal(sig))
        if stdout is not None:
            stack.enter_context(contextlib.redirect_stdout(stdout))
        if stderr is not None:
            stack.enter_context(contextlib.redirect_stderr(stderr))
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    import signal

    from kstream.errors import Interrupted, KstreamError, StdoutClosed, Terminated

    def on_term(signum: int, frame: object) -> None:
        raise Terminated()

    def on_int(signum: int, frame: object) -> None:
        raise Interrupted()

    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    word = _command_word(args)
    _register((word,) if word else COMMANDS)
    command = typer.main.get_command(_app)
    from kstream.cli import fastcoerce
    from kstream.cli.common import consoles

    consoles.quiet = False  # until a command's -q (a run in-process may follow another)
    fastcoerce.install()  # option values without importing pydantic
    fastcoerce.install_completion_help()  # zsh/fish descriptions without rich
    try:
        rc = command.main(args=args, prog_name=_prog(), standalone_mode=False)
        code = int(rc) if isinstance(rc, int) else 0
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:  # click turns KeyboardInterrupt into Abort
        _error("interrupted")
        code = ExitCode.INTERRUPTED
    except click.NoArgsIsHelpError as e:
        print(e.ctx.get_help())  # like kubectl: bare `kstream` shows the help
        code = ExitCode.OK
    except click.UsageError as e:
        hint = f" (see '{_prog()} {e.ctx.info_name if e.ctx and e.ctx.parent else ''} --help')".replace(
            "  ", " "
        )
        _error(e.format_message() + hint)
        code = ExitCode.USAGE
    except click.ClickException as e:
        _error(e.format_message())
        code = ExitCode.USAGE
    except (StdoutClosed, BrokenPipeError):  # `| head`: no error line, as SIGPIPE
        code = ExitCode.STDOUT_CLOSED
    except SystemExit as e:  # click's answer to a closed stdout while it prints help
        if e.code != 1 or type(sys.stdout).__name__ != "PacifyFlushWrapper":
            raise
        code = ExitCode.STDOUT_CLOSED
    except KstreamError as e:
        if debug:
            import traceback

            traceback.print_exc()
        _error(e.message)
        code = e.exit_code
    except (KeyboardInterrupt, Interrupted):
        _error("interrupted")
        code = ExitCode.INTERRUPTED
    except Terminated:
        _error("terminated")
        code = ExitCode.TERMINATED
    except Exception as e:
        if debug:
            import traceback

            traceback.print_exc()
        _error(f"internal error ({type(e).__name__}); run again with --debug and report it")
        code = ExitCode.INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = ExitCode.STDOUT_CLOSED
    return int(code)


def _error(msg: str) -> None:
    sys.stderr.write(f"kstream: error: {msg}\n")
    sys.stderr.flush()
