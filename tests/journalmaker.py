"""Writes journals for the reader's tests, byte for byte as `kstream/journal/format.py`
describes them: journal.json, a base archive, segments (sealed or open, with
frames as given), so each test can cut or corrupt one precisely."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from kstream.journal.format import (
    BASE_NAME,
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    META_NAME,
    SEGMENT_DIR,
    SEGMENT_FORMAT,
    SEGMENT_VERSION,
    Event,
    FrameRecord,
    SegmentManifest,
    gap_record,
    position_key,
    segment_name,
    split_unit_resource,
)
from kstream.store.format import (
    FOOTER_TAG,
    MAGIC_FOOTER,
    MAGIC_HEADER,
    MAGIC_MANIFEST,
    Entry,
    skippable,
)
from kstream.store.writers import ArchiveWriter

KINDS = {
    "v1/configmaps": ("ConfigMap", True),
    "v1/secrets": ("Secret", True),
    "v1/namespaces": ("Namespace", False),
    "apps/v1/deployments": ("Deployment", True),
    "example.com/v1/widgets": ("Widget", True),
}


def obj(
    resource: str, name: str, namespace: str = "", rv: str = "1", **body: Any
) -> dict[str, Any]:
    """A Kubernetes-like object of `resource` (a key of KINDS)."""
    g, v, _ = split_unit_resource(resource)
    kind, _namespaced = KINDS[resource]
    md: dict[str, Any] = {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"}
    if namespace:
        md["namespace"] = namespace
    out: dict[str, Any] = {
        "apiVersion": f"{g}/{v}" if g else v,
        "kind": kind,
        "metadata": md,
    }
    out.update(body)
    return out


def line(o: dict[str, Any]) -> bytes:
    return json.dumps(o, separators=(",", ":")).encode()


def ev(
    time: str, type: str, resource: str, o: dict[str, Any] | None = None, rv: str = "", ns: str = ""
) -> Event:
    if not rv and o is not None:
        rv = str(o["metadata"].get("resourceVersion") or "")
    return Event(time, type, resource, ns, rv, line(o) if o is not None else None)


def write_base(
    path: Path,
    units: dict[str, list[dict[str, Any]]],
    started: str = "2026-11-29T13:00:00Z",
    rvs: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    failed: tuple[str, ...] = (),
) -> None:
    """An archive with one unit per resource (over all namespaces), objects sorted."""
    w = ArchiveWriter(str(path), force=True, level=1, header={"tool": "journalmaker"})
    for resource, objects in units.items():
        g, v, r = split_unit_resource(resource)
        kind, namespaced = KINDS[resource]
        spool = w.new_spool(r, None)
        for o in sorted(
            objects, key=lambda o: f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
        ):
            spool.write(line(o))
        e = Entry(
            g,
            v,
            r,
            kind,
            namespaced,
            None,
            "failed" if resource in failed else "complete",
            method="watch-list",
            resourceVersion=(rvs or {}).get(resource, "100"),
            objects=spool.objects,
            bytes=spool.size,
            sha256=spool.sha.hexdigest(),
        )
        w.append(e, spool)
    w.finish(
        {
            "format": "kstream-archive",
            "version": 1,
            "tool": "journalmaker",
            "status": "partial" if failed else "complete",
            "server": {"url": "https://test", "version": "v1.36.3"},
            "context": "test",
            "started": started,
            "finished": started,
            "duration": 0.0,
            "options": options or {"secrets": "redact", "secretDigest": "sha256"},
            "excludedByDefault": [],
            "notWatchable": [],
            "discoveryFailures": [],
            "notRead": [],
        },
        interrupted=False,
    )


@dataclass
class SegmentBytes:
    data: bytes
    header_end: int
    frames: list[FrameRecord] = field(default_factory=list)
    manifest_offset: int = 0


def segment_bytes(
    number: int, frames: Iterable[list[Event]], sealed: bool = True, checksum: bool = True
) -> SegmentBytes:
    head = json.dumps(
        {
            "format": SEGMENT_FORMAT,
            "version": SEGMENT_VERSION,
            "segment": number,
            "created": "2026-11-29T13:00:00.000000Z",
        }
    ).encode()
    out = bytearray(skippable(MAGIC_HEADER, head))
    sb = SegmentBytes(b"", len(out))
    cctx = zstandard.ZstdCompressor(level=1, write_checksum=checksum)
    m = SegmentManifest(number, "2026-11-29T13:00:00.000000Z", "2026-11-29T15:00:00.000000Z")
    for events in frames:
        raw = b"".join(e.encode() + b"\n" for e in events)
        comp = cctx.compress(raw)
        fr = FrameRecord(len(out), len(comp), len(events), hashlib.sha256(raw).hexdigest())
        sb.frames.append(fr)
        m.frames.append(fr)
        out += comp
        for e in events:
            m.events += 1
            m.first = m.first or e.time
            m.last = e.time
            m.positions[position_key(e.resource, e.namespace)] = e.rv
            if e.type == "GAP":  # listed in the manifest, as the writer does
                m.gaps.append(gap_record(e))
    if sealed:
        sb.manifest_offset = len(out)
        body = json.dumps(m.to_json()).encode()
        out += skippable(MAGIC_MANIFEST, body)
        digest = hashlib.sha256(head + body).digest()
        out += skippable(MAGIC_FOOTER, FOOTER_TAG + digest + struct.pack("<Q", sb.manifest_offset))
    sb.data = bytes(out)
    return sb


class Journal:
    """A journal directory being written by a test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / SEGMENT_DIR).mkdir(exist_ok=True)
        (root / META_NAME).write_text(
            json.dumps(
                {
                    "format": JOURNAL_FORMAT,
                    "version": JOURNAL_VERSION,
                    "created": "2026-11-29T13:00:00.000000Z",
                    "context": "test",
                    "server": {"url": "https://test"},
                    "options": {},
                }
            )
        )
        self.segments: dict[int, SegmentBytes] = {}

    @property
    def base(self) -> Path:
        return self.root / BASE_NAME

    def seg_path(self, n: int) -> Path:
        return self.root / SEGMENT_DIR / segment_name(n)

    def segment(self, n: int, frames: list[list[Event]], sealed: bool = True) -> SegmentBytes:
        sb = segment_bytes(n, frames, sealed)
        self.seg_path(n).write_bytes(sb.data)
        self.segments[n] = sb
        return sb
