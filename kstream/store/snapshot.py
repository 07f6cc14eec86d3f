"""Reading snapshots: every format kstream reads, behind one `open_snapshot()`.

Formats (the `format` of a `Snapshot`):

- `zst`: kstream's zstd archive (layout in the docstring of `kstream/store/writers.py`,
  which writes it): header, one frame per unit, manifest, footer;
- `dir`: a directory with one NDJSON file per unit and `manifest.json`;
- `ndjson`: one NDJSON file; no manifest;
- `ndjson.zst`: compressed NDJSON (plain zstd frames); no manifest;
- `json`: a JSON List document such as `kubectl get -A -o json` writes, read with
  the LIST page reader (`kstream/listpage.py`); no manifest.

`-` (stdin) may hold any of the file formats, told apart by its first bytes as a
file's are: an archive is copied to a temporary file first (its index is at its
end), the others are streamed (read once).

The manifest is the typed `Manifest` (dump writes it, count and diff read it);
`Entry` is its record of one unit. Truncated or corrupted input raises
SnapshotError (exit 6); a reader never yields an unverified tail.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import IO, Any

from kstream.dataclass import dataclass
from kstream.errors import SnapshotError
from kstream.store.format import (
    FOOTER_PAYLOAD,
    FOOTER_SIZE,
    FOOTER_TAG,
    FORMAT,
    FORMAT_VERSION,
    MAGIC_FOOTER,
    MAGIC_HEADER,
    MAGIC_MANIFEST,
    MANIFEST_NAME,
    READ_BUF,
    ZSTD_MAGIC,
    Entry,
    Manifest,
    SnapshotFormat,
)


@dataclass
class Held:
    """A file of a snapshot kept open (`Snapshot.hold()`), and what it was then."""

    path: str
    fd: int
    stat: os.stat_result


class _PreadFile(io.RawIOBase):
    """An open descriptor read from an offset with pread: threads share the
    descriptor, never a file position."""

    def __init__(self, fd: int, offset: int = 0) -> None:
        self.fd, self.pos = fd, offset

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = os.pread(self.fd, len(b), self.pos)
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)


@dataclass
class Snapshot:
    """A snapshot opened for reading: the manifest (when the format has one) and
    a way to read each unit's lines, or all lines."""

    path: str
    format: SnapshotFormat
    manifest: Manifest | None  # None: the format has none (NDJSON, a JSON List)
    file: str = ""  # where the archive is when `path` is a name (a journal's state)
    # s3://: the object (archive, NDJSON), or the prefix of a directory snapshot
    remote: Any = None  # objstore.RemoteObject | objstore.Location | None
    stdin: IO[bytes] | None = None  # `-` streamed: stdin, its sniffed first bytes put back
    # files kept open by hold(): path -> Held; reads go to them, not to the names
    held: dict[str, Held] = field(default_factory=dict)
    # the file (a directory's manifest) as open_snapshot() read it: hold() checks
    # that what it holds is that file
    opened: tuple[int, int, int, int] | None = None

    @property
    def entries(self) -> list[Entry]:
        """The units the manifest lists (none without a manifest)."""
        return self.manifest.resources if self.manifest is not None else []

    @property
    def problem(self) -> str:
        """Why this snapshot is not complete ("" when it is)."""
        if self.manifest is not None and self.manifest.status == "interrupted":
            return "the dump was interrupted: this snapshot is incomplete"
        return ""

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
                yield from _json_list_lines(self.path, self._open_whole)
                return
            yield from _ndjson_lines(self.path, self.format == "ndjson.zst", self._open_whole)
            return
        if self.format == "dir":
            assert entry.file is not None
            if self.remote is not None:
                obj = listed_object(self.remote, entry.file)
                with obj.stream() as f:
                    yield from _checked(_lines_of(f), entry, verify, obj.loc.url)
                return
            path = Path(self.path) / entry.file
            f = self._open_held(str(path))
            with f:
                yield from _checked(_lines_of(f), entry, verify, str(path))
            return
        if self.format == "zst":
            assert entry.offset is not None and entry.length is not None
            if self.remote is not None:  # one streamed GET of the unit's bytes
                f = self.remote.stream(entry.offset, entry.offset + entry.length)
            else:
                f = self._open_held(self.file or self.path, entry.offset)
            with f:
                yield from _checked(
                    _zstd_frame_lines(f, entry.length, self.path), entry, verify, self.path
                )
            return
        raise SnapshotError(f"{self.path}: has no per-resource index")

    def documents(self, verify: bool = True) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Every object line with its parsed document (formats without a
        manifest are read this way to learn each object's apiVersion and kind);
        a line that is not a JSON object is a corrupted snapshot."""
        for line in self.lines(verify=verify):
            yield line, object_of(line, self.path)

    def _open_whole(self) -> IO[bytes]:
        """The whole file (NDJSON, compressed NDJSON, JSON List), streamed."""
        if self.remote is not None:
            return self.remote.stream()  # type: ignore[no-any-return]
        if self.stdin is not None:
            return self.stdin
        return self._open_held(self.file or self.path)

    def _open_held(self, path: str, offset: int = 0) -> IO[bytes]:
        """`path` from `offset`: the file held since hold() when it is, else
        opened now."""
        h = self.held.get(path)
        if h is not None:
            return io.BufferedReader(_PreadFile(h.fd, offset), READ_BUF)
        try:
            f = open(path, "rb")  # noqa: SIM115
        except OSError as e:
            raise SnapshotError(f"{path}: {e.strerror}") from None
        if offset:
            f.seek(offset)
        return f

    def hold(self) -> None:
        """Keep this snapshot's local files open from now on (an archive or an
        NDJSON file; a directory's manifest and every unit's file), so that it is
        read as it was when held, whatever happens to the names on disk later
        (replaced by a newer dump, deleted): `kstream serve` serves what it
        opened. `changed_on_disk()` says when the names no longer match;
        `release()` closes them. Object storage and stdin hold nothing."""
        if self.remote is not None or self.path == "-":
            return
        if self.format == "dir":
            root = Path(self.path)
            names = [str(root / MANIFEST_NAME)]
            names += [str(root / e.file) for e in self.entries if e.file]
        else:
            names = [self.file or self.path]
        _room_for(len(names))
        try:
            for name in names:
                if name in self.held:
                    continue
                try:
                    fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError as e:
                    raise SnapshotError(f"{name}: {e.strerror}") from None
                self.held[name] = Held(name, fd, os.fstat(fd))
            first = self.held[names[0]].stat
            if self.opened is not None and _identity(first) != self.opened:
                raise SnapshotError(
                    f"{names[0]}: changed while it was being opened (a new dump written "
                    "over it?): open it again"
                )
        except BaseException:
            self.release()
            raise

    def changed_on_disk(self) -> list[str]:
        """What happened to the held files since hold(), one phrase each: a name
        that is gone, that names another file now (replaced), or whose file
        changed in place."""
        out = []
        for h in self.held.values():
            try:
                st = os.stat(h.path)
            except OSError:
                out.append(f"{h.path} is gone")
                continue
            now = os.fstat(h.fd)
            if (st.st_dev, st.st_ino) != (h.stat.st_dev, h.stat.st_ino):
                out.append(f"{h.path} was replaced")
            elif (now.st_size, now.st_mtime_ns) != (h.stat.st_size, h.stat.st_mtime_ns):
                out.append(f"{h.path} changed in place")
        return out

    def release(self) -> None:
        """Close the files hold() opened."""
        held, self.held = self.held, {}
        for h in held.values():
            os.close(h.fd)


def _room_for(files: int) -> None:
    """Raise the soft limit of open files towards the hard one when holding
    `files` more may not fit (a directory snapshot of many units)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = files + 256  # and room for sockets, temp files, the index files
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def object_of(line: bytes, where: str) -> dict[str, Any]:
    """One snapshot line parsed; a line that is not a JSON object is a corrupted
    snapshot (SnapshotError naming `where`)."""
    from kstream import deepjson

    try:
        doc = deepjson.loads(line)
    except ValueError:
        raise SnapshotError(f"{where}: a line is not valid JSON (corrupted)") from None
    if not isinstance(doc, dict):
        raise SnapshotError(f"{where}: a line is not a JSON object")
    return doc


