"""Counting objects and bytes, live or from a snapshot, grouped by resource,
namespace or a label. No objects are written anywhere.

Live: `CountSink` is the `stream.Sink` of each unit; it counts what the reader
hands it (with `--by resource` it never parses an object) and the main thread
adds finished sinks into a `Tally`. Memory is the number of groups, not the
number of objects.

Snapshot: `count_snapshot()` reads an archive's or directory's manifest when the
grouping and the filters allow it (no decompression at all), otherwise it makes
one streaming pass over the objects.

Estimate: `estimate_units()` asks for one object per unit (LIST limit=1) and
reads `remainingItemCount`; nothing is streamed.

Bytes are the compact JSON of each object without the newline: live, the bytes
the server sent; from a snapshot, the bytes in the snapshot (Secret values
redacted by dump, so Secrets count a little differently).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import field
from typing import TYPE_CHECKING, Any

from kstream import deepjson
from kstream.cluster.stream import Reader, Unit
from kstream.dataclass import dataclass
from kstream.errors import (
    ApiError,
    AuthError,
    KstreamError,
    SnapshotError,
    TLSError,
    UsageError,
)
from kstream.exitcodes import ExitCode
from kstream.resources import Resource, guess_plural, match, snapshot_resource, split_api_version
from kstream.selector import (
    LabelSelector,
    MetadataFieldSelector,
    Scope,
    key_problem,
)

if TYPE_CHECKING:
    from kstream.cluster.plan import LiveOptions, Plan
    from kstream.cluster.runner import Run
    from kstream.store.format import Entry

SCHEMA_VERSION = 1
FIELDS = ("resource", "namespace", "label")

# --------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class Grouping:
    """What a row is: a combination of resource, namespace and one label's value."""

    fields: tuple[str, ...] = ("resource",)
    label_key: str = ""

    @classmethod
    def parse(cls, text: str) -> Grouping:
        """`resource`, `namespace`, `label:KEY`, or several joined by commas
        (`namespace,resource`). Row fields follow the order given."""
        fields: list[str] = []
        label_key = ""
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if part in ("resource", "namespace"):
                name = part
            elif part.startswith("label:") and part[6:].strip():
                if label_key:
                    raise UsageError("--by: only one label:KEY at a time")
                label_key = part[6:].strip()
                if key_problem(label_key):
                    raise UsageError(f"--by: {label_key!r} is not a valid label key")
                name = "label"
            else:
                raise UsageError(
                    f"--by: unknown grouping {part!r} (use resource, namespace or label:KEY)"
                )
            if name in fields:
                raise UsageError(f"--by: {part} given twice")
            fields.append(name)
        if not fields:
            raise UsageError("--by: say how to group: resource, namespace or label:KEY")
        return cls(tuple(fields), label_key)

    @property
    def text(self) -> str:
        return ",".join(f"label:{self.label_key}" if f == "label" else f for f in self.fields)

    def needs_object(self, namespaced: bool, unit_namespace: str | None) -> bool:
        """Whether an object must be parsed to find its group (the resource and,
        for a per-namespace unit or a cluster-scoped resource, the namespace are
        known without looking)."""
        if "label" in self.fields:
            return True
        return "namespace" in self.fields and namespaced and unit_namespace is None


