"""What a crash leaves, read back: the segments on disk (`list_segments`), a sealed
segment's manifest, the events of a segment to its last whole frame, the open tail
sealed (`seal_open_segment`), and each unit's position for `--resume` (`recover`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import field
from pathlib import Path
from typing import IO

from kstream.dataclass import dataclass
from kstream.errors import SnapshotError
from kstream.journal import durable
from kstream.journal.format import (
    POSITION_TYPES,
    READ_BUF,
    Event,
    FrameRecord,
    SegmentManifest,
    event_fields,
    gap_record,
    list_segments,
    now_time,
    position_key,
    read_segment_header,
    sealing,
    segment_number,
)
from kstream.store.format import (
    FOOTER_PAYLOAD,
    FOOTER_SIZE,
    FOOTER_TAG,
    MAGIC_FOOTER,
    MAGIC_MANIFEST,
    ZSTD_MAGIC,
)


def recover(directory: Path, base_rvs: dict[str, str], after: int = 0) -> Positions:
    """Seal the open tail left by a crash (only the newest segment may be open)
    and take each unit's position: the base's (`after`: its number, the newest
    base's), then each later segment's manifest in order; units whose last
    resync is not closed in the newest segment."""
    segs = {n: p for n, p in list_segments(directory).items() if n > after}
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
        pos.last_time = max(pos.last_time, m.last)
    remaining = {n: p for n, p in list_segments(directory).items() if n > after}
    # a newest segment removed above (cut before its header) leaves its number free:
    # numbers stay without holes, which readers require
    pos.next_segment = max(remaining, default=after) + 1
    if remaining:
        pos.open_resync = open_resyncs(remaining[max(remaining)])
    return pos


def open_resyncs(newest: Path) -> set[str]:
    """The units whose last resync the (sealed) newest segment leaves open."""
    opened: set[str] = set()
    for line in segment_events(newest):
        ev = Event.decode(line)
        key = position_key(ev.resource, ev.namespace)
        if ev.type == "RESYNC":
            opened.add(key)
        elif ev.type == "SYNCED":
            opened.discard(key)
    return opened


# what a kstream journal directory may hold (for --force and the refusal messages)


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    return data if len(data) == n else b""


def read_sealed_manifest(path: Path) -> SegmentManifest | None:
    """The manifest of a sealed segment (footer and checksum verified); None for
    a segment without a footer (open); SnapshotError for one that is corrupted."""
    with open(path, "rb") as f:
        return read_manifest_of(f, str(path))


def read_manifest_of(f: IO[bytes], path: str) -> SegmentManifest | None:
    """`read_sealed_manifest` of a seekable file (a local one, or an object in
    object storage read by ranged GETs: `objstore.RemoteObject.reader()`)."""
    got = read_segment_header(f, path)
    if got is None:  # cut inside its header: open (and holds no event)
        return None
    header_end, header, _ = got
    end = f.seek(0, os.SEEK_END)
    if end < header_end + FOOTER_SIZE:
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
    body = _read_exact(f, msize)
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
    with open(path, "rb") as f:
        got = read_segment_header(f, str(path))
    if got is None:  # cut before its header was whole: it holds no event
        durable.unlink(path)
        return None
    start, header, meta = got
    number = int(meta.get("segment") or segment_number(path.name) or 0)
    m = SegmentManifest(segment=number, created=str(meta.get("created") or ""), sealed="")
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        keep = start
        for off, length, lines in _scan_frames(f, start, end):
            h = hashlib.sha256()
            for ln in lines:
                h.update(ln + b"\n")
                try:
                    t, typ, key, rv = event_fields(ln)
                    if typ == "GAP":
                        m.gaps.append(gap_record(Event.decode(ln)))
                except ValueError:
                    raise SnapshotError(f"{path}: corrupted segment (not an event line)") from None
                m.first = m.first or t
                m.last = t
                if typ in POSITION_TYPES and rv:
                    m.positions[key] = rv
            m.frames.append(FrameRecord(off, length, len(lines), h.hexdigest()))
            m.events += len(lines)
            keep = off + length
        if keep != end:
            durable.step(f"truncate {path.name}")
            f.truncate(keep)
        f.seek(keep)
        m.sealed = now_time()
        durable.step(f"seal {path.name}")
        f.write(sealing(header, m, keep))
        f.flush()
        durable.step(f"fsync {path.name}")
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
    last_time: str = ""  # the newest event time on disk ("" for none)
    end: str = ""  # the journal's last known instant (its newest event, or the base's end)
