"""Snapshot formats: writing them incrementally and reading them back.

Archive (`.zst`): a sequence of zstd frames that any zstd tool decompresses to the
NDJSON of the dump (`zstdcat snap.ndjson.zst | jq`), with kstream's own data in
zstd *skippable* frames, which those tools ignore:

    [skippable 0x184D2A50: header JSON {"format": "kstream-archive", "version": 1, ...}]
    [zstd frame: the objects of resource 1, one per line]      (checksummed)
    [zstd frame: the objects of resource 2, ...]
    [skippable 0x184D2A51: manifest JSON, with each resource's offset and length]
    [skippable 0x184D2A52: footer: b"KSTREAM1" + sha256(header + manifest JSON)
                                   + manifest offset (u64 LE)]

The footer is the last 56 bytes: a reader seeks there, finds the manifest, checks
it and the header against the footer's digest, and can read one resource without
decompressing the others. A file without the footer was cut short; each
resource's data is covered by its sha256 in the manifest and zstd's checksums.

Directory: one NDJSON file per resource plus `manifest.json`.
NDJSON: one file (or stdout), objects only.

Every output is written under a temporary name and renamed when complete; files
are created 0600; an existing output is replaced only with force, and only by a
complete or partial (never an interrupted) dump.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kstream import deepjson
from kstream.errors import OutputError, SnapshotError, UsageError

FORMAT = "kstream-archive"
FORMAT_VERSION = 1
MAGIC_HEADER = 0x184D2A50
MAGIC_MANIFEST = 0x184D2A51
MAGIC_FOOTER = 0x184D2A52
ZSTD_MAGIC = 0xFD2FB528
FOOTER_TAG = b"KSTREAM1"
FOOTER_PAYLOAD = 8 + 32 + 8
FOOTER_SIZE = 8 + FOOTER_PAYLOAD
MANIFEST_NAME = "manifest.json"
COPY_BUF = 1024 * 1024
# zstd's multithreaded compression, for the units of an archive past MT_AFTER bytes
# (uncompressed; smaller ones are not worth starting threads for): MT_THREADS worker
# threads (two at most: with two cores, two halve the wall time of compressing and
# let the thread that reads the stream go on meanwhile; on one core, none), in jobs
# of MT_JOB bytes (zstd's default, 4 windows, holds tens of MB per unit)
MT_AFTER = 1024 * 1024
MT_JOB = 1024 * 1024
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
MT_THREADS = min(2, _CORES or 1) if (_CORES or 1) > 1 else 0


def skippable(magic: int, payload: bytes) -> bytes:
    return struct.pack("<II", magic, len(payload)) + payload


OUTPUT_NAMES = (
    "NAME.ndjson (or .jsonl: NDJSON), NAME.ndjson.zst (or .zst, .zstd: zstd archive), "
    "DIR/ (a directory snapshot) or - (NDJSON on stdout)"
)
_EXTENSIONS = {
    ".zst": "zst",
    ".zstd": "zst",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


def _format_of_name(path: str) -> str | None:
    """The format a name says (by its extension, or a trailing slash), or None."""
    if path == "-":
        return "ndjson"
    if path.endswith(("/", os.sep)):
        return "dir"
    for ext, fmt in _EXTENSIONS.items():
        if path.lower().endswith(ext):
            return fmt
    return None


def detect_format(path: str) -> str:
    """ndjson | zst | dir, from the output name (`-` is NDJSON to stdout; an
    existing directory is a directory snapshot). A name that says nothing kstream
    writes is refused (UsageError) rather than written as something it is not."""
    if not path.strip():
        raise UsageError("-o '': no output name (an unset shell variable?)")
    fmt = _format_of_name(path)
    if fmt is not None:
        return fmt
    if Path(path).is_dir():
        return "dir"
    suffix = Path(path).suffix
    if suffix.lower() == ".json":
        stem = path[: -len(suffix)]
        raise UsageError(
            f"-o {path}: kstream writes NDJSON (one object per line), not one JSON "
            f"document: use {stem}.ndjson or {stem}.jsonl"
        )
    if suffix:
        raise UsageError(
            f"-o {path}: kstream does not write {suffix} files; it writes {OUTPUT_NAMES}"
        )
    raise UsageError(
        f"-o {path}: the name does not say what to write: {path}/ for a directory "
        f"snapshot, {path}.ndjson.zst for an archive, {path}.ndjson for NDJSON"
    )


def output_format(path: str, fmt: str) -> str:
    """The format to write: `fmt` (ndjson | zst | dir) or, for "auto", the name's.
    An explicit format that contradicts the name's extension is refused."""
    if fmt == "auto" or not path.strip():
        return detect_format(path)
    said = _format_of_name(path)
    if said is not None and said != fmt and path != "-":
        raise UsageError(f"-o {path} names a {_WHAT[said]}, but --format is {fmt}")
    return fmt