@dataclass(frozen=True)
class ResKey:
    group: str
    version: str
    resource: str
    kind: str = ""

    @property
    def name(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @classmethod
    def of(cls, r: Resource) -> ResKey:
        return cls(r.group, r.version, r.resource, r.kind)


# One row's identity: the values of Grouping.fields, in order. A resource is a
# ResKey, a namespace a str or None (cluster-scoped), a label value str or None.
Key = tuple[Any, ...]


def make_key(
    grouping: Grouping, res: ResKey, namespace: str | None, labels: dict[str, Any] | None
) -> Key:
    out: list[Any] = []
    for f in grouping.fields:
        if f == "resource":
            out.append(res)
        elif f == "namespace":
            out.append(namespace or None)
        else:
            v = (labels or {}).get(grouping.label_key)
            out.append(v if isinstance(v, str) else None)
    return tuple(out)


def _meta(doc: Any) -> dict[str, Any]:
    md = doc.get("metadata") if isinstance(doc, dict) else None
    return md if isinstance(md, dict) else {}


class Filters:
    """A Scope applied to a snapshot (live, the server applies it)."""

    def __init__(self, scope: Scope) -> None:
        self.include = scope.resources
        self.exclude = scope.exclude
        self.namespaces = scope.namespaces
        self.labels = LabelSelector(scope.label_selector)
        self.fields = MetadataFieldSelector(scope.field_selector, "a snapshot")

    @property
    def per_object(self) -> bool:
        """Whether objects must be looked at whatever the grouping."""
        return bool(self.labels) or bool(self.fields)


# --------------------------------------------------------------------------- the sink


class CountSink:
    """A `stream.Sink` that counts. `write` only adds a length unless the group
    (or a client-side filter) depends on the object's content."""

    def __init__(
        self,
        key: Key | None,
        key_of: Callable[[dict[str, Any]], Key | None] | None = None,
    ) -> None:
        """Either a constant key (nothing parsed), or `key_of(doc)` giving an
        object's key (None: the object is filtered out)."""
        if (key is None) == (key_of is None):
            raise ValueError("CountSink needs a key or a key function")
        self.key = key
        self.key_of = key_of
        self.objects = 0
        self.bytes = 0
        self.counts: dict[Key, list[int]] = {}
        self.needs_recount = False

    def write(self, obj: bytes) -> None:
        if self.key_of is None:
            self.objects += 1
            self.bytes += len(obj)
            return
        k = self.key_of(deepjson.loads(obj))
        if k is None:
            return
        self.objects += 1
        self.bytes += len(obj)
        c = self.counts.get(k)
        if c is None:
            self.counts[k] = [1, len(obj)]
        else:
            c[0] += 1
            c[1] += len(obj)

    def write_block(self, objs: memoryview, n: int) -> None:
        """n objects at once, joined by newlines (stream.WriteBlock)."""
        if self.key_of is None:
            self.objects += n
            self.bytes += len(objs) - (n - 1)
            return
        for obj in bytes(objs).split(b"\n"):
            self.write(obj)

    def reset(self) -> None:
        self.objects = self.bytes = 0
        self.counts.clear()
        self.needs_recount = False

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        """Changes that arrived before the end marker (1.27-1.31 servers). Which
        of these objects were already counted, and how big they were, is not
        kept (that would grow with the number of objects): the unit is marked
        to be counted again with a paginated LIST."""
        self.needs_recount = True

    def items(self) -> Iterator[tuple[Key, int, int]]:
        if self.key is not None:  # read and known: a row even when empty
            yield self.key, self.objects, self.bytes
            return
        for k, (n, b) in self.counts.items():
            yield k, n, b


def sink_for_unit(grouping: Grouping, unit: Unit) -> CountSink:
    """The sink for one live unit: parses objects only when the grouping needs to."""
    r = unit.resource
    res = ResKey.of(r)
    ns = unit.namespace if r.namespaced else None
    if not grouping.needs_object(r.namespaced, unit.namespace):
        return CountSink(make_key(grouping, res, ns, None))

    def key_of(doc: dict[str, Any]) -> Key:
        md = _meta(doc)
        return make_key(grouping, res, ns or md.get("namespace"), md.get("labels"))

    return CountSink(None, key_of)


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    key: Key
    objects: int
    bytes: int | None  # None: not known (estimates)

    def to_json(self, grouping: Grouping) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, v in zip(grouping.fields, self.key, strict=True):
            if f == "resource":
                out.update(group=v.group, version=v.version, resource=v.resource, kind=v.kind)
            elif f == "namespace":
                out["namespace"] = v
            else:
                out["label"] = v
        out["objects"] = self.objects
        out["bytes"] = self.bytes
        return out


@dataclass
class Missing:
    """Something that was not (entirely) counted."""

    name: str  # resource name (`deployments.apps`) or group/version
    namespace: str | None
    status: str  # forbidden failed incomplete interrupted discovery-failed ...
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "status": self.status,
            "error": self.error or None,
        }

    @property
    def label(self) -> str:
        return self.name + (f" -n {self.namespace}" if self.namespace else "")


