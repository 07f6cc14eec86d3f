"""Reading a journal (`dump --follow`'s directory, format in `kstream/journal/format.py`):
its events in order, verified, and its state at an instant as a snapshot.

- `open_journal(dir)` checks `journal.json`, the base and every segment's
  structure (header; for a sealed segment footer, manifest, and the sha256 of
  header + manifest, as `kstream/store/snapshot.py` checks an archive).
- `Journal.events()` yields the events in file order. Each frame of a sealed
  segment is verified (its sha256 and event count from the segment's manifest,
  the frames contiguous from the header to the manifest) before any of its
  events is yielded. The newest segment may be open (a writer still at work, or
  a crash): it is read up to its last whole zstd frame and what follows is a
  note (`Journal.notes`), not an error. A sealed segment that does not verify,
  or an open one that is not the newest, raises SnapshotError naming the file.
- `state(journal, until)` is the journal's state at an instant as an ordinary
  `Snapshot` (a temporary kstream archive, removed when the Snapshot goes or
  the process ends): the base's objects, then every event with time <= the
  instant applied in file order (ADDED/MODIFIED put, DELETED removes; a resync
  replaces its unit's objects at SYNCED, one not closed by the instant changes
  nothing). The state is folded in an on-disk sqlite database keyed by (unit,
  namespace/name), so memory stays flat whatever the number of events.
- `open_state(path)` is what `sources.open_source()` calls for `JOURNAL/`
  (the latest state) and `JOURNAL/@TIME` (RFC 3339).
- A journal with later bases (`bases/`, `--rebase-every`): `Journal.from_base(T)`
  is the journal read from the newest base whose time <= T and the segments
  after it (`format.choose_base`), so a state folds at most one period of
  events; `Journal.start` is where a journal cut by `--retain` begins.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import struct
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from kstream import deepjson
from kstream.dataclass import dataclass
from kstream.errors import SnapshotError, UsageError
from kstream.journal import files as journal_files
from kstream.journal.files import JournalFiles
from kstream.journal.format import (
    BASE_NAME,
    BASES_DIR,
    META_NAME,
    SEGMENT_DIR,
    SEGMENT_FORMAT,
    Event,
    FrameRecord,
    SegmentManifest,
    base_name,
    base_number,
    check_meta,
    format_time,
    gap_record,
    parse_time,
    read_segment_header,
    segment_number,
    split_unit_resource,
    unit_resource,
)
from kstream.store.format import (
    FOOTER_PAYLOAD,
    FOOTER_SIZE,
    FOOTER_TAG,
    MAGIC_FOOTER,
    MAGIC_MANIFEST,
    READ_BUF,
    Entry,
)
from kstream.store.objstore import is_url
from kstream.store.snapshot import Snapshot, open_snapshot

# a frame is held decompressed while it is verified (its events are used only
# then): in memory up to this many bytes, beyond in a temporary file
FRAME_IN_MEMORY = 8 * 1024 * 1024
SKEW = timedelta(seconds=1)
SKIPPABLE_LOW, SKIPPABLE_HIGH = 0x184D2A50, 0x184D2A5F
INSTANT_SEP = "@"


def _default_note(msg: str) -> None:
    sys.stderr.write(f"kstream: note: {msg}\n")
    sys.stderr.flush()


# where notes go (a cut tail); the CLI may replace it
note: Callable[[str], None] = _default_note


# =========================================================================== paths


def is_journal(path: str | os.PathLike[str]) -> bool:
    """A directory or an s3://BUCKET/PREFIX/ holding a journal (its journal.json)."""
    return journal_files.is_journal(str(path))


def split_instant(path: str) -> tuple[str, str | None] | None:
    """(journal directory, instant text or None) when `path` names a journal:
    `JOURNAL/` or `JOURNAL` (its latest state), `JOURNAL/@TIME` (or `JOURNAL@TIME`);
    None for anything else."""
    if path == "-":
        return None
    remote = is_url(path)
    # object storage: the instant form first when there is one (each try is a request)
    if not (remote and INSTANT_SEP in path) and is_journal(path):
        return path, None
    head, sep, instant = path.rpartition(INSTANT_SEP)
    if sep and head:
        stripped = head.rstrip("/" + os.sep) or head
        if is_journal(stripped):
            return stripped, instant
    if remote and INSTANT_SEP in path and is_journal(path):
        return path, None
    return None


# RFC 3339's date-time (a space for the T, as it allows); the zone is checked
# by parse_time, which says when it is missing
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?")


def parse_instant(text: str, where: str = "") -> datetime:
    """An instant a user typed (RFC 3339); UsageError for anything else (the
    other ISO 8601 forms datetime.fromisoformat takes, such as 20261129T1400Z,
    T14:00 or +0100, are not taken: a typo must not name another instant)."""
    said = f"{where}: " if where else ""
    try:
        if not _RFC3339.fullmatch(text.strip()):
            raise ValueError(text)
        return parse_time(text.strip())
    except (ValueError, TypeError) as e:
        if "time zone" in str(e):
            raise UsageError(f"{said}{e}") from None
        raise UsageError(
            f"{said}{text!r} is not an RFC 3339 time "
            "(e.g. 2026-11-29T14:00:00Z or 2026-11-29T15:00:00+01:00)"
        ) from None


