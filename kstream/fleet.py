"""Many contexts in one run: which contexts (`--context` repeated or a glob,
`--all-contexts`), and running one job per context concurrently, bounded, each
with its own outcome and exit code, so that one unreachable cluster never stops
the others.

    targets = select_targets(kubeconfig, ["prod-*"], all_contexts=False)
    outcomes = Fleet(targets, work, parallel=4).run()

`work(target, stop)` runs in a worker thread and returns (value, exit code);
a KstreamError it raises becomes that context's outcome (its code, its one
line). Ctrl-C / SIGTERM reach the main thread (inside `run()`): `stop` is set
with the exit code, each job finishes what it can (a dump writes NAME.partial)
and `run()` then returns every outcome; contexts not started yet are reported
as not started.
"""

from __future__ import annotations

import fnmatch
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Generic, TypeVar

from kstream.cluster.client import (
    KubeconfigFiles,
    MergedKubeconfig,
    kubeconfig_files,
    merge_kubeconfigs,
    resolve,
)
from kstream.dataclass import dataclass
from kstream.errors import ConfigError, Interrupted, KstreamError, Terminated, UsageError
from kstream.exitcodes import ExitCode

if TYPE_CHECKING:
    from kstream.dump import DumpJob, DumpResult, DumpSettings

T = TypeVar("T")

GLOB_CHARS = frozenset("*?[")
IN_CLUSTER = "in-cluster"


@dataclass(frozen=True)
class Target:
    context: str
    server: str  # the server URL, as the kubeconfig says


def is_many(contexts: Sequence[str], all_contexts: bool) -> bool:
    """Whether the command line asks for the many-contexts mode: --all-contexts,
    --context given more than once, or a glob. Decided by the form of the
    request, not by how many contexts match, so a script's output naming rules
    do not change the day a glob matches one context more."""
    return all_contexts or len(contexts) > 1 or any(GLOB_CHARS & set(c) for c in contexts)


def select_targets(
    kubeconfig: str | None, contexts: Sequence[str], all_contexts: bool
) -> list[Target]:
    """The contexts named (exactly, else as an fnmatch glob over the merged
    kubeconfig's contexts, in the kubeconfig's order), each once; every context
    with all_contexts. ConfigError when a name or glob matches nothing."""
    if all_contexts and contexts:
        raise UsageError("--all-contexts and --context cannot be used together")
    files = kubeconfig_files(kubeconfig)
    merged = merge_kubeconfigs(files)
    if not merged.read:
        raise ConfigError(f"kubeconfig not found: {os.pathsep.join(files.paths) or '(none)'}")
    names = list(merged.contexts)
    chosen: list[str] = []
    if all_contexts:
        chosen = names
        if not chosen:
            raise ConfigError("--all-contexts: the kubeconfig has no contexts")
    for pattern in contexts:
        if not pattern:
            raise UsageError("--context '': no name given (an unset shell variable?)")
        if pattern in merged.contexts:
            chosen.append(pattern)
            continue
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            avail = ", ".join(names) or "none"
            what = "matches no context" if GLOB_CHARS & set(pattern) else "not found"
            raise ConfigError(f'context "{pattern}" {what} in kubeconfig (available: {avail})')
        chosen.extend(hits)
    out = []
    for name in dict.fromkeys(chosen):
        out.append(Target(name, _server(files, merged, name)))
    return out


def _server(files: KubeconfigFiles, merged: MergedKubeconfig, name: str) -> str:
    try:
        return resolve(files, name, merged).server
    except ConfigError:
        return ""  # the job for this context reports it


def single_target(kubeconfig: str | None, context: str | None) -> Target:
    """The context (and server) one command would use, for output names:
    kubectl's resolution, or in-cluster when there is no kubeconfig in a pod."""
    files = kubeconfig_files(kubeconfig)
    merged = merge_kubeconfigs(files)
    if not files.explicit and not merged.read and "KUBERNETES_SERVICE_HOST" in os.environ:
        if context:
            raise ConfigError("--context needs a kubeconfig; running with in-cluster config")
        h, p = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "")
        host = f"[{h}]" if ":" in h else h
        return Target(IN_CLUSTER, f"https://{host}:{p}" if p else f"https://{host}")
    r = resolve(files, context, merged)
    return Target(r.context, r.server)


class _Shared:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.code: ExitCode = ExitCode.INTERRUPTED


class Stop:
    """One context's view of the run being stopped (Ctrl-C, SIGTERM: `code` says
    which). The job calls `running()` once connected, just before it starts
    reading: a stop while it was still connecting abandons it (nothing of it is
    written, and the run does not wait for a server that does not answer), and
    `running()` then returns False."""

    def __init__(self, shared: _Shared | None = None) -> None:
        self._shared = shared or _Shared()
        self._lock = threading.Lock()
        self.state = "waiting"  # waiting | connecting | running | done | abandoned

    @property
    def code(self) -> ExitCode:
        return self._shared.code

    def set(self, code: ExitCode) -> None:
        self._shared.code = code
        self._shared.event.set()

    def is_set(self) -> bool:
        return self._shared.event.is_set()

    def _move(self, frm: tuple[str, ...], to: str) -> bool:
        with self._lock:
            if self.state not in frm:
                return False
            self.state = to
            return True

    def running(self) -> bool:
        return self._move(("connecting",), "running")


