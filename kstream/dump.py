"""A dump as a job: `DumpJob` connects, plans and opens the output; the caller
drives `job.run` (its events, progress, Ctrl-C) and calls `job.finish()`, which
writes the manifest and puts the output in place, and returns a `DumpResult`:
status, destination, manifest and the units as written. The CLI (`cli/dump.py`,
and `diff --live`) only parses, drives, renders and exits."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import replace

from kstream import __version__, paths
from kstream.cluster.plan import LiveOptions, Plan, open_live
from kstream.cluster.runner import Run, signals_held
from kstream.cluster.stream import Unit
from kstream.dataclass import dataclass
from kstream.errors import Interrupted, Terminated
from kstream.exitcodes import ExitCode
from kstream.selector import Scope
from kstream.store.format import DiscoveryFailure, DumpOptions, DumpStatus, Entry, Manifest
from kstream.store.outputs import OutputFormat
from kstream.store.writers import Spool, open_writer, unit_file_name
from kstream.transform import SecretsMode, TransformOptions, make_transform


@dataclass(frozen=True)
class DumpSettings:
    """Everything a dump needs, built once from the command line."""

    output: str  # a path, or "-" for stdout
    fmt: OutputFormat  # archive.output_format
    scope: Scope
    live: LiveOptions
    force: bool = False
    level: int = 1
    secrets: SecretsMode = "redact"
    secret_key: bytes | None = None
    strip: tuple[paths.FieldPath, ...] = ()
    started: dt.datetime | None = None  # the time in the output's name, when it has one

    def dump_options(self) -> DumpOptions:
        """What the manifest (and a journal's journal.json) records of the
        selection and the rules."""
        return DumpOptions(
            resources=self.scope.resources,
            exclude=self.scope.exclude,
            namespaces=self.scope.namespaces,
            label_selector=self.scope.label_selector,
            field_selector=self.scope.field_selector,
            secrets=self.secrets,
            secret_digest="hmac-sha256" if self.secret_key else "sha256",
            strip=tuple(paths.render(p) for p in self.strip),
            method=self.live.method,
        )


@dataclass
class DumpResult:
    status: DumpStatus
    destination: str  # the file or directory written ("stdout" for -)
    manifest: Manifest | None  # None: interrupted while writing to stdout
    units: list[Unit]  # as written: objects and bytes the output holds
    plan: Plan
    interrupted: ExitCode | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted is not None:
            return self.interrupted
        return ExitCode.OK if self.status == "complete" else ExitCode.PARTIAL


class DumpJob:
    def __init__(
        self, settings: DumpSettings, warn: Callable[[str], None], estimate: bool = False
    ) -> None:
        """Connect, discover and plan (`warn` says what is worth a warning
        meanwhile), then open the output; `estimate`: count each unit first for
        the progress display."""
        from kstream.completion import save_discovery_cache

        s = self.settings = settings
        self.started = s.started or dt.datetime.now(dt.timezone.utc)
        self.t0 = time.monotonic()
        self.plan, reader = open_live(s.scope, s.live, warn, skip_secrets=s.secrets == "exclude")
        save_discovery_cache(self.plan.server, self.plan.discovery.resources)  # for completion
        header = {"created": self.started.isoformat(), "tool": f"kstream {__version__}"}
        self.writer = open_writer(s.output, s.fmt, s.force, s.level, header, warn)
        self.topts = TransformOptions(secrets=s.secrets, secret_key=s.secret_key, strip=s.strip)
        self.written: dict[int, Entry] = {}  # what reached the output, by unit index
        self.run = Run(
            reader,
            self.plan.units,
            self._make_sink,
            self._deliver,
            s.live.concurrency,
            estimate,
            follow=getattr(self.writer, "follow", None),
        )

    def _make_sink(self, u: Unit) -> Spool:
        r = u.resource
        name = unit_file_name(r.group, r.version, r.resource, u.namespace)
        return self.writer.new_spool(name, make_transform(r, self.topts))

    def _deliver(self, u: Unit, sink: Spool) -> None:
        e = _entry(u, sink)
        self.writer.append(e, sink)
        self.written[u.index] = e

    def abort(self) -> None:
        """After the run failed: remove what was being written."""
        self.writer.abort()

    def finish(self, interrupted: ExitCode | None) -> DumpResult:
        """After the run: the manifest, and the output renamed into place (NAME.partial
        when interrupted). Interrupted while writing to stdout, nothing more is written."""
        plan, s = self.plan, self.settings
        if interrupted is not None and s.output == "-":
            self.writer.abort()
            return DumpResult("interrupted", "stdout", None, plan.units, plan, interrupted)
        # the summary and the manifest say what the output holds: a unit an
        # interrupt cut off is not in it (its objects so far are dropped, like a
        # cut stream's), whatever it had read
        shown = [
            _as_written(u, self.written.get(u.index), interrupted, self.run.at_cancel)
            for u in plan.units
        ]
        missing = [u for u in shown if u.index not in self.written]
        status: DumpStatus = "complete"
        if interrupted is not None:
            status = "interrupted"
        elif any(u.status != "complete" for u in plan.units) or plan.discovery.failures:
            status = "partial"
        options = s.dump_options()
        manifest = Manifest(
            tool=f"kstream {__version__}",
            status=status,
            server_url=plan.server,
            server_version=plan.server_version,
            context=plan.context,
            started=self.started.isoformat(),
            finished=dt.datetime.now(dt.timezone.utc).isoformat(),
            duration=round(time.monotonic() - self.t0, 3),
            options=options,
            excluded_by_default=tuple(r.name for r in plan.selection.excluded_by_default),
            # left out because they cannot be watched (read only when named with -r)
            not_watchable=tuple(r.name for r in plan.selection.not_watchable),
            discovery_failures=tuple(
                DiscoveryFailure(f.group, f.error) for f in plan.discovery.failures
            ),
            not_read=tuple(_entry(u, None) for u in missing),
        )
        # Ctrl-C / SIGTERM wait until the output is in place: a signal in the
        # middle of finish() (a second Ctrl-C after the first) must not remove
        # what is being renamed to NAME.partial. Once it is in place, a signal
        # that came meanwhile takes effect, unless the run was already stopped
        # by one (its exit code says so; the output and the report stand).
        where: str | None = None
        try:
            with signals_held():
                where = self.writer.finish(manifest.to_json(), interrupted=interrupted is not None)
        except (KeyboardInterrupt, Interrupted, Terminated):
            if where is None:
                self.writer.abort()
                raise
            if interrupted is None:
                raise
        except BaseException:
            if where is None:
                self.writer.abort()
            raise
        manifest.resources = [self.written[i] for i in sorted(self.written)]
        return DumpResult(status, where, manifest, shown, plan, interrupted)


def _entry(u: Unit, sink: Spool | None) -> Entry:
    r = u.resource
    return Entry(
        group=r.group,
        version=r.version,
        resource=r.resource,
        kind=r.kind,
        namespaced=r.namespaced,
        namespace=u.namespace,
        status=u.status or "incomplete",
        method=u.method,
        resourceVersion=u.resource_version,
        objects=sink.objects if sink else 0,
        bytes=sink.size if sink else 0,
        duration=round(u.duration, 3),
        retries=u.retries,
        error=u.error or None,
        fallback=u.fallback_reason or None,
        fallbackCode=u.fallback or None,
        sha256=sink.sha.hexdigest() if sink else "",
        notes=list(u.notes) or None,
    )


def _as_written(
    u: Unit, e: Entry | None, interrupted: ExitCode | None, at_cancel: dict[int, tuple[int, int]]
) -> Unit:
    """A copy of a unit for the summary and the manifest, with the objects and
    bytes the output holds for it; one that an interrupt cut off is
    "interrupted", with what it had read (when the run was stopped) in its error."""
    if e is not None:
        return replace(u, objects=e.objects, bytes=e.bytes, status=e.status)
    status, error, retries = u.status or "incomplete", u.error, u.retries
    if interrupted is not None and u.status in ("", "complete"):
        status = "interrupted"
        read, retries = at_cancel.get(u.index, (u.objects, u.retries))
        if u.status == "complete":
            error = f"read ({read:,} objects) but not written before the interrupt"
        elif u.started:
            error = f"interrupted after reading {read:,} objects; none written"
        else:
            error = "interrupted before it started"
    return replace(u, objects=0, bytes=0, status=status, error=error, retries=retries)