def _time_key(t: str) -> str:
    """An event's time in the canonical form (microseconds, Z), comparable as text."""
    if len(t) == 27 and t.endswith("Z"):
        return t
    try:
        return format_time(parse_time(t))
    except ValueError:
        return t


# =========================================================================== segments


@dataclass
class Segment:
    path: str  # how messages name it (a path, or s3://BUCKET/KEY)
    number: int
    size: int
    header_end: int  # offset of the first frame; -1: the file ends inside the header
    manifest: SegmentManifest | None = None  # None: open (not sealed)
    manifest_offset: int = 0
    files: JournalFiles | None = None  # the journal's files, and its name there
    name: str = ""

    def range(self, start: int, end: int) -> IO[bytes]:
        """Bytes [start, end) of the segment, read in order."""
        assert self.files is not None
        return self.files.range(self.name, start, end)

    @property
    def sealed(self) -> bool:
        return self.manifest is not None


def _open_segment(
    path: str | os.PathLike[str], number: int, files: JournalFiles | None = None
) -> Segment:
    """Segment `path` (a name in `files`; without them a local file)."""
    if files is None:
        p = Path(path)
        files, name = JournalFiles(str(p.parent)), p.name
    else:
        name = str(path)
    where = files.where(name)
    f = files.open(name)
    with f:
        end = f.seek(0, os.SEEK_END)
        got = read_segment_header(f, where, number)
        if got is None:  # cut inside its header: open, empty
            return Segment(where, number, end, -1, files=files, name=name)
        header_end, header, _ = got
        seg = Segment(where, number, end, header_end, files=files, name=name)
        if end < header_end + FOOTER_SIZE:
            return seg
        f.seek(end - FOOTER_SIZE)
        footer = f.read(FOOTER_SIZE)
        magic, fsize = struct.unpack("<II", footer[:8])
        if magic != MAGIC_FOOTER:
            return seg  # no end marker: open
        if fsize != FOOTER_PAYLOAD or footer[8:16] != FOOTER_TAG:
            raise SnapshotError(f"{where}: corrupted segment (end marker)")
        digest = footer[16:48]
        (moff,) = struct.unpack("<Q", footer[48:56])
        if moff < header_end or moff >= end:
            raise SnapshotError(f"{where}: corrupted segment (bad manifest offset)")
        f.seek(moff)
        mh = f.read(8)
        mmagic, msize = struct.unpack("<II", mh) if len(mh) == 8 else (0, 0)
        if mmagic != MAGIC_MANIFEST or moff + 8 + msize + FOOTER_SIZE != end:
            raise SnapshotError(f"{where}: corrupted segment (manifest)")
        body = f.read(msize)
        if hashlib.sha256(header + body).digest() != digest:
            raise SnapshotError(
                f"{where}: corrupted segment (header or manifest checksum mismatch)"
            )
        try:
            raw = json.loads(body)
            if not isinstance(raw, dict):
                raise TypeError
            m = SegmentManifest.from_json(raw)
        except (ValueError, TypeError, KeyError):
            raise SnapshotError(f"{where}: corrupted segment (manifest)") from None
        if m.format != SEGMENT_FORMAT or m.segment != number:
            raise SnapshotError(f"{where}: corrupted segment (manifest of another segment)")
        pos = header_end
        for fr in m.frames:
            if fr.offset != pos or fr.length <= 0:
                raise SnapshotError(f"{where}: corrupted segment (bad frame index)")
            pos += fr.length
        if pos != moff:
            raise SnapshotError(f"{where}: corrupted segment (bad frame index)")
        if sum(fr.events for fr in m.frames) != m.events:
            raise SnapshotError(f"{where}: corrupted segment (event counts disagree)")
        seg.manifest, seg.manifest_offset = m, moff
        return seg


def _frame_chunks(f: IO[bytes], fr: FrameRecord, where: str) -> Iterator[bytes]:
    """The decompressed bytes of one frame of a sealed segment, streamed (`f`
    stands at its first byte)."""
    import zstandard

    left = fr.length
    obj = zstandard.ZstdDecompressor().decompressobj()
    try:
        while left > 0:
            data = f.read(min(READ_BUF, left))
            if not data:
                raise SnapshotError(f"{where}: truncated segment")
            left -= len(data)
            out = obj.decompress(data)
            if out:
                yield out
            if obj.eof:
                if obj.unused_data or left:
                    raise SnapshotError(f"{where}: corrupted segment (frame at {fr.offset})")
                return
    except zstandard.ZstdError as e:
        raise SnapshotError(f"{where}: corrupted segment ({e})") from None
    raise SnapshotError(f"{where}: corrupted segment (frame at {fr.offset} is cut short)")


