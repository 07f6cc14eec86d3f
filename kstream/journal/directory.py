"""A journal directory's rules: journal.json (`JournalMeta`: `new_meta`, `read_meta`,
`write_meta`, `check_key` for the HMAC key), whether a path may become a journal
(`check_new_journal`, `journal_dir_problem`), the one-writer lock (`journal_lock`) and
the base's swap into place (`swap_in`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kstream.errors import OutputError, SnapshotError, UsageError
from kstream.journal.format import (
    BASE_NAME,
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    META_NAME,
    SEGMENT_DIR,
    segment_number,
)
from kstream.journal.writer import guard
from kstream.store.format import (
    DumpOptions,
)
from kstream.store.outputs import own_dir_problem

if TYPE_CHECKING:
    from kstream.cluster.plan import Plan
    from kstream.dump import DumpSettings


def journal_dir_problem(target: Path) -> str:
    """Why the directory is not a kstream journal that may be replaced ("" if it
    is one, or is empty)."""

    def foreign_of(entries: list[str]) -> list[str] | None:
        try:
            read_meta(target)
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
            elif not _journal_own(n, p):
                foreign.append(n)
        return foreign

    return own_dir_problem(target, META_NAME, foreign_of, "a kstream journal does not")


def _journal_own(name: str, p: Path) -> bool:
    """A file or directory a journal's writers leave at its top level."""
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
    if target.is_dir() and any(target.iterdir()):
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


@contextlib.contextmanager
def journal_lock(target: Path) -> Iterator[None]:
    """One writer per journal: an exclusive lock on the directory while following."""
    import fcntl

    fd = os.open(target, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{target} is being written by another kstream") from None
        yield
    finally:
        os.close(fd)


def swap_in(tmp: Path, target: Path) -> None:
    """The new journal (its base complete) takes the name; an old one goes."""
    import shutil
    import tempfile

    if target.is_dir():
        problem = journal_dir_problem(target)
        if problem:  # changed meanwhile: leave it alone
            raise OutputError(f"{target} changed meanwhile: it {problem}; left alone")
        old = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".kstream-old", dir=target.parent)
        )
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError as e:
            os.replace(old, target)
            raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


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

    def to_json(self) -> dict[str, Any]:
        options = self.options.to_json()
        if self.key_check is not None:
            options["secretKeyCheck"] = self.key_check
        return {
            "created": self.created,
            "tool": self.tool,
            "context": self.context,
            "server": {"url": self.server_url, "version": self.server_version},
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
        )


def new_meta(plan: Plan, settings: DumpSettings) -> JournalMeta:
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
    )


def check_key(target: Path, meta: JournalMeta, secret_key: bytes | None) -> None:
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
    p = Path(directory) / META_NAME
    try:
        meta = json.loads(p.read_bytes())
    except OSError as e:
        raise UsageError(
            f"{directory} is not a kstream journal: {META_NAME}: {e.strerror}"
        ) from None
    except ValueError:
        raise SnapshotError(f"{p}: corrupted (not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != JOURNAL_FORMAT:
        raise UsageError(f"{directory} is not a kstream journal ({META_NAME} says otherwise)")
    if meta.get("version") != JOURNAL_VERSION:
        raise SnapshotError(f"{p}: journal format version {meta.get('version')} is not supported")
    return meta


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    p = Path(directory) / META_NAME
    tmp = p.with_name(META_NAME + ".tmp")

    def put() -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, **meta}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    guard(put, str(p))
