"""`kstream dump --follow -o JOURNAL/` and `--resume JOURNAL/`: the base snapshot,
then the followers (kstream/journal/follow.py) feeding the journal, with a live view
per resource and a summary at the end. `-o s3://BUCKET/PREFIX/` writes the same
journal in a local staging directory and uploads each complete file
(kstream/journal/remote.py).

Ctrl-C and SIGTERM end a follow normally (exit 0): the followers stop, what
they sent is written and the open segment is sealed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.live import Live
from rich.text import Text

from kstream.cli.common import consoles, note, stderr_is_terminal
from kstream.cli.render import (
    Col,
    FitTable,
    LiveView,
    drive,
    human_count,
    logfmt,
    plain_layout,
    report_dump,
)
from kstream.dataclass import dataclass
from kstream.errors import UsageError
from kstream.exitcodes import ExitCode
from kstream.journal import durable, health
from kstream.journal.crds import Replan
from kstream.journal.directory import (
    JournalMeta,
    check_key,
    check_new_journal,
    journal_dir_problem,
    journal_lock,
    make_base,
    new_meta,
    read_meta,
    tidy,
    write_meta,
)
from kstream.journal.follow import Follow, UnitFollow
from kstream.journal.follower import OUTAGE
from kstream.journal.format import BASE_NAME, FLUSH_INTERVAL, LOCK_NAME, META_NAME
from kstream.journal.health import HealthServer, stall_bound
from kstream.journal.rebase import Rebaser
from kstream.journal.resume import base_follows, cluster_identity, identity_json, resume
from kstream.journal.writer import JournalWriter, guard

if TYPE_CHECKING:
    from kstream.journal.remote import Uploader

PLAIN_EVERY = 10.0  # seconds between the plain progress lines (CI, not a terminal)


# --rotate-interval when not given: a local journal, and one in object storage
# (where the open segment is only staged: what a lost stage can lose)
ROTATE_LOCAL = "1h"
ROTATE_REMOTE = "1m"


@dataclass(frozen=True)
class FollowOptions:
    follow_for: float | None = None
    rotate_size: int = 0
    rotate_interval: float = 0.0
    level: int = 1
    timeout: float = 60.0
    outage: float = OUTAGE
    health_port: int = 0  # --health-port (0: off)
    stage: str | None = None  # --stage (a journal in object storage)
    rebase_every: float | None = None  # a new base each period (`--rebase-every`)
    retain: float | None = None  # what older is removed after each new base (`--retain`)


# ------------------------------------------------------------------ option values

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str) -> float:
    """30s, 5m, 1h30m, 2d, or plain seconds."""
    s = text.strip().lower()
    try:
        value = float(s)
    except ValueError:
        pos, value = 0, 0.0
        for m in _DURATION.finditer(s):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(s) or not s:
            raise UsageError(
                f"{option} {text!r}: not a duration (examples: 90s, 5m, 1h30m)"
            ) from None
    if not math.isfinite(value):  # float() takes inf and nan: not durations
        raise UsageError(f"{option} {text!r}: not a duration (examples: 90s, 5m, 1h30m)")
    if value <= 0:
        raise UsageError(f"{option} {text!r}: must be more than zero")
    return value


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)")


def parse_size(text: str, option: str) -> int:
    """Bytes: 1048576, 64M, 64MiB, 1G (powers of 1024)."""
    m = _SIZE.fullmatch(text.strip().lower())
    if not m:
        raise UsageError(f"{option} {text!r}: not a size (examples: 64MiB, 512K, 1G)")
    n = int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))
    if n <= 0:
        raise UsageError(f"{option} {text!r}: must be more than zero")
    return n


def follow_options(
    follow_for: str | None,
    rotate_size: str,
    rotate_interval: str | None,
    level: int,
    timeout: float,
    output: str | None,
    resume: str | None,
    fmt: str,
    outage_limit: str = "10m",
    health_port: int = 0,
    stage: str | None = None,
    rebase_every: str | None = None,
    retain: str | None = None,
) -> FollowOptions:
    """The follow options checked (exit 2 for a bad one), before connecting."""
    from kstream.store.objstore import is_url

    if (
        resume is not None
        and output is not None
        and output.rstrip("/") != resume.rstrip("/")
        and Path(output.rstrip("/") or "/") != Path(resume.rstrip("/") or "/")
    ):
        raise UsageError("--resume JOURNAL/ names the journal: drop -o (or give the same)")
    if fmt not in ("auto", "dir"):
        raise UsageError(f"--follow writes a journal directory; --format {fmt} does not apply")
    every = parse_duration(rebase_every, "--rebase-every") if rebase_every is not None else None
    keep = parse_duration(retain, "--retain") if retain is not None else None
    if keep is not None and every is None:
        raise UsageError(
            "--retain removes what a newer base makes unneeded: give --rebase-every too "
            "(e.g. --rebase-every 24h --retain 7d)"
        )
    if keep is not None and every is not None and keep < every:
        raise UsageError(
            f"--retain {retain} is shorter than --rebase-every {rebase_every}: "
            "the retention must span at least one re-base period"
        )
    name = resume if resume is not None else output
    remote = name is not None and is_url(name)
    if stage is not None and not remote:
        raise UsageError("--stage is for a journal in object storage (-o s3://BUCKET/PREFIX/)")
    if rotate_interval is None:
        rotate_interval = ROTATE_REMOTE if remote else ROTATE_LOCAL
    return FollowOptions(
        follow_for=parse_duration(follow_for, "--follow-for") if follow_for is not None else None,
        rotate_size=parse_size(rotate_size, "--rotate-size"),
        rotate_interval=parse_duration(rotate_interval, "--rotate-interval"),
        level=level,
        timeout=timeout,
        outage=parse_duration(outage_limit, "--outage-limit"),
        health_port=health_port,
        stage=stage,
        rebase_every=every,
        retain=keep,
    )


def serve_health(fopts: FollowOptions) -> HealthServer:
    """--health-port: /healthz, with a stall bound from this follow's intervals."""
    bound = stall_bound(FLUSH_INTERVAL, fopts.rotate_interval)
    return health.serve_health(fopts.health_port, bound)