def _held(spool: IO[bytes]) -> Iterator[bytes]:
    """The lines of a frame held in a spool (each written with its newline)."""
    spool.seek(0)
    for line in spool:
        yield line[:-1]


def _sealed_lines(seg: Segment) -> Iterator[bytes]:
    """Each frame decompressed into a spool (memory up to FRAME_IN_MEMORY, then
    a temporary file), verified against the manifest, then its lines."""
    assert seg.manifest is not None
    where = str(seg.path)
    if not seg.manifest.frames:
        return
    # the frames are contiguous from the header to the manifest: one read of
    # them all, in order (one streamed GET in object storage)
    with seg.range(seg.header_end, seg.manifest_offset) as f:
        for fr in seg.manifest.frames:
            with tempfile.SpooledTemporaryFile(max_size=FRAME_IN_MEMORY) as spool:
                sha = hashlib.sha256()
                n = 0
                last = b""
                for chunk in _frame_chunks(f, fr, where):
                    sha.update(chunk)
                    n += chunk.count(b"\n")
                    last = chunk[-1:]
                    spool.write(chunk)
                if last not in (b"", b"\n"):
                    raise SnapshotError(
                        f"{where}: corrupted segment (the frame at {fr.offset} ends inside a line)"
                    )
                if sha.hexdigest() != fr.sha256:
                    raise SnapshotError(
                        f"{where}: checksum mismatch in the frame at {fr.offset} (corrupted)"
                    )
                if n != fr.events:
                    raise SnapshotError(
                        f"{where}: the frame at {fr.offset} has {n} events, the manifest says "
                        f"{fr.events}"
                    )
                yield from _held(spool)


def _open_lines(seg: Segment, notes: list[str]) -> Iterator[bytes]:
    """An open segment, frame by frame, up to its last whole frame; what follows
    (a frame cut by a crash, or one being written) goes to `notes`."""
    import zstandard

    where = str(seg.path)
    if seg.header_end < 0:
        notes.append(
            f"{where} is open and ends inside its header (being written, or cut by a crash): "
            "it holds no events"
        )
        return
    dctx = zstandard.ZstdDecompressor()
    frames = 0
    cut = ""
    pos = seg.header_end  # where the frame being read begins
    with seg.range(pos, seg.size) as f:
        pending = b""
        while True:
            while len(pending) < 4:
                more = f.read(READ_BUF)
                if not more:
                    break
                pending += more
            if not pending:
                break  # a clean end
            if len(pending) >= 4:
                magic = struct.unpack("<I", pending[:4])[0]
                if SKIPPABLE_LOW <= magic <= SKIPPABLE_HIGH:
                    cut = "its sealing was cut short"
                    break
            obj = dctx.decompressobj()
            spool = tempfile.SpooledTemporaryFile(max_size=FRAME_IN_MEMORY)  # noqa: SIM115
            consumed = 0
            last = b""
            whole = False
            try:
                while pending:
                    piece = obj.decompress(pending)
                    if piece:
                        spool.write(piece)
                        last = piece[-1:]
                    if obj.eof:
                        rest = obj.unused_data
                        consumed += len(pending) - len(rest)
                        pending = rest
                        whole = True
                        break
                    consumed += len(pending)
                    pending = f.read(READ_BUF)
            except zstandard.ZstdError:
                whole = False
            if not whole:
                spool.close()
                cut = "its last frame is incomplete"
                break
            with spool:
                if last not in (b"", b"\n"):
                    raise SnapshotError(
                        f"{where}: corrupted segment (the frame at {pos} ends inside a line)"
                    )
                yield from _held(spool)
            frames += 1
            pos += consumed
    left = seg.size - pos
    if left > 0:
        notes.append(
            f"{where} is open (being written, or cut by a crash): read up to its last "
            f"whole frame ({frames} frames); the {left} bytes after it are left out ({cut})"
        )


# =========================================================================== journal


