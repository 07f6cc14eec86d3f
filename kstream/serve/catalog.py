"""What kstream serve serves: the `Catalog` of a snapshot's resources (manifest units, or
one spooling pass for formats without a manifest) and the `Store`, an LRU of
`ObjectIndex`es (a resource's objects in an unlinked temp file, offsets sorted by
(namespace, name)).
"""

from __future__ import annotations

import os
import tempfile
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import field
from typing import IO, Any

from kstream.dataclass import dataclass
from kstream.jsonlines import line_key
from kstream.resources import guess_plural, split_api_version
from kstream.store.format import Entry
from kstream.store.snapshot import Snapshot

# --------------------------------------------------------------------------- the catalog

CACHE_RESOURCES = 8  # ObjectIndexes kept (each: 16 bytes per object in memory, its file on disk)


@dataclass
class Served:
    """One resource of the snapshot, as the server serves it."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    entries: list[Entry] = field(default_factory=list)  # the units holding its objects
    spool: str | None = None  # formats without a manifest: the file of its lines
    resource_version: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.resource)


def _max_rv(a: str, b: str) -> str:
    if not b:
        return a
    if not a:
        return b
    try:
        return a if int(a) >= int(b) else b
    except ValueError:
        return b


class Catalog:
    """The resources of one snapshot, in discovery order (core group first)."""

    def __init__(self, snap: Snapshot, resources: list[Served], tmp: str) -> None:
        self.snap = snap
        self.tmp = tmp
        self.resources = resources
        self.by_gvr = {r.key: r for r in resources}
        self.groups: dict[str, list[str]] = {}
        for r in resources:
            vs = self.groups.setdefault(r.group, [])
            if r.version not in vs:
                vs.append(r.version)
        rv = ""
        for r in resources:
            rv = _max_rv(rv, r.resource_version)
        self.resource_version = rv or "1"
        for r in resources:
            r.resource_version = r.resource_version or self.resource_version
        m = snap.manifest
        self.server_version = (m.server_version if m else None) or ""

    def disk_changes(self) -> str:
        """One line when the snapshot's files on disk are no longer the ones
        opened at start (`Snapshot.hold()`): replaced by a newer dump, deleted,
        or changed in place; "" while they are the same."""
        changed = self.snap.changed_on_disk()
        if not changed:
            return ""
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        return (
            f"{'; '.join(changed[:3])}{more}: still serving the snapshot as it was opened "
            "(restart kstream serve to serve what is there now; a file changed in place "
            "is refused where it no longer matches its checksums, never half read)"
        )

    def lines(self, r: Served) -> Iterator[bytes]:
        if r.spool is not None:
            with open(r.spool, "rb") as f:
                for line in f:
                    yield line.rstrip(b"\n")
            return
        for e in r.entries:
            yield from self.snap.lines(e)


def open_catalog(snap: Snapshot, tmp: str) -> Catalog:
    """The catalog of an opened snapshot; `tmp` (a directory the caller removes)
    holds the spool files of formats without a manifest."""
    if snap.manifest is not None:
        by_key: dict[tuple[str, str], Served] = {}
        order: list[Served] = []
        for e in snap.entries:
            r = by_key.get((e.group, e.resource))
            if r is None:
                r = Served(e.group, e.version, e.resource, e.kind, e.namespaced)
                by_key[(e.group, e.resource)] = r
                order.append(r)
            r.entries.append(e)
            r.resource_version = _max_rv(r.resource_version, e.resourceVersion)
        return Catalog(snap, _discovery_order(order), tmp)
    return Catalog(snap, _discovery_order(_spool_plain(snap, tmp)), tmp)


def _discovery_order(resources: list[Served]) -> list[Served]:
    groups: list[str] = []
    for r in resources:
        if r.group not in groups:
            groups.append(r.group)
    groups.sort(key=lambda g: g != "")  # the core group first, then as dumped
    return [r for g in groups for r in resources if r.group == g]


def _spool_plain(snap: Snapshot, tmp: str) -> list[Served]:
    """One pass over a snapshot without a manifest: each object to the spool
    file of its apiVersion and kind."""
    files: dict[tuple[str, str], IO[bytes]] = {}
    out: dict[tuple[str, str], Served] = {}
    try:
        for line, doc in snap.documents():
            av, kind = str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")
            if not av or not kind:
                continue  # nothing a client could ask for
            r = out.get((av, kind))
            if r is None:
                g, v = split_api_version(av)
                spool = os.path.join(tmp, f"plain-{len(out)}.ndjson")
                r = Served(g, v, guess_plural(kind), kind, False, spool=spool)
                out[(av, kind)] = r
                files[(av, kind)] = open(spool, "wb")  # noqa: SIM115
            md = _meta(doc)
            if md.get("namespace"):
                r.namespaced = True
            r.resource_version = _max_rv(r.resource_version, str(md.get("resourceVersion") or ""))
            f = files[(av, kind)]
            f.write(line)
            f.write(b"\n")
    finally:
        for f in files.values():
            f.close()
    return list(out.values())


# --------------------------------------------------------------------------- object index


def _meta(obj: Any) -> dict[str, Any]:
    md = obj.get("metadata") if isinstance(obj, dict) else None
    return md if isinstance(md, dict) else {}


class ObjectIndex:
    """A resource's objects in an unlinked temporary file, in (namespace, name)
    order: `starts` and `ends` (16 bytes per object) are all it keeps in memory."""

    def __init__(self, f: IO[bytes], starts: array[int], ends: array[int]) -> None:
        self.f = f  # closed (and its disk space freed) when the index is dropped
        self.fd = f.fileno()
        self.starts = starts
        self.ends = ends

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> bytes:
        return os.pread(self.fd, self.ends[i] - self.starts[i], self.starts[i])

    def key(self, i: int) -> tuple[str, str]:
        return line_key(self.line(i))

    def lower_bound(self, key: tuple[str, str]) -> int:
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, namespace: str, name: str) -> bytes | None:
        i = self.lower_bound((namespace, name))
        if i < len(self):
            line = self.line(i)
            if line_key(line) == (namespace, name):
                return line
        return None

    def namespace_range(self, namespace: str | None) -> tuple[int, int]:
        if namespace is None:
            return 0, len(self)
        return self.lower_bound((namespace, "")), self.lower_bound((namespace + "\x00", ""))


def build_index(lines: Iterator[bytes], tmp: str) -> ObjectIndex:
    f = tempfile.TemporaryFile(dir=tmp)  # noqa: SIM115
    starts, ends = array("q"), array("q")
    keys: list[tuple[str, str]] = []
    ordered = True
    prev: tuple[str, str] | None = None
    pos = 0
    try:
        for line in lines:
            k = line_key(line)
            keys.append(k)
            if prev is not None and k < prev:
                ordered = False
            prev = k
            f.write(line)
            f.write(b"\n")
            starts.append(pos)
            pos += len(line)
            ends.append(pos)
            pos += 1
        f.flush()
    except BaseException:
        f.close()
        raise
    if not ordered:
        order = sorted(range(len(keys)), key=keys.__getitem__)
        starts = array("q", (starts[i] for i in order))
        ends = array("q", (ends[i] for i in order))
    del keys
    return ObjectIndex(f, starts, ends)


class Store:
    """The ObjectIndexes of the resources recently asked for (LRU)."""

    def __init__(self, catalog: Catalog, capacity: int = CACHE_RESOURCES) -> None:
        self.catalog = catalog
        self.capacity = capacity
        self.cache: OrderedDict[tuple[str, str, str], ObjectIndex] = OrderedDict()
        self.lock = threading.Lock()
        self.building: dict[tuple[str, str, str], threading.Lock] = {}
        self.builds = 0  # how many indexes were built (tests, the bench)

    def index(self, r: Served) -> ObjectIndex:
        with self.lock:
            idx = self.cache.get(r.key)
            if idx is not None:
                self.cache.move_to_end(r.key)
                return idx
            build_lock = self.building.setdefault(r.key, threading.Lock())
        with build_lock:
            with self.lock:
                idx = self.cache.get(r.key)
                if idx is not None:
                    return idx
            idx = build_index(self.catalog.lines(r), self.catalog.tmp)
            with self.lock:
                self.builds += 1
                self.cache[r.key] = idx
                while len(self.cache) > self.capacity:
                    self.cache.popitem(last=False)  # still readable by whoever holds it
            return idx


# --------------------------------------------------------------------------- requests
