"""All kstream exception classes. Library errors are translated into these once,
where they happen (kubeclient for transport and config, archive for zstd/JSON).

Messages are one line, safe to print: they never carry tokens, keys or kubeconfig
content.
"""

from __future__ import annotations

from kstream.exitcodes import ExitCode


class KstreamError(Exception):
    """Base class: a message for the user and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(KstreamError):
    exit_code = ExitCode.USAGE


class UnknownResourceError(UsageError):
    pass


class ServeError(KstreamError):
    """kstream serve cannot start (no openssl, port in use)."""

    exit_code = ExitCode.USAGE


class ConfigError(KstreamError):
    """Kubeconfig missing/invalid, unknown context."""

    exit_code = ExitCode.CONFIG


class AuthError(ConfigError):
    """The server rejected the credentials (401)."""


class ConnectionFailed(KstreamError):
    """The server cannot be reached, or TLS verification failed."""

    exit_code = ExitCode.CONNECTION


class TLSError(ConnectionFailed):
    pass


class SnapshotError(KstreamError):
    """An input snapshot is missing, truncated, corrupted or of unknown format."""

    exit_code = ExitCode.SNAPSHOT


class OutputError(KstreamError):
    exit_code = ExitCode.OUTPUT


class AlreadyExists(OutputError):
    """A create-only upload refused: the key exists in object storage."""


class StdoutClosed(OutputError):
    """The reader of stdout went away (`kstream ... | head`): the one rule for every
    command is no error line and exit 141, the status of a process SIGPIPE ends."""

    exit_code = ExitCode.STDOUT_CLOSED

    def __init__(self, message: str = "stdout was closed (broken pipe)") -> None:
        super().__init__(message)


class ApiError(KstreamError):
    """A non-success HTTP answer from the server, with its status and reason."""

    exit_code = ExitCode.CONNECTION

    def __init__(
        self,
        status: int,
        message: str,
        reason: str = "",
        retry_after: float | None = None,
        causes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.causes = causes

    @property
    def retriable(self) -> bool:
        return self.status == 429 or self.status >= 500


class TransportError(KstreamError):
    """The connection broke or stalled in the middle of a request."""

    exit_code = ExitCode.CONNECTION


class StreamError(KstreamError):
    """A watch-list stream misbehaved (ERROR event, ended without the end marker)."""

    exit_code = ExitCode.CONNECTION

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ResyncFailed(KstreamError):
    """A follower's fresh read of one resource did not complete (`dump --follow`
    retries it like a broken stream)."""

    exit_code = ExitCode.PARTIAL


# Signals, turned into exceptions in the main thread (kstream.cluster.runner installs the
# handlers' effects; kstream.cli.app maps them to exit codes). BaseException, so no
# `except Exception` in between swallows them. Here rather than in kstream.cluster.runner
# so that the CLI can catch them without importing the streaming machinery.


class Terminated(BaseException):
    """SIGTERM, turned into an exception in the main thread."""


class Interrupted(BaseException):
    """SIGINT (Ctrl-C), raised instead of KeyboardInterrupt so that no library
    in between (click turns KeyboardInterrupt into a silent exit) swallows it."""