class Tally:
    """Adds counts up by key; its size is the number of groups."""

    def __init__(self) -> None:
        self.counts: dict[Key, list[int]] = {}

    def add(self, key: Key, objects: int, size: int) -> None:
        c = self.counts.get(key)
        if c is None:
            self.counts[key] = [objects, size]
        else:
            c[0] += objects
            c[1] += size

    def add_sink(self, sink: CountSink) -> None:
        for k, n, b in sink.items():
            self.add(k, n, b)

    def rows(self) -> list[Row]:
        return [Row(k, n, b) for k, (n, b) in self.counts.items()]


def sort_rows(rows: list[Row], how: str) -> list[Row]:
    def name(r: Row) -> tuple[Any, ...]:
        return tuple(
            (v.group, v.resource) if isinstance(v, ResKey) else ("" if v is None else v)
            for v in r.key
        )

    if how == "name":
        return sorted(rows, key=name)
    if how == "size":
        return sorted(rows, key=lambda r: (-(r.bytes or 0), -r.objects, name(r)))
    return sorted(rows, key=lambda r: (-r.objects, -(r.bytes or 0), name(r)))


@dataclass
class CountResult:
    """What `count` found; rendered as a table, JSON or NDJSON by the CLI."""

    source: str  # live | snapshot
    grouping: Grouping
    rows: list[Row]
    estimate: bool = False
    incomplete: list[Missing] = field(default_factory=list)
    not_estimated: list[str] = field(default_factory=list)
    problem: str = ""  # snapshot: why it is incomplete (interrupted dump)
    interrupted: bool = False
    snapshot: str | None = None
    snapshot_format: str | None = None
    server: str | None = None
    from_manifest: bool = False
    excluded_by_default: list[str] = field(default_factory=list)  # live: left out (no -r)
    fallbacks: list[str] = field(default_factory=list)  # live: the short reason of each LIST read

    @property
    def complete(self) -> bool:
        return not (self.incomplete or self.problem or self.interrupted)

    @property
    def total_objects(self) -> int:
        return sum(r.objects for r in self.rows)

    @property
    def total_bytes(self) -> int | None:
        if self.estimate:
            return None
        return sum(r.bytes or 0 for r in self.rows)

    def exit_code(self) -> ExitCode:
        """OK; SNAPSHOT for a snapshot whose dump was interrupted (counts of
        what it holds are still shown); PARTIAL when something could not be
        read (live) or the snapshot itself is partial."""
        if self.problem:
            return ExitCode.SNAPSHOT
        if self.incomplete:
            return ExitCode.PARTIAL
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "kstream-count",
            "schemaVersion": SCHEMA_VERSION,
            "source": self.source,
            "snapshot": self.snapshot,
            "server": self.server,
            "estimate": self.estimate,
            "by": self.grouping.text,
            "complete": self.complete,
            "problem": self.problem or None,
            "rows": [r.to_json(self.grouping) for r in self.rows],
            "total": {
                "rows": len(self.rows),
                "objects": self.total_objects,
                "bytes": self.total_bytes,
            },
            "incomplete": [m.to_json() for m in self.incomplete],
            "notEstimated": list(self.not_estimated),
        }

    def ndjson(self) -> Iterator[str]:
        for r in self.rows:
            yield json.dumps(r.to_json(self.grouping), separators=(",", ":"))


def recount(reader: Reader, unit: Unit, grouping: Grouping) -> CountSink:
    """Count a unit again with a paginated LIST (after a watch-list stream
    delivered changes before its end marker; see CountSink.fold)."""
    from dataclasses import replace

    lister = Reader(reader.client, replace(reader.opts, method="list"), reader.cancel)
    sink = sink_for_unit(grouping, unit)
    unit.objects = unit.bytes = 0
    lister.read(unit, sink, lambda u: None)
    unit.notes.append("counted again with LIST: changes arrived before the end marker")
    return sink


def units_missing(
    units: Iterable[Unit], counted: set[int] | None = None, interrupted: bool = False
) -> list[Missing]:
    """The units that have no row. With `counted` (the indices whose objects are
    in the tally), every other unit is listed, a read one too: after an
    interrupt, a unit can be complete and yet not counted (its count not
    handed over, or its recount not done); it is "interrupted", like dump's."""
    out = []
    for u in units:
        if (u.index in counted) if counted is not None else u.status == "complete":
            continue
        status, error = u.status or "incomplete", u.error
        if interrupted and u.status in ("", "complete"):
            status = "interrupted"
            if u.status == "complete":
                error = f"read ({u.objects:,} objects) but not counted before the interrupt"
            elif u.started:
                error = "interrupted while reading"
            else:
                error = "interrupted before it started"
        elif status == "complete":  # counted is given and holds it not: say so
            status, error = "incomplete", error or "read but not counted"
        out.append(Missing(u.resource.name, u.namespace, status, error))
    return out


