"""The journal's on-disk format: what `dump --follow` writes and every reader reads.

A journal is a directory:

    JOURNAL/
      journal.json          {"format": "kstream-journal", "version": 1, "created": ...,
                             "context": ..., "server": {"url", "version", "identity"},
                             "options": {...}}
      base.ndjson.zst       the snapshot the journal starts from: an ordinary kstream
                            archive (`kstream count JOURNAL/base.ndjson.zst` reads it)
      segments/
        000001.events.zst   change events after the base, in order of arrival
        000002.events.zst   ...
      bases/                only with `--rebase-every`: later bases (below)
        000002.ndjson.zst   the state after every event of segments 1..2
      .lock                 the writer's lock (flock), with who holds it: "pid N on
                            HOST, since TIME"
      .kstream-new/         only while a base is written (or after a crash then)
      .kstream-follow-*/    only while following: a resync's objects
      .kstream-rebase/      only while a base is folded (or after a crash then)

`bases/NNNNNN.ndjson.zst` (written by `dump --follow --rebase-every`, see
`kstream/journal/rebase.py`) is an ordinary kstream archive holding the journal's
state after every event of segments 1..NNNNNN, folded from the base before it and
the segments since (base.ndjson.zst is "base 0", before segment 1); its manifest
entries carry each unit's resourceVersion (its position), its manifest's
`started` and `finished` are its time: the newest event time of segment NNNNNN
(for a segment with no event, the time of the base before it). Base 0's time is
its `started`. A reader of instant T uses the newest base whose time <= T and
then the events of the segments after it with time <= T (`choose_base`): the
same state as from base 0, since event times never go back in file order (I4).
A base is folded only at a segment's end, where no resync of this run is open
(a resync's burst is written whole between two rotations); a resync a crash
left open is never closed (the resume does it again from a new RESYNC, which
drops what was staged), so leaving it out of the base changes no state.
`--retain` then removes what no retained instant needs (`retention`): the
bases older than the newest one at or before now - RETAIN (base.ndjson.zst
too) and the segments they cover, oldest first; the journal then starts at its
oldest base (instants before it are refused, saying where it starts), and
segments numbered at or below its oldest base are ignored by readers.

`server.identity` is the cluster's identity, the uid of its kube-system
namespace (absent in journals written before it was recorded; `--resume` adds it).

A segment is a kstream archive in layout (see `kstream/store/writers.py`):

    [skippable MAGIC_HEADER: {"format": "kstream-journal-segment", "version": 1,
                              "segment": N, "created": TIME}]
    [zstd frame: events, one per line]   one frame per flush (at least every second)
    [zstd frame: events ...]
    [skippable MAGIC_MANIFEST: SegmentManifest JSON]   } written when the segment
    [skippable MAGIC_FOOTER: as in the archive]        } is sealed (rotation, end)

`zstdcat segments/*.zst | jq` shows the events. A segment without the footer is
open: only the newest segment may be, after a crash (kill -9, power cut); it is
read up to its last whole frame, and `dump --follow --resume` seals it (cut
frame dropped) before it writes the next one. A sealed segment that does not
verify, or an unsealed one that is not the newest, is corrupted (exit 6).

An event is one line, keys in this order, the object last and as the snapshot
would hold it (redacted and stripped by the dump's own rules):

    {"time":"2026-11-29T14:00:00.123456Z","type":"MODIFIED","resource":"apps/v1/deployments",
     "namespace":"shop","rv":"12345","object":{...}}

- `time`: when kstream received the event (UTC, microseconds, `Z`), never
  before the time of the event written before it (see I4).
- `type`: ADDED, MODIFIED, DELETED (object: its last state), BOOKMARK (no object:
  the stream's position moved to `rv`), RESYNC / SYNC / SYNCED (below), GAP and
  CLOCK (below). A reader skips a type it does not know.
- `resource`: `GROUP/VERSION/RESOURCE`, the core group written as `v1/configmaps`
  (`unit_resource()`); `namespace`: the unit's namespace scope (`-n`), "" for a
  unit over all namespaces or a cluster-scoped resource. Resource plus namespace
  name the unit, as in the base's manifest.
- `rv`: the resourceVersion the event brought the unit's stream to.
- `st` (only when the object states a time): the newest of the times the object
  itself states, as the server wrote them (seconds): its managedFields entries'
  `time`, its deletionTimestamp, its creationTimestamp. It sits beside `time`;
  instants (`JOURNAL/@T`) are read on `time`, the receive time, the one clock
  every event has and the one that orders them (see docs/journal.md).

GAP (object `{"since": TIME, "why": TEXT}`, `time`: the gap's end) says that the
unit's changes between `since` and `time` may be missing or recorded late: no
follower ran then (a crash, a stop, the time until `--resume`), its stream was
down (an outage: the changes meanwhile are replayed, late, when it is back), or
its position expired (410: the changes meanwhile are lost; the resync that
follows the GAP gives the state). It is written just before what closed the gap
(the unit's first event from its stream again, or its RESYNC), and listed in the
segment's manifest (`gaps`). CLOCK (no unit; object `{"wall", "kept", "step"}`)
says the wall clock stepped back by more than a second: event times were held at
`kept` until it caught up (once per run).

A resync replaces one unit's state: after a 410 Gone, or for a resource that is
new since the journal began (a CRD created while following). RESYNC opens it,
the unit's objects follow as SYNC events, SYNCED (rv: the new snapshot's
resourceVersion) closes it. State at an instant: at SYNCED the unit's objects are
exactly the SYNC objects since its RESYNC; a resync not closed by the instant (or
ever: interrupted) changes nothing.

The state at an instant T is the base's objects, then every event with time <= T
applied in file order (ADDED/MODIFIED put, DELETED removes, by namespace/name
within the unit). An instant inside a gap (since < T < its time) has no known
state: readers refuse it unless asked (`JOURNAL/@~T`). Journals written before
GAP, CLOCK, `st`, `gaps` and `server.identity` existed are read as before (they
have none); a reader of that earlier version skips GAP and CLOCK events (unknown
types) and ignores the new keys.

What a reader may rely on after any crash of the writer (kill -9, power cut, a
full disk), at any step; each has its test in tests/test_journal_crash_unit.py
(`test_invariant_*`), and the writer is crashed at every step by
`test_crash_at_every_step_*`:

- I1. journal.json is in JOURNAL/ only when base.ndjson.zst beside it is whole:
  a new base is written in JOURNAL/.kstream-new/, its journal.json last (the
  commit point), then moved into place (journal.json last again); a run cut
  before the commit point leaves no journal, one cut after it is finished by the
  next run (`directory.tidy`). A later base is folded in JOURNAL/.kstream-rebase/
  and renamed into bases/ whole (fsynced first); retention removes base.ndjson.zst
  only once a later base is in bases/.
- I2. Segments are numbered K+1..N without a hole, K the oldest base's number
  (0 for base.ndjson.zst; segments at or below K, what a retention cut short
  left, are ignored); all but the newest are sealed;
  the newest may be open: its header (or a part of it: then it holds no event),
  whole zstd frames, then at most a cut frame or a cut manifest.
- I3. A unit's position (the base's, then the sealed manifests', then the whole
  frames' of the open segment) is the resourceVersion of its last durable
  event: a resume never skips a change (and, watching from there, never
  repeats one).
- I4. Event times never go back in file order, within a segment, across
  segments and across runs (a resume starts from the newest time on disk).
- I5. Nothing is left beside JOURNAL/; inside it, only .lock, .kstream-new/,
  .kstream-follow-*/ and .kstream-rebase/, which the next writer finishes or
  removes under the lock.
- I6. One writer at a time: every step above is taken under the lock.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from kstream.dataclass import dataclass
from kstream.errors import KstreamError, SnapshotError
from kstream.store.format import FOOTER_TAG, MAGIC_FOOTER, MAGIC_HEADER, MAGIC_MANIFEST, skippable

JOURNAL_FORMAT = "kstream-journal"
JOURNAL_VERSION = 1
SEGMENT_FORMAT = "kstream-journal-segment"
SEGMENT_VERSION = 1
META_NAME = "journal.json"
BASE_NAME = "base.ndjson.zst"
SEGMENT_DIR = "segments"
SEGMENT_SUFFIX = ".events.zst"
BASES_DIR = "bases"  # later bases (`--rebase-every`): bases/NNNNNN.ndjson.zst
BASE_SUFFIX = ".ndjson.zst"
REBASE_DIR = ".kstream-rebase"  # a base being folded (removed by the next run after a crash)
LOCK_NAME = ".lock"  # the writer's lock (who holds it)
NEW_DIR = ".kstream-new"  # a base being written (journal.json last: its commit point)
FOLLOW_PREFIX = ".kstream-follow-"  # a follower's spool directory (resync objects)

# rotation defaults (`--rotate-size`, `--rotate-interval`) and the flush interval
ROTATE_SIZE = 64 * 1024 * 1024  # uncompressed event bytes per segment
ROTATE_INTERVAL = 3600.0  # seconds
FLUSH_INTERVAL = 1.0  # seconds: the open segment is flushed at least this often

EventType = Literal[
    "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "RESYNC", "SYNC", "SYNCED", "GAP", "CLOCK"
]
CHANGE_TYPES = ("ADDED", "MODIFIED", "DELETED")
EVENT_TYPES = (
    "ADDED",
    "MODIFIED",
    "DELETED",
    "BOOKMARK",
    "RESYNC",
    "SYNC",
    "SYNCED",
    "GAP",
    "CLOCK",
)

_OBJECT = b',"object":'


# journal.json's optional fields and the JSON types they may have (null: absent)
_META_TYPES: dict[str, tuple[type, str]] = {
    "created": (str, "a string"),
    "tool": (str, "a string"),
    "context": (str, "a string"),
    "server": (dict, "an object"),
    "options": (dict, "an object"),
}


def check_meta(
    data: bytes, where: str, journal: str, foreign: type[KstreamError] = SnapshotError
) -> dict[str, Any]:
    """journal.json's content, checked: the one check every reader and writer of
    a journal makes (`directory.read_meta`, `reader.open_journal`, `--resume
    s3://`). `data`: its bytes, read from `where` (how messages name the file);
    `journal`: how messages name the journal. JSON of an object whose `format`
    is this format's (else `foreign`: "JOURNAL is not a kstream journal", the
    exception class each caller chooses), whose `version` this kstream reads, and
    whose known fields have their types (SnapshotError otherwise). Unknown fields
    are left alone (a newer writer's)."""
    try:
        meta = json.loads(data)
    except ValueError:
        raise SnapshotError(f"{where}: corrupted (not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != JOURNAL_FORMAT:
        raise foreign(f"{journal} is not a kstream journal ({META_NAME} says otherwise)")
    version = meta.get("version")
    if type(version) is not int or version != JOURNAL_VERSION:
        raise SnapshotError(
            f"{where}: journal format version {json.dumps(version)} is not supported "
            f"(this kstream reads version {JOURNAL_VERSION})"
        )
    for key, (kind, what) in _META_TYPES.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise SnapshotError(f"{where}: corrupted ({key} is not {what})")
    return meta


HEADER_LIMIT = 1 << 20  # a segment header is a few hundred bytes; larger is corruption


def read_segment_header(
    f: IO[bytes], where: str, number: int | None = None
) -> tuple[int, bytes, dict[str, Any]] | None:
    """A segment's header, read from the start of `f`, checked: the one check the
    readers and the recovery make. (offset of the first frame, the header's bytes
    (the footer's sha256 covers them with the manifest's), its fields); None when
    the file ends inside it (a crash cut it there: the segment holds no event).
    SnapshotError for one that is not a segment's header, is corrupted, of a
    format version this kstream does not read, or (`number` given) says it is
    another segment."""
    f.seek(0)
    hdr = f.read(8)
    if len(hdr) < 8:
        return None
    magic, size = struct.unpack("<II", hdr)
    if magic != MAGIC_HEADER or size > HEADER_LIMIT:
        raise SnapshotError(f"{where}: not a kstream journal segment (corrupted header)")
    body = f.read(size)
    if len(body) < size:
        return None
    try:
        head = json.loads(body)
    except ValueError:
        raise SnapshotError(f"{where}: corrupted segment header") from None
    if not isinstance(head, dict) or head.get("format") != SEGMENT_FORMAT:
        raise SnapshotError(f"{where}: not a kstream journal segment")
    if head.get("version") != SEGMENT_VERSION:
        raise SnapshotError(
            f"{where}: segment format version {head.get('version')} is not supported "
            f"(this kstream reads version {SEGMENT_VERSION})"
        )
    if number is not None and head.get("segment") != number:
        raise SnapshotError(
            f"{where}: its header says segment {head.get('segment')} (renamed or misplaced)"
        )
    return 8 + size, body, head


def segment_name(n: int) -> str:
    return f"{n:06d}{SEGMENT_SUFFIX}"


def segment_number(name: str) -> int | None:
    """N of `NNNNNN.events.zst`, None for any other name."""
    if not name.endswith(SEGMENT_SUFFIX):
        return None
    stem = name[: -len(SEGMENT_SUFFIX)]
    return int(stem) if stem.isdigit() else None


def base_name(n: int) -> str:
    """Where base N lives, relative to the journal: base.ndjson.zst for 0."""
    return BASE_NAME if n == 0 else f"{BASES_DIR}/{n:06d}{BASE_SUFFIX}"


def base_number(name: str) -> int | None:
    """N of `bases/NNNNNN.ndjson.zst` (or of its file name alone), 0 for
    base.ndjson.zst, None for any other name."""
    if name == BASE_NAME:
        return 0
    stem = name.removeprefix(BASES_DIR + "/")
    if "/" in stem or not stem.endswith(BASE_SUFFIX):
        return None
    stem = stem[: -len(BASE_SUFFIX)]
    return int(stem) if stem.isdigit() and int(stem) > 0 else None


def list_bases(directory: Path | str) -> dict[int, Path]:
    """The journal's bases by number (0: base.ndjson.zst), oldest first."""
    d = Path(directory)
    out: dict[int, Path] = {}
    if (d / BASE_NAME).is_file():
        out[0] = d / BASE_NAME
    bd = d / BASES_DIR
    if bd.is_dir():
        for p in bd.iterdir():
            n = base_number(p.name)
            if n is not None and p.is_file():
                out[n] = p
    return dict(sorted(out.items()))


def choose_base(times: list[tuple[int, str]], until: str | None) -> int | None:
    """The base a reader of instant `until` starts from: the newest whose time
    <= until (canonical times; None: the latest state, the newest base); None
    when `until` is before the oldest. `times`: (number, time) of each base."""
    ordered = sorted(times)
    if until is None:
        return ordered[-1][0] if ordered else None
    best = None
    for n, t in ordered:
        if t <= until:
            best = n
    return best


def retention(listing: list[tuple[str, str]], cutoff: str) -> list[str]:
    """What `--retain` removes, oldest first: `listing` is (name, time) of what
    a journal holds (names relative to it: base.ndjson.zst, bases/N..., segments/N...;
    a base's time as `choose_base` takes it; other names ignored), `cutoff` is
    now - RETAIN (canonical). The newest base at or before the cutoff is kept with
    everything after it; older bases and the segments they cover go. Each base
    goes before the segments after it, so that at every step the oldest base left
    is followed by every segment after it: a crash midway leaves a journal that
    every reader reads. Pure: object storage decides with it too."""
    bases = sorted((n, t) for name, t in listing if (n := base_number(name)) is not None)
    keep = choose_base(bases, cutoff)
    if not keep:
        return []
    order: list[tuple[tuple[int, int], str]] = [
        ((n, 0), base_name(n)) for n, _ in bases if n < keep
    ]
    for name, _ in listing:
        if name.startswith(SEGMENT_DIR + "/"):
            s = segment_number(name[len(SEGMENT_DIR) + 1 :])
            if s is not None and s <= keep:
                order.append(((s - 1, 1), name))
    return [name for _, name in sorted(order)]


def unit_resource(group: str, version: str, resource: str) -> str:
    return f"{group}/{version}/{resource}" if group else f"{version}/{resource}"


def split_unit_resource(s: str) -> tuple[str, str, str]:
    """(group, version, resource) of `unit_resource()`'s form."""
    parts = s.split("/")
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise ValueError(f"not GROUP/VERSION/RESOURCE: {s!r}")


def now_time() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s: str) -> datetime:
    """An event's time, or an instant a user typed (RFC 3339; `Z` or an offset;
    seconds or fractions); raises ValueError."""
    t = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    if t.tzinfo is None:
        raise ValueError(f"{s!r} has no time zone (add Z for UTC)")
    return t.astimezone(timezone.utc)


@dataclass
class Event:
    time: str
    type: str  # EventType; a reader may meet others from newer writers
    resource: str
    namespace: str
    rv: str
    object: bytes | None = None  # the object's JSON, as written
    st: str = ""  # the newest time the object states (server time), "" for none

    def encode(self) -> bytes:
        d = {
            "time": self.time,
            "type": self.type,
            "resource": self.resource,
            "namespace": self.namespace,
            "rv": self.rv,
        }
        if self.st:
            d["st"] = self.st
        head = json.dumps(d, separators=(",", ":")).encode()
        if self.object is None:
            return head
        return head[:-1] + _OBJECT + self.object + b"}"

    @classmethod
    def decode(cls, line: bytes) -> Event:
        """Raises ValueError for a line that is not an event."""
        head, sep, rest = line.partition(_OBJECT)
        if sep:
            if not rest.endswith(b"}"):
                raise ValueError("event line does not end its object")
            obj: bytes | None = rest[:-1]
            head += b"}"
        else:
            obj = None
        d = json.loads(head)
        if not isinstance(d, dict):
            raise ValueError("event line is not an object")
        try:
            return cls(
                str(d["time"]),
                str(d["type"]),
                str(d["resource"]),
                str(d.get("namespace") or ""),
                str(d.get("rv") or ""),
                obj,
                str(d.get("st") or ""),
            )
        except KeyError as e:
            raise ValueError(f"event line lacks {e}") from None


@dataclass
class FrameRecord:
    """One zstd frame of a segment: where it is, how many events, their sha256
    (of the uncompressed lines, each with its newline)."""

    offset: int
    length: int
    events: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SegmentManifest:
    """Written when a segment is sealed."""

    segment: int
    created: str
    sealed: str
    events: int = 0  # lines of every type
    first: str = ""  # time of the first and last event
    last: str = ""
    frames: list[FrameRecord] = field(default_factory=list)
    # each unit's last rv in this segment: "RESOURCE NAMESPACE" -> rv
    positions: dict[str, str] = field(default_factory=dict)
    # the GAP events of this segment (`gap_record`), so a reader finds gaps unread
    gaps: list[dict[str, str]] = field(default_factory=list)
    format: str = SEGMENT_FORMAT
    version: int = SEGMENT_VERSION

    def to_json(self) -> dict[str, Any]:
        gaps = {"gaps": [dict(g) for g in self.gaps]} if self.gaps else {}
        return gaps | {
            "format": self.format,
            "version": self.version,
            "segment": self.segment,
            "created": self.created,
            "sealed": self.sealed,
            "events": self.events,
            "first": self.first,
            "last": self.last,
            "frames": [f.to_json() for f in self.frames],
            "positions": dict(self.positions),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SegmentManifest:
        """Raises TypeError/ValueError/KeyError for one that is corrupted."""
        return cls(
            segment=int(d["segment"]),
            created=str(d.get("created") or ""),
            sealed=str(d.get("sealed") or ""),
            events=int(d.get("events") or 0),
            first=str(d.get("first") or ""),
            last=str(d.get("last") or ""),
            frames=[FrameRecord(**f) for f in d.get("frames") or []],
            positions={str(k): str(v) for k, v in (d.get("positions") or {}).items()},
            gaps=[{str(k): str(v) for k, v in g.items()} for g in d.get("gaps") or []],
            format=str(d.get("format")),
            version=int(d.get("version") or 0),
        )


def gap_record(ev: Event) -> dict[str, str]:
    """A GAP event as the segment manifest lists it: the unit, since, until (the
    event's time), why. Raises ValueError for a GAP event without its object."""
    try:
        body = json.loads(ev.object or b"")
        since, why = str(body["since"]), str(body.get("why") or "")
    except (ValueError, TypeError, KeyError):
        raise ValueError("a GAP event without since") from None
    return {
        "resource": ev.resource,
        "namespace": ev.namespace,
        "since": since,
        "until": ev.time,
        "why": why,
    }


def position_key(resource: str, namespace: str) -> str:
    return f"{resource} {namespace}"


# what the writer and recovery share
POSITION_TYPES = frozenset(("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "SYNCED"))
READ_BUF = 1024 * 1024


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


def event_fields(line: bytes) -> tuple[str, str, str, str]:
    """(time, type, position key, rv) of an encoded event line."""
    ev = Event.decode(line)
    return ev.time, ev.type, position_key(ev.resource, ev.namespace), ev.rv


def sealing(header: bytes, m: SegmentManifest, offset: int) -> bytes:
    """What seals a segment whose frames end at `offset`: the manifest, then the
    footer (sha256 of header + manifest, the manifest's offset)."""
    body = json.dumps(m.to_json()).encode()
    digest = hashlib.sha256(header + body).digest()
    return skippable(MAGIC_MANIFEST, body) + skippable(
        MAGIC_FOOTER, FOOTER_TAG + digest + struct.pack("<Q", offset)
    )