@dataclass
class Journal:
    path: str
    meta: dict[str, Any]
    base_path: str
    segments: list[Segment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _base: Snapshot | None = None
    # every base, oldest first, and the one this Journal reads from (its number)
    bases: dict[int, str] = field(default_factory=dict)  # open_snapshot's names
    base_no: int = 0
    _times: dict[int, str] = field(default_factory=dict)

    def base_time(self, n: int) -> str:
        """The instant from which base `n` may be used (canonical): base 0's
        `started`; a later base's is the newest event time of its segment (or,
        for a segment with no event, the time of the base before it), which its
        manifest records too (read when the segment was removed by retention)."""
        if n not in self._times:
            seg = next((s for s in self.segments if s.number == n), None)
            if n == 0:
                snap = self.base if n == self.base_no else open_snapshot(str(self.bases[0]))
                t = snap.manifest.started if snap.manifest is not None else ""
            elif seg is not None and seg.manifest is not None and seg.manifest.last:
                t = seg.manifest.last
            elif seg is not None and seg.manifest is not None:
                older = [b for b in self.bases if b < n]
                t = self.base_time(max(older)) if older else ""
            else:
                snap = self.base if n == self.base_no else open_snapshot(str(self.bases[n]))
                t = snap.manifest.finished if snap.manifest is not None else ""
            self._times[n] = _time_key(t) if t else ""
        return self._times[n]

    def from_base(self, until: str | None) -> Journal:
        """This journal read from the newest base whose time <= until (the
        oldest when until is before every base) and the segments after it."""
        cands = sorted(self.bases, reverse=True)
        n = cands[-1] if cands else 0
        for b in cands:  # newest first: usually one look
            if until is None or self.base_time(b) <= until:
                n = b
                break
        if n == self.base_no:
            return self
        return replace(
            self,
            base_path=str(self.bases[n]),
            segments=[s for s in self.segments if s.number > n],
            _base=None,
            base_no=n,
        )

    @property
    def start(self) -> str:
        """The earliest instant with a state: the oldest base's time."""
        return self.base_time(min(self.bases)) if self.bases else ""

    # where its files are (a directory or an object-storage prefix); names under
    # `bases/` (re-bases): files.names("bases")
    files: JournalFiles | None = None

    @property
    def base(self) -> Snapshot:
        if self._base is None:
            self._base = open_snapshot(self.base_path)
            if self._base.manifest is None:
                raise SnapshotError(f"{self.base_path}: the journal's base has no manifest")
        return self._base

    @property
    def started(self) -> str:
        """When the base snapshot began (the earliest instant with a state)."""
        m = self.base.manifest
        return m.started if m is not None else ""

    def events(self, until: str | None = None, since: str | None = None) -> Iterator[Event]:
        """Events with since < time <= until (canonical times, see `_time_key`),
        in file order; sealed segments wholly outside the window (by more than
        SKEW) are not read."""
        # the writer stamps events in each resource's thread and writes them in
        # arrival order: times in file order may step back by a few microseconds
        # between resources, so a sealed segment is skipped only when it begins
        # well after `until` (SKEW)
        stop = None if until is None else format_time(parse_time(until) + SKEW)
        floor = None if since is None else format_time(parse_time(since) - SKEW)
        for seg in self.segments:
            m = seg.manifest
            if stop is not None and m is not None and m.first and _time_key(m.first) > stop:
                break
            if floor is not None and m is not None and m.last and _time_key(m.last) <= floor:
                continue
            it = _sealed_lines(seg) if m is not None else _open_lines(seg, self.notes)
            for n, line in enumerate(it, 1):
                if not line.strip():
                    continue
                try:
                    ev = decode_event(line)
                except ValueError as e:
                    raise SnapshotError(
                        f"{seg.path}: event {n} is not an event line ({e}) (corrupted)"
                    ) from None
                t = _time_key(ev.time)
                if until is not None and t > until:
                    continue
                if since is not None and t <= since:
                    continue
                ev.time = t
                yield ev

    def gaps(self) -> tuple[list[Gap], str]:
        """The journal's gaps (from the sealed segments' manifests, and the open
        segment's GAP events) and its end: the time of its newest durable event
        ("" when it has none)."""
        out: list[Gap] = []
        end = ""
        for seg in self.segments:
            m = seg.manifest
            if m is not None:
                out += [Gap.of(g) for g in m.gaps]
                end = max(end, _time_key(m.last)) if m.last else end
                continue
            for line in _open_lines(seg, []):
                ev = decode_event(line)
                end = max(end, _time_key(ev.time))
                if ev.type == "GAP":
                    try:
                        out.append(Gap.of(gap_record(ev)))
                    except ValueError:
                        raise SnapshotError(f"{seg.path}: a GAP event has no since") from None
        return out, end

    def flush_notes(self) -> None:
        for n in self.notes:
            note(n)
        self.notes.clear()


@dataclass(frozen=True)
class Gap:
    """A time when a unit's changes may be missing or late in the journal."""

    resource: str
    namespace: str
    since: str  # canonical times (`_time_key`)
    until: str
    why: str

    @classmethod
    def of(cls, g: dict[str, str]) -> Gap:
        return cls(
            g.get("resource", ""),
            g.get("namespace", ""),
            _time_key(g.get("since", "")) if g.get("since") else "",
            _time_key(g.get("until", "")) if g.get("until") else "",
            g.get("why", ""),
        )

    @property
    def unit(self) -> str:
        return f"{self.resource}{' -n ' + self.namespace if self.namespace else ''}"


def gap_at(gaps: list[Gap], t: str) -> tuple[list[Gap], str, str]:
    """The gaps an instant falls inside (since < t < until), and the nearest
    instants on both sides that fall inside none ("", "" when t is in none)."""
    inside = [g for g in gaps if g.since < t < g.until]
    if not inside:
        return [], "", ""
    lo, hi = min(g.since for g in inside), max(g.until for g in inside)
    moved = True
    while moved:  # a neighbouring gap may cover an end
        moved = False
        for g in gaps:
            if g.since < lo < g.until:
                lo, moved = g.since, True
            if g.since < hi < g.until:
                hi, moved = g.until, True
    return inside, lo, hi


def _bases(files: JournalFiles) -> dict[int, str]:
    """The journal's bases by number (0: base.ndjson.zst), oldest first, each as
    `open_snapshot` takes it (a path, or an s3:// URL)."""
    out: dict[int, str] = {}
    if files.exists(BASE_NAME):
        out[0] = files.snapshot_name(BASE_NAME)
    for name in files.names(BASES_DIR):
        n = base_number(name)
        if n:
            out[n] = files.snapshot_name(f"{BASES_DIR}/{name}")
    return dict(sorted(out.items()))


def open_journal(
    path: str, upto: int | None = None, newest: bool = False, until: str | None = None
) -> Journal:
    """Open a journal (a directory, or s3://BUCKET/PREFIX/: `kstream/journal/files.py`)
    and check its structure (not yet each frame). `upto`: the segments after it
    are left alone (a base being folded while the writer goes on). `newest`: read
    from the newest base, only the segments after it opened (a re-base's fold,
    a resume's positions: not every segment since the oldest base). `until` (a
    canonical time): read from the newest base at or before it (its time from the
    base's own manifest), only the segments after that base opened: reading an
    instant opens one period of segments, however old the journal (in object
    storage each opened segment costs requests). A gap around `until` is still
    seen: its GAP event is written when the gap ends, after `until`, so in a
    segment after that base."""
    files = journal_files.journal_files(path)
    meta = check_meta(files.read(META_NAME), files.where(META_NAME), path)
    bases = _bases(files)
    if not bases:
        raise SnapshotError(f"{path}: the journal has no base snapshot ({BASE_NAME})")
    # the base read from; segments at or below it are not read (with the oldest: what
    # a retention cut short left)
    first = max(bases) if newest else min(bases)
    root = path if files.remote else str(Path(path))
    j = Journal(root, meta, bases[first], bases=bases, base_no=first)
    j.files = files
    if until is not None and not newest and len(bases) > 1:
        first = j.from_base(until).base_no  # no segment opened yet: bases' own times
        j.base_path, j.base_no, j._base = bases[first], first, None
    sdir = files.where(SEGMENT_DIR)
    numbered: list[tuple[int, str]] = []
    for name in files.names(SEGMENT_DIR):
        n = segment_number(name)
        if n is not None and n > first and (upto is None or n <= upto):
            numbered.append((n, name))
    numbered.sort()
    if numbered and numbered[0][0] != first + 1:
        raise SnapshotError(
            f"{sdir}: segment {first + 1:06d} is missing (the first after "
            f"{base_name(first)}; the oldest is {numbered[0][1]})"
        )
    for i, (n, name) in enumerate(numbered):
        if i and n != numbered[i - 1][0] + 1:
            missing = numbered[i - 1][0] + 1
            raise SnapshotError(
                f"{sdir}: segment {missing:06d} is missing (between {numbered[i - 1][1]} "
                f"and {name})"
            )
    names = [f"{SEGMENT_DIR}/{name}" for _, name in numbered]
    for i, seg in enumerate(_open_segments(files, names, [n for n, _ in numbered])):
        if not seg.sealed and i != len(numbered) - 1:
            raise SnapshotError(
                f"{seg.path}: segment is not sealed but is not the newest (truncated or corrupted)"
            )
        j.segments.append(seg)
    return j


# segments of a journal in object storage opened at once (each takes a few
# ranged GETs: its header, its manifest and footer)
REMOTE_OPENS = 4


def _open_segments(files: JournalFiles, names: list[str], numbers: list[int]) -> Iterator[Segment]:
    """Each segment opened (`_open_segment`), in order; in object storage a few
    at a time."""
    if not files.remote or len(names) < 2:
        for name, n in zip(names, numbers, strict=True):
            yield _open_segment(name, n, files)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(REMOTE_OPENS, thread_name_prefix="kstream-journal") as pool:
        yield from pool.map(_open_segment, names, numbers, [files] * len(names))


# =========================================================================== fast paths

# An event line as journalformat.Event.encode writes it (plain values: times,
# API names, namespaces and resourceVersions need no escapes); anything else
# goes through Event.decode.
_HEAD = re.compile(
    rb'\{"time":"([^"\\]*)","type":"([A-Z]+)","resource":"([^"\\]*)",'
    rb'"namespace":"([^"\\]*)","rv":"([^"\\]*)"(?:,"st":"([^"\\]*)")?'
)
_OBJECT_AT = b',"object":'
# The start of an object as the server encodes it: a few top-level strings (kind,
# apiVersion), then metadata with name first (ObjectMeta's field order; sorted
# keys of a custom resource put name first only when nothing sorts before it),
# then namespace if any. Names and namespaces are DNS names: no escapes.
_KEY = re.compile(
    rb'\{(?:"[A-Za-z]+":"[^"\\]*",)*"metadata":\{"name":"([^"\\]+)"'
    rb'(?:,"generateName":"[^"\\]*")?(?:,"namespace":"([^"\\]*)")?[,}]'
)


def decode_event(line: bytes) -> Event:
    """Event.decode, faster for the lines the writer writes."""
    m = _HEAD.match(line)
    if m is not None:
        end = m.end()
        if line[end : end + 1] == b"}" and end + 1 == len(line):
            g = m.groups()
            return Event(
                g[0].decode(),
                g[1].decode(),
                g[2].decode(),
                g[3].decode(),
                g[4].decode(),
                None,
                g[5].decode() if g[5] else "",
            )
        if line.startswith(_OBJECT_AT, end) and line.endswith(b"}"):
            g = m.groups()
            return Event(
                g[0].decode(),
                g[1].decode(),
                g[2].decode(),
                g[3].decode(),
                g[4].decode(),
                line[end + len(_OBJECT_AT) : -1],
                g[5].decode() if g[5] else "",
            )
    return Event.decode(line)


def line_key(raw: bytes, where: str) -> str:
    """`namespace/name` of an object line (parsed only when the fast path cannot tell)."""
    m = _KEY.match(raw)
    if m is not None:
        ns = m.group(2)
        return f"{ns.decode() if ns else ''}/{m.group(1).decode()}"
    return _key(_obj(raw, where), where)


# =========================================================================== state


def _key(obj: Any, where: str) -> str:
    if not isinstance(obj, dict):
        raise SnapshotError(f"{where}: an object is not a JSON object (corrupted)")
    md = obj.get("metadata")
    if not isinstance(md, dict) or not md.get("name"):
        raise SnapshotError(f"{where}: an object has no metadata.name")
    return f"{md.get('namespace') or ''}/{md.get('name')}"


def _obj(raw: bytes, where: str) -> dict[str, Any]:
    try:
        obj = deepjson.loads(raw)
    except ValueError:
        raise SnapshotError(f"{where}: an object is not valid JSON (corrupted)") from None
    if not isinstance(obj, dict):
        raise SnapshotError(f"{where}: an object is not a JSON object (corrupted)")
    return obj


@dataclass
class _Unit:
    id: int
    entry: Entry  # from the base, or made for a unit first seen in a resync
    rv: str
    in_base: bool = True
    resyncing: bool = False
    ever_synced: bool = False
    changed: bool = False  # a change event applied (a unit not in the base shows then)


class _Store:
    """The fold: objects by (unit, namespace/name) in an on-disk sqlite database."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA temp_store=FILE")
        self.db.execute("PRAGMA cache_size=-16384")  # KiB: 16 MiB of pages at most
        self.db.execute(
            "CREATE TABLE objs (unit INTEGER NOT NULL, key TEXT NOT NULL, line BLOB NOT NULL,"
            " PRIMARY KEY (unit, key))"
        )
        self.db.execute(
            "CREATE TABLE sync (unit INTEGER NOT NULL, key TEXT NOT NULL, line BLOB NOT NULL,"
            " PRIMARY KEY (unit, key))"
        )
        self.db.execute("BEGIN")
        # consecutive puts (or deletes) go in one executemany, in order
        self._puts: list[tuple[int, str, bytes]] = []
        self._dels: list[tuple[int, str]] = []

    def flush(self) -> None:
        if self._puts:
            self.db.executemany("INSERT OR REPLACE INTO objs VALUES (?, ?, ?)", self._puts)
            self._puts.clear()
        if self._dels:
            self.db.executemany("DELETE FROM objs WHERE unit = ? AND key = ?", self._dels)
            self._dels.clear()

    def put(self, unit: int, key: str, line: bytes) -> None:
        if self._dels or len(self._puts) >= BATCH:
            self.flush()
        self._puts.append((unit, key, line))

    def delete(self, unit: int, key: str) -> None:
        if self._puts or len(self._dels) >= BATCH:
            self.flush()
        self._dels.append((unit, key))

    def stage(self, unit: int, key: str, line: bytes) -> None:
        self.flush()
        self.db.execute("INSERT OR REPLACE INTO sync VALUES (?, ?, ?)", (unit, key, line))

    def drop_staged(self, unit: int) -> None:
        self.flush()
        self.db.execute("DELETE FROM sync WHERE unit = ?", (unit,))

    def commit_staged(self, unit: int) -> None:
        self.flush()
        self.db.execute("DELETE FROM objs WHERE unit = ?", (unit,))
        self.db.execute("INSERT INTO objs SELECT unit, key, line FROM sync WHERE unit = ?", (unit,))
        self.drop_staged(unit)

    def objects(self, unit: int) -> Iterator[bytes]:
        """The unit's objects in `namespace/name` order (the server's)."""
        self.flush()
        cur = self.db.execute("SELECT line FROM objs WHERE unit = ? ORDER BY key", (unit,))
        for (line,) in cur:
            yield bytes(line)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("COMMIT")
        self.db.close()


BATCH = 1000


@dataclass
class StateInfo:
    """What a state was made of (for notes and the bench)."""

    until: str | None
    events: int = 0  # events applied
    last: str = ""  # time of the last event applied
    open_resyncs: list[str] = field(default_factory=list)


def _new_entry(resource: str, namespace: str, obj: dict[str, Any] | None) -> Entry:
    g, v, r = split_unit_resource(resource)
    kind = str(obj.get("kind") or "") if obj else ""
    namespaced = bool(namespace) or bool(
        obj and isinstance(obj.get("metadata"), dict) and obj["metadata"].get("namespace")
    )
    return Entry(g, v, r, kind, namespaced, namespace or None, "complete", method="journal")


def fold(journal: Journal, until: str | None, tmp: Path) -> tuple[_Store, list[_Unit], StateInfo]:
    """Base + events with time <= until into a store; the units in output order."""
    base = journal.base
    store = _Store(tmp / "state.sqlite")
    units: dict[tuple[str, str], _Unit] = {}
    order: list[_Unit] = []
    where = journal.base_path
    try:
        for e in base.entries:
            u = _Unit(len(order), e, e.resourceVersion)
            units[(unit_resource(e.group, e.version, e.resource), e.namespace or "")] = u
            order.append(u)
            for line in base.lines(e):
                store.put(u.id, line_key(line, where), line)
        info = StateInfo(until)
        for ev in journal.events(until=until):
            where = str(journal.path)
            uk = (ev.resource, ev.namespace)
            found = units.get(uk)
            if found is not None:
                u = found
            else:
                if ev.type not in ("RESYNC", "SYNC", "SYNCED", "ADDED", "MODIFIED", "DELETED"):
                    continue
                u = _Unit(len(order), _new_entry(ev.resource, ev.namespace, None), "", False)
                units[uk] = u
                order.append(u)
            info.events += 1
            info.last = ev.time
            t = ev.type
            if t in ("ADDED", "MODIFIED", "DELETED", "SYNC"):
                if ev.object is None:
                    raise SnapshotError(f"{journal.path}: a {t} event has no object (corrupted)")
                where = f"{journal.path}: {ev.resource}"
                key = line_key(ev.object, where)
                if not u.entry.kind:
                    u.entry = _new_entry(ev.resource, ev.namespace, _obj(ev.object, where))
                if t == "SYNC":
                    if u.resyncing:
                        store.stage(u.id, key, ev.object)
                    continue
                u.changed = True
                if t == "DELETED":
                    store.delete(u.id, key)
                else:
                    store.put(u.id, key, ev.object)
                u.rv = ev.rv or u.rv
            elif t == "BOOKMARK":
                u.rv = ev.rv or u.rv
            elif t == "RESYNC":
                store.drop_staged(u.id)
                u.resyncing = True
            elif t == "SYNCED" and u.resyncing:
                store.commit_staged(u.id)
                u.resyncing = False
                u.ever_synced = True
                u.rv = ev.rv or u.rv
                # a unit the base could not read is whole from here on
                u.entry = replace(u.entry, status="complete", error=None)
            # an unknown type from a newer writer: nothing to apply
        info.open_resyncs = [u.entry.name for u in order if u.resyncing]
        for u in order:
            if u.resyncing:
                store.drop_staged(u.id)
                u.resyncing = False
        return store, order, info
    except BaseException:
        store.close()
        raise


def _materialise(
    journal: Journal,
    until: str | None,
    tmp: Path,
    target: Path | None = None,
    stamp: tuple[dict[str, Any], str] | None = None,
) -> tuple[Path, StateInfo]:
    """Write the state into `target` (default `tmp/state.ndjson.zst`), a kstream
    archive. `stamp`: (header, time) of a later base (`rebase.py`): its header,
    and its time as the manifest's `started` and `finished`."""
    from kstream.store.writers import ArchiveWriter

    store, order, info = fold(journal, until, tmp)
    target = target or tmp / "state.ndjson.zst"
    try:
        m = journal.base.manifest
        assert m is not None
        header = stamp[0] if stamp else {"journal": journal.path, "until": until}
        writer = ArchiveWriter(str(target), force=False, level=1, header=header)
        try:
            for u in order:
                if not u.in_base and not (u.ever_synced or u.changed):
                    continue  # a unit seen only in a resync not closed by then
                spool = writer.new_spool(f"u{u.id}", None)
                for line in store.objects(u.id):
                    spool.write(line)
                e = replace(
                    u.entry,
                    objects=spool.objects,
                    bytes=spool.size,
                    sha256=spool.sha.hexdigest(),
                    resourceVersion=u.rv,
                    offset=None,
                    length=None,
                    file=None,
                )
                if not u.in_base and not e.kind:
                    spool.close()  # no object ever said its kind: nothing to show
                    continue
                writer.append(e, spool)
            # units the base did not read at all and a resync has read since
            synced = {
                (
                    unit_resource(u.entry.group, u.entry.version, u.entry.resource),
                    u.entry.namespace or "",
                )
                for u in order
                if u.ever_synced
            }
            not_read = tuple(
                nr
                for nr in m.not_read
                if (unit_resource(nr.group, nr.version, nr.resource), nr.namespace or "")
                not in synced
            )
            status = m.status
            if (
                status == "partial"
                and not not_read
                and not m.discovery_failures
                and all(u.entry.status == "complete" for u in order)
            ):
                status = "complete"
            manifest = replace(
                m,
                resources=[],
                not_read=not_read,
                status=status,
                finished=info.last or m.finished,
            )
            if stamp is not None:
                manifest = replace(manifest, started=stamp[1], finished=stamp[1])
            writer.finish(manifest.to_json(), interrupted=False)
        except BaseException:
            writer.abort()
            raise
    finally:
        store.close()
        with contextlib.suppress(OSError):
            (tmp / "state.sqlite").unlink()
    return target, info


