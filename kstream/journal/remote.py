"""A journal in object storage: `dump --follow -o s3://BUCKET/PREFIX/` and
`--resume s3://BUCKET/PREFIX/` (docs/objectstorage.md, docs/journal.md).

The journal is written exactly as a local one, by the local code (journal_lock,
make_base, JournalWriter, recovery), into a local staging directory (`--stage`,
by default `default_stage()`: one per target URL, so a restarted process finds
what the killed one staged). Every file that is complete and will never change
again goes to the bucket through one hook, `Uploader.upload()`, under the same
name below PREFIX/: the base, then journal.json (the commit point: a prefix
without it holds no journal), then each segment once sealed. The open segment
never leaves the stage.

Uploads are create-only: `If-None-Match: *` (a conditional write; AWS S3,
SeaweedFS and moto refuse to replace an existing key), after a HEAD (which also
guards on a server that ignores the condition, outside the race). Each object
carries the sha256 of its bytes (x-amz-meta-sha256); a key that exists with the
same sha256 is this journal's own upload (a crash came between the upload and
what followed it), one with another is a second writer: OutputError, nothing
replaced. So every key is written once and a versioned bucket holds one version
of each.

Local copies: the base and each sealed segment are removed from the stage once
uploaded.

Re-basing (`--rebase-every`, `--retain`): `RemoteStore` is the re-base's
`rebase.Store` for the bucket: the fold reads the newest base and the segments
since from the prefix (through `journal/files.py`, so the stage never holds a
period of events), each new base is uploaded through `Uploader.upload()` and its
local copy removed, retention deletes keys (oldest first, each a `durable`
step), or nothing when the bucket has S3 Object Lock enabled (one note).

`--resume` needs only the bucket: `push_staged()` first seals the stage's open
segment (if any) and uploads what the stage holds in order (base, journal.json,
segments, a base a crash left staged), then `remote_positions()` reads each
unit's position from the newest base's manifest and the manifests of the
segments after it (through `journal/files.py`: ranged GETs), the next segment
number and the journal's end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kstream.dataclass import dataclass
from kstream.errors import AlreadyExists, OutputError, SnapshotError, UsageError
from kstream.journal import durable
from kstream.journal.format import (
    BASE_NAME,
    BASES_DIR,
    META_NAME,
    SEGMENT_DIR,
    SegmentManifest,
    base_name,
    check_meta,
    list_bases,
    list_segments,
    position_key,
    segment_number,
)
from kstream.journal.rebase import Store
from kstream.journal.writer import guard

if TYPE_CHECKING:
    from kstream.journal.recovery import Positions
    from kstream.store.objstore import Location

SHA_KEY = "sha256"  # x-amz-meta-sha256: the sha256 of the object's bytes


def default_stage(url: str) -> Path:
    """Where `dump --follow -o URL` stages its journal without --stage: under
    $XDG_CACHE_HOME (or ~/.cache) kstream/stage/, one directory per target URL
    (the bucket's name and a digest of the URL), the same for every run with
    the same target, so a restart finds what a killed run staged."""
    from kstream.store.objstore import parse

    loc = parse(url).as_prefix()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(cache) if cache else Path.home() / ".cache"
    digest = hashlib.sha256(loc.url.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", loc.bucket)[:60]
    return root / "kstream" / "stage" / f"{safe}-{digest}"


def prepare_stage(stage: str | None, url: str) -> Path:
    """The staging directory, made (with its parents) when missing; OutputError
    (exit 7) when it cannot be made or written."""
    path = Path(stage) if stage else default_stage(url)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise OutputError(
            f"--stage {path}: cannot make the staging directory: {e.strerror or e}"
        ) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"--stage {path}: not a writable directory")
    return path


def prefix_of(url: str) -> Location:
    """The journal's prefix: s3://BUCKET/PREFIX/ (the trailing slash required)."""
    from kstream.store.objstore import parse

    loc = parse(url)
    if not loc.is_prefix or not loc.key:
        raise UsageError(
            f"-o {url}: a journal in object storage is a prefix: s3://BUCKET/PREFIX/ "
            "(with the trailing slash)"
        )
    return loc


# ------------------------------------------------------------------ the bucket's side


@dataclass
class Listing:
    """What the journal's prefix holds, by name below it."""

    meta: bool = False
    base: bool = False
    segments: dict[int, str] = field(default_factory=dict)  # number -> name
    other: list[str] = field(default_factory=list)  # names a journal does not hold

    @property
    def empty(self) -> bool:
        return not (self.meta or self.base or self.segments or self.other)


def listing(prefix: Location) -> Listing:
    """The prefix's keys (a missing bucket, no permission: OutputError)."""
    from kstream.store.objstore import head, list_keys

    head(prefix.child(META_NAME), "write")  # says "no such bucket" when it is missing
    out = Listing()
    for key in list_keys(prefix, "write"):
        name = key[len(prefix.key) :]
        sub, _, leaf = name.rpartition("/")
        n = segment_number(leaf)
        if name == META_NAME:
            out.meta = True
        elif name == BASE_NAME:
            out.base = True
        elif sub == SEGMENT_DIR and n is not None:
            out.segments[n] = name
        elif sub != BASES_DIR:
            out.other.append(name)
    return out


def check_new_remote(url: str, force: bool) -> Location:
    """The prefix a new journal goes to, before connecting: refused when it
    holds a journal (carry on with --resume) or anything else (exit 2)."""
    prefix = prefix_of(url)
    if force:
        raise UsageError(
            f"-o {url}: a journal in object storage is never replaced (its objects are "
            "written once): drop --force, or choose another prefix"
        )
    lst = listing(prefix)
    if lst.meta:
        raise UsageError(f"{prefix.url} holds a kstream journal: carry on with --resume {url}")
    if lst.base and not lst.other:
        raise UsageError(
            f"{prefix.url} holds the base of a journal whose {META_NAME} was never uploaded "
            f"(a run cut then): carry on with --resume {url} where its stage is"
        )
    if not lst.empty:
        names = sorted([*lst.other, *lst.segments.values()] + ([BASE_NAME] if lst.base else []))
        raise UsageError(
            f"{prefix.url} is not empty and holds no kstream journal ({len(names)} objects, "
            f"e.g. {names[0]}): choose another prefix"
        )
    return prefix


def stage_holds_journal(stage: Path) -> bool:
    """A journal staged (journal.json written, the base complete)."""
    return (stage / META_NAME).is_file()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Uploader:
    """The one way a complete, immutable file of the stage reaches the bucket
    (`upload`); the base and each sealed segment are removed from the stage once
    uploaded."""

    def __init__(self, prefix: Location, stage: Path) -> None:
        self.prefix = prefix
        self.stage = stage
        self.uploaded: list[str] = []  # names uploaded (or found uploaded) by this run

    def upload(self, local: Path, name: str) -> None:
        """Upload the complete file `local` as PREFIX/name, create-only. A key
        that exists with the same bytes (sha256) is taken as uploaded (a crash
        cut the run after the upload); with other bytes: OutputError."""
        from kstream.store import objstore

        loc = self.prefix.child(name)
        sha = guard(lambda: file_sha256(local), str(local))
        meta = objstore.head(loc, "write")
        if meta is None:
            durable.step(f"upload {name}")
            try:
                with open(local, "rb") as f:
                    objstore.put_file(loc, f, metadata={SHA_KEY: sha}, create_only=True)
            except AlreadyExists:
                meta = objstore.head(loc, "write")
        if meta is not None:
            theirs = str((meta.get("Metadata") or {}).get(SHA_KEY) or "")
            if theirs != sha:
                raise OutputError(
                    f"{loc.url} exists with other content: another kstream writes this "
                    f"journal (one writer per journal), or the stage {self.stage} is not "
                    "this journal's: nothing was replaced"
                )
        self.uploaded.append(name)

    def segment_sealed(self, path: Path, m: SegmentManifest) -> None:
        """JournalWriter's `on_sealed`: upload the segment, then remove its
        local copy."""
        self.upload(path, f"{SEGMENT_DIR}/{path.name}")
        durable.unlink(path)

    def commit_base(self) -> None:
        """A new journal's base, then journal.json (the commit point)."""
        base = self.stage / BASE_NAME
        if base.is_file():
            self.upload(base, BASE_NAME)
        self.upload(self.stage / META_NAME, META_NAME)
        if base.is_file():
            durable.unlink(base)

    def push_staged(self) -> int | None:
        """What the stage holds and the bucket may not, in order: the open
        segment a killed run left sealed (its number returned), then the base,
        journal.json and each sealed segment uploaded."""
        from kstream.journal.recovery import read_sealed_manifest, seal_open_segment

        sealed_tail = None
        segs = list_segments(self.stage)
        numbers = sorted(segs)
        for i, n in enumerate(numbers):
            if read_sealed_manifest(segs[n]) is None:
                if i != len(numbers) - 1:
                    raise SnapshotError(
                        f"{segs[n]}: corrupted journal: a segment other than the newest is "
                        "not sealed"
                    )
                sealed_tail = n
                seal_open_segment(segs[n])
        self.commit_base()
        for n, path in sorted(list_segments(self.stage).items()):
            self.segment_sealed(path, SegmentManifest(segment=n, created="", sealed=""))
        for n, path in list_bases(self.stage).items():  # a re-base cut before its upload
            if n:
                self.upload(path, base_name(n))
                durable.unlink(path)
        return sealed_tail


class RemoteStore(Store):
    """`rebase.Store` for a journal in object storage (`--rebase-every` /
    `--retain` with -o/--resume s3://): the fold reads the bucket (`source`, the
    prefix), each new base is uploaded through the Uploader (create-only) and
    its local copy removed, retention deletes keys. With S3 Object Lock enabled
    on the bucket nothing is deleted: one note says the bucket's lifecycle rules
    do it."""

    def __init__(self, up: Uploader, note: Callable[[str], None]) -> None:
        super().__init__(up.stage)
        self.up = up
        self.source = up.prefix.url
        self.note = note
        self._locked: bool | None = None  # Object Lock on the bucket (asked once)

    def complete(self, name: str) -> None:
        local = self.dir / name
        self.up.upload(local, name)
        durable.unlink(local)

    def locked(self) -> bool:
        if self._locked is None:
            from kstream.store import objstore

            got = objstore.object_lock_enabled(self.up.prefix)
            self._locked = bool(got)
            if got:
                self.note(
                    f"note: S3 Object Lock is enabled on the bucket of {self.up.prefix.url}: "
                    "--retain deletes nothing; deletion is left to the bucket's lifecycle rules"
                )
            elif got is None:  # a delete under Object Lock only adds a delete marker
                self.note(
                    f"note: these credentials may not read the Object Lock configuration of "
                    f"the bucket of {self.up.prefix.url} (s3:GetBucketObjectLockConfiguration): "
                    "--retain deletes as without it"
                )
        return self._locked

    def remove(self, names: list[str]) -> list[str]:
        """Delete the keys `names`, in this order (oldest first: a crash midway
        leaves a journal every reader reads); none under Object Lock."""
        from kstream.store import objstore

        if self.locked():
            return []
        for name in names:
            durable.step(f"delete {name}")
            objstore.delete(self.up.prefix.child(name))
        return names


def fetch_meta(prefix: Location, stage: Path) -> bytes:
    """journal.json from the bucket, into the stage when the stage has none
    (a new machine); the stage's own when both have one and they agree.
    UsageError when the stage holds another journal's."""
    from kstream.store import objstore

    obj = objstore.RemoteObject.open(prefix.child(META_NAME))
    if obj is None:
        raise SnapshotError(f"{prefix.url}: {META_NAME} vanished")
    data = obj.get(0, obj.size)
    local = stage / META_NAME
    if local.is_file():
        mine = guard(local.read_bytes, str(local))
        if mine != data:
            raise UsageError(
                f"the stage {stage} holds another journal than {prefix.url}: give another "
                "--stage (or remove it)"
            )
        return data
    tmp = stage / (META_NAME + ".tmp")

    def put() -> None:
        durable.step(f"create {tmp.name}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            durable.step(f"fsync {tmp.name}")
            os.fsync(f.fileno())
        durable.replace(tmp, local)
        durable.fsync_dir(stage)

    guard(put, str(local))
    return data


def remote_positions(prefix: Location, stage: Path, sealed_tail: int | None) -> Positions:
    """Each unit's position in the journal the bucket holds (after
    `push_staged`), read through `journal/files.py` as every reader reads it:
    the newest base's manifest, then the manifest of each segment after it
    (ranged GETs; the segments a base covers are not read: the point of
    re-basing); the next segment number, the newest event time, the units
    whose last resync is still open (the newest segment's events, streamed)."""
    from kstream.journal.reader import _sealed_lines, decode_event, open_journal
    from kstream.journal.recovery import Positions
    from kstream.journal.resume import base_positions

    j = open_journal(prefix.url, newest=True)
    rvs, finished = base_positions(j.base_path)
    pos = Positions(rvs=rvs, sealed_tail=sealed_tail)
    for seg in j.segments:
        m = seg.manifest
        if m is None:
            raise SnapshotError(f"{seg.path}: corrupted journal: a segment is not sealed")
        pos.rvs.update(m.positions)
        pos.segments += 1
        pos.last_time = max(pos.last_time, m.last)
    pos.next_segment = (j.segments[-1].number if j.segments else j.base_no) + 1
    if j.base_no and not pos.last_time:
        pos.last_time = finished  # a later base's time: its last event's
    pos.end = pos.last_time or finished
    if j.segments:
        for line in _sealed_lines(j.segments[-1]):
            if not line.strip():
                continue
            ev = decode_event(line)
            key = position_key(ev.resource, ev.namespace)
            if ev.type == "RESYNC":
                pos.open_resync.add(key)
            elif ev.type == "SYNCED":
                pos.open_resync.discard(key)
    return pos


def journal_meta(data: bytes, url: str) -> dict[str, Any]:
    """journal.json's content (`data`, read from the prefix `url` or its stage),
    checked as `directory.read_meta` checks it (`format.check_meta`)."""
    return check_meta(data, f"{url}{META_NAME}", url, foreign=UsageError)


def drop_stage(stage: Path, up: Uploader | None = None) -> None:
    """Remove the stage at the end of a run: with `up`, once everything it
    held of the journal is in the bucket (a clean end);
    without, only when it holds nothing of a journal (a run cut before its
    base). Whatever else it holds stays, for the next run."""
    from kstream.journal.format import LOCK_NAME

    with contextlib.suppress(OSError):
        if up is not None:
            if META_NAME not in up.uploaded:
                return
            if list_bases(stage) or list_segments(stage):
                return
        else:
            segs = stage / SEGMENT_DIR
            names = {p.name for p in stage.iterdir()}
            if names - {LOCK_NAME, SEGMENT_DIR} or (segs.is_dir() and any(segs.iterdir())):
                return
        shutil.rmtree(stage)