_WHAT = {"ndjson": "NDJSON file", "zst": "zstd archive", "dir": "directory"}


def check_output(path: str, fmt: str, force: bool) -> None:
    """Refuse an output that cannot or must not be written, before any work:
    UsageError (exit 2) for a name that can never work, OutputError (exit 7) for
    one that exists without --force or cannot be written. The writers check again
    when they open the output."""
    if path == "-":
        return
    if fmt == "dir":
        _check_directory_target(_dir_target(path), force)
    else:
        target = Path(path)
        if target.is_dir():
            raise OutputError(f"cannot write {target}: it is a directory")
        _check_target(target, force)


def _dir_target(path: str) -> Path:
    return Path(path.rstrip("/" + os.sep) or "/")


def _snapshot_dir_problem(target: Path) -> str:
    """Why the directory is not a kstream snapshot that may be replaced ("" if it
    is one, or is empty): a manifest.json written by kstream, and nothing but the
    files it lists."""
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    if not entries:
        return ""
    if MANIFEST_NAME not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        return f"has no kstream {MANIFEST_NAME} (it holds {shown})"
    try:
        manifest = json.loads((target / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        return f"has a {MANIFEST_NAME} that kstream did not write"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return f"has a {MANIFEST_NAME} that kstream did not write"
    listed = {MANIFEST_NAME}
    for r in manifest.get("resources") or []:
        if isinstance(r, dict) and isinstance(r.get("file"), str):
            listed.add(r["file"])
    foreign = [
        n
        for n in entries
        if n not in listed or not (target / n).is_file() or (target / n).is_symlink()
    ]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return f"holds files its manifest does not list ({shown})"
    return ""


def _check_directory_target(target: Path, force: bool) -> None:
    here = Path.cwd()
    absolute = Path(os.path.abspath(target))
    if absolute == here or absolute in here.parents:
        raise UsageError(
            f"-o {target}: cannot write a snapshot over the current directory or one "
            "above it; name a new directory, e.g. -o snap/"
        )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"cannot write directory {target}: a file is in the way")
    if target.is_dir():
        problem = _snapshot_dir_problem(target)
        if problem:
            raise UsageError(
                f"{target} is not a kstream snapshot directory: it {problem}; kstream "
                "replaces only its own snapshots, even with --force: choose another name"
            )
        if any(target.iterdir()) and not force:
            raise OutputError(f"{target} holds a kstream snapshot; use --force to replace it")
    parent = target.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {target}: {parent} is not a writable directory")


# =========================================================================== writing


class Spool:
    """A unit's objects as they arrive, in the output's encoding, in a file of
    its own; appended to the output when the unit is complete."""

    def __init__(
        self,
        path: Path,
        level: int | None,
        transform: Callable[[bytes], bytes] | None,
    ) -> None:
        self.path = path
        self.level = level
        self.transform = transform
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.file: IO[bytes] = os.fdopen(fd, "w+b")
        self._open_writer()

    def _open_writer(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0  # uncompressed bytes
        self.objects = 0
        # archives: the first MT_AFTER bytes wait in memory; a unit that ends there is
        # compressed in one go by this thread, a bigger one by zstd's worker threads
        self._head: io.BytesIO | None = None
        if self.level is None:
            self._w: Any = self.file
        else:
            self._head = io.BytesIO()
            self._w = self._head

    def _compress(self, threads: int) -> None:
        """From here on, compress into the file (one frame: the unit's)."""
        import zstandard

        assert self.level is not None
        if threads > 0:
            params = zstandard.ZstdCompressionParameters.from_level(
                self.level, threads=threads, job_size=MT_JOB, write_checksum=1
            )
            cctx = zstandard.ZstdCompressor(compression_params=params)
        else:
            cctx = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
        head, self._head = self._head, None
        self._w = cctx.stream_writer(self.file, closefd=False, write_return_read=True)
        if head is not None:
            self._w.write(head.getbuffer())

    def write(self, obj: bytes) -> None:
        if self.transform is not None:
            obj = self.transform(obj)
        self.sha.update(obj)
        self.sha.update(b"\n")
        self._w.write(obj)
        self._w.write(b"\n")
        self.size += len(obj) + 1
        self.objects += 1
        if self._head is not None and self.size > MT_AFTER:
            self._compress(MT_THREADS)

    def reset(self) -> None:
        if self._w is not self.file and self._head is None:
            with contextlib.suppress(Exception):
                self._w.flush()
        self.file.seek(0)
        self.file.truncate()
        self._open_writer()

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        """Rewrite the spool with the changes that arrived before the marker."""
        self.finish()
        old = self.file
        self.file.seek(0)
        tmp = self.path.with_suffix(".fold")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.file = os.fdopen(fd, "w+b")
        transform, self.transform = self.transform, None
        self._open_writer()
        pending = dict(overrides)
        for line in _iter_spool_lines(old, self.level is not None):
            key = _key(line)
            if key in pending:
                new = pending.pop(key)
                if new is not None:
                    self.write(transform(new) if transform else new)
            else:
                self.write(line)
        for new in pending.values():
            if new is not None:
                self.write(transform(new) if transform else new)
        self.transform = transform
        old.close()
        os.replace(tmp, self.path)

    def finish(self) -> None:
        try:
            if self._head is not None:
                self._compress(0)
            if self._w is not self.file:
                import zstandard

                self._w.flush(zstandard.FLUSH_FRAME)
            self.file.flush()
        except OSError as e:  # disk full, file size limit: the last buffered bytes
            raise OutputError(f"cannot write: {e.strerror or e}") from None

    def close(self, delete: bool = True) -> None:
        with contextlib.suppress(Exception):
            self.file.close()
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _iter_spool_lines(f: IO[bytes], compressed: bool) -> Iterator[bytes]:
    f.seek(0)
    src: IO[bytes] = f
    if compressed:
        import zstandard

        src = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True, closefd=False)
    from kstream.stream import iter_lines

    yield from iter_lines(iter(lambda: src.read(COPY_BUF), b""))


def _key(line: bytes) -> tuple[str, str]:
    md = deepjson.loads(line).get("metadata") or {}
    return (str(md.get("namespace") or ""), str(md.get("name") or ""))


@dataclass
class Entry:
    """A unit's record in the manifest."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    namespace: str | None
    status: str
    method: str = ""
    resourceVersion: str = ""
    objects: int = 0
    bytes: int = 0
    duration: float = 0.0
    retries: int = 0
    error: str | None = None
    fallback: str | None = None  # why LIST was used: the full text, server's words included
    fallbackCode: str | None = None  # the same in a few words (stream.FALLBACKS)
    sha256: str = ""
    offset: int | None = None
    length: int | None = None
    file: str | None = None

    @property
    def name(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        return {k: v for k, v in d.items() if v is not None or k in ("namespace", "error")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class Writer:
    """Base of the three outputs. Units are appended in order by one thread."""

    format = ""

    def __init__(self, path: str, force: bool) -> None:
        self.path = path
        self.force = force
        self.entries: list[Entry] = []
        self.spool_dir = Path(".")

    def new_spool(self, name: str, transform: Callable[[bytes], bytes] | None) -> Spool:
        return Spool(self.spool_dir / name, None, transform)

    def append(self, entry: Entry, spool: Spool) -> None:
        raise NotImplementedError

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        """Make the output visible; returns where it went."""
        raise NotImplementedError

    def abort(self) -> None:
        """Remove every temporary file."""


def _check_target(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise OutputError(f"{path} exists; use --force to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    if path.exists() and path.is_dir() != (path.suffix == "" and path.is_dir()):
        raise OutputError(f"cannot replace {path}: it is a directory")


def _partial_name(path: Path) -> Path:
    p = path.with_name(path.name + ".partial")
    n = 1
    while p.exists():
        n += 1
        p = path.with_name(f"{path.name}.partial{n}")
    return p


def _write_guard(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except OSError as e:
        raise OutputError(f"cannot write {what}: {e.strerror or e}") from None


class ArchiveWriter(Writer):
    format = "zst"

    def __init__(
        self, path: str, force: bool, level: int = 3, header: dict[str, Any] | None = None
    ) -> None:
        super().__init__(path, force)
        self.level = level
        self.target = Path(path)
        _check_target(self.target, force)
        if self.target.is_dir():
            raise OutputError(f"cannot write {self.target}: it is a directory")
        parent = self.target.parent
        self.spool_dir = Path(
            _write_guard(
                lambda: tempfile.mkdtemp(
                    prefix=f".{self.target.name}.", suffix=".kstream-tmp", dir=parent
                ),
                str(self.target),
            )
        )
        self.tmp = self.spool_dir / "archive"
        fd = _write_guard(
            lambda: os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(self.target)
        )
        self.out = os.fdopen(fd, "wb")
        head = {"format": FORMAT, "version": FORMAT_VERSION, **(header or {})}
        self.header = json.dumps(head).encode()
        self._w(skippable(MAGIC_HEADER, self.header))

    def _w(self, data: bytes) -> None:
        _write_guard(lambda: self.out.write(data), str(self.target))

    def new_spool(self, name: str, transform: Callable[[bytes], bytes] | None) -> Spool:
        return Spool(self.spool_dir / name, self.level, transform)

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        entry.offset = self.out.tell()
        spool.file.seek(0)
        _write_guard(lambda: shutil.copyfileobj(spool.file, self.out, COPY_BUF), str(self.target))
        entry.length = self.out.tell() - entry.offset
        spool.close()
        self.entries.append(entry)

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        manifest = {**manifest, "resources": [e.to_json() for e in self.entries]}
        off = self.out.tell()
        body = json.dumps(manifest, indent=None).encode()
        self._w(skippable(MAGIC_MANIFEST, body))
        digest = hashlib.sha256(self.header + body).digest()
        self._w(skippable(MAGIC_FOOTER, FOOTER_TAG + digest + struct.pack("<Q", off)))
        _write_guard(self.out.flush, str(self.target))
        _write_guard(lambda: os.fsync(self.out.fileno()), str(self.target))
        self.out.close()
        dest = _partial_name(self.target) if interrupted else self.target
        os.replace(self.tmp, dest)
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        return str(dest)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.out.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)


class NdjsonWriter(Writer):
    """One NDJSON file, or stdout (`-`)."""

    format = "ndjson"

    def __init__(self, path: str, force: bool) -> None:
        super().__init__(path, force)
        self.stdout = path == "-"
        if self.stdout:
            self.spool_dir = Path(tempfile.mkdtemp(prefix="kstream-"))
            self.out: IO[bytes] = sys.stdout.buffer
            self.tmp: Path | None = None
        else:
            self.target = Path(path)
            _check_target(self.target, force)
            if self.target.is_dir():
                raise OutputError(f"cannot write {self.target}: it is a directory")
            self.spool_dir = Path(
                _write_guard(
                    lambda: tempfile.mkdtemp(
                        prefix=f".{self.target.name}.",
                        suffix=".kstream-tmp",
                        dir=self.target.parent,
                    ),
                    str(self.target),
                )
            )
            tmp = self.tmp = self.spool_dir / "out.ndjson"
            fd = _write_guard(
                lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                str(self.target),
            )
            self.out = os.fdopen(fd, "wb")

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        spool.file.seek(0)
        try:
            shutil.copyfileobj(spool.file, self.out, COPY_BUF)
            if self.stdout:
                self.out.flush()
        except BrokenPipeError:
            raise OutputError("stdout was closed (broken pipe)") from None
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        spool.close()
        self.entries.append(entry)

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        if self.stdout:
            with contextlib.suppress(BrokenPipeError):
                self.out.flush()
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            return "stdout"
        assert self.tmp is not None
        _write_guard(self.out.flush, str(self.target))
        _write_guard(lambda: os.fsync(self.out.fileno()), str(self.target))
        self.out.close()
        dest = _partial_name(self.target) if interrupted else self.target
        os.replace(self.tmp, dest)
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        return str(dest)

    def abort(self) -> None:
        if not self.stdout:
            with contextlib.suppress(Exception):
                self.out.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)


def unit_file_name(entry_group: str, version: str, resource: str, namespace: str | None) -> str:
    group = entry_group or "core"
    ns = f".ns-{namespace}" if namespace else ""
    return f"{group}_{version}_{resource}{ns}.ndjson"


class DirectoryWriter(Writer):
    """One NDJSON file per unit and manifest.json, written in a temporary sibling
    directory; an existing snapshot at the name is swapped out only once the new
    one is complete, and only if it is a kstream snapshot (see check_output)."""

    format = "dir"

    def __init__(self, path: str, force: bool) -> None:
        super().__init__(path, force)
        self.target = _dir_target(path)
        _check_directory_target(self.target, force)
        parent = self.target.parent
        self.spool_dir = Path(
            _write_guard(
                lambda: tempfile.mkdtemp(
                    prefix=f".{self.target.name}.", suffix=".kstream-tmp", dir=parent
                ),
                str(self.target),
            )
        )
        os.chmod(self.spool_dir, 0o700)

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        spool.close(delete=False)
        entry.file = spool.path.name
        self.entries.append(entry)

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        manifest = {**manifest, "resources": [e.to_json() for e in self.entries]}
        mpath = self.spool_dir / MANIFEST_NAME
        fd = _write_guard(
            lambda: os.open(mpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), str(mpath)
        )
        with os.fdopen(fd, "w") as f:
            _write_guard(lambda: json.dump(manifest, f, indent=2), str(mpath))
        for p in self.spool_dir.iterdir():
            if p.name != MANIFEST_NAME and p.name not in {e.file for e in self.entries}:
                p.unlink()
        if interrupted:
            dest = _partial_name(self.target)
            os.replace(self.spool_dir, dest)
            return str(dest)
        if not self.target.exists():
            os.replace(self.spool_dir, self.target)
            return str(self.target)
        # The new snapshot is complete: swap it in. Check the old one again (it
        # may have changed during the dump); what is not a kstream snapshot stays.
        problem = "" if self.target.is_dir() else "is no longer a directory"
        problem = problem or _snapshot_dir_problem(self.target)
        if problem:
            dest = _partial_name(self.target)
            os.replace(self.spool_dir, dest)
            raise OutputError(
                f"{self.target} changed during the dump: it {problem}; it is left "
                f"alone and the new snapshot is in {dest}"
            )
        old = Path(
            _write_guard(
                lambda: tempfile.mkdtemp(
                    prefix=f".{self.target.name}.", suffix=".kstream-old", dir=self.target.parent
                ),
                str(self.target),
            )
        )
        _write_guard(lambda: os.replace(self.target, old), str(self.target))
        try:
            os.replace(self.spool_dir, self.target)
        except OSError as e:
            os.replace(old, self.target)  # put the old snapshot back
            raise OutputError(f"cannot write {self.target}: {e.strerror or e}") from None
        shutil.rmtree(old, ignore_errors=True)
        return str(self.target)

    def abort(self) -> None:
        shutil.rmtree(self.spool_dir, ignore_errors=True)


def open_writer(path: str, fmt: str, force: bool, level: int, header: dict[str, Any]) -> Writer:
    if fmt == "zst":
        return ArchiveWriter(path, force, level, header)
    if fmt == "dir":
        return DirectoryWriter(path, force)
    return NdjsonWriter(path, force)


# =========================================================================== reading


@dataclass
class Snapshot:
    """A snapshot opened for reading: the manifest (when the format has one) and
    a way to read each unit's lines, or all lines."""

    path: str
    format: str  # zst | dir | ndjson | ndjson.zst | json (a List document, e.g. kubectl -o json)
    manifest: dict[str, Any] | None
    entries: list[Entry] = field(default_factory=list)
    problem: str = ""  # why this snapshot is not complete ("" when it is)

    @property
    def complete(self) -> bool:
        return not self.problem

    def lines(self, entry: Entry | None = None, verify: bool = True) -> Iterator[bytes]:
        """The object lines of one entry (or of the whole snapshot), streamed."""
        if entry is None:
            if self.format in ("zst", "dir"):
                for e in self.entries:
                    yield from self.lines(e, verify)
                return
            if self.format == "json":
                yield from _json_list_lines(self.path)
                return
            yield from _ndjson_lines(self.path, self.format == "ndjson.zst")
            return
        if self.format == "dir":
            assert entry.file is not None
            path = Path(self.path) / entry.file
            try:
                f = open(path, "rb")  # noqa: SIM115
            except OSError as e:
                raise SnapshotError(f"{path}: {e.strerror}") from None
            with f:
                yield from _checked(_lines_of(f), entry, verify, str(path))
            return
        if self.format == "zst":
            assert entry.offset is not None and entry.length is not None
            with open(self.path, "rb") as f:
                f.seek(entry.offset)
                yield from _checked(
                    _zstd_frame_lines(f, entry.length, self.path), entry, verify, self.path
                )
            return
        raise SnapshotError(f"{self.path}: has no per-resource index")


def _lines_of(f: IO[bytes]) -> Iterator[bytes]:
    from kstream.stream import iter_lines

    yield from iter_lines(iter(lambda: f.read(COPY_BUF), b""))


def _zstd_frame_lines(f: IO[bytes], length: int, path: str) -> Iterator[bytes]:
    import zstandard

    from kstream.stream import iter_lines

    limited = io.BufferedReader(_Limited(f, length), COPY_BUF)
    reader = zstandard.ZstdDecompressor().stream_reader(limited, read_across_frames=True)

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                c = reader.read(COPY_BUF)
                if not c:
                    return
                yield c
        except zstandard.ZstdError as e:
            raise SnapshotError(f"{path}: corrupted data ({e})") from None

    yield from iter_lines(chunks())


class _Limited(io.RawIOBase):
    def __init__(self, f: IO[bytes], n: int) -> None:
        self.f, self.n = f, n

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.n <= 0:
            return 0
        data = self.f.read(min(len(b), self.n))
        if not data:
            raise SnapshotError("archive ends inside a resource's data (truncated)")
        b[: len(data)] = data
        self.n -= len(data)
        return len(data)


def _checked(lines: Iterator[bytes], entry: Entry, verify: bool, where: str) -> Iterator[bytes]:
    sha = hashlib.sha256()
    n = 0
    for line in lines:
        if verify:
            sha.update(line)
            sha.update(b"\n")
        n += 1
        yield line
    if verify and entry.sha256 and sha.hexdigest() != entry.sha256:
        raise SnapshotError(f"{where}: checksum mismatch in {entry.name} (corrupted)")
    if n != entry.objects:
        raise SnapshotError(f"{where}: {entry.name} has {n} objects, manifest says {entry.objects}")


def _zstd_frames(data: Iterator[bytes], path: str) -> Iterator[bytes]:
    """Decompress concatenated zstd frames; a last frame cut short is an error
    (a stream reader would quietly return what it had)."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    in_frame = False
    for chunk in data:
        while chunk:
            yield obj.decompress(chunk)
            in_frame = True
            if obj.eof:
                chunk = obj.unused_data
                obj = dctx.decompressobj()
                in_frame = False
            else:
                chunk = b""
    if in_frame:
        raise SnapshotError(f"{path}: the compressed data is cut short (truncated)")


# how much of a file tells a JSON List document from NDJSON
JSON_LIST_PEEK = 64 * 1024


def _is_json_list(head: bytes) -> bool:
    """A JSON document whose top level has an `items` array (`kubectl get -o
    json`, compact or pretty-printed), as opposed to NDJSON, whose first line is
    an object: no Kubernetes object has a top-level `items`."""
    from kstream.listpage import PageError, PageReader

    r = PageReader()
    try:
        r.feed(head)
    except PageError:
        return False
    return r.items_seen


def _json_list_lines(path: str) -> Iterator[bytes]:
    """The items of a JSON List document as compact lines, streamed: the same
    page reader as the LIST path, so numbers and strings stay as written."""
    from kstream.listpage import HAS_API_VERSION, HAS_KIND, PageError, PageReader, compact

    typed = HAS_KIND | HAS_API_VERSION
    page = PageReader()
    n = 0
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(COPY_BUF), b""):
                for item, flags in page.feed(chunk):
                    n += 1
                    yield _list_item(path, n, item, flags, typed, compact)
            for item, flags in page.close():
                n += 1
                yield _list_item(path, n, item, flags, typed, compact)
    except PageError as e:
        what = "cut short (truncated)" if e.truncated else f"not valid JSON ({e})"
        raise SnapshotError(f"{path}: the JSON document is {what}") from None
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror}") from None


def _list_item(
    path: str, n: int, item: bytes, flags: int, typed: int, compact: Callable[[bytes], bytes]
) -> bytes:
    if flags != typed:
        raise SnapshotError(f"{path}: item {n} of the list has no kind and apiVersion")
    if b"\n" in item or b"\r" in item:
        return compact(item)
    return item


def _ndjson_lines(path: str, compressed: bool) -> Iterator[bytes]:
    import zstandard

    from kstream.stream import iter_lines

    f: Any = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        tail = b""

        def raw() -> Iterator[bytes]:
            return iter(lambda: f.read(COPY_BUF), b"")

        def chunks() -> Iterator[bytes]:
            nonlocal tail
            try:
                for c in _zstd_frames(raw(), path) if compressed else raw():
                    if c:
                        tail = c[-1:]
                        yield c
            except zstandard.ZstdError as e:
                raise SnapshotError(f"{path}: corrupted zstd data ({e})") from None

        for n, line in enumerate(iter_lines(chunks()), 1):
            if not line.strip():
                continue
            if line[:1] != b"{":
                raise SnapshotError(f"{path}: line {n} is not a JSON object")
            yield line
        if tail and tail != b"\n":
            raise SnapshotError(f"{path}: the last line is cut short (truncated)")
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def open_snapshot(path: str) -> Snapshot:
    """Open any snapshot kstream writes; raise SnapshotError for what is not one."""
    if path == "-":
        return Snapshot(path, "ndjson", None)
    p = Path(path)
    if not p.exists():
        raise SnapshotError(f"{path}: no such file or directory")
    if p.is_dir():
        mpath = p / MANIFEST_NAME
        if not mpath.exists():
            raise SnapshotError(f"{path}: not a kstream snapshot directory (no {MANIFEST_NAME})")
        try:
            manifest = json.loads(mpath.read_text())
        except (ValueError, OSError) as e:
            raise SnapshotError(f"{mpath}: unreadable manifest ({type(e).__name__})") from None
        return _from_manifest(path, "dir", manifest)
    try:
        f = open(p, "rb")  # noqa: SIM115
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror}") from None
    with f:
        head = f.read(8)
        if not head:
            raise SnapshotError(f"{path}: empty file")
        magic = struct.unpack("<I", head[:4])[0] if len(head) >= 4 else 0
        if magic == ZSTD_MAGIC:
            return Snapshot(path, "ndjson.zst", None)
        if magic == MAGIC_HEADER:
            return _open_archive(path, f)
        if 0x184D2A50 <= magic <= 0x184D2A5F:
            raise SnapshotError(f"{path}: not a kstream archive (unknown zstd skippable frame)")
        if head.lstrip()[:1] == b"{":
            f.seek(0)
            if _is_json_list(f.read(JSON_LIST_PEEK)):
                return Snapshot(path, "json", None)
            return Snapshot(path, "ndjson", None)
        raise SnapshotError(f"{path}: not a kstream snapshot (neither an archive nor NDJSON)")


def _open_archive(path: str, f: IO[bytes]) -> Snapshot:
    f.seek(0)
    hdr = f.read(8)
    size = struct.unpack("<I", hdr[4:8])[0] if len(hdr) == 8 else 0
    if size > 1 << 20:
        raise SnapshotError(f"{path}: corrupted archive header")
    header_bytes = f.read(size)
    try:
        header = json.loads(header_bytes)
    except ValueError:
        raise SnapshotError(f"{path}: corrupted archive header") from None
    if header.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not a kstream archive")
    if header.get("version") != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: archive format version {header.get('version')} is not supported "
            f"(this kstream reads version {FORMAT_VERSION})"
        )
    end = f.seek(0, os.SEEK_END)
    if end < FOOTER_SIZE:
        raise SnapshotError(f"{path}: truncated archive (no end marker)")
    f.seek(end - FOOTER_SIZE)
    footer = f.read(FOOTER_SIZE)
    magic, fsize = struct.unpack("<II", footer[:8])
    if magic != MAGIC_FOOTER or fsize != FOOTER_PAYLOAD or footer[8:16] != FOOTER_TAG:
        raise SnapshotError(
            f"{path}: truncated archive (no end marker): the dump was cut short or the copy is incomplete"
        )
    digest = footer[16:48]
    (moff,) = struct.unpack("<Q", footer[48:56])
    if moff >= end:
        raise SnapshotError(f"{path}: corrupted archive (bad manifest offset)")
    f.seek(moff)
    mh = f.read(8)
    if len(mh) < 8:
        raise SnapshotError(f"{path}: corrupted archive (bad manifest offset)")
    mmagic, msize = struct.unpack("<II", mh)
    if mmagic != MAGIC_MANIFEST or moff + 8 + msize + FOOTER_SIZE != end:
        raise SnapshotError(f"{path}: corrupted archive (manifest)")
    body = f.read(msize)
    if hashlib.sha256(header_bytes + body).digest() != digest:
        raise SnapshotError(f"{path}: corrupted archive (header or manifest checksum mismatch)")
    try:
        manifest = json.loads(body)
    except ValueError:
        raise SnapshotError(f"{path}: corrupted archive (manifest is not JSON)") from None
    snap = _from_manifest(path, "zst", manifest)
    for e in snap.entries:
        if e.offset is None or e.length is None or e.offset + e.length > moff:
            raise SnapshotError(f"{path}: corrupted archive (bad index for {e.name})")
    return snap


def _from_manifest(path: str, fmt: str, manifest: Any) -> Snapshot:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not a kstream manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise SnapshotError(f"{path}: manifest version {manifest.get('version')} is not supported")
    try:
        entries = [Entry.from_json(d) for d in manifest.get("resources") or []]
    except TypeError:
        raise SnapshotError(f"{path}: corrupted manifest") from None
    problem = ""
    status = manifest.get("status")
    if status == "interrupted":
        problem = "the dump was interrupted: this snapshot is incomplete"
    return Snapshot(path, fmt, manifest, entries, problem)
