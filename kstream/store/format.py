"""The archive format's constants and the manifest record: what writers and readers of
snapshots (and journals) share, below both (kstream/store/writers.py writes the format,
kstream/store/snapshot.py reads it).

`Manifest` is a dump's manifest (dump writes it, count and diff read it); `Entry` is
its record of one unit.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import field
from typing import Any, Literal

from kstream.dataclass import dataclass

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
READ_BUF = 1024 * 1024

# what a dump's manifest says of the whole snapshot
DumpStatus = Literal["complete", "partial", "interrupted"]
# how each format is read (see the module docstring)
SnapshotFormat = Literal["zst", "dir", "ndjson", "ndjson.zst", "json"]


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
    fallbackCode: str | None = None  # the same in a few words (stream.WATCH_LIST_OFF ...)
    sha256: str = ""
    offset: int | None = None
    length: int | None = None
    file: str | None = None
    # what happened to the read worth knowing ("N changes folded before the
    # marker", "resource version expired (410): restarted"); left out when none
    notes: list[str] | None = None

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

    @classmethod
    def lenient(cls, d: Any) -> Entry | None:
        """A record of the manifest's `notRead` list, with what it lacks left
        empty (None for what is not a record)."""
        if not isinstance(d, dict):
            return None
        with contextlib.suppress(TypeError):
            return cls.from_json(d)
        return cls(
            group=str(d.get("group") or ""),
            version=str(d.get("version") or ""),
            resource=str(d.get("resource") or ""),
            kind=str(d.get("kind") or ""),
            namespaced=bool(d.get("namespaced")),
            namespace=_opt_str(d.get("namespace")),
            status=str(d.get("status") or "incomplete"),
            error=_opt_str(d.get("error")),
        )


def _strs(v: Any) -> tuple[str, ...]:
    return tuple(str(x) for x in v) if isinstance(v, list) else ()


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


@dataclass(frozen=True)
class DumpOptions:
    """What a dump selected and how it wrote (the manifest's `options`). A value
    an old manifest does not record reads as empty; `secrets` and `secretDigest`
    as None."""

    resources: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    field_selector: str = ""
    secrets: str | None = None  # redact | include | exclude
    secret_digest: str | None = None  # sha256 | hmac-sha256
    strip: tuple[str, ...] = ()
    method: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "resources": list(self.resources),
            "exclude": list(self.exclude),
            "namespaces": list(self.namespaces),
            "labelSelector": self.label_selector,
            "fieldSelector": self.field_selector,
            "secrets": self.secrets,
            "secretDigest": self.secret_digest,
            "strip": list(self.strip),
            "method": self.method,
        }

    @classmethod
    def from_json(cls, raw: Any) -> DumpOptions | None:
        if not isinstance(raw, dict):
            return None
        return cls(
            resources=_strs(raw.get("resources")),
            exclude=_strs(raw.get("exclude")),
            namespaces=_strs(raw.get("namespaces")),
            label_selector=str(raw.get("labelSelector") or ""),
            field_selector=str(raw.get("fieldSelector") or ""),
            secrets=_opt_str(raw.get("secrets")),
            secret_digest=_opt_str(raw.get("secretDigest")),
            strip=_strs(raw.get("strip")),
            method=str(raw.get("method") or ""),
        )


@dataclass(frozen=True)
class DiscoveryFailure:
    group_version: str
    error: str


@dataclass
class Manifest:
    """A dump's manifest: written by dump (archive and directory), read by count
    and diff. On disk it is JSON with camelCase keys, in this order (`to_json`);
    `from_json` reads what older versions wrote, a missing value left empty."""

    status: str  # DumpStatus; an old or foreign manifest may say anything
    tool: str = ""
    server_url: str | None = None
    server_version: str | None = None
    context: str | None = None
    started: str = ""
    finished: str = ""
    duration: float = 0.0
    options: DumpOptions | None = None  # None: the manifest records none
    excluded_by_default: tuple[str, ...] = ()
    not_watchable: tuple[str, ...] = ()  # manifests since 0.x; may lack it
    discovery_failures: tuple[DiscoveryFailure, ...] = ()
    not_read: tuple[Entry, ...] = ()
    resources: list[Entry] = field(default_factory=list)  # the units the output holds
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "tool": self.tool,
            "status": self.status,
            "server": {"url": self.server_url, "version": self.server_version},
            "context": self.context,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "options": self.options.to_json() if self.options is not None else {},
            "excludedByDefault": list(self.excluded_by_default),
            "notWatchable": list(self.not_watchable),
            "discoveryFailures": [
                {"groupVersion": f.group_version, "error": f.error} for f in self.discovery_failures
            ],
            "notRead": [e.to_json() for e in self.not_read],
            "resources": [e.to_json() for e in self.resources],
        }

    @classmethod
    def from_json(cls, m: dict[str, Any]) -> Manifest:
        """Of a manifest whose format and version were checked; raises TypeError
        or ValueError for one that is corrupted."""
        server = m.get("server")
        server = server if isinstance(server, dict) else {}
        failures = tuple(
            DiscoveryFailure(str(f.get("groupVersion")), str(f.get("error") or ""))
            for f in m.get("discoveryFailures") or []
            if isinstance(f, dict)
        )
        not_read = tuple(
            e for e in (Entry.lenient(d) for d in m.get("notRead") or []) if e is not None
        )
        return cls(
            status=str(m.get("status") or ""),
            tool=str(m.get("tool") or ""),
            server_url=server.get("url"),
            server_version=server.get("version"),
            context=m.get("context"),
            started=str(m.get("started") or ""),
            finished=str(m.get("finished") or ""),
            duration=float(m.get("duration") or 0.0),
            options=DumpOptions.from_json(m.get("options")),
            excluded_by_default=_strs(m.get("excludedByDefault")),
            not_watchable=_strs(m.get("notWatchable")),
            discovery_failures=failures,
            not_read=not_read,
            resources=[Entry.from_json(d) for d in m.get("resources") or []],
        )


def skippable(magic: int, payload: bytes) -> bytes:
    return struct.pack("<II", magic, len(payload)) + payload
