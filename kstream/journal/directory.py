"""A journal directory's rules: journal.json (`JournalMeta`: `new_meta`, `read_meta`,
`write_meta`, `check_key` for the HMAC key), whether a path may become a journal
(`check_new_journal`, `journal_dir_problem`), the one-writer lock (`journal_lock`),
what a crash left undone (`tidy`) and a new base's move into place (`promote`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kstream.dataclass import dataclass
from kstream.errors import OutputError, UsageError
from kstream.journal import durable
from kstream.journal.format import (
    BASE_NAME,
    BASES_DIR,
    FOLLOW_PREFIX,
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    LOCK_NAME,
    META_NAME,
    NEW_DIR,
    REBASE_DIR,
    SEGMENT_DIR,
    base_number,
    check_meta,
    segment_number,
)
from kstream.journal.writer import guard
from kstream.store.format import (
    DumpOptions,
)
from kstream.store.outputs import listing_problem, own_dir_problem

if TYPE_CHECKING:
    from kstream.cluster.plan import Plan
    from kstream.dump import DumpSettings


def journal_dir_problem(target: Path) -> str:
    """Why the directory is not a kstream journal that may be replaced ("" if it
    is one, is empty, or holds only what a run cut before its base was whole left:
    the lock file, the unfinished base, a follower's spool directory)."""
    with contextlib.suppress(OSError):
        if all(_transient(p.name) for p in target.iterdir()):
            return ""

    # a new base moved into place when a crash cut it: its journal.json stands for
    # the one not yet renamed in (`tidy` finishes the move)
    promoting = (target / NEW_DIR / META_NAME).is_file() and not (target / META_NAME).exists()

    def foreign_of(entries: list[str]) -> list[str] | None:
        try:
            read_meta(target / NEW_DIR if promoting else target)
        except Exception:
            return None
        foreign = []
        for n in entries:
            p = target / n
            if p.is_symlink():
                foreign.append(n)
            elif n == SEGMENT_DIR and p.is_dir():
                for s in p.iterdir():
                    if segment_number(s.name) is None or not s.is_file() or s.is_symlink():
                        foreign.append(f"{SEGMENT_DIR}/{s.name}")
            elif n == BASES_DIR and p.is_dir():
                for s in p.iterdir():
                    if base_number(s.name) is None or not s.is_file() or s.is_symlink():
                        foreign.append(f"{BASES_DIR}/{s.name}")
            elif not _journal_own(n, p):
                foreign.append(n)
        return foreign

    if promoting:
        try:
            names = sorted(p.name for p in target.iterdir())
        except OSError as e:
            return f"cannot be read ({e.strerror or type(e).__name__})"
        return listing_problem(
            [*names, META_NAME], META_NAME, foreign_of, "files a kstream journal does not"
        )
    return own_dir_problem(target, META_NAME, foreign_of, "a kstream journal does not")


def _transient(name: str) -> bool:
    """What a writer keeps in a journal's directory besides the journal itself."""
    return name in (LOCK_NAME, NEW_DIR, REBASE_DIR) or name.startswith(FOLLOW_PREFIX)


def _journal_own(name: str, p: Path) -> bool:
    """A file or directory a journal's writers leave at its top level."""
    if _transient(name):
        return True
    if p.is_file():
        return name in (META_NAME, BASE_NAME, META_NAME + ".tmp") or name.startswith(
            BASE_NAME + ".partial"
        )
    return p.is_dir() and name.startswith(f".{BASE_NAME}.") and name.endswith(".kstream-tmp")


# ------------------------------------------------------------------ a journal's directory

KEY_CHECK = b"kstream-journal-key-check"


def check_new_journal(path: str, force: bool) -> Path:
    """The directory a new journal goes to; refuses an existing journal without
    --force and anything that is not a kstream journal even with it (exit 2)."""
    if path == "-" or not path.strip():
        raise UsageError("--follow writes a journal directory: -o JOURNAL/")
    from kstream.store.outputs import format_of_name

    fmt = format_of_name(path)
    if fmt not in (None, "dir"):
        raise UsageError(
            f"--follow writes a journal directory, not a file: -o {path}: use -o NAME/"
        )
    target = Path(path.rstrip("/" + os.sep) or "/")
    here = Path.cwd()
    absolute = Path(os.path.abspath(target))
    if absolute == here or absolute in here.parents:
        raise UsageError(
            f"-o {target}: cannot write a journal over the current directory or one above it"
        )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UsageError(f"-o {target}: a file is in the way; name a new directory")
    if target.is_dir() and not all(_transient(p.name) for p in target.iterdir()):
        problem = journal_dir_problem(target)
        if problem:
            raise UsageError(
                f"{target} is not a kstream journal: it {problem}; kstream replaces only its "
                "own journals, even with --force: choose another name"
            )
        if not force:
            raise UsageError(
                f"{target} holds a kstream journal: carry on with --resume {target}/, "
                "or replace it with --force"
            )
    parent = target.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {target}: {parent} is not a writable directory")
    return target


def _holder() -> str:
    import socket
    from datetime import datetime, timezone

    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"pid {os.getpid()} on {socket.gethostname()}, since {since}"


@contextlib.contextmanager
def journal_lock(target: Path) -> Iterator[None]:
    """One writer per journal, for the whole of a run (its base, the follow,
    --force, --resume): an exclusive flock on JOURNAL/.lock, which says who
    holds it, and one on the directory itself (what kstreams before the lock
    file locked). The kernel drops both when the process ends, however it ends,
    so a lock file left by a dead process is free and taken over (its words
    replaced). Held elsewhere: UsageError (exit 2) naming the holder."""
    import fcntl

    dfd = guard(lambda: os.open(target, os.O_RDONLY), str(target))
    lfd = -1
    try:
        lock = target / LOCK_NAME
        durable.step(f"lock {target.name}")
        lfd = guard(lambda: os.open(lock, os.O_RDWR | os.O_CREAT, 0o600), str(lock))
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(lfd, 512, 0).decode(errors="replace").strip()
            except OSError:
                holder = ""
            raise UsageError(
                f"{target} is being written by another kstream "
                f"({holder or 'it does not say who: one starting, or an earlier kstream'}): "
                "stop it first (or let it end)"
            ) from None
        durable.step(f"write {LOCK_NAME}")
        guard(lambda: os.ftruncate(lfd, 0), str(lock))
        guard(lambda: os.pwrite(lfd, (_holder() + "\n").encode(), 0), str(lock))
        yield
    finally:
        if lfd >= 0:
            os.close(lfd)
        os.close(dfd)


def tidy(target: Path) -> str:
    """Under the lock, before anything else: finish or undo what a run cut by a
    crash left. A new base whose journal.json was written (the base's commit
    point) is moved into place (`promote`, step by step, each step safe to do
    again); one without it is removed; spool directories of followers and a
    base being folded (`.kstream-rebase/`) are
    removed. Returns what was done ("" for nothing)."""
    done = []
    new = target / NEW_DIR
    if new.is_dir():
        if (new / META_NAME).is_file():
            promote(target)
            done.append("moved the complete base of a cut run into place")
        else:
            durable.rmtree(new)
            done.append("removed the unfinished base of a cut run")
    for p in sorted(target.iterdir()):
        if p.name.startswith(FOLLOW_PREFIX) or p.name in (META_NAME + ".tmp", REBASE_DIR):
            durable.rmtree(p)
    return "; ".join(done)


def make_base(target: Path, write: Callable[[Path], dict[str, Any] | None]) -> bool:
    """A new journal's base, under the lock: `write(path)` writes the base
    archive at `path` (in JOURNAL/.kstream-new/) and returns journal.json's
    content, or None when it could not finish (then nothing of it is kept);
    journal.json is written last (the commit point), then `promote`. A crash
    before the commit point: `tidy` removes the new base; after it: `tidy`
    moves it into place."""
    new = target / NEW_DIR
    guard(lambda: durable.mkdir(new), str(new))
    try:
        meta = write(new / BASE_NAME)
        if meta is None:
            durable.rmtree(new)
            return False
        write_meta(new, meta)
    except BaseException:
        if not (new / META_NAME).is_file():
            shutil.rmtree(new, ignore_errors=True)
        raise
    guard(lambda: promote(target), str(target))
    return True


def promote(target: Path) -> None:
    """The new journal in JOURNAL/.kstream-new (its base and journal.json
    complete) takes the place of the old one, if any. The old journal.json goes
    first (the directory is no journal until the new one's is renamed in), then
    its segments; the new base replaces the old; its journal.json comes last.
    A crash at any step: `tidy` does the rest."""
    new = target / NEW_DIR
    if (new / BASE_NAME).is_file():
        durable.unlink(target / META_NAME)
        for sub in (SEGMENT_DIR, BASES_DIR):
            if (target / sub).is_dir():
                durable.rmtree(target / sub)
        durable.replace(new / BASE_NAME, target / BASE_NAME)
    durable.replace(new / META_NAME, target / META_NAME)
    durable.fsync_dir(target)
    durable.rmtree(new)


@dataclass(frozen=True)
class JournalMeta:
    """journal.json (beside `format` and `version`, which `write_meta` adds and
    `read_meta` checks): where the journal was written from and the options of
    its dump, which `--resume` follows on with. On disk the options are a
    manifest's, with `secretKeyCheck` (a digest of the HMAC key) among them."""

    created: str = ""
    tool: str = ""
    context: str | None = None
    server_url: str | None = None
    server_version: str | None = None
    options: DumpOptions = field(default_factory=DumpOptions)
    key_check: object = None  # options.secretKeyCheck as written (None: no HMAC key)
    identity: str | None = None  # the cluster's: its kube-system namespace's uid

    def to_json(self) -> dict[str, Any]:
        options = self.options.to_json()
        if self.key_check is not None:
            options["secretKeyCheck"] = self.key_check
        return {
            "created": self.created,
            "tool": self.tool,
            "context": self.context,
            "server": {"url": self.server_url, "version": self.server_version}
            | ({"identity": self.identity} if self.identity else {}),
            "options": options,
        }

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> JournalMeta:
        server = meta.get("server") or {}
        raw_opts = meta.get("options") or {}
        return cls(
            created=str(meta.get("created") or ""),
            tool=str(meta.get("tool") or ""),
            context=meta.get("context"),
            server_url=server.get("url"),
            server_version=server.get("version"),
            options=DumpOptions.from_json(meta.get("options")) or DumpOptions(),
            key_check=raw_opts.get("secretKeyCheck"),
            identity=server.get("identity") or None,
        )


def new_meta(plan: Plan, settings: DumpSettings, identity: str | None = None) -> JournalMeta:
    """journal.json of a new journal: where it was written from and the dump's
    options (and a check value of the HMAC key, when there is one)."""
    from datetime import datetime, timezone

    from kstream import __version__
    from kstream.transform import digest

    return JournalMeta(
        created=datetime.now(timezone.utc).isoformat(),
        tool=f"kstream {__version__}",
        context=plan.context,
        server_url=plan.server,
        server_version=plan.server_version,
        options=settings.dump_options(),
        key_check=digest(KEY_CHECK, settings.secret_key) if settings.secret_key else None,
        identity=identity,
    )


def check_key(target: Path | str, meta: JournalMeta, secret_key: bytes | None) -> None:
    """--resume: the HMAC key must be the one the journal was written with (none
    for plain sha256); UsageError (exit 2) otherwise."""
    from kstream.transform import digest

    if meta.options.secret_digest == "hmac-sha256":
        if secret_key is None:
            raise UsageError(
                f"{target} redacts Secrets with HMAC: give its key with --secret-key-file"
            )
        if meta.key_check not in (None, digest(KEY_CHECK, secret_key)):
            raise UsageError(f"--secret-key-file: not the key {target} was written with")
    elif secret_key is not None:
        raise UsageError(f"{target} redacts Secrets with plain sha256: drop --secret-key-file")


def read_meta(directory: Path) -> dict[str, Any]:
    """journal.json of the journal `directory`, checked (`format.check_meta`);
    UsageError where there is none or it is another format's."""
    p = Path(directory) / META_NAME
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UsageError(
            f"{directory} is not a kstream journal: {META_NAME}: {e.strerror}"
        ) from None
    return check_meta(data, str(p), str(directory), foreign=UsageError)


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    p = Path(directory) / META_NAME
    tmp = p.with_name(META_NAME + ".tmp")

    def put() -> None:
        durable.step(f"create {tmp.name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, **meta}, f, indent=2)
            f.flush()
            durable.step(f"fsync {tmp.name}")
            os.fsync(f.fileno())
        durable.replace(tmp, p)
        durable.fsync_dir(p.parent)

    guard(put, str(p))