def listed_object(prefix: Any, name: str) -> Any:
    """The object `name` under a remote directory snapshot's prefix, which its
    manifest lists (an objstore.RemoteObject); SnapshotError when it is gone."""
    from kstream.store import objstore

    loc = prefix.child(name)
    obj = objstore.RemoteObject.open(loc)
    if obj is None:
        raise SnapshotError(f"{loc.url}: no such object (listed in the manifest)")
    return obj


def _lines_of(f: IO[bytes]) -> Iterator[bytes]:
    from kstream.jsonlines import iter_lines

    yield from iter_lines(iter(lambda: f.read(READ_BUF), b""))


def _zstd_frame_lines(f: IO[bytes], length: int, path: str) -> Iterator[bytes]:
    import zstandard

    from kstream.jsonlines import iter_lines

    limited = io.BufferedReader(_Limited(f, length), READ_BUF)
    reader = zstandard.ZstdDecompressor().stream_reader(limited, read_across_frames=True)

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                c = reader.read(READ_BUF)
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
        if not r.items_seen and len(head) < JSON_LIST_PEEK:
            r.close()  # all of a small file: feed() waits for BATCH bytes before parsing
    except PageError:
        return r.items_seen
    return r.items_seen


def _json_list_lines(path: str, opener: Callable[[], IO[bytes]]) -> Iterator[bytes]:
    """The items of a JSON List document as compact lines, streamed: the same
    page reader as the LIST path, so numbers and strings stay as written."""
    from kstream.listpage import HAS_API_VERSION, HAS_KIND, PageError, PageReader, compact

    typed = HAS_KIND | HAS_API_VERSION
    page = PageReader()
    n = 0
    try:
        with opener() as f:
            for chunk in iter(lambda: f.read(READ_BUF), b""):
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


