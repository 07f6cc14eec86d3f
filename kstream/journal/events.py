"""A journal's change events, counted and logged (the cores of `count --events`
and `log`; the journal is read by `kstream/journal/reader.py`).

Change events are ADDED, MODIFIED and DELETED; bookmarks and resyncs are the
stream's bookkeeping, not changes. A window is `since < time <= until` (either
open). Resource names (-r, --exclude) match like count and diff on snapshots
(`kstream.resources.match`); -n, -l and --field-selector (metadata.name and
metadata.namespace) are checked on each event's object.

`manager`: the `metadata.managedFields` entry with the newest `time` names who
wrote the object last (the newest of equal times: the last listed); an object
without managedFields (or dumped with them stripped) has the manager "(unknown)".
For a DELETED event it is the last writer before the deletion: the server does
not record who deleted.

`log` shows, for each event, the fields that changed against the object's
previous state in the journal (the base, or an earlier event): leaf paths
(`spec.replicas`, `data.key`, `spec.template.spec.containers.0.image`). Left
out as noise: diff's default ignores (resourceVersion, managedFields,
generation, creationTimestamp, uid, selfLink, last-applied, the deployment
revision and endpoints trigger-time annotations, the lease heartbeat); status
changes are shown (they are what controllers write). Secret values show as
diff shows them (digests, or "(changed)"). The previous states are kept in an
on-disk sqlite database (only those of matching objects), so memory stays flat.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from kstream import deepjson, paths
from kstream.dataclass import dataclass
from kstream.errors import UsageError
from kstream.journal.format import (
    CHANGE_TYPES,
    Event,
    format_time,
    gap_record,
    position_key,
    split_unit_resource,
    unit_resource,
)
from kstream.journal.reader import Journal, open_journal, parse_instant, split_instant
from kstream.resources import Resource, match, snapshot_resource, split_names
from kstream.selector import LabelSelector, MetadataFieldSelector, Scope

SCHEMA_VERSION = 1
EVENT_FIELDS = ("resource", "namespace", "manager", "kind")
UNKNOWN_MANAGER = "(unknown)"


# --------------------------------------------------------------------------- inputs


def journal_dir(path: str, what: str) -> str:
    """The journal directory a command's argument names (UsageError otherwise)."""
    split = split_instant(path)
    if split is None:
        raise UsageError(
            f"{what} reads a journal (a directory written by dump --follow, or its "
            f"s3://BUCKET/PREFIX/); {path} is not one"
        )
    directory, instant = split
    if instant is not None:
        raise UsageError(
            f"{what}: give the journal directory ({directory.rstrip('/')}/) and the window "
            "with --since/--until, not an instant"
        )
    return directory


def window_bound(text: str | None, option: str) -> str | None:
    """`--since`/`--until`: an RFC 3339 instant, or a duration before now (`5m`,
    `1h30m`, `90s`, like kubectl logs --since); canonical time text."""
    if text is None or not text.strip():
        return None
    d = _duration(text.strip())
    if d is not None:
        from datetime import datetime, timedelta, timezone

        return format_time(datetime.now(timezone.utc) - timedelta(seconds=d))
    return format_time(parse_instant(text, option))