@dataclass
class Outcome(Generic[T]):
    target: Target
    value: T | None = None
    code: ExitCode = ExitCode.OK
    error: str = ""  # one line, when the job failed
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def context(self) -> str:
        return self.target.context


def worst(codes: Sequence[ExitCode]) -> ExitCode:
    """The exit code of the run: the highest of the contexts' (0 < 3 partial <
    4 config < 5 connection < ... < 130 interrupted)."""
    return max(codes, default=ExitCode.OK)


Work = Callable[[Target, Stop, Callable[[str], None]], tuple[T, ExitCode]]


class Fleet(Generic[T]):
    def __init__(self, targets: Sequence[Target], work: Work[T], parallel: int = 4) -> None:
        self.targets = list(targets)
        self.work = work
        self.parallel = max(1, min(parallel, len(self.targets) or 1))
        self.stop = Stop()  # the run's; each context has its own view of it
        self.outcomes: list[Outcome[T]] = [Outcome(t) for t in self.targets]
        self._stops = [Stop(self.stop._shared) for _ in self.targets]
        self._todo: queue.Queue[int | None] = queue.Queue()
        self._done = threading.Semaphore(0)  # wakes run() when a context settles
        # contexts done or abandoned: counted where they settle, never where
        # run() wakes (a signal between an acquire and its count lost one)
        self._settled = 0
        self._lock = threading.Lock()

    def _worker(self) -> None:
        while True:
            i = self._todo.get()
            if i is None:
                return
            o, stop = self.outcomes[i], self._stops[i]
            if not stop._move(("waiting",), "connecting"):
                continue  # stopped before it started: run() reported it
            t0 = time.monotonic()
            value: T | None = None
            code, error, warnings = ExitCode.OK, "", o.warnings
            try:
                value, code = self.work(o.target, stop, warnings.append)
            except KstreamError as e:
                code, error = e.exit_code, e.message
            except BaseException as e:  # a bug: this context's outcome, not the run's
                code = ExitCode.INTERNAL
                error = f"internal error ({type(e).__name__}); run again with --debug"
                warnings.append(f"debug: {e!r}")
            if stop._move(("connecting", "running"), "done"):  # not abandoned meanwhile
                o.value, o.code, o.error = value, code, error
                o.seconds = time.monotonic() - t0
                with self._lock:
                    self._settled += 1
                self._done.release()

    def _stopped(self) -> None:
        """After a stop: contexts not started, or still connecting, are reported
        as such and not waited for."""
        for o, stop in zip(self.outcomes, self._stops, strict=True):
            if stop._move(("waiting",), "abandoned"):
                o.code, o.error = stop.code, "not started: the run was stopped"
            elif stop._move(("connecting",), "abandoned"):
                o.code, o.error = stop.code, "stopped while connecting; nothing written"
            else:
                continue
            with self._lock:
                self._settled += 1

    def state(self, i: int) -> str:
        """waiting | connecting | running | done | abandoned (for progress)."""
        return self._stops[i].state

    def run(self, tick: Callable[[], None] | None = None) -> list[Outcome[T]]:
        """Every context's outcome, in the order of the targets. Ctrl-C and
        SIGTERM stop the jobs (those reading finish what they can, a dump
        writes NAME.partial) and are reported in the outcomes' codes; a
        second one raises. `tick` is called about ten times a second (progress)."""
        for i in range(len(self.targets)):
            self._todo.put(i)
        for _ in range(self.parallel):
            self._todo.put(None)
        threads = [
            threading.Thread(target=self._worker, name=f"kstream-ctx-{i}", daemon=True)
            for i in range(self.parallel)
        ]
        total = len(self.targets)
        while self._settled < total:
            try:  # a signal may come at any point, while starting the threads too
                for t in threads:
                    if t.ident is None:
                        t.start()
                while self._settled < total:
                    self._done.acquire(timeout=0.1)
                    if tick is not None:
                        tick()
            except (KeyboardInterrupt, Interrupted):
                if self.stop.is_set():
                    raise
                self.stop.set(ExitCode.INTERRUPTED)
                self._stopped()
            except Terminated:
                if self.stop.is_set():
                    raise
                self.stop.set(ExitCode.TERMINATED)
                self._stopped()
        return self.outcomes


# --------------------------------------------------------------------------- the jobs


def consume(events: Iterable[object], stop: Stop) -> bool:
    """Run a `runner.Run`'s events to the end; False when `stop` cut it short."""
    return all(not stop.is_set() for _ in events)


def dump_one(
    settings: DumpSettings,
    stop: Stop,
    warn: Callable[[str], None],
    started: Callable[[DumpJob], None] = lambda job: None,
) -> DumpResult:
    """One context's dump, as `dump` runs it (without the progress display);
    `started` hears of the job once it is connected (for progress)."""
    from kstream.dump import DumpJob

    job = DumpJob(settings, warn)
    started(job)
    if not stop.running():  # stopped while connecting: the run no longer waits for it
        job.abort()
        raise KstreamError("stopped while connecting")
    interrupted: ExitCode | None = None
    try:
        if not consume(job.run.events(), stop):
            job.run.cancel()
            job.run.salvage()
            interrupted = stop.code
    except BaseException:
        job.run.cancel()
        job.run.close()
        job.abort()
        raise
    return job.finish(interrupted)