def holds_journal(name: str, stage: str | None) -> bool:
    """Whether TARGET holds a journal to resume (`--resume-or-start`): a local
    directory with journal.json (or a complete new base a crash left to move
    into place); a prefix with journal.json, or a stage with a journal not yet
    uploaded."""
    from kstream.journal.format import NEW_DIR
    from kstream.store.objstore import is_url

    if is_url(name):
        from kstream.journal import remote

        prefix = remote.prefix_of(name)
        if remote.listing(prefix).meta:
            return True
        where = Path(stage) if stage else remote.default_stage(name)
        return remote.stage_holds_journal(where)
    target = Path(name.rstrip("/" + os.sep) or "/")
    return (target / META_NAME).is_file() or (target / NEW_DIR / META_NAME).is_file()


# ------------------------------------------------------------------ running


def run_new(settings: Any, fopts: FollowOptions, quiet: bool, debug: bool) -> ExitCode:
    """`dump --follow -o JOURNAL/`: under the journal's lock for the whole run,
    the base (into JOURNAL/.kstream-new/, its journal.json written last), moved
    into place, then the followers."""
    from kstream.store.objstore import is_url

    if is_url(settings.output):
        return _run_new_remote(settings, fopts, quiet, debug)
    target = check_new_journal(settings.output, settings.force)
    made = not target.exists()
    if made:
        guard(lambda: durable.mkdir(target), str(target))
    with journal_lock(target):
        try:
            tidy(target)
            check_new_journal(settings.output, settings.force)  # again, under the lock
            return _run_new(target, settings, fopts, quiet, debug)
        except BaseException:
            if made:  # nothing of a journal came to be: leave no directory behind
                with contextlib.suppress(OSError):
                    if all(p.name == LOCK_NAME for p in target.iterdir()):
                        shutil.rmtree(target)
            raise


