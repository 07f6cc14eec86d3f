"""Snapshot formats: writing them incrementally (reading is `kstream/store/snapshot.py`).

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
import errno
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from kstream.dataclass import dataclass
from kstream.errors import OutputError, StdoutClosed
from kstream.jsonlines import line_key
from kstream.store.format import (
    FOOTER_TAG,
    FORMAT,
    FORMAT_VERSION,
    MAGIC_FOOTER,
    MAGIC_HEADER,
    MAGIC_MANIFEST,
    MANIFEST_NAME,
    Entry,
    skippable,
)
from kstream.store.outputname import partial_name
from kstream.store.outputs import (
    OutputFormat,
    check_directory_target,
    check_remote,
    check_target,
    dir_target,
    remote_listed,
    snapshot_dir_problem,
)
from kstream.store.staging import Staging

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
# a spool's write buffer: one write(2) per SPOOL_BUF bytes, not one or two per object
SPOOL_BUF = 128 * 1024


class _Digest(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


class _NoDigest:
    """A spool's checksum where the output has no manifest to put it in."""

    def update(self, data: bytes | memoryview, /) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


class Spool:
    """A unit's objects as they arrive, in the output's encoding, in a file of
    its own; appended to the output when the unit is complete. `checksum`:
    keep the sha256 of its lines (`sha`) for the manifest; without, `sha`
    gives ""."""

    def __init__(
        self,
        path: Path,
        level: int | None,
        transform: Callable[[bytes], bytes] | None,
        checksum: bool = True,
    ) -> None:
        self.path = path
        self.level = level
        self.transform = transform
        self.checksum = checksum
        # one more each time what the file holds is dropped or rewritten (reset,
        # fold): bytes copied from it meanwhile (NdjsonWriter.follow) are stale
        self.generation = 0
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.file: IO[bytes] = os.fdopen(fd, "w+b", buffering=SPOOL_BUF)
        self._open_writer()

    def _open_writer(self) -> None:
        self.sha: _Digest = hashlib.sha256() if self.checksum else _NoDigest()
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

    def write_block(self, objs: memoryview, n: int) -> None:
        """n objects at once: their JSON joined by newlines (stream.WriteBlock)."""
        if self.transform is not None:
            for obj in bytes(objs).split(b"\n"):
                self.write(obj)
            return
        self.sha.update(objs)
        self.sha.update(b"\n")
        self._w.write(objs)
        self._w.write(b"\n")
        self.size += len(objs) + 1
        self.objects += n
        if self._head is not None and self.size > MT_AFTER:
            self._compress(MT_THREADS)

    def reset(self) -> None:
        if self._w is not self.file and self._head is None:
            with contextlib.suppress(Exception):
                self._w.flush()
        self.file.seek(0)
        self.file.truncate()
        self._open_writer()
        self.generation += 1

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
        for line in iter_spool_lines(old, self.level is not None):
            key = line_key(line)
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
        self.generation += 1

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


def copy_spool(spool: Spool, out: IO[bytes], start: int = 0) -> None:
    """A finished spool's bytes appended to `out`, in the kernel (sendfile(2))
    where it can: a read and a write of every MB through Python cost about a
    fifth of a --secrets include dump's CPU. `out` is flushed first and stays
    positioned at its end; where sendfile cannot (not Linux, an O_APPEND
    output, ...), and nothing was sent yet, the bytes are copied as before.
    `start`: the spool's bytes before it are in `out` already."""
    size = os.fstat(spool.file.fileno()).st_size
    sent = start
    if size > sent and hasattr(os, "sendfile"):
        out.flush()
        src, dst = spool.file.fileno(), out.fileno()
        try:
            while sent < size:
                n = os.sendfile(dst, src, sent, size - sent)
                if not n:
                    break
                sent += n
        except OSError as e:
            if sent > start or e.errno not in _NO_SENDFILE:
                raise
        if sent > start and out.seekable():  # the buffered file's idea of its position
            out.seek(os.lseek(dst, 0, os.SEEK_CUR))
    if sent < size:
        spool.file.seek(sent)
        shutil.copyfileobj(spool.file, out, COPY_BUF)


# sendfile(2) refusing this pair of files (nothing sent): copy instead
_NO_SENDFILE = {
    errno.EINVAL,
    errno.ENOSYS,
    errno.EBADF,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EXDEV,
}


