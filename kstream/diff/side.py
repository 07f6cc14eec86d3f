"""One side of a diff: a snapshot prepared, resource by resource, into sorted
`(namespace/name, line)` sources (`Side`); the resources it knows (`ResInfo`);
the temporary keyed files and the external sort."""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from kstream import deepjson
from kstream.dataclass import dataclass
from kstream.diff.fields import SecretMasker
from kstream.diff.records import KindKey
from kstream.diff.settings import DumpSelection
from kstream.errors import SnapshotError
from kstream.resources import Resource, guess_plural, snapshot_resource, split_api_version
from kstream.store.format import Entry
from kstream.store.snapshot import Snapshot


@dataclass
class ResInfo:
    """One resource as the two snapshots know it."""

    group: str
    kind: str
    resource: str = ""  # plural, when a manifest says it
    version: str = ""
    namespaced: bool | None = None
    explicit: bool = False  # named with --resource

    @property
    def key(self) -> KindKey:
        return (self.group, self.kind)

    @property
    def name(self) -> str:
        base = self.resource or self.kind
        return f"{base}.{self.group}" if self.group else base

    def as_resource(self) -> Resource:
        """For name matching; plain NDJSON has no plural: the guessed one."""
        plural = self.resource or guess_plural(self.kind)
        return snapshot_resource(self.group, self.version, plural, self.kind, bool(self.namespaced))

    def names(self) -> set[str]:
        return self.as_resource().names()

    def matches(self, token: str) -> bool:
        return self.as_resource().answers_to(token)


def is_named(info: ResInfo, qualified: str) -> bool:
    """`resource.group` (bare `resource` for the core group), as manifests list them."""
    resource, _, group = qualified.partition(".")
    return info.group == group and resource.lower() in info.names()


def _sorted_entries(entries: list[Entry]) -> list[Entry]:
    # "ns/name" order across the per-namespace units of one resource
    return sorted(entries, key=lambda e: (e.namespace or "") + "/")