def _run_new_remote(settings: Any, fopts: FollowOptions, quiet: bool, debug: bool) -> ExitCode:
    """`dump --follow -o s3://BUCKET/PREFIX/`: the journal written in the stage
    (under its lock) as a local one, each complete file uploaded."""
    from kstream.journal import remote

    prefix = remote.check_new_remote(settings.output, settings.force)
    stage = remote.prepare_stage(fopts.stage, settings.output)
    with journal_lock(stage):
        try:
            tidy(stage)
            if remote.stage_holds_journal(stage):
                raise UsageError(
                    f"the stage {stage} holds a journal of {prefix.url} not yet uploaded: "
                    f"carry on with --resume {prefix.url} (or remove {stage} to start anew)"
                )
            remote.check_new_remote(settings.output, settings.force)  # again, under the lock
            up = remote.Uploader(prefix, stage)
            code = _run_new(stage, settings, fopts, quiet, debug, up)
        except BaseException:
            remote.drop_stage(stage)
            raise
        remote.drop_stage(stage, up)
        return code


def _run_new(
    target: Path,
    settings: Any,
    fopts: FollowOptions,
    quiet: bool,
    debug: bool,
    up: Uploader | None = None,
) -> ExitCode:
    from dataclasses import replace

    from kstream.dump import DumpJob, DumpResult

    done: list[tuple[DumpJob, DumpResult, ExitCode | None]] = []

    def write(base: Path) -> dict[str, Any] | None:
        s = replace(settings, output=str(base), fmt="zst", force=False)
        job = DumpJob(s, note, estimate=not quiet and stderr_is_terminal())
        identity = cluster_identity(job.run.reader.client)
        try:
            interrupted = drive(job.run, quiet)
        except BaseException:
            job.abort()
            raise
        result = job.finish(interrupted)
        done.append((job, result, interrupted))
        if interrupted is not None:
            return None
        return new_meta(job.plan, settings, identity).to_json()

    complete = make_base(target, write)
    job, result, interrupted = done[0]
    if not complete:
        note("interrupted before the base snapshot was complete: no journal written")
        return interrupted or ExitCode.INTERRUPTED
    if up is not None:
        up.commit_base()
        result.destination = up.prefix.child(BASE_NAME).url
    else:
        result.destination = str(target / BASE_NAME)
    report_dump(result, quiet, debug)
    units = base_follows(job.plan.units, job.topts)
    writer = JournalWriter(
        target,
        fopts.level,
        fopts.rotate_size,
        fopts.rotate_interval,
        next_segment=1,
        on_sealed=up.segment_sealed if up is not None else None,
    )
    ctx = Replan(job.run.reader, settings.scope, settings.secrets == "exclude", job.topts)
    shown = up.prefix.url if up is not None else None
    code = _follow(target, job.run.reader, writer, units, fopts, quiet, ctx, shown, up)
    if result.status != "complete" and code == ExitCode.OK:
        return ExitCode.PARTIAL
    return code


def run_resume(
    path: str, live: Any, secret_key: bytes | None, fopts: FollowOptions, quiet: bool
) -> ExitCode:
    """`dump --follow --resume JOURNAL/`: under the journal's lock, finish what a
    crash left undone, seal a tail left open, then watch on from each unit's
    last recorded resourceVersion."""
    from kstream.store.objstore import is_url

    if is_url(path):
        return _run_resume_remote(path, live, secret_key, fopts, quiet)
    target = Path(path.rstrip("/" + os.sep) or "/")
    if not target.is_dir():
        raise UsageError(f"--resume {path}: no such journal directory")
    problem = journal_dir_problem(target)
    if problem:
        raise UsageError(f"{target} is not a kstream journal: it {problem}")
    with journal_lock(target):
        done = tidy(target)
        if not (target / META_NAME).is_file():
            raise UsageError(
                f"{target} holds no journal: the run that began it was cut before its base "
                f"snapshot was complete (its unfinished base is removed; nothing to resume): "
                f"start it again with kstream dump --follow -o {target}/ and the selection it had"
            )
        if done:
            note(f"{target}: {done}")
        raw = read_meta(target)
        meta = JournalMeta.from_json(raw)
        check_key(target, meta, secret_key)
        r = resume(target, meta, live, secret_key, note)
        if r.identity:  # a journal from before identities were recorded
            write_meta(target, identity_json(raw, r.identity))
        writer = JournalWriter(
            target,
            fopts.level,
            fopts.rotate_size,
            fopts.rotate_interval,
            next_segment=r.next_segment,
            last_time=r.last_time,
        )
        return _follow(target, r.reader, writer, r.units, fopts, quiet, r.replan)