def iter_spool_lines(f: IO[bytes], compressed: bool) -> Iterator[bytes]:
    f.seek(0)
    src: IO[bytes] = f
    if compressed:
        import zstandard

        src = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True, closefd=False)
    from kstream.jsonlines import iter_lines

    yield from iter_lines(iter(lambda: src.read(COPY_BUF), b""))


class Writer:
    """Base of the three outputs. Units are appended in order by one thread."""

    format = ""
    checksums = True  # the output's manifest holds each unit's sha256

    def __init__(self, path: str, force: bool) -> None:
        self.path = path
        self.force = force
        self.entries: list[Entry] = []
        self.spool_dir = Path(".")
        self.staging: Staging | None = None  # a local output's, beside its target

    def _stage(self, target: Path, note: Callable[[str], None] | None) -> Path:
        """This run's staging directory beside `target`, locked while it exists;
        stale ones of killed runs removed first (`kstream/store/staging.py`)."""
        self.staging = Staging.make(target, note=note)
        return self.staging.path

    def _unstage(self) -> None:
        """The staging directory removed or renamed: its lock goes."""
        if self.staging is not None:
            self.staging.release()

    def new_spool(self, name: str, transform: Callable[[bytes], bytes] | None) -> Spool:
        return Spool(self.spool_dir / name, None, transform, self.checksums)

    def append(self, entry: Entry, spool: Spool) -> None:
        raise NotImplementedError

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        """Make the output visible; returns where it went."""
        raise NotImplementedError

    def abort(self) -> None:
        """Remove every temporary file."""


def _partial_name(path: Path) -> Path:
    return Path(partial_name(str(path), lambda name: Path(name).exists()))


def _dir_beside(target: Path, suffix: str) -> Path:
    """A new private directory next to `target`, hidden and named after it, where
    an output is made before it takes the name (or an old one waits to go)."""
    return Path(
        _write_guard(
            lambda: tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent),
            str(target),
        )
    )


