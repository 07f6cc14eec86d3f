"""The kstream command: creates the app and registers one module per command.

main() maps every expected error to one line on stderr and its exit code
(kstream.exitcodes); --debug shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

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

app = typer.Typer(
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


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """kstream: dump, count and diff Kubernetes clusters, streaming."""


def _register() -> None:
    from kstream.cli import count, diff, dump

    app.command("dump", epilog=dump.EXAMPLES)(dump.dump)
    app.command("count", epilog=count.EXAMPLES)(count.count)
    app.command("diff", epilog=diff.EXAMPLES)(diff.diff)


_register()


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv else "kstream"
    return "kubectl kstream" if name.startswith("kubectl-") else "kstream"


def main(argv: list[str] | None = None) -> None:
    """Entry point of `kstream` and `kubectl-kstream`."""
    import signal

    from kstream.errors import Interrupted, KstreamError, Terminated

    def on_term(signum: int, frame: object) -> None:
        raise Terminated()

    def on_int(signum: int, frame: object) -> None:
        raise Interrupted()

    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    from kstream.cli import fastcoerce

    fastcoerce.install()  # option values without importing pydantic
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
    except BrokenPipeError:
        code = ExitCode.OUTPUT
    except Exception as e:
        if debug:
            import traceback

            traceback.print_exc()
        _error(f"internal error ({type(e).__name__}); run again with --debug and report it")
        code = ExitCode.INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(int(code))


def _error(msg: str) -> None:
    sys.stderr.write(f"kstream: error: {msg}\n")
    sys.stderr.flush()