def _ndjson_lines(path: str, compressed: bool, opener: Callable[[], IO[bytes]]) -> Iterator[bytes]:
    import zstandard

    from kstream.jsonlines import iter_lines

    f: Any = opener()
    try:
        tail = b""

        def raw() -> Iterator[bytes]:
            return iter(lambda: f.read(READ_BUF), b"")

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
        f.close()


def open_snapshot(path: str) -> Snapshot:
    """Open any snapshot kstream writes; raise SnapshotError for what is not one.
    `s3://BUCKET/KEY` reads one from object storage (kstream/store/objstore.py).
    Journals are not snapshots: `kstream/sources.py`'s `open_source()` opens those
    as well, and is what commands call."""
    if path == "-":
        return _open_stdin(sys.stdin.buffer)
    from kstream.store.objstore import is_url

    if is_url(path):
        return _open_remote(path)
    p = Path(path)
    if not p.exists():
        raise SnapshotError(f"{path}: no such file or directory")
    if p.is_dir():
        mpath = p / MANIFEST_NAME
        if not mpath.exists():
            raise SnapshotError(f"{path}: not a kstream snapshot directory (no {MANIFEST_NAME})")
        try:
            with open(mpath, "rb") as mf:
                st = os.fstat(mf.fileno())
                manifest = json.loads(mf.read())
        except (ValueError, OSError) as e:
            raise SnapshotError(f"{mpath}: unreadable manifest ({type(e).__name__})") from None
        snap = _from_manifest(path, "dir", manifest)
        snap.opened = _identity(st)
        return snap
    try:
        f = open(p, "rb")  # noqa: SIM115
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror}") from None
    with f:
        snap = _open_file(path, f)
        snap.opened = _identity(os.fstat(f.fileno()))
        return snap


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_remote(url: str) -> Snapshot:
    """An object (archive, NDJSON ...: read with ranged GETs), or a prefix holding
    a directory snapshot (its manifest.json)."""
    from kstream.store import objstore

    loc = objstore.parse(url)
    obj = None
    if not loc.is_prefix:
        obj = objstore.RemoteObject.open(loc)
    if obj is not None:
        f = obj.reader()
        snap = _open_file(url, f)
        snap.remote = obj
        return snap
    prefix = loc.as_prefix()
    mobj = objstore.RemoteObject.open(prefix.child(MANIFEST_NAME))
    if mobj is None:
        if loc.is_prefix:
            raise SnapshotError(
                f"{url}: neither a kstream snapshot directory ({MANIFEST_NAME}) nor a "
                "journal (journal.json) under this prefix"
            )
        raise SnapshotError(f"{url}: no such object")
    try:
        manifest = json.loads(mobj.get(0, mobj.size))
    except ValueError as e:
        raise SnapshotError(f"{mobj.loc.url}: unreadable manifest ({type(e).__name__})") from None
    snap = _from_manifest(url, "dir", manifest)
    snap.remote = prefix
    return snap