def _write_guard(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except OSError as e:
        raise OutputError(f"cannot write {what}: {e.strerror or e}") from None


class ArchiveWriter(Writer):
    format = "zst"

    def __init__(
        self,
        path: str,
        force: bool,
        level: int = 1,
        header: dict[str, Any] | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(path, force)
        self.level = level
        self.target = Path(path)
        check_target(self.target, force)
        self.spool_dir = self._stage(self.target, note)
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

    def _tell(self) -> int:
        return self.out.tell()

    def _write_index(self, manifest: dict[str, Any]) -> None:
        """The manifest, after the units, and the footer that finds it."""
        manifest = {**manifest, "resources": [e.to_json() for e in self.entries]}
        off = self._tell()
        body = json.dumps(manifest, indent=None).encode()
        self._w(skippable(MAGIC_MANIFEST, body))
        digest = hashlib.sha256(self.header + body).digest()
        self._w(skippable(MAGIC_FOOTER, FOOTER_TAG + digest + struct.pack("<Q", off)))

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        self._write_index(manifest)
        _write_guard(self.out.flush, str(self.target))
        _write_guard(lambda: os.fsync(self.out.fileno()), str(self.target))
        self.out.close()
        dest = _partial_name(self.target) if interrupted else self.target
        os.replace(self.tmp, dest)
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self._unstage()
        return str(dest)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.out.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self._unstage()


class NdjsonWriter(Writer):
    """One NDJSON file, or stdout (`-`)."""

    format = "ndjson"
    checksums = False  # no manifest

    def __init__(self, path: str, force: bool, note: Callable[[str], None] | None = None) -> None:
        super().__init__(path, force)
        self.stdout = path == "-"
        if self.stdout:
            self.spool_dir = Path(tempfile.mkdtemp(prefix="kstream-"))
            self.out: IO[bytes] = sys.stdout.buffer
            self.tmp: Path | None = None
        else:
            self.target = Path(path)
            check_target(self.target, force)
            self.spool_dir = self._stage(self.target, note)
            tmp = self.tmp = self.spool_dir / "out.ndjson"
            fd = _write_guard(
                lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                str(self.target),
            )
            self.out = os.fdopen(fd, "wb")
        self._sync = _SyncBehind()
        self._tail: _Tail | None = None

    def follow(self, spool: Spool) -> None:
        """Copy what the next unit to append has in its spool so far, while its
        worker still writes it, so that appending it at its end copies (and the
        fsync waits for) only the rest: the dump's last unit, usually its
        biggest, no longer copied and synced after the last stream ended. The
        output holds those bytes past the units appended (`_Tail.start`); a
        reset or fold of the spool meanwhile (its generation) and an interrupt
        cut them off again. Files only (stdout cannot be cut back)."""
        if self.stdout:
            return
        t = self._tail
        if t is None or t.spool is not spool:
            self.out.flush()
            if self.out.tell() == 0:  # the first unit: append adopts its spool as
                with contextlib.suppress(ValueError):  # the output; to disk meanwhile
                    self._sync.start(spool.file.fileno())
                return
            t = self._tail = _Tail(spool, self.out.tell(), spool.generation)
        try:
            gen = spool.generation
            if gen != t.generation or t.broken:
                self._cut(t.start)
                t.copied, t.generation, t.broken = 0, gen, False
            src, dst = spool.file.fileno(), self.out.fileno()
            size = os.fstat(src).st_size
            while t.copied < size:
                n = os.sendfile(dst, src, t.copied, size - t.copied)
                if not n:
                    break
                t.copied += n
            self.out.seek(t.start + t.copied)
        except (OSError, ValueError):  # a spool being replaced (fold), a full disk
            t.broken = True  # append copies it all
            return
        self._sync.start(dst)

    def _cut(self, offset: int) -> None:
        self.out.flush()
        os.ftruncate(self.out.fileno(), offset)
        self.out.seek(offset)

    def _adopt(self, spool: Spool) -> bool:
        """The first unit's spool, when nothing was written before it, becomes
        the output file itself (renamed, not copied)."""
        if self.stdout:
            return False
        if spool.path.parent != self.spool_dir or self.out.tell() != 0:
            return False
        assert self.tmp is not None
        self.out.close()
        os.replace(spool.path, self.tmp)
        self.out = os.fdopen(os.dup(spool.file.fileno()), "wb")
        self.out.seek(0, os.SEEK_END)
        return True

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        t, self._tail = self._tail, None
        try:
            if self._adopt(spool):
                pass
            elif (
                t is not None
                and t.spool is spool
                and not t.broken
                and t.generation == spool.generation
            ):
                copy_spool(spool, self.out, t.copied)  # the rest of it
            else:
                if t is not None:
                    self._cut(t.start)
                copy_spool(spool, self.out)
            self.out.flush()
        except BrokenPipeError:
            raise StdoutClosed() from None
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        spool.close()
        self.entries.append(entry)
        if not self.stdout:
            self._sync.start(self.out.fileno())

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        if self.stdout:
            with contextlib.suppress(BrokenPipeError):
                self.out.flush()
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            return "stdout"
        assert self.tmp is not None
        t, self._tail = self._tail, None
        if t is not None:  # an interrupt: not the unit follow() had started to copy
            start = t.start
            _write_guard(lambda: self._cut(start), str(self.target))
        _write_guard(self.out.flush, str(self.target))
        _write_guard(self._sync.wait, str(self.target))
        _write_guard(lambda: os.fsync(self.out.fileno()), str(self.target))
        self.out.close()
        dest = _partial_name(self.target) if interrupted else self.target
        os.replace(self.tmp, dest)
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self._unstage()
        return str(dest)

    def abort(self) -> None:
        if not self.stdout:
            with contextlib.suppress(Exception):
                self._sync.wait()
            with contextlib.suppress(Exception):
                self.out.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self._unstage()


@dataclass
class _Tail:
    """The unit NdjsonWriter.follow is copying: its spool, where its bytes
    start in the output, how many are there, of which generation."""

    spool: Spool
    start: int
    generation: int
    copied: int = 0
    broken: bool = False


class _SyncBehind:
    """fdatasync(2) of the output on a thread after each unit appended, so that
    the fsync before the rename waits only for what came since (at 100k objects,
    600 MB: a quarter of a second of the dump's wall time otherwise spent at its
    end). A write error it meets is raised by wait() (the kernel reports it to
    one sync only)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def start(self, fd: int) -> None:
        if self._thread is not None and self._thread.is_alive():
            return  # the fsync at the end takes what this one leaves
        self._thread = threading.Thread(target=self._run, args=(fd,), daemon=True)
        self._thread.start()

    def _run(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as e:
            if e.errno != errno.EBADF:  # a spool's file closed meanwhile (fold)
                self._error = self._error or e

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error


def unit_file_name(entry_group: str, version: str, resource: str, namespace: str | None) -> str:
    group = entry_group or "core"
    ns = f".ns-{namespace}" if namespace else ""
    return f"{group}_{version}_{resource}{ns}.ndjson"


class DirectoryWriter(Writer):
    """One NDJSON file per unit and manifest.json, written in a temporary sibling
    directory; an existing snapshot at the name is swapped out only once the new
    one is complete, and only if it is a kstream snapshot (see check_output)."""

    format = "dir"

    def __init__(self, path: str, force: bool, note: Callable[[str], None] | None = None) -> None:
        super().__init__(path, force)
        self.target = dir_target(path)
        check_directory_target(self.target, force)
        self.spool_dir = self._stage(self.target, note)
        os.chmod(self.spool_dir, 0o700)

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        spool.close(delete=False)
        entry.file = spool.path.name
        self.entries.append(entry)

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        try:
            return self._finish(manifest, interrupted)
        finally:
            self._unstage()  # renamed (into place, to NAME.partial) or left for the user

    def _finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        manifest = {**manifest, "resources": [e.to_json() for e in self.entries]}
        mpath = self.spool_dir / MANIFEST_NAME
        fd = _write_guard(
            lambda: os.open(mpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), str(mpath)
        )
        with os.fdopen(fd, "w") as f:
            _write_guard(lambda: json.dump(manifest, f, indent=2), str(mpath))
        keep = {MANIFEST_NAME, *(e.file for e in self.entries)}
        for p in self.spool_dir.iterdir():
            if p.name not in keep:
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
        problem = problem or snapshot_dir_problem(self.target)
        if problem:
            dest = _partial_name(self.target)
            os.replace(self.spool_dir, dest)
            raise OutputError(
                f"{self.target} changed during the dump: it {problem}; it is left "
                f"alone and the new snapshot is in {dest}"
            )
        old = _dir_beside(self.target, ".kstream-old")
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
        self._unstage()


def open_writer(
    path: str,
    fmt: OutputFormat,
    force: bool,
    level: int,
    header: dict[str, Any],
    note: Callable[[str], None] | None = None,
) -> Writer:
    """The writer of `path`; `note` hears of the staging directories of killed
    runs it removed beside a local target (`kstream/store/staging.py`)."""
    from kstream.store.objstore import is_url

    if is_url(path):
        if fmt == "zst":
            return RemoteArchiveWriter(path, force, level, header)
        if fmt == "dir":
            return RemoteDirectoryWriter(path, force)
        return RemoteNdjsonWriter(path, force)
    if fmt == "zst":
        return ArchiveWriter(path, force, level, header, note)
    if fmt == "dir":
        return DirectoryWriter(path, force, note)
    return NdjsonWriter(path, force, note)


# =========================================================================== object storage


class _RemoteFile:
    """One object being written (an archive or NDJSON): streamed into a multipart
    upload as it is produced, and kept in a local temporary file too, which is
    what goes to KEY.partial when the dump is interrupted (the parts of an
    unfinished upload cannot be made into another object). The object appears
    under its key only when complete."""

    def __init__(self, path: str, force: bool) -> None:
        from kstream.store import objstore

        self.loc = objstore.parse(path)
        check_remote(path, "zst", force)
        self.spool_dir = Path(tempfile.mkdtemp(prefix="kstream-", suffix=".kstream-tmp"))
        self.tmp = self.spool_dir / "upload"
        fd = _write_guard(
            lambda: os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(self.tmp)
        )
        self.local = os.fdopen(fd, "wb")
        self.upload = objstore.MultipartUpload(self.loc)
        self.out = objstore.Tee(self.local, self.upload)

    def write(self, data: bytes) -> None:
        _write_guard(lambda: self.out.write(data), str(self.tmp))

    def write_spool(self, spool: Spool) -> None:
        """A finished spool's bytes, appended."""
        spool.file.seek(0)
        for chunk in iter(lambda: spool.file.read(COPY_BUF), b""):
            self.write(chunk)

    def finish(self, interrupted: bool) -> str:
        from kstream.store import objstore

        _write_guard(self.local.flush, str(self.tmp))
        if not interrupted:
            self.upload.complete()
            self.local.close()
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            return self.loc.url
        self.upload.abort()
        self.local.close()
        dest = objstore.free_partial_name(self.loc)
        with open(self.tmp, "rb") as f:
            objstore.put_file(dest, f)
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        return dest.url

    def abort(self) -> None:
        self.upload.abort()
        with contextlib.suppress(Exception):
            self.local.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)


class RemoteArchiveWriter(ArchiveWriter):
    """The archive, into object storage (`_RemoteFile`)."""

    def __init__(
        self, path: str, force: bool, level: int = 1, header: dict[str, Any] | None = None
    ) -> None:
        Writer.__init__(self, path, force)
        self.level = level
        self.remote = _RemoteFile(path, force)
        self.spool_dir = self.remote.spool_dir
        head = {"format": FORMAT, "version": FORMAT_VERSION, **(header or {})}
        self.header = json.dumps(head).encode()
        self._w(skippable(MAGIC_HEADER, self.header))

    def _w(self, data: bytes) -> None:
        self.remote.write(data)

    def _tell(self) -> int:
        return self.remote.out.tell()

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        entry.offset = self._tell()
        self.remote.write_spool(spool)
        entry.length = self._tell() - entry.offset
        spool.close()
        self.entries.append(entry)

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        self._write_index(manifest)
        return self.remote.finish(interrupted)

    def abort(self) -> None:
        self.remote.abort()


class RemoteNdjsonWriter(Writer):
    """One NDJSON object, into object storage (`_RemoteFile`)."""

    format = "ndjson"
    checksums = False  # no manifest

    def __init__(self, path: str, force: bool) -> None:
        super().__init__(path, force)
        self.remote = _RemoteFile(path, force)
        self.spool_dir = self.remote.spool_dir

    def append(self, entry: Entry, spool: Spool) -> None:
        spool.finish()
        self.remote.write_spool(spool)
        spool.close()
        self.entries.append(entry)

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        return self.remote.finish(interrupted)

    def abort(self) -> None:
        self.remote.abort()


class RemoteDirectoryWriter(DirectoryWriter):
    """A directory snapshot under a prefix: the units are spooled locally as for
    a local directory, and uploaded when the dump ends, manifest.json last (the
    snapshot exists once its manifest does). With --force, the old snapshot's
    manifest is deleted first, so that no reader takes a mix of the two for a
    snapshot, and its objects that the new one does not have go at the end.
    Interrupted, it goes under PREFIX.partial/."""

    def __init__(self, path: str, force: bool) -> None:
        from kstream.store import objstore

        Writer.__init__(self, path, force)
        self.prefix = objstore.parse(path).as_prefix()
        check_remote(path, "dir", force)
        self.spool_dir = Path(tempfile.mkdtemp(prefix="kstream-", suffix=".kstream-tmp"))
        os.chmod(self.spool_dir, 0o700)
        self.uploaded: list[Any] = []

    def finish(self, manifest: dict[str, Any], interrupted: bool) -> str:
        from kstream.store import objstore

        manifest = {**manifest, "resources": [e.to_json() for e in self.entries]}
        dest = self.prefix
        if interrupted:
            bucket = self.prefix.bucket
            key = partial_name(
                self.prefix.key.rstrip("/"),
                lambda k: bool(objstore.list_keys(objstore.Location(bucket, k), "write")),
                tail="/",
            )
            dest = objstore.Location(bucket, key)
        old = remote_listed(dest) if not interrupted else set()
        if old:
            objstore.delete(dest.child(MANIFEST_NAME))
        for e in self.entries:
            assert e.file is not None
            loc = dest.child(e.file)
            self.uploaded.append(loc)
            with open(self.spool_dir / e.file, "rb") as f:
                objstore.put_file(loc, f)
        mloc = dest.child(MANIFEST_NAME)
        self.uploaded.append(mloc)
        objstore.put_bytes(mloc, json.dumps(manifest, indent=2).encode())
        for name in sorted((old or set()) - {MANIFEST_NAME, *(e.file for e in self.entries)}):
            objstore.delete(dest.child(name))
        self.uploaded = []
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        return str(dest.url)

    def abort(self) -> None:
        """Remove what was uploaded (best effort) and the local spools."""
        from kstream.store import objstore

        for loc in reversed(self.uploaded):
            with contextlib.suppress(Exception):
                objstore.delete(loc)
        self.uploaded = []
        shutil.rmtree(self.spool_dir, ignore_errors=True)