def window_bounds(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """`--since` and `--until` (see `window_bound`); UsageError when the window
    ends before it begins (it would match nothing, silently)."""
    lo, hi = window_bound(since, "--since"), window_bound(until, "--until")
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(
            f"--since {since} is after --until {until} ({lo} > {hi}): the window is empty"
        )
    return lo, hi


def _duration(s: str) -> float | None:
    import re

    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", s)
    if not m or not any(m.groups()):
        return None
    h, mi, sec = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(sec or 0)


class EventFilter:
    """A Scope (and, for log, object names) applied to events."""

    def __init__(self, scope: Scope, names: Sequence[str] = ()) -> None:
        self.include = split_names(scope.resources)
        self.exclude = split_names(scope.exclude)
        self.namespaces = set(scope.namespaces)
        self.labels = LabelSelector(scope.label_selector)
        self.fields = MetadataFieldSelector(scope.field_selector, "a journal")
        self.names = set(names)
        self._resources: dict[tuple[str, str], bool] = {}
        self.known: list[Resource] = []  # the journal's resources (for names)

    @property
    def narrows(self) -> bool:
        return bool(
            self.include
            or self.exclude
            or self.namespaces
            or self.labels
            or self.fields
            or self.names
        )

    def resource_ok(self, resource: str, kind: str, namespaced: bool) -> bool:
        k = (resource, kind)
        ok = self._resources.get(k)
        if ok is None:
            g, v, r = split_unit_resource(resource)
            res = snapshot_resource(g, v, r, kind, namespaced)
            # a name matches as among the journal's resources (the first in order wins)
            pool = [x for x in self.known if (x.group, x.resource) != (g, r)] + [res]
            ok = not self.include or any(res in match(n, pool) for n in self.include)
            ok = ok and not any(res in match(n, pool) for n in self.exclude)
            self._resources[k] = ok
        return ok

    def object_ok(self, md: dict[str, Any], labels: bool = True) -> bool:
        ns = str(md.get("namespace") or "")
        # as count does on a snapshot: with -n, a cluster-scoped object only when
        # its resource is named with -r
        if self.namespaces and ns not in self.namespaces and (ns or not self.include):
            return False
        if self.names and str(md.get("name") or "") not in self.names:
            return False
        if labels and self.labels and not self.labels.matches(md.get("labels")):
            return False
        return self.fields.matches(md)


def _known(journal: Journal) -> list[Resource]:
    m = journal.base.manifest
    return [
        snapshot_resource(e.group, e.version, e.resource, e.kind, e.namespaced)
        for e in (m.resources if m else [])
    ]


@dataclass
class Change:
    """One change event, parsed."""

    event: Event
    obj: dict[str, Any]
    kind: str
    namespace: str
    name: str

    @property
    def md(self) -> dict[str, Any]:
        md = self.obj.get("metadata")
        return md if isinstance(md, dict) else {}


def changes(
    journal: Journal, filt: EventFilter, since: str | None, until: str | None
) -> Iterator[Change]:
    """The journal's change events in the window that the filter accepts."""
    filt.known = _known(journal)
    for ev in journal.events(until=until, since=since):
        c = _change(ev, filt)
        if c is not None:
            yield c


def gap_ok(filt: EventFilter, ev: Event) -> bool:
    """Whether a GAP event is of a unit the filter's resources and namespaces take."""
    if filt.namespaces and ev.namespace and ev.namespace not in filt.namespaces:
        return False
    try:
        g, _, r = split_unit_resource(ev.resource)
    except ValueError:
        return False
    known = next((x for x in filt.known if (x.group, x.resource) == (g, r)), None)
    kind = known.kind if known is not None else ""
    return filt.resource_ok(ev.resource, kind, bool(known and known.namespaced))


def _change(ev: Event, filt: EventFilter, labels: bool = True) -> Change | None:
    if ev.type not in CHANGE_TYPES or ev.object is None:
        return None
    try:
        obj = deepjson.loads(ev.object)
    except ValueError:
        from kstream.errors import SnapshotError

        raise SnapshotError(
            f"an event's object is not valid JSON ({ev.resource} at {ev.time}) (corrupted)"
        ) from None
    if not isinstance(obj, dict):
        return None
    md = obj.get("metadata")
    md = md if isinstance(md, dict) else {}
    kind = str(obj.get("kind") or "")
    ns = str(md.get("namespace") or "")
    if not filt.resource_ok(ev.resource, kind, bool(ns or ev.namespace)):
        return None
    if not filt.object_ok(md, labels):
        return None
    return Change(ev, obj, kind, ns, str(md.get("name") or ""))


def manager_of(obj: dict[str, Any]) -> str:
    """The manager of the managedFields entry with the newest time."""
    md = obj.get("metadata")
    mf = md.get("managedFields") if isinstance(md, dict) else None
    best, best_t = "", ""
    for entry in mf if isinstance(mf, list) else ():
        if not isinstance(entry, dict):
            continue
        t = str(entry.get("time") or "")
        if t >= best_t:
            best, best_t = str(entry.get("manager") or ""), t
    return best or UNKNOWN_MANAGER


# --------------------------------------------------------------------------- count


@dataclass(frozen=True)
class EventGrouping:
    fields: tuple[str, ...] = ("resource",)

    @classmethod
    def parse(cls, text: str) -> EventGrouping:
        out: list[str] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if part not in EVENT_FIELDS:
                raise UsageError(
                    f"--by: with --events, group by resource, namespace, manager or kind "
                    f"(not {part!r})"
                )
            if part in out:
                raise UsageError(f"--by: {part} given twice")
            out.append(part)
        if not out:
            raise UsageError("--by: say how to group: resource, namespace, manager or kind")
        return cls(tuple(out))

    @property
    def text(self) -> str:
        return ",".join(self.fields)


@dataclass
class EventRow:
    key: tuple[str, ...]
    added: int = 0
    modified: int = 0
    deleted: int = 0
    resource: tuple[str, str, str] = ("", "", "")  # (group, version, resource) when grouped by it

    @property
    def events(self) -> int:
        return self.added + self.modified + self.deleted

    def add(self, type_: str) -> None:
        if type_ == "ADDED":
            self.added += 1
        elif type_ == "MODIFIED":
            self.modified += 1
        else:
            self.deleted += 1


@dataclass
class EventCount:
    journal: str
    grouping: EventGrouping
    since: str | None
    until: str | None
    rows: list[EventRow] = field(default_factory=list)
    first: str = ""  # the first and last event counted
    last: str = ""
    gaps: list[dict[str, str]] = field(default_factory=list)  # `gap_record`s in the window

    @property
    def total(self) -> EventRow:
        t = EventRow(("total",))
        for r in self.rows:
            t.added += r.added
            t.modified += r.modified
            t.deleted += r.deleted
        return t

    def row_json(self, r: EventRow) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f, v in zip(self.grouping.fields, r.key, strict=True):
            if f == "resource":
                g, ver, res = r.resource
                d.update({"group": g, "version": ver, "resource": res})
            elif f == "namespace":
                d["namespace"] = v or None
            else:
                d[f] = v
        d.update(events=r.events, added=r.added, modified=r.modified, deleted=r.deleted)
        return d

    def to_json(self) -> dict[str, Any]:
        t = self.total
        return {
            "kind": "kstream-event-count",
            "schemaVersion": SCHEMA_VERSION,
            "journal": self.journal,
            "since": self.since,
            "until": self.until,
            "by": self.grouping.text,
            "first": self.first or None,
            "last": self.last or None,
            "rows": [self.row_json(r) for r in self.rows],
            "gaps": self.gaps,
            "total": {
                "rows": len(self.rows),
                "events": t.events,
                "added": t.added,
                "modified": t.modified,
                "deleted": t.deleted,
            },
        }

    def ndjson(self) -> Iterator[str]:
        for r in self.rows:
            yield json.dumps(self.row_json(r))


def resource_label(resource: str) -> str:
    """`deployments.apps`, `configmaps`: kubectl's name of a unit's resource."""
    g, _, r = split_unit_resource(resource)
    return f"{r}.{g}" if g else r


def count_events(
    path: str,
    grouping: EventGrouping,
    scope: Scope,
    since: str | None,
    until: str | None,
) -> EventCount:
    journal = open_journal(journal_dir(path, "count --events"))
    filt = EventFilter(scope)
    filt.known = _known(journal)
    result = EventCount(path, grouping, since, until)
    rows: dict[tuple[str, ...], EventRow] = {}
    for ev in journal.events(until=until, since=since):
        if ev.type == "GAP":
            if gap_ok(filt, ev):
                result.gaps.append(gap_record(ev))
            continue
        c = _change(ev, filt)
        if c is None:
            continue
        key: list[str] = []
        for f in grouping.fields:
            if f == "resource":
                key.append(resource_label(c.event.resource))
            elif f == "namespace":
                key.append(c.namespace)
            elif f == "kind":
                key.append(c.kind)
            else:
                key.append(manager_of(c.obj))
        k = tuple(key)
        row = rows.get(k)
        if row is None:
            row = rows[k] = EventRow(k, resource=split_unit_resource(c.event.resource))
        row.add(c.event.type)
        result.first = result.first or c.event.time
        result.last = c.event.time
    journal.flush_notes()
    result.rows = list(rows.values())
    return result


def sort_event_rows(rows: list[EventRow], how: str) -> list[EventRow]:
    by_name = sorted(rows, key=lambda r: tuple(x or "" for x in r.key))
    if how == "name":
        return by_name
    return sorted(by_name, key=lambda r: -r.events)


# --------------------------------------------------------------------------- log


@dataclass
class FieldDiff:
    path: str
    old: Any
    new: Any


@dataclass
class LogEntry:
    time: str
    type: str
    resource: str  # GROUP/VERSION/RESOURCE
    kind: str
    namespace: str
    name: str
    rv: str
    manager: str
    fields: list[FieldDiff] | None  # None: nothing to compare with (ADDED, first seen)
    previous: bool  # whether a previous state was known
    gap: dict[str, str] | None = None  # a GAP: `gap_record` (since, until, why)

    def to_json(self) -> dict[str, Any]:
        from kstream.diff import MISSING

        g, v, r = split_unit_resource(self.resource)
        d: dict[str, Any] = {
            "time": self.time,
            "type": self.type,
            "group": g,
            "version": v,
            "resource": r,
            "kind": self.kind,
            "namespace": self.namespace or None,
            "name": self.name,
            "resourceVersion": self.rv,
            "manager": self.manager,
        }
        if self.gap is not None:
            d.update(since=self.gap["since"], why=self.gap["why"])
        if self.fields is not None:
            out = []
            for f in self.fields:
                x: dict[str, Any] = {"path": f.path}
                if f.old is not MISSING:
                    x["old"] = f.old
                if f.new is not MISSING:
                    x["new"] = f.new
                out.append(x)
            d["fields"] = out
        return d


@functools.cache
def _log_ignores(group: str, kind: str) -> tuple[paths.FieldPath, ...]:
    """The paths diff ignores for a kind, parsed once (not per event)."""
    from kstream.diff import DEFAULT_IGNORES, KIND_IGNORES

    out = [paths.parse(p) for p, _ in DEFAULT_IGNORES]
    out += [paths.parse(p) for p, _ in KIND_IGNORES.get((group, kind), ())]
    return tuple(out)


def field_diffs(old: dict[str, Any], new: dict[str, Any], group: str, kind: str) -> list[FieldDiff]:
    from kstream.diff import SecretMasker, field_changes

    for p in _log_ignores(group, kind):
        paths.delete(old, p, prune=True)
        paths.delete(new, p, prune=True)
    secret = SecretMasker.applies_to((group, kind))
    out = []
    for path, a, b in field_changes(old, new):
        if secret and SecretMasker.sensitive(path):
            a, b = SecretMasker.mask(a), SecretMasker.mask(b)
        out.append(FieldDiff(paths.render(path), a, b))
    return out


class _States:
    """The last state of each object, by (resource, namespace/name), on disk."""

    def __init__(self, tmp: Path) -> None:
        self.db = sqlite3.connect(str(tmp / "states.sqlite"), isolation_level=None)
        for pragma in (
            "journal_mode=OFF",
            "synchronous=OFF",
            "temp_store=FILE",
            "cache_size=-16384",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute(
            "CREATE TABLE s (res TEXT NOT NULL, key TEXT NOT NULL, line BLOB NOT NULL,"
            " PRIMARY KEY (res, key))"
        )
        # the objects of a resync in progress, by unit (resource and namespace)
        self.db.execute(
            "CREATE TABLE synced (unit TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (unit, key))"
        )
        self.db.execute("BEGIN")

    def get(self, res: str, key: str) -> bytes | None:
        row = self.db.execute("SELECT line FROM s WHERE res = ? AND key = ?", (res, key)).fetchone()
        return bytes(row[0]) if row else None

    def put(self, res: str, key: str, line: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO s VALUES (?, ?, ?)", (res, key, line))

    def delete(self, res: str, key: str) -> None:
        self.db.execute("DELETE FROM s WHERE res = ? AND key = ?", (res, key))

    def resync(self, unit: str) -> None:
        self.db.execute("DELETE FROM synced WHERE unit = ?", (unit,))

    def sync(self, unit: str, key: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO synced VALUES (?, ?)", (unit, key))

    def synced(self, unit: str, res: str, namespace: str) -> None:
        """A resync closed: the unit's objects it did not read are gone."""
        prefix = f"{namespace}/%" if namespace else "%"
        self.db.execute(
            "DELETE FROM s WHERE res = ? AND key LIKE ? AND key NOT IN"
            " (SELECT key FROM synced WHERE unit = ?)",
            (res, prefix, unit),
        )
        self.resync(unit)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("COMMIT")
        self.db.close()


def log(
    path: str,
    scope: Scope,
    names: Sequence[str],
    since: str | None,
    until: str | None,
    tmpdir: str | None = None,
) -> Iterator[LogEntry]:
    """The change history of the matching objects, one entry per change event in
    the window, each with the fields it changed. Events before the window are
    read (not shown) to know each object's state when the window opens."""
    journal = open_journal(journal_dir(path, "log"))
    filt = EventFilter(scope, names)
    filt.known = _known(journal)
    tmp = Path(tempfile.mkdtemp(prefix="kstream-log-", dir=tmpdir))
    states = _States(tmp)
    try:
        if since is not None:  # the newest base at or before the window opens
            journal = journal.from_base(since)
        base = journal.base
        for e in base.entries:
            res = unit_resource(e.group, e.version, e.resource)
            if not filt.resource_ok(res, e.kind, e.namespaced):
                continue
            for line in base.lines(e):
                obj = deepjson.loads(line)
                md = obj.get("metadata") if isinstance(obj, dict) else None
                # every object's state, whatever its labels: an event is shown
                # when the object matches -l before or after it (it entered or
                # left the selection, as a watch with a label selector says)
                if isinstance(md, dict) and filt.object_ok(md, labels=False):
                    states.put(_res_key(res), _obj_key(md), line)
        for ev in journal.events(until=until):
            unit = position_key(ev.resource, ev.namespace)
            if ev.type == "GAP":
                if (since is None or ev.time > since) and gap_ok(filt, ev):
                    gap = gap_record(ev)
                    yield LogEntry(
                        ev.time,
                        "GAP",
                        ev.resource,
                        "",
                        ev.namespace,
                        "",
                        ev.rv,
                        "",
                        None,
                        False,
                        gap,
                    )
                continue
            if ev.type == "RESYNC":
                states.resync(unit)
                continue
            if ev.type == "SYNCED":
                # an object the resync did not read was deleted meanwhile
                states.synced(unit, _res_key(ev.resource), ev.namespace)
                continue
            if ev.type == "SYNC" and ev.object is not None:
                # a resync's object: the state from then on (no change shown)
                c = _change(replace(ev, type="MODIFIED"), filt, labels=False)
                if c is not None:
                    states.put(_res_key(ev.resource), _obj_key(c.md), ev.object)
                    states.sync(unit, _obj_key(c.md))
                continue
            c = _change(ev, filt, labels=False)
            if c is None or ev.object is None:
                continue
            rk, ok = _res_key(ev.resource), _obj_key(c.md)
            prev = states.get(rk, ok)
            if ev.type == "DELETED":
                states.delete(rk, ok)
            else:
                states.put(rk, ok, ev.object)
            if since is not None and ev.time <= since:
                continue
            before: Any = None  # prev parsed, once, when needed
            if filt.labels and not filt.labels.matches(c.md.get("labels")):
                before = deepjson.loads(prev) if prev is not None else None
                pmd = before.get("metadata") if isinstance(before, dict) else None
                if not (isinstance(pmd, dict) and filt.labels.matches(pmd.get("labels"))):
                    continue  # matches -l neither before nor after
            manager = manager_of(c.obj)  # before field_diffs strips managedFields off c.obj
            fields: list[FieldDiff] | None = None
            if prev is not None and ev.type != "DELETED":
                g, _, _ = split_unit_resource(ev.resource)
                old = before if before is not None else deepjson.loads(prev)
                fields = field_diffs(old, c.obj, g, c.kind)
            yield LogEntry(
                ev.time,
                ev.type,
                ev.resource,
                c.kind,
                c.namespace,
                c.name,
                ev.rv,
                manager,
                fields,
                prev is not None,
            )
        journal.flush_notes()
    finally:
        states.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _res_key(resource: str) -> str:
    """A resource across versions (group/resource): an object read through
    another version after a resync is the same object."""
    g, _, r = split_unit_resource(resource)
    return f"{g}/{r}"


def _obj_key(md: dict[str, Any]) -> str:
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"