def _run_resume_remote(
    url: str, live: Any, secret_key: bytes | None, fopts: FollowOptions, quiet: bool
) -> ExitCode:
    """`--resume s3://BUCKET/PREFIX/`: under the stage's lock, what the stage
    holds uploaded first (an open segment sealed), then the positions from the
    bucket alone, and the follow on."""
    from kstream.journal import remote

    prefix = remote.prefix_of(url)
    stage = remote.prepare_stage(fopts.stage, url)
    with journal_lock(stage):
        done = tidy(stage)
        lst = remote.listing(prefix)
        if not lst.meta and not remote.stage_holds_journal(stage):
            remote.drop_stage(stage)
            raise UsageError(
                f"{prefix.url} holds no journal (nor has the stage {stage} one to upload): "
                f"start one with kstream dump --follow -o {prefix.url}"
            )
        if done:
            note(f"{stage}: {done}")
        if lst.meta:
            data = remote.fetch_meta(prefix, stage)
        else:
            data = guard((stage / META_NAME).read_bytes, str(stage / META_NAME))
        meta = JournalMeta.from_json(remote.journal_meta(data, prefix.url))
        check_key(prefix.url, meta, secret_key)
        up = remote.Uploader(prefix, stage)
        tail = up.push_staged()
        pos = remote.remote_positions(prefix, stage, tail)
        # journal.json is never rewritten in object storage: a journal written
        # before identities were recorded stays without one
        r = resume(stage, meta, live, secret_key, note, pos=pos, name=prefix.url)
        writer = JournalWriter(
            stage,
            fopts.level,
            fopts.rotate_size,
            fopts.rotate_interval,
            next_segment=r.next_segment,
            last_time=r.last_time,
            on_sealed=up.segment_sealed,
        )
        code = _follow(stage, r.reader, writer, r.units, fopts, quiet, r.replan, prefix.url, up)
        remote.drop_stage(stage, up)
        return code


def _follow(
    target: Path,
    reader: Any,
    writer: JournalWriter,
    units: list[UnitFollow],
    fopts: FollowOptions,
    quiet: bool,
    replan: Replan | None = None,
    shown: str | None = None,
    up: Any = None,
) -> ExitCode:
    """The follow itself (the journal locked by the caller; `up`: the Uploader
    of a journal in object storage, `target` its stage)."""
    watch_timeout = max(1, int(fopts.timeout * 0.8))
    reader.cancel.clear()
    rebaser = None
    if fopts.rebase_every is not None:
        store = None
        if up is not None:
            from kstream.journal.remote import RemoteStore

            store = RemoteStore(up, note)
        rebaser = Rebaser(target, fopts.rebase_every, fopts.retain, store=store)
    follow = Follow(
        reader,
        writer,
        units,
        watch_timeout,
        spool_dir=target,
        replan=replan.units if replan else None,
        make_follow=replan.make_follow if replan else None,
        outage=fopts.outage,
        rebaser=rebaser,
    )
    stop = threading.Event()
    why: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        why.append("interrupted" if signum == signal.SIGINT else "terminated")
        stop.set()

    old: dict[signal.Signals, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, on_signal)
    deadline = time.monotonic() + fopts.follow_for if fopts.follow_for else None
    said: set[int] = {uf.unit.index for uf in units if uf.state == "failed"}  # said at the end
    clock_said = False
    try:
        follow.start()
        with FollowView(follow, enabled=not quiet) as view:
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not follow.active:
                    break
                follow.step()
                view.update()
                _say_ended(follow, said)
                if writer.clock_step and not clock_said:
                    clock_said = True
                    note(f"warning: {writer.clock_step}")
    except BaseException:
        follow.abandon()
        raise
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    follow.stop()
    _say_ended(follow, said)
    report_follow(follow, shown or target, quiet, why[0] if why else "")
    failed = [uf for uf in units if uf.state == "failed"]
    return ExitCode.PARTIAL if failed else ExitCode.OK