# --------------------------------------------------------------------------- estimates


def estimate_one(reader: Reader, unit: Unit) -> tuple[int | None, Missing | None]:
    """One unit's estimate: LIST limit=1, the item plus remainingItemCount.
    (count, None); (None, None) when the server gives no remaining count;
    (None, Missing) when the LIST is refused or fails. Bad credentials and TLS
    errors are raised (fatal, as for dump)."""
    try:
        return reader.estimate_count(unit), None
    except (AuthError, TLSError):
        raise
    except ApiError as e:
        status = "forbidden" if e.status == 403 else "failed"
        return None, Missing(unit.resource.name, unit.namespace, status, str(e))
    except KstreamError as e:
        return None, Missing(unit.resource.name, unit.namespace, "failed", str(e))


def estimate_units(
    reader: Reader, units: Sequence[Unit], grouping: Grouping, concurrency: int = 4
) -> tuple[list[Row], list[str], list[Missing]]:
    """Rows of estimated object counts (LIST limit=1 and remainingItemCount),
    the units the server gave no remaining count for, and the units that could
    not be listed at all. Bytes are not estimated."""
    for u in units:
        if grouping.needs_object(u.resource.namespaced, u.namespace):
            what = "a label" if "label" in grouping.fields else "namespace (without -n)"
            raise UsageError(f"--estimate cannot group by {what}: nothing is read per object")
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(units) or 1))) as pool:
        found = list(pool.map(lambda u: estimate_one(reader, u), units))
    tally = Tally()
    not_estimated: list[str] = []
    failed: list[Missing] = []
    for u, (n, missing) in zip(units, found, strict=True):
        u.estimate = n
        if missing is not None:
            failed.append(missing)
        elif n is None:
            not_estimated.append(u.label)
        else:
            ns = u.namespace if u.resource.namespaced else None
            tally.add(make_key(grouping, ResKey.of(u.resource), ns, None), n, 0)
    rows = [Row(r.key, r.objects, None) for r in tally.rows()]
    return rows, not_estimated, failed


# --------------------------------------------------------------------------- snapshots


def _entry_resource(e: Any) -> Resource:
    return snapshot_resource(e.group, e.version, e.resource, e.kind, e.namespaced)


def _chosen(
    resources: Sequence[Resource], include: Sequence[str], exclude: Sequence[str]
) -> set[Resource]:
    """-r/--exclude against the resources of a snapshot. Unlike a live dump,
    nothing is excluded by default (the snapshot is what was dumped), and a
    name that matches nothing selects nothing."""
    from kstream.resources import split_names

    inc, exc = split_names(include), split_names(exclude)
    out: set[Resource] = set()
    if inc:
        for name in inc:
            out.update(match(name, resources))
    else:
        out.update(resources)
    for name in exc:
        out.difference_update(match(name, resources))
    return out