def write_base(journal: Journal, target: Path, tmp: Path, number: int, time: str) -> StateInfo:
    """A later base (`bases/NNNNNN.ndjson.zst`, see `kstream/journal/rebase.py`):
    `journal` (read from its newest base, its segments up to `number`) folded
    whole into the archive `target`; sqlite's work in `tmp`."""
    header = {"journal-base": number, "time": time}
    return _materialise(journal, None, tmp, target, (header, time))[1]


ACCEPT_GAP = "~"


def check_instant(journal: Journal, until: str, path: str, d: str, accept: bool) -> list[str]:
    """An instant inside a gap is refused (UsageError naming the gap and the
    nearest instants with a known state), or with `accept` answered with a
    note; one after the journal's end is answered with a note that says so.
    Returns the notes (said once the state is made)."""
    notes = []
    gaps, end = journal.gaps()
    m = journal.base.manifest
    end = end or (_time_key(m.finished) if m is not None and m.finished else "")
    inside, lo, hi = gap_at(gaps, until)
    if inside:
        g = inside[0]
        units = g.unit + (f" and {len(inside) - 1} more" if len(inside) > 1 else "")
        what = f"a gap in the journal of {units} from {g.since} to {g.until} ({g.why})"
        if not accept:
            raise UsageError(
                f"{path}: that instant is inside {what}: the state then is not known; the "
                f"nearest known states are {d}/@{lo} and {d}/@{hi} "
                f"({d}/@{ACCEPT_GAP}TIME takes the state anyway)"
            )
        notes.append(f"{path}: inside {what}: changes of that time may be missing or come later")
    if end and until > end:
        notes.append(
            f"{path}: the journal ends at {end} (its last durable event): "
            f"this is its state there; nothing after it is known"
        )
    return notes