def _say_ended(follow: Follow, said: set[int]) -> None:
    """A follower that ended (its CRD deleted) or gave up, said when it happens."""
    for uf in list(follow.units):
        if uf.state in ("failed", "ended") and uf.unit.index not in said:
            said.add(uf.unit.index)
            kind = "warning: " if uf.state == "failed" else ""
            note(f"{kind}{uf.label}: {uf.state}: {uf.error}")


# ------------------------------------------------------------------ display


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S") if t else "-"


def _lag(uf: UnitFollow, now: float) -> str:
    t = uf.last_seen or uf.started
    return f"{now - t:.0f}s"


class FollowView(LiveView):
    """Per resource: state, events, events/s, last event time, lag (now minus the
    newest event or bookmark). A live table on a terminal; a plain line every
    PLAIN_EVERY seconds otherwise."""

    def __init__(self, follow: Follow, enabled: bool) -> None:
        self.follow = follow
        self.enabled = enabled
        self.plain = plain_layout() or not stderr_is_terminal()
        self.last_plain = time.monotonic()
        self._prev: dict[int, tuple[float, int]] = {}
        self._rates: dict[int, float] = {}
        if enabled and not self.plain:
            self.live = Live(
                self._render(), console=consoles.err, refresh_per_second=4, transient=True
            )

    def _rate(self, uf: UnitFollow) -> float:
        now = time.monotonic()
        t0, n0 = self._prev.get(uf.unit.index, (self.follow.started, 0))
        if now - t0 >= 2.0:
            self._rates[uf.unit.index] = (uf.events - n0) / (now - t0)
            self._prev[uf.unit.index] = (now, uf.events)
        return self._rates.get(uf.unit.index, 0.0)

    def update(self) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(self._render())
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY:
            self.last_plain = time.monotonic()
            f = self.follow
            total = sum(uf.events for uf in f.units)
            el = max(time.monotonic() - f.started, 1e-6)
            note(
                f"following: {_connected(f)}, {total:,} events "
                f"({total / el:,.1f}/s), {len(f.writer.sealed)} segments sealed"
            )

    def _render(self) -> Group:
        now = time.time()
        f = self.follow
        units = sorted(f.units, key=lambda uf: -(uf.last_seen or 0))
        rows: list[list[Text | str]] = []
        for uf in units[:14]:
            rows.append(
                [
                    Text(uf.label),
                    Text(stream_state(uf), style=_STATE.get(uf.state, "")),
                    human_count(uf.events),
                    f"{self._rate(uf):,.1f}/s",
                    _clock(uf.last_event),
                    _lag(uf, now),
                ]
            )
        cols = [
            Col("resource"),
            Col("state"),
            Col("events", "right"),
            Col("rate", "right"),
            Col("last event", "right", optional=True),
            Col("lag", "right"),
        ]
        total = sum(uf.events for uf in f.units)
        el = max(time.monotonic() - f.started, 1e-6)
        tail = Text(
            f"{_connected(f)}  {human_count(total)} events  "
            f"{total / el:,.1f}/s  {len(f.writer.sealed)} segments sealed  {el:.0f}s  "
            "(Ctrl-C to stop)",
            style="bold",
        )
        return Group(FitTable(cols, rows, reserve_lines=3), tail)


def stream_state(uf: UnitFollow, now: float | None = None) -> str:
    """What the live view says of one stream: streaming, reconnecting since N s,
    resync, failed, ended."""
    if uf.state in ("failed", "ended", "resync"):
        return uf.state
    if uf.down_since:
        since = (time.monotonic() if now is None else now) - uf.down_since
        return f"reconnecting since {since:.0f}s"
    return "streaming"