def count_snapshot(
    path: str, grouping: Grouping, scope: Scope | None = None, force_stream: bool = False
) -> CountResult:
    """Count a snapshot written by dump: from its manifest where the grouping
    and the scope allow, else in one streaming pass (checksums verified)."""
    from kstream.sources import open_source

    filters = Filters(scope or Scope())
    snap = open_source(path)
    if snap.manifest is None:
        return _count_plain(snap, grouping, filters)
    result = CountResult(
        "snapshot",
        grouping,
        [],
        snapshot=path,
        snapshot_format=snap.format,
        problem=snap.problem,
    )
    m = snap.manifest
    result.server = m.server_url
    wanted_ns = set(filters.namespaces)
    entries = selected_entries(snap.entries, filters)
    if m.status == "partial" or any(e.status != "complete" for e in snap.entries):
        for e in entries:
            if e.status != "complete":
                result.incomplete.append(Missing(e.name, e.namespace, e.status, e.error or ""))
        for nr in m.not_read:
            result.incomplete.append(Missing(nr.name, nr.namespace, nr.status, nr.error or ""))
        for f in m.discovery_failures:
            result.incomplete.append(Missing(f.group_version, None, "discovery-failed", f.error))
        if m.status == "partial" and not result.incomplete:
            result.incomplete.append(Missing("(snapshot)", None, "partial", "the dump was partial"))
    tally = Tally()

    def needs_objects(e: Any) -> bool:
        ns_known = e.namespace is not None or not e.namespaced
        return grouping.needs_object(e.namespaced, e.namespace) or (
            bool(wanted_ns) and not ns_known
        )

    fast = not force_stream and not filters.per_object and not any(map(needs_objects, entries))
    result.from_manifest = fast
    for e in entries:
        res = ResKey(e.group, e.version, e.resource, e.kind)
        ns = e.namespace if e.namespaced else None
        if fast:
            if snap.format == "dir":
                _check_file_size(path, e, snap.remote)
            tally.add(make_key(grouping, res, ns, None), e.objects, max(0, e.bytes - e.objects))
            continue
        sink = _snapshot_sink(grouping, filters, res, e.namespaced, ns, wanted_ns)
        for line in snap.lines(e):
            sink.write(line)
        tally.add_sink(sink)
    result.rows = tally.rows()
    return result


def _check_file_size(path: str, e: Any, remote: Any = None) -> None:
    """A directory's NDJSON file must be as big as its manifest says: a cheap
    check that it was not cut short, when the counts come from the manifest.
    `remote`: the s3:// prefix of a directory snapshot (one HEAD per file)."""
    import os

    if remote is not None:
        from kstream.store.snapshot import listed_object

        obj = listed_object(remote, e.file or "")
        f, size = obj.loc.url, obj.size
    else:
        f = os.path.join(path, e.file or "")
        try:
            size = os.stat(f).st_size
        except OSError as err:
            raise SnapshotError(f"{f}: {err.strerror}") from None
    if size != e.bytes:
        raise SnapshotError(
            f"{f}: {size} bytes, the manifest says {e.bytes} (truncated or modified)"
        )


def _snapshot_sink(
    grouping: Grouping,
    filters: Filters,
    res: ResKey,
    namespaced: bool,
    ns: str | None,
    wanted_ns: set[str],
) -> CountSink:
    check_ns = bool(wanted_ns) and namespaced and ns is None
    if not (filters.per_object or check_ns or grouping.needs_object(namespaced, ns)):
        return CountSink(make_key(grouping, res, ns, None))
    labels, fields = filters.labels, filters.fields

    def key_of(doc: dict[str, Any]) -> Key | None:
        md = _meta(doc)
        obj_ns = ns or md.get("namespace") or None
        if check_ns and obj_ns not in wanted_ns:
            return None
        if labels and not labels.matches(md.get("labels")):
            return None
        if fields and not fields.matches(md):
            return None
        return make_key(grouping, res, obj_ns, md.get("labels"))

    return CountSink(None, key_of)


def selected_entries(entries: Sequence[Entry], filters: Filters) -> list[Entry]:
    """The units of a snapshot with a manifest that -r/--exclude and -n select
    (count's rules, export's too): cluster-scoped units with -n only when named
    with -r."""
    resources = {id(e): _entry_resource(e) for e in entries}
    chosen = _chosen(list(resources.values()), filters.include, filters.exclude)
    wanted_ns = set(filters.namespaces)
    explicit = bool(filters.include)
    out = []
    for e in entries:
        if resources[id(e)] not in chosen:
            continue
        if wanted_ns:
            if not e.namespaced and not explicit:
                continue
            if e.namespace is not None and e.namespace not in wanted_ns:
                continue
        out.append(e)
    return out


def selected_kind(filters: Filters, api_version: str, kind: str) -> Resource | None:
    """An object's apiVersion and kind against -r/--exclude, in a snapshot without
    a manifest (count's rule, export's too): its resource, None when not selected."""
    g, v = split_api_version(api_version)
    r = snapshot_resource(g, v, guess_plural(kind) or "(no kind)", kind, True)
    return r if r in _chosen([r], filters.include, filters.exclude) else None


