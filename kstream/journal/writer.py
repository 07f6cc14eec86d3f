"""Writing a journal (`dump --follow`): segments of change events, in the layout
of `kstream/journal/format.py`.

`JournalWriter` is driven by one thread: `write()` appends an event to the open
segment's current zstd frame (compressed as it goes, so memory stays flat);
`tick()` ends the frame (flush + fsync) once FLUSH_INTERVAL has passed since
the last flush, and seals the segment (manifest + footer, built like an
archive's) when it reached `rotate_size` uncompressed bytes or `rotate_interval`
seconds; `close()` flushes and seals. A segment is created with its first event,
so a quiet run writes no empty segments.

After a crash (kill -9, power cut) the newest segment has no footer:
`seal_open_segment()` keeps its whole frames, cuts the rest (a frame cut short,
a manifest without its footer) and seals it. `recover()` does that for a journal
and returns where each unit's stream stands (`Positions`), for `--resume`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from kstream.errors import OutputError, SnapshotError, UsageError
from kstream.journal.format import (
    BASE_NAME,
    FLUSH_INTERVAL,
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    META_NAME,
    ROTATE_INTERVAL,
    ROTATE_SIZE,
    SEGMENT_DIR,
    SEGMENT_FORMAT,
    SEGMENT_VERSION,
    Event,
    FrameRecord,
    SegmentManifest,
    now_time,
    position_key,
    segment_name,
    segment_number,
)
from kstream.store.snapshot import (
    FOOTER_PAYLOAD,
    FOOTER_SIZE,
    FOOTER_TAG,
    MAGIC_FOOTER,
    MAGIC_HEADER,
    MAGIC_MANIFEST,
    ZSTD_MAGIC,
    DumpOptions,
)
from kstream.store.writers import own_dir_problem, skippable

if TYPE_CHECKING:
    from kstream.cluster.plan import Plan
    from kstream.dump import DumpSettings

# events that move a unit's position (RESYNC/SYNC do not: an open resync changes nothing)
POSITION_TYPES = frozenset(("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "SYNCED"))
READ_BUF = 1024 * 1024


def _guard(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except OSError as e:
        raise OutputError(f"cannot write {what}: {e.strerror or e}") from None


def _event_fields(line: bytes) -> tuple[str, str, str, str]:
    """(time, type, position key, rv) of an encoded event line."""
    ev = Event.decode(line)
    return ev.time, ev.type, position_key(ev.resource, ev.namespace), ev.rv


# --------------------------------------------------------------------------- a segment


def _sealing(header: bytes, m: SegmentManifest, offset: int) -> bytes:
    """What seals a segment whose frames end at `offset`: the manifest, then the
    footer (sha256 of header + manifest, the manifest's offset)."""
    body = json.dumps(m.to_json()).encode()
    digest = hashlib.sha256(header + body).digest()
    return skippable(MAGIC_MANIFEST, body) + skippable(
        MAGIC_FOOTER, FOOTER_TAG + digest + struct.pack("<Q", offset)
    )


class SegmentWriter:
    """One segment file being written: header, frames, then sealed."""

    def __init__(self, path: Path, number: int, level: int, opened: float) -> None:
        import zstandard

        self.path = path
        self.number = number
        self.created = now_time()
        self.opened = opened  # on the writer's clock (rotate_interval)
        self.cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
        fd = _guard(lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(path))
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        head = {
            "format": SEGMENT_FORMAT,
            "version": SEGMENT_VERSION,
            "segment": number,
            "created": self.created,
        }
        self.header = json.dumps(head).encode()
        self._write(skippable(MAGIC_HEADER, self.header))
        self.manifest = SegmentManifest(segment=number, created=self.created, sealed="")
        self.size = 0  # uncompressed event bytes
        self._frame: Any = None  # the zstd stream of the frame being written
        self._frame_offset = 0
        self._frame_events = 0
        self._frame_sha = hashlib.sha256()
        self._pending: dict[str, str] = {}  # positions of the frame being written
        self._pending_first = ""
        self._pending_last = ""

    def _write(self, data: bytes) -> None:
        _guard(lambda: self.file.write(data), str(self.path))

    def write(self, line: bytes, ev_time: str, ev_type: str, key: str, rv: str) -> None:
        if self._frame is None:
            self._frame_offset = self.file.tell()
            self._frame = self.cctx.stream_writer(self.file, closefd=False)
            self._frame_events = 0
            self._frame_sha = hashlib.sha256()
        _guard(lambda: self._frame.write(line + b"\n"), str(self.path))
        self._frame_sha.update(line)
        self._frame_sha.update(b"\n")
        self._frame_events += 1
        self.size += len(line) + 1
        if ev_type in POSITION_TYPES and rv:
            self._pending[key] = rv
        if not self._pending_first:
            self._pending_first = ev_time
        self._pending_last = ev_time

    @property
    def unflushed(self) -> int:
        return self._frame_events if self._frame is not None else 0

    def flush(self, sync: bool = True) -> None:
        """End the frame being written: everything so far is readable after a crash."""
        import zstandard

        if self._frame is None:
            return
        frame, self._frame = self._frame, None
        _guard(lambda: frame.flush(zstandard.FLUSH_FRAME), str(self.path))
        _guard(self.file.flush, str(self.path))
        if sync:
            _guard(lambda: os.fsync(self.file.fileno()), str(self.path))
        m = self.manifest
        m.frames.append(
            FrameRecord(
                self._frame_offset,
                self.file.tell() - self._frame_offset,
                self._frame_events,
                self._frame_sha.hexdigest(),
            )
        )
        m.events += self._frame_events
        m.first = m.first or self._pending_first
        m.last = self._pending_last or m.last
        m.positions.update(self._pending)
        self._pending = {}
        self._pending_first = self._pending_last = ""

    def seal(self) -> SegmentManifest:
        self.flush(sync=False)
        m = self.manifest
        m.sealed = now_time()
        self._write(_sealing(self.header, m, self.file.tell()))
        _guard(self.file.flush, str(self.path))
        _guard(lambda: os.fsync(self.file.fileno()), str(self.path))
        self.file.close()
        return m

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()


# --------------------------------------------------------------------------- the journal


class JournalWriter:
    """The segments of one journal directory, written by one thread."""

    def __init__(
        self,
        directory: Path,
        level: int = 3,
        rotate_size: int = ROTATE_SIZE,
        rotate_interval: float = ROTATE_INTERVAL,
        flush_interval: float = FLUSH_INTERVAL,
        next_segment: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dir = Path(directory) / SEGMENT_DIR
        _guard(lambda: self.dir.mkdir(mode=0o700, exist_ok=True), str(self.dir))
        self.level = level
        self.rotate_size = rotate_size
        self.rotate_interval = rotate_interval
        self.flush_interval = flush_interval
        self.clock = clock
        if next_segment is None:
            next_segment = max(list_segments(directory).keys(), default=0) + 1
        self.next_segment = next_segment
        self.current: SegmentWriter | None = None
        self.last_flush = clock()
        self.sealed: list[SegmentManifest] = []  # sealed by this writer, in order
        self.events = 0

    def write(self, ev: Event) -> None:
        if self.current is None:
            path = self.dir / segment_name(self.next_segment)
            self.current = SegmentWriter(path, self.next_segment, self.level, self.clock())
            self.next_segment += 1
        self.current.write(
            ev.encode(), ev.time, ev.type, position_key(ev.resource, ev.namespace), ev.rv
        )
        self.events += 1

    def tick(self) -> None:
        """Flush when due; rotate when the segment is full or old enough."""
        cur = self.current
        if cur is None:
            return
        now = self.clock()
        if cur.unflushed and now - self.last_flush >= self.flush_interval:
            self.flush()
        if cur.size >= self.rotate_size or now - cur.opened >= self.rotate_interval:
            self.rotate()

    def flush(self) -> None:
        if self.current is not None:
            self.current.flush()
        self.last_flush = self.clock()

    def rotate(self) -> None:
        """Seal the open segment; the next event opens a new one."""
        cur, self.current = self.current, None
        if cur is not None:
            self.sealed.append(cur.seal())
        self.last_flush = self.clock()

    def close(self) -> None:
        self.rotate()

    def abandon(self) -> None:
        """Leave the open segment as a crash would (tests; a failed close)."""
        if self.current is not None:
            self.current.abandon()
            self.current = None


# --------------------------------------------------------------------------- reading back


def list_segments(directory: Path | str) -> dict[int, Path]:
    d = Path(directory) / SEGMENT_DIR
    out: dict[int, Path] = {}
    if not d.is_dir():
        return out
    for p in d.iterdir():
        n = segment_number(p.name)
        if n is not None:
            out[n] = p
    return dict(sorted(out.items()))


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    return data if len(data) == n else b""


def read_sealed_manifest(path: Path) -> SegmentManifest | None:
    """The manifest of a sealed segment (footer and checksum verified); None for
    a segment without a footer (open); SnapshotError for one that is corrupted."""
    with open(path, "rb") as f:
        head = _read_exact(f, 8)
        if not head:
            return None
        magic, hsize = struct.unpack("<II", head)
        header = _read_exact(f, hsize) if magic == MAGIC_HEADER and hsize < 1 << 20 else b""
        if not header:
            raise SnapshotError(f"{path}: not a kstream journal segment (bad header)")
        end = f.seek(0, os.SEEK_END)
        if end < 8 + hsize + FOOTER_SIZE:
            return None
        f.seek(end - FOOTER_SIZE)
        footer = f.read(FOOTER_SIZE)
        fmagic, fsize = struct.unpack("<II", footer[:8])
        if fmagic != MAGIC_FOOTER or fsize != FOOTER_PAYLOAD or footer[8:16] != FOOTER_TAG:
            return None
        (moff,) = struct.unpack("<Q", footer[48:56])
        f.seek(moff)
        mh = _read_exact(f, 8)
        if not mh:
            raise SnapshotError(f"{path}: corrupted segment (manifest offset)")
        mmagic, msize = struct.unpack("<II", mh)
        if mmagic != MAGIC_MANIFEST or moff + 8 + msize + FOOTER_SIZE != end:
            raise SnapshotError(f"{path}: corrupted segment (manifest)")
        body = f.read(msize)
        if hashlib.sha256(header + body).digest() != footer[16:48]:
            raise SnapshotError(f"{path}: corrupted segment (manifest checksum mismatch)")
        try:
            return SegmentManifest.from_json(json.loads(body))
        except (ValueError, TypeError, KeyError):
            raise SnapshotError(f"{path}: corrupted segment (manifest is not valid)") from None


def _frame_lines(f: IO[bytes], offset: int, length: int) -> list[bytes] | None:
    """The lines of one whole zstd frame at offset (None: cut short or corrupted)."""
    import zstandard

    f.seek(offset)
    data = f.read(length)
    if len(data) != length:
        return None
    try:
        d = zstandard.ZstdDecompressor().decompressobj()
        out = d.decompress(data)
    except zstandard.ZstdError:
        return None
    if not d.eof:
        return None
    if out and not out.endswith(b"\n"):
        return None
    return out.split(b"\n")[:-1] if out else []


def segment_events(path: Path) -> Iterator[bytes]:
    """The event lines of a sealed segment, frame by frame (checksums verified)."""
    m = read_sealed_manifest(path)
    if m is None:
        raise SnapshotError(f"{path}: segment is not sealed")
    with open(path, "rb") as f:
        for fr in m.frames:
            lines = _frame_lines(f, fr.offset, fr.length)
            h = hashlib.sha256()
            for ln in lines or []:
                h.update(ln + b"\n")
            if lines is None or h.hexdigest() != fr.sha256 or len(lines) != fr.events:
                raise SnapshotError(f"{path}: corrupted segment (frame at {fr.offset})")
            yield from lines


def _scan_frames(f: IO[bytes], start: int, end: int) -> Iterator[tuple[int, int, list[bytes]]]:
    """(offset, length, lines) of each whole zstd frame from start; stops at the
    first thing that is not a whole frame (a cut frame, a skippable frame)."""
    import zstandard

    pos = start
    while pos + 4 <= end:
        f.seek(pos)
        (magic,) = struct.unpack("<I", f.read(4))
        if magic != ZSTD_MAGIC:
            return
        f.seek(pos)
        d = zstandard.ZstdDecompressor().decompressobj()
        out = bytearray()
        consumed = 0
        try:
            while not d.eof:
                chunk = f.read(READ_BUF)
                if not chunk:
                    return  # cut short
                out += d.decompress(chunk)
                consumed += len(chunk)
        except zstandard.ZstdError:
            return
        length = consumed - len(d.unused_data)
        if out and not out.endswith(b"\n"):
            return
        yield pos, length, bytes(out).split(b"\n")[:-1] if out else []
        pos += length


def seal_open_segment(path: Path) -> SegmentManifest | None:
    """Seal a segment left open by a crash: keep its whole frames, cut the rest,
    write manifest and footer. None when nothing of it was whole (it is removed)."""
    with open(path, "r+b") as f:
        head = _read_exact(f, 8)
        magic, hsize = struct.unpack("<II", head) if head else (0, 0)
        header = _read_exact(f, hsize) if magic == MAGIC_HEADER and hsize < 1 << 20 else b""
        try:
            meta = json.loads(header) if header else None
        except ValueError:
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != SEGMENT_FORMAT:
            meta = None
    if meta is None:
        path.unlink()
        return None
    number = int(meta.get("segment") or segment_number(path.name) or 0)
    m = SegmentManifest(segment=number, created=str(meta.get("created") or ""), sealed="")
    start = 8 + hsize
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        keep = start
        for off, length, lines in _scan_frames(f, start, end):
            h = hashlib.sha256()
            for ln in lines:
                h.update(ln + b"\n")
                try:
                    t, typ, key, rv = _event_fields(ln)
                except ValueError:
                    raise SnapshotError(f"{path}: corrupted segment (not an event line)") from None
                m.first = m.first or t
                m.last = t
                if typ in POSITION_TYPES and rv:
                    m.positions[key] = rv
            m.frames.append(FrameRecord(off, length, len(lines), h.hexdigest()))
            m.events += len(lines)
            keep = off + length
        f.truncate(keep)
        f.seek(keep)
        m.sealed = now_time()
        f.write(_sealing(header, m, keep))
        f.flush()
        os.fsync(f.fileno())
    return m


# --------------------------------------------------------------------------- the directory


@dataclass
class Positions:
    """Where each unit's stream stands in a journal (for --resume)."""

    rvs: dict[str, str] = field(default_factory=dict)  # position key -> rv
    open_resync: set[str] = field(default_factory=set)  # units whose last resync is not closed
    sealed_tail: int | None = None  # the segment sealed after a crash, if any
    segments: int = 0
    next_segment: int = 1


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

    _guard(put, str(p))


def recover(directory: Path, base_rvs: dict[str, str]) -> Positions:
    """Seal the open tail left by a crash (only the newest segment may be open)
    and take each unit's position: the base's, then each segment's manifest in
    order; units whose last resync is not closed in the newest segment."""
    segs = list_segments(directory)
    pos = Positions(rvs=dict(base_rvs))
    numbers = list(segs)
    for i, n in enumerate(numbers):
        path = segs[n]
        m = read_sealed_manifest(path)
        if m is None:
            if i != len(numbers) - 1:
                raise SnapshotError(
                    f"{path}: corrupted journal: a segment other than the newest is not sealed"
                )
            m = seal_open_segment(path)
            pos.sealed_tail = n
            if m is None:
                continue
        pos.rvs.update(m.positions)
        pos.segments += 1
    pos.next_segment = (numbers[-1] + 1) if numbers else 1
    remaining = list_segments(directory)
    if remaining:
        newest = remaining[max(remaining)]
        opened: set[str] = set()
        for line in segment_events(newest):
            ev = Event.decode(line)
            key = position_key(ev.resource, ev.namespace)
            if ev.type == "RESYNC":
                opened.add(key)
            elif ev.type == "SYNCED":
                opened.discard(key)
        pos.open_resync = opened
    return pos


# what a kstream journal directory may hold (for --force and the refusal messages)
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
    from kstream.store.writers import format_of_name

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