def _connected(f: Follow) -> str:
    """N/M streams connected, and how many are reconnecting (the longest down)."""
    now = time.monotonic()
    down = [now - uf.down_since for uf in f.units if uf.down_since and uf.state == "retrying"]
    text = f"{f.connected}/{len(f.units)} streams connected"
    if down:
        text += f" ({len(down)} reconnecting, the longest for {max(down):.0f}s)"
    return text


_STATE = {
    "watching": "cyan",
    "retrying": "yellow",
    "resync": "blue",
    "failed": "red",
    "ended": "dim",
}


def report_follow(follow: Follow, target: Path | str, quiet: bool, why: str) -> None:
    """The summary; `target` is the journal's directory, or a prefix's URL
    (its trailing slash included)."""
    name = target if isinstance(target, str) else f"{target}/"
    units: Sequence[UnitFollow] = follow.units
    segs = follow.writer.sealed
    events = sum(uf.events for uf in units)
    resynced = [uf.label for uf in units if uf.resyncs]
    if resynced and not quiet:
        shown_names = ", ".join(resynced[:5]) + (", ..." if len(resynced) > 5 else "")
        note(f"resynced (resource version expired, or new): {len(resynced)} ({shown_names})")
    gapped = [uf for uf in units if uf.gaps]
    if gapped and not quiet:
        note(
            f"gaps recorded for {len(gapped)} resources (a stop before this run, or a stream "
            "down): instants inside them are refused; `kstream count JOURNAL/ --events` lists them"
        )
    for uf in units:
        if uf.state == "failed" and uf.error.startswith("not in the base"):
            note(f"warning: {uf.label}: not followed: {uf.error}")
    if quiet:
        return
    title = f"kstream dump --follow → {name}"
    shown = [uf for uf in units if uf.events or uf.resyncs or uf.state in ("failed", "ended")]
    if plain_layout():
        consoles.err.print(title, soft_wrap=True, markup=False)
        for uf in shown:
            fields: list[tuple[str, object]] = [
                ("resource", uf.unit.resource.name),
                ("namespace", uf.namespace),
                ("state", uf.state),
                ("events", uf.events),
                ("bookmarks", uf.bookmarks),
                ("resyncs", uf.resyncs),
                ("retries", uf.retries),
            ]
            line = " ".join(f"{k}={logfmt(v)}" for k, v in fields if v != "")
            consoles.err.print(line, soft_wrap=True, markup=False)
    else:
        rows: list[list[Text | str]] = [
            [
                Text(uf.label),
                Text(uf.state, style=_STATE.get(uf.state, "")),
                human_count(uf.events),
                str(uf.resyncs) if uf.resyncs else "",
                str(uf.retries) if uf.retries else "",
            ]
            for uf in shown
        ]
        cols = [
            Col("resource"),
            Col("state"),
            Col("events", "right"),
            Col("resyncs", "right"),
            Col("retries", "right"),
        ]
        if rows:
            consoles.err.print(Group(Text(title, style="bold"), FitTable(cols, rows)))
        else:  # no resource changed: no table of headers alone
            consoles.err.print(Text(title, style="bold"))
    if len(shown) < len(units):
        note(f"{len(units) - len(shown)} more resources without changes")
    rb = follow.rebaser
    if rb is not None and (rb.written or rb.removed):
        folds = f" (each folded in {max(rb.fold_seconds):.1f}s at most)" if rb.fold_seconds else ""
        note(
            f"{len(rb.written)} new base{'s' if len(rb.written) != 1 else ''} written{folds}"
            + (f"; retention removed {len(rb.removed)} files" if rb.removed else "")
        )
    names = ", ".join(f"{m.segment:06d}" for m in segs) or "none"
    note(
        f"{why + ': ' if why else ''}{events:,} change events in {len(segs)} segment"
        f"{'s' if len(segs) != 1 else ''} written ({names}); carry on with "
        f"kstream dump --follow --resume {name}"
    )
