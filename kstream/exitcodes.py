"""Every exit code kstream uses, in one place (documented in --help and the README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DIFFERENCES = 1
    USAGE = 2
    PARTIAL = 3
    CONFIG = 4
    CONNECTION = 5
    SNAPSHOT = 6
    OUTPUT = 7
    INTERNAL = 70
    INTERRUPTED = 130
    STDOUT_CLOSED = 141
    TERMINATED = 143


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "everything requested was read (diff: no differences)",
    ExitCode.DIFFERENCES: "diff only: the snapshots differ, as with diff(1)",
    ExitCode.USAGE: "bad command line: unknown option or resource name, conflicting options",
    ExitCode.PARTIAL: "some resources could not be read; output written and marked partial",
    ExitCode.CONFIG: "kubeconfig missing or invalid, unknown context, credentials rejected",
    ExitCode.CONNECTION: "server unreachable, TLS verification failed, or the server kept failing",
    ExitCode.SNAPSHOT: "an input snapshot is missing, truncated, corrupted or of unknown format",
    ExitCode.OUTPUT: "the output cannot be written: exists (use --force), unwritable, disk full",
    ExitCode.INTERNAL: "a bug in kstream: please report it with the output of --debug",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); the output is marked incomplete",
    ExitCode.STDOUT_CLOSED: "stdout was closed early (| head): no error line, as SIGPIPE would exit",
    ExitCode.TERMINATED: "terminated (SIGTERM); the output is marked incomplete",
}


def describe() -> str:
    """The table shown in --help and in the docs."""
    return "\n".join(f"{int(c):>3}  {MEANING[c]}" for c in ExitCode)