# the states opened by this process: (journal, instant) -> Snapshot, so that a
# command opening the same state twice (diff --live) folds it once
_opened: dict[tuple[str, str | None], Snapshot] = {}


def state(journal: Journal, until: str | None, label: str, tmpdir: str | None = None) -> Snapshot:
    """The journal's state at `until` (canonical time; None: its latest) as a
    Snapshot over a temporary archive, removed with the Snapshot (or at exit)."""
    tmp = Path(tempfile.mkdtemp(prefix="kstream-journal-", dir=tmpdir))
    try:
        archive, info = _materialise(journal.from_base(until), until, tmp)
        snap = open_snapshot(str(archive))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    journal.flush_notes()
    if info.open_resyncs:
        note(
            f"{label}: a resync of {', '.join(info.open_resyncs)} is not finished by then; "
            "its objects are as before the resync"
        )
    snap.path = label
    snap.file = str(archive)
    weakref.finalize(snap, shutil.rmtree, str(tmp), True)
    return snap


def open_state(path: str) -> Snapshot | None:
    """`JOURNAL/` or `JOURNAL/@TIME` as a Snapshot; None when `path` names no journal."""
    split = split_instant(path)
    if split is None:
        return None
    directory, instant = split
    until: str | None = None
    accept = False  # JOURNAL/@~TIME: the state even inside a gap (with a note)
    if instant is not None:
        accept = instant.startswith(ACCEPT_GAP)
        t = parse_instant(instant[len(ACCEPT_GAP) :] if accept else instant, path)
        until = format_time(t)
    key = (directory.rstrip("/") if is_url(directory) else os.path.realpath(directory), until)
    if key in _opened:
        return _opened[key]
    journal = open_journal(directory, until=until)
    d = directory.rstrip("/")
    if until is not None and min(journal.bases) > 0 and until < journal.start:
        start = journal.start
        raise UsageError(
            f"{path}: that is before the journal starts: its older bases and segments were "
            f"removed by retention (--retain); it starts at {start}, the earliest state is "
            f"{d}/@{start}"
        )
    started = journal.started
    if until is not None and started and until < _time_key(started):
        raise UsageError(
            f"{path}: that is before the journal begins (its base snapshot was taken from "
            f"{started}); the earliest state is {d}/@{started}"
        )
    notes = check_instant(journal, until, path, d, accept) if until is not None else []
    snap = state(journal, until, path)
    for n in notes:
        note(n)
    _opened[key] = snap
    return snap
