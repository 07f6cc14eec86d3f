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
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kstream.errors import OutputError
from kstream.journal import durable
from kstream.journal.format import (
    FLUSH_INTERVAL,
    POSITION_TYPES,
    ROTATE_INTERVAL,
    ROTATE_SIZE,
    SEGMENT_DIR,
    SEGMENT_FORMAT,
    SEGMENT_VERSION,
    Event,
    FrameRecord,
    SegmentManifest,
    gap_record,
    list_bases,
    list_segments,
    now_time,
    parse_time,
    position_key,
    sealing,
    segment_name,
)
from kstream.store.format import (
    MAGIC_HEADER,
    skippable,
)


def guard(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except OSError as e:
        raise OutputError(f"cannot write {what}: {e.strerror or e}") from None


# --------------------------------------------------------------------------- a segment


class SegmentWriter:
    """One segment file being written: header, frames, then sealed."""

    def __init__(self, path: Path, number: int, level: int, opened: float) -> None:
        import zstandard

        self.path = path
        self.number = number
        self.created = now_time()
        self.opened = opened  # on the writer's clock (rotate_interval)
        self.cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
        durable.step(f"create {path.name}")
        fd = guard(lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(path))
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        head = {
            "format": SEGMENT_FORMAT,
            "version": SEGMENT_VERSION,
            "segment": number,
            "created": self.created,
        }
        self.header = json.dumps(head).encode()
        durable.step(f"write header {path.name}")
        self._write(skippable(MAGIC_HEADER, self.header))
        self.manifest = SegmentManifest(segment=number, created=self.created, sealed="")
        self.size = 0  # uncompressed event bytes
        self._frame: Any = None  # the zstd stream of the frame being written
        self._frame_offset = 0
        self._frame_events = 0
        self._frame_sha = hashlib.sha256()
        self._pending: dict[str, str] = {}  # positions of the frame being written
        self.pending_gaps: list[dict[str, str]] = []
        self._pending_first = ""
        self._pending_last = ""

    def _write(self, data: bytes) -> None:
        guard(lambda: self.file.write(data), str(self.path))

    def write(self, line: bytes, ev_time: str, ev_type: str, key: str, rv: str) -> None:
        if self._frame is None:
            self._frame_offset = self.file.tell()
            self._frame = self.cctx.stream_writer(self.file, closefd=False)
            self._frame_events = 0
            self._frame_sha = hashlib.sha256()
        guard(lambda: self._frame.write(line + b"\n"), str(self.path))
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
        durable.step(f"end frame {self.path.name}")
        guard(lambda: frame.flush(zstandard.FLUSH_FRAME), str(self.path))
        guard(self.file.flush, str(self.path))
        if sync:
            durable.step(f"fsync {self.path.name}")
            guard(lambda: os.fsync(self.file.fileno()), str(self.path))
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
        m.gaps.extend(self.pending_gaps)
        self._pending = {}
        self.pending_gaps = []
        self._pending_first = self._pending_last = ""

    def seal(self) -> SegmentManifest:
        self.flush(sync=False)
        m = self.manifest
        m.sealed = now_time()
        durable.step(f"seal {self.path.name}")
        self._write(sealing(self.header, m, self.file.tell()))
        guard(self.file.flush, str(self.path))
        durable.step(f"fsync {self.path.name}")
        guard(lambda: os.fsync(self.file.fileno()), str(self.path))
        self.file.close()
        return m

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()


# --------------------------------------------------------------------------- the journal

CLOCK_STEP = 1.0  # seconds: a step back of the wall clock beyond this is noted


def _seconds_between(earlier: str, later: str) -> float:
    return (parse_time(later) - parse_time(earlier)).total_seconds()


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
        last_time: str = "",
        on_sealed: Callable[[Path, SegmentManifest], None] | None = None,
    ) -> None:
        self.dir = Path(directory) / SEGMENT_DIR
        # called with each segment this writer seals, once it is sealed and
        # fsynced (a journal in object storage uploads it: `journal.remote`)
        self.on_sealed = on_sealed
        if not self.dir.is_dir():
            guard(lambda: durable.mkdir(self.dir), str(self.dir))
        self.level = level
        self.rotate_size = rotate_size
        self.rotate_interval = rotate_interval
        self.flush_interval = flush_interval
        self.clock = clock
        if next_segment is None:
            newest_base = max(list_bases(directory), default=0)
            next_segment = max(list_segments(directory).keys(), default=newest_base) + 1
        self.next_segment = next_segment
        self.current: SegmentWriter | None = None
        self.last_flush = clock()
        self.sealed: list[SegmentManifest] = []  # sealed by this writer, in order
        self.events = 0
        self.last_time = last_time  # the newest event time in the journal
        self.clock_step = ""  # what was said of a clock step back (once per run)

    def write(self, ev: Event) -> None:
        """Append an event. Event times never go back within a journal: one
        stamped before the newest written (threads race by microseconds; a
        wall clock stepped back by seconds) takes the newest time; a step back
        of more than CLOCK_STEP seconds is noted once, as a CLOCK event."""
        if ev.time < self.last_time:
            if not self.clock_step and _seconds_between(ev.time, self.last_time) > CLOCK_STEP:
                self._note_clock(ev.time)
            ev.time = self.last_time
        else:
            self.last_time = ev.time
        if self.current is None:
            path = self.dir / segment_name(self.next_segment)
            self.current = SegmentWriter(path, self.next_segment, self.level, self.clock())
            self.next_segment += 1
        self.current.write(
            ev.encode(), ev.time, ev.type, position_key(ev.resource, ev.namespace), ev.rv
        )
        if ev.type == "GAP":
            self.current.pending_gaps.append(gap_record(ev))
        self.events += 1

    def _note_clock(self, wall: str) -> None:
        back = _seconds_between(wall, self.last_time)
        self.clock_step = (
            f"the system clock stepped back by {back:.1f}s (to {wall}); event times are held "
            f"at {self.last_time} until it catches up, so their order is kept"
        )
        body = json.dumps({"wall": wall, "kept": self.last_time, "step": -round(back, 6)})
        self.write(Event(self.last_time, "CLOCK", "", "", "", body.encode()))

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
            m = cur.seal()
            self.sealed.append(m)
            if self.on_sealed is not None:
                self.on_sealed(cur.path, m)
        self.last_flush = self.clock()

    def close(self) -> None:
        self.rotate()

    def abandon(self) -> None:
        """Leave the open segment as a crash would (tests; a failed close)."""
        if self.current is not None:
            self.current.abandon()
            self.current = None


# --------------------------------------------------------------------------- reading back