def _count_plain(snap: Any, grouping: Grouping, filters: Filters) -> CountResult:
    """NDJSON (plain or zstd-compressed) without a manifest: one pass, every
    object parsed for its apiVersion and kind."""
    result = CountResult("snapshot", grouping, [], snapshot=snap.path, snapshot_format=snap.format)
    tally = Tally()
    wanted_ns = set(filters.namespaces)
    explicit = bool(filters.include)
    decided: dict[tuple[str, str], ResKey | None] = {}
    labels, fields = filters.labels, filters.fields
    for line, doc in snap.documents():
        av, kind = str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")
        md = _meta(doc)
        if (av, kind) not in decided:
            r = selected_kind(filters, av, kind)
            decided[(av, kind)] = ResKey(r.group, r.version, r.resource, kind) if r else None
        res = decided[(av, kind)]
        if res is None:
            continue
        ns = md.get("namespace") or None
        if wanted_ns and (ns not in wanted_ns if ns is not None else not explicit):
            continue
        if labels and not labels.matches(md.get("labels")):
            continue
        if fields and not fields.matches(md):
            continue
        tally.add(make_key(grouping, res, ns, md.get("labels")), 1, len(line))
    result.rows = tally.rows()
    return result


# --------------------------------------------------------------------------- live


def count_live(
    scope: Scope,
    live: LiveOptions,
    grouping: Grouping,
    drive: Callable[[Run[CountSink]], ExitCode | None] | None = None,
    warn: Callable[[str], None] = lambda msg: None,
    estimate: bool = False,
) -> tuple[CountResult, ExitCode | None]:
    """Stream every unit into a counting sink: dump's machinery, nothing
    written. `drive` consumes the run's events (progress, Ctrl-C) and returns
    the exit code of an interrupt (by default: the events, unseen); `warn`
    hears of namespaces that do not exist; `estimate`: count each unit first
    for the progress display."""
    from kstream.cluster.plan import open_live
    from kstream.cluster.runner import Run

    plan, reader = open_live(scope, live, warn)
    tally = Tally()
    again: list[Unit] = []

    def make_sink(u: Unit) -> CountSink:
        return sink_for_unit(grouping, u)

    counted: set[int] = set()  # units whose objects are in the tally

    def deliver(u: Unit, sink: CountSink) -> None:
        if u.status != "complete":  # not read: no row (it is listed as incomplete)
            return
        if sink.needs_recount:
            again.append(u)
        else:
            tally.add_sink(sink)
            counted.add(u.index)

    run = Run(reader, plan.units, make_sink, deliver, live.concurrency, estimate=estimate)
    interrupted = drive(run) if drive is not None else _consume(run)
    if interrupted is None:
        for u in again:  # interrupted here: main() reports it (exit 130/143)
            sink = recount(reader, u, grouping)
            if u.status == "complete":
                tally.add_sink(sink)
                counted.add(u.index)
    result = CountResult("live", grouping, tally.rows(), server=plan.server)
    result.interrupted = interrupted is not None
    # every unit is either counted or listed: after an interrupt, one that was
    # read but never counted (not handed over, recount not done) is listed too
    result.incomplete = units_missing(plan.units, counted, interrupted is not None)
    result.incomplete += _discovery_missing(plan)
    result.excluded_by_default = [r.name for r in plan.selection.excluded_by_default]
    result.fallbacks = [u.fallback for u in plan.units if u.fallback and u.index in counted]
    return result, interrupted


def _consume(run: Run[CountSink]) -> ExitCode | None:
    for _ in run.events():
        pass
    return None


def estimate_live(
    scope: Scope, live: LiveOptions, grouping: Grouping, warn: Callable[[str], None]
) -> CountResult:
    """`count --estimate`: a LIST limit=1 per unit, no object read."""
    from kstream.cluster.plan import open_live

    if scope.label_selector or scope.field_selector:
        raise UsageError(
            "--estimate cannot use -l/--field-selector: "
            "the server gives no remaining count with selectors"
        )
    plan, reader = open_live(scope, live, warn)
    rows, not_estimated, failed = estimate_units(reader, plan.units, grouping, live.concurrency)
    result = CountResult("live", grouping, rows, estimate=True, server=plan.server)
    result.not_estimated = not_estimated
    result.incomplete = failed + _discovery_missing(plan)
    return result


def _discovery_missing(plan: Plan) -> list[Missing]:
    return [Missing(f.group, None, "discovery-failed", f.error) for f in plan.discovery.failures]