def _open_file(path: str, f: IO[bytes]) -> Snapshot:
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


def _open_stdin(stdin: IO[bytes]) -> Snapshot:
    """`-`: any format a file may hold, sniffed from its first bytes (as many as
    `_open_file` reads of a file). An archive is copied to a temporary file (removed
    with the Snapshot), since its index is at its end; the other formats are
    streamed, those first bytes put back in front. Memory: JSON_LIST_PEEK bytes."""
    head = b""
    while len(head) < JSON_LIST_PEEK:
        chunk = stdin.read(JSON_LIST_PEEK - len(head))
        if not chunk:
            break
        head += chunk
    if not head:  # `dump -o -` of nothing: an empty NDJSON snapshot, as before
        return Snapshot("-", "ndjson", None, stdin=io.BytesIO())
    magic = struct.unpack("<I", head[:4])[0] if len(head) >= 4 else 0
    if magic == MAGIC_HEADER:
        return _spooled_archive(head, stdin)
    snap = _open_file("-", io.BytesIO(head))  # every check a file's first bytes get
    snap.stdin = io.BufferedReader(_Replay(head, stdin), READ_BUF)
    return snap


def _spooled_archive(head: bytes, stdin: IO[bytes]) -> Snapshot:
    import shutil
    import tempfile
    import weakref

    tmp = tempfile.NamedTemporaryFile(prefix="kstream-stdin-", suffix=".zst", delete=False)  # noqa: SIM115
    try:
        with tmp:
            tmp.write(head)
            shutil.copyfileobj(stdin, tmp, READ_BUF)
        with open(tmp.name, "rb") as f:
            snap = _open_archive("-", f)
    except BaseException:
        os.unlink(tmp.name)
        raise
    snap.file = tmp.name
    weakref.finalize(snap, _unlink, tmp.name)
    return snap


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class _Replay(io.RawIOBase):
    """A stream whose first bytes were read already (to tell its format): those
    bytes again, then the rest. Closing it leaves the stream open (stdin)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)


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


def _from_manifest(path: str, fmt: SnapshotFormat, manifest: Any) -> Snapshot:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not a kstream manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise SnapshotError(f"{path}: manifest version {manifest.get('version')} is not supported")
    try:
        m = Manifest.from_json(manifest)
    except (TypeError, ValueError):
        raise SnapshotError(f"{path}: corrupted manifest") from None
    return Snapshot(path, fmt, m)
