"""The vocabulary of reading a resource out of the server: the `Unit` (one
stream: a resource, in one namespace or all, with its live progress and its
outcome), the `Sink` it is read into, `StreamOptions`, and the short reasons
for reading by LIST. Shared by the reader (`stream`), its jobs (`wire`,
`watchlist`, `pager`), the runner and the commands."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import field
from typing import Literal, Protocol

from kstream.dataclass import dataclass
from kstream.resources import Resource

WATCH_LIST = "watch-list"
LIST = "list"

# Short reasons for reading by LIST, as the summary shows them: `list (watch-list off)`.
WATCH_LIST_OFF = "watch-list off"  # 422/400: the server does not serve watch-list
WATCH_FORBIDDEN = "watch forbidden"  # 403 on watch (RBAC grants list without watch)
NO_WATCH_VERB = "no watch verb"  # discovery lists no watch verb for the resource
WATCH_NOT_SERVED = "watch not served"  # 404/405/406 on watch
ERROR_EVENT = "ERROR event"  # the stream sent an ERROR event it would send again
STREAMS_BROKE = "streams broke"  # streams broke or ended without the end marker

# The error of a unit whose resource the server refuses the field selector for
# (400: it has no such field label), followed by the server's words. Not a
# fallback: LIST would be refused the same way. Reports group these units.
FIELD_SELECTOR_REFUSED = "field selector not supported"


class Sink(Protocol):
    """Where a unit's objects go. Called from one worker thread."""

    def write(self, obj: bytes) -> None:
        """One object: its compact JSON, without a newline."""

    def reset(self) -> None:
        """Forget everything written so far (the resource is read again)."""

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        """Apply changes that arrived before the end marker (old servers): the
        object with that namespace/name is replaced, or dropped when None; keys
        not yet written are appended."""


# A sink may also have `write_block(objs, n)`: n objects at once, `objs` being
# their compact JSON joined by b"\n" (no newline at the end), the same as n
# calls of write(); without it, the reader makes those calls.
WriteBlock = Callable[[memoryview, int], None]


# how objects are read: watch-list with LIST fallback, or one of them only
Method = Literal["auto", "watch-list", "list"]
# how a unit ends when it does not complete (Reader._end)
EndStatus = Literal["forbidden", "failed", "skipped"]
# what a unit is doing, for the progress display; it ends as its status
UnitPhase = Literal["waiting", "streaming", "listing", "retrying", "done", EndStatus]


@dataclass(frozen=True)
class StreamOptions:
    label_selector: str = ""
    field_selector: str = ""
    resource_version: str = ""  # "" = consistent read; "0" = any cached state
    method: Method = "auto"
    page_size: int = 500
    max_retries: int = 8
    watch_timeout: int = 600  # timeoutSeconds: the server ends a stream after this
    stream_failures_before_fallback: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0


@dataclass
class Unit:
    """One stream: a resource in one namespace (or all). Mutated only by its worker."""

    resource: Resource
    namespace: str | None = None
    index: int = 0
    phase: UnitPhase = "waiting"  # live, for the progress display
    status: str = ""  # final: complete forbidden failed skipped incomplete (interrupted)
    method: str = ""  # what read it: watch-list | list
    fallback: str = ""  # short reason for a LIST read (FALLBACKS), "" when none
    fallback_reason: str = ""  # the full explanation, server text included
    objects: int = 0
    bytes: int = 0
    retries: int = 0
    resource_version: str = ""
    estimate: int | None = None
    error: str = ""
    started: float = 0.0
    finished: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.resource.name + (f" -n {self.namespace}" if self.namespace else "")

    @property
    def duration(self) -> float:
        if not self.started:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


class Cancelled(Exception):
    """The run is being stopped (Ctrl-C, SIGTERM, a fatal error elsewhere)."""


Emit = Callable[[Unit], None]