class KeyedFile:
    """A temporary file of `key NUL line` records; read back as (key, line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._f: IO[bytes] | None = os.fdopen(fd, "wb", buffering=64 * 1024)
        self.count = 0
        self.last: str | None = None
        self.ordered = True

    def write(self, key: str, line: bytes) -> None:
        assert self._f is not None
        if self.last is not None and key <= self.last:
            self.ordered = False
        self.last = key
        self._f.write(key.encode("utf-8", "surrogatepass"))  # names may hold "\\ud800"
        self._f.write(b"\0")
        self._f.write(line)
        self._f.write(b"\n")
        self.count += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def read(self) -> Iterator[tuple[str, bytes]]:
        self.close()
        with open(self.path, "rb") as f:
            for rec in f:
                k, _, line = rec.rstrip(b"\n").partition(b"\0")
                yield k.decode("utf-8", "surrogatepass"), line


def external_sort(
    items: Iterable[tuple[str, bytes]], tmp: Path, stem: str, buffer: int
) -> KeyedFile:
    """Sort (key, line) pairs with at most `buffer` bytes of lines in memory."""
    runs: list[KeyedFile] = []
    batch: list[tuple[str, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        batch.sort(key=lambda kl: kl[0])
        run = KeyedFile(tmp / f"{stem}.run{len(runs)}")
        for k, line in batch:
            run.write(k, line)
        run.close()
        runs.append(run)
        batch, size = [], 0

    for k, line in items:
        batch.append((k, line))
        size += len(line) + len(k) + 120  # + the tuple and the two objects
        if size >= buffer:
            flush()
    if batch or not runs:
        flush()
    if len(runs) == 1:
        return runs[0]
    out = KeyedFile(tmp / f"{stem}.sorted")
    for k, line in heapq.merge(*(r.read() for r in runs), key=lambda kl: kl[0]):
        out.write(k, line)
    out.close()
    for r in runs:
        with contextlib.suppress(OSError):
            r.path.unlink()
    return out


def parse_line(line: bytes, where: str) -> dict[str, Any]:
    try:
        obj = deepjson.loads(line)
    except ValueError:
        raise SnapshotError(f"{where}: an object line is not valid JSON (corrupted)") from None
    if not isinstance(obj, dict):
        raise SnapshotError(f"{where}: an object line is not a JSON object")
    return obj


def uid_of(obj: dict[str, Any]) -> str:
    md = obj.get("metadata")
    return str(md.get("uid") or "") if isinstance(md, dict) else ""


def name_key(obj: dict[str, Any]) -> str:
    """`namespace/name`: the server's (etcd's) order within a resource."""
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = {}
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"


Source = Callable[[], Iterator[tuple[str, bytes]]]
# Selection.accept: whether an object of a resource is compared (tally: count what is left out)
Accept = Callable[[ResInfo, dict[str, Any], bool], bool]


class Side:
    """One snapshot, prepared into a sorted (key, line) source per resource."""

    def __init__(self, snap: Snapshot, label: str) -> None:
        if snap.problem:
            raise SnapshotError(f"{snap.path}: {snap.problem}")
        self.snap = snap
        self.label = label
        self.where = snap.path
        self.infos: dict[KindKey, ResInfo] = {}
        self.entries: dict[KindKey, list[Entry]] = {}
        self.incomplete: dict[KindKey, str] = {}
        self.sources: dict[KindKey, Source] = {}
        self.counts: dict[KindKey, int] = {}
        options = snap.manifest.options if snap.manifest else None
        self.secrets: str | None = options.secrets if options else None
        self.digest: str | None = options.secret_digest if options else None
        # how its Secrets hold their values: from the manifest, or (no manifest)
        # learnt while partitioning: raw values seen, digests seen
        self.raw_secrets = self.secrets == "include"
        self.secret_digests: set[str] = (
            {self.digest or "sha256"} if self.secrets == "redact" else set()
        )
        self.selection = DumpSelection.of(snap.manifest)  # None: unknown (no manifest)
        for e in snap.entries:
            k = (e.group, e.kind)
            self.infos.setdefault(k, ResInfo(e.group, e.kind, e.resource, e.version, e.namespaced))
            self.entries.setdefault(k, []).append(e)
            if e.status != "complete":
                self.incomplete[k] = f"{e.status}{': ' + e.error if e.error else ''}"
        for nr in snap.manifest.not_read if snap.manifest else ():
            if nr.kind:
                k = (nr.group, nr.kind)
                self.infos.setdefault(k, ResInfo(nr.group, nr.kind, nr.resource, nr.version))
                self.incomplete[k] = "not read (the dump was partial)"
        # group -> why its resources may be missing here: the dump could not
        # discover (a version of) the group, so it never read them
        self.undiscovered: dict[str, str] = {}
        for f in snap.manifest.discovery_failures if snap.manifest else ():
            group = split_api_version(f.group_version)[0]
            why = f"discovery of {f.group_version} failed" + (f": {f.error}" if f.error else "")
            self.undiscovered.setdefault(group, why)

    @property
    def indexed(self) -> bool:
        return self.snap.format in ("zst", "dir")

    def entry_lines(self, k: KindKey) -> Iterator[bytes]:
        for e in _sorted_entries(self.entries.get(k, [])):
            yield from self.snap.lines(e)

    def partition(
        self, tmp: Path, accept: Callable[[KindKey, dict[str, Any]], bool]
    ) -> dict[KindKey, KeyedFile]:
        """Plain NDJSON: one pass, one keyed temp file per resource."""
        files: dict[KindKey, KeyedFile] = {}
        try:
            for line in self.snap.lines():
                obj = parse_line(line, self.where)
                kind = obj.get("kind")
                api = obj.get("apiVersion")
                if not isinstance(kind, str) or not kind or not isinstance(api, str):
                    raise SnapshotError(f"{self.where}: an object has no kind/apiVersion")
                g, v = split_api_version(api)
                k = (g, kind)
                if k not in self.infos:
                    ns = (obj.get("metadata") or {}).get("namespace")
                    # the server always sets metadata.namespace on namespaced objects
                    self.infos[k] = ResInfo(g, kind, "", v, bool(ns))
                if k == ("", "Secret"):
                    self._learn_secret(obj)
                if not accept(k, obj):
                    continue
                f = files.get(k)
                if f is None:
                    f = files[k] = KeyedFile(tmp / f"{self.label}.part{len(files)}")
                f.write(name_key(obj), line)
        finally:
            for f in files.values():
                f.close()
        return files

    def _learn_secret(self, obj: dict[str, Any]) -> None:
        rule = SecretMasker.rule_of(obj)
        if rule == "raw":
            self.raw_secrets = True
        elif rule is not None:
            self.secret_digests.add(rule)

    def secret_rule(self, obj: dict[str, Any]) -> str | None:
        """How one of its Secrets holds its values ("raw", "sha256",
        "hmac-sha256"): the object's own values say, else (it has none) the
        manifest; None when nothing says."""
        rule = SecretMasker.rule_of(obj)
        if rule is not None:
            return rule
        if self.secrets == "include":
            return "raw"
        if self.secrets == "redact":
            return self.digest or "sha256"
        return None

    def items(
        self, info: ResInfo, accept: Accept, tally: bool = False
    ) -> Iterator[tuple[str, bytes]]:
        """An indexed side's (key, line) of one resource, as its entries hold them."""
        where = f"{self.where} ({info.name})"
        for line in self.entry_lines(info.key):
            obj = parse_line(line, where)
            if accept(info, obj, tally):
                yield name_key(obj), line

    def prepare_indexed(
        self,
        info: ResInfo,
        accept: Accept,
        tmp: Path,
        buffer: int,
        progress: Callable[[str], None],
    ) -> None:
        """Read one resource's entries through (verifying them); its source reads
        them again when they are in order, else a sorted temporary file."""
        k = info.key
        last: str | None = None
        n = 0
        ordered = True
        for key, _ in self.items(info, accept, tally=True):
            n += 1
            if last is not None and key <= last:
                ordered = False  # keep reading: the whole entry is verified here
            last = key
        self.counts[k] = n
        if ordered:
            self.sources[k] = lambda: self.items(info, accept)
            return
        progress(f"sorting {info.name} of {self.where}")
        stem = f"{self.label}.{len(self.sources)}"
        f = external_sort(self.items(info, accept), tmp, stem, buffer)
        self.sources[k] = f.read

    def prepare_plain(
        self,
        tmp: Path,
        accept: Callable[[KindKey, dict[str, Any]], bool],
        buffer: int,
        progress: Callable[[str], None],
    ) -> None:
        """A side without a manifest: partitioned in one pass, then each
        resource's file sorted where it is out of order."""
        for k, f in self.partition(tmp, accept).items():
            self.counts[k] = f.count
            if not f.ordered:
                progress(f"sorting {self.infos[k].name} of {self.where}")
                f = external_sort(f.read(), tmp, f"{self.label}.{len(self.sources)}s", buffer)
            self.sources[k] = f.read
