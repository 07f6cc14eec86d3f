"""What changed between two snapshots: added, removed, modified and recreated
objects, resource by resource, in bounded memory.

Identity of an object: (API group, kind) for its resource, then namespace and
name. The same identity with another `metadata.uid` is *recreated*, not
modified. Kind rather than the plural resource name is the resource key so that
an archive (whose manifest knows both) compares with a plain NDJSON file (whose
objects only carry apiVersion and kind).

How memory stays bounded: each side is first *prepared*, resource by resource,
into a stream of `(key, line)` sorted by `namespace/name` (the server's order):

- archive / directory: the resource's entries are read once to check the order
  (which also verifies every checksum and count); when in order they are read
  again for the merge, otherwise they are sorted externally (sorted runs in
  temporary files, merged with heapq).
- plain NDJSON (no manifest): one pass partitions the lines into a temporary
  file per resource, tracking the order; unsorted partitions are sorted
  externally.

Every input byte is therefore verified before the first change is yielded: a
truncated or corrupted snapshot raises SnapshotError, never a partial diff.
Then the two sorted streams of each resource are merged; at most one object of
each side is held at a time (plus one external-sort buffer while preparing).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from kstream import deepjson, paths
from kstream.errors import SnapshotError, UsageError
from kstream.resources import Resource, guess_plural, snapshot_resource, split_api_version
from kstream.selector import (
    FieldRequirement,
    LabelSelector,
    Scope,
    SelectorError,
    parse_fields,
)
from kstream.store.format import DumpOptions, Entry, Manifest
from kstream.store.snapshot import Snapshot

if TYPE_CHECKING:
    from kstream.cluster.plan import LiveOptions
    from kstream.dump import DumpSettings
    from kstream.transform import SecretsMode

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# (path, why it is not a change). Applied to every object.
DEFAULT_IGNORES: tuple[tuple[str, str], ...] = (
    ("metadata.resourceVersion", "changes on every write to the object"),
    ("metadata.managedFields", "server-side apply bookkeeping (who set which field, when)"),
    (
        "metadata.generation",
        "counted up by the server on each spec change; the change itself is shown",
    ),
    (
        "metadata.creationTimestamp",
        "differs only when the object was recreated, reported as recreated",
    ),
    ("metadata.uid", "identity: another uid under the same name is reported as recreated"),
    ("metadata.selfLink", "legacy, set by old servers"),
    (
        f'metadata.annotations["{LAST_APPLIED}"]',
        "kubectl's copy of the applied manifest: the applied changes show in the fields themselves",
    ),
    (
        'metadata.annotations["deployment.kubernetes.io/revision"]',
        "a counter of the deployment controller",
    ),
    (
        'metadata.annotations["endpoints.kubernetes.io/last-change-trigger-time"]',
        "set by the endpoints controller",
    ),
    (
        'metadata.annotations["control-plane.alpha.kubernetes.io/leader"]',
        "legacy leader-election heartbeat",
    ),
)
STATUS_IGNORE = ("status", "written by controllers, not users (--include-status compares it)")
# (group, kind) -> ((path, why), ...): server-maintained fields of one kind only.
KIND_IGNORES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("coordination.k8s.io", "Lease"): (("spec.renewTime", "leader-election heartbeat"),),
}

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
HIDDEN = "(changed)"  # what a raw Secret value is shown as
DIGEST_PREFIXES = ("sha256:", "hmac-sha256:")
SORT_BUFFER = 64 * 1024 * 1024

KindKey = tuple[str, str]  # (group, kind): a resource as both snapshot kinds know it
ChangeKind = Literal["added", "removed", "modified", "recreated"]


# =========================================================================== settings


@dataclass(frozen=True)
class Ignore:
    path: paths.FieldPath
    reason: str
    kind: KindKey | None = None  # only for this (group, kind)
    text: str = ""  # as written


def ignore_list(
    extra: Iterable[str] = (), include_status: bool = False, defaults: bool = True
) -> list[Ignore]:
    """The paths left out of the comparison, with the reason for each."""
    out: list[Ignore] = []
    if defaults:
        out += [Ignore(paths.parse(p), why, None, p) for p, why in DEFAULT_IGNORES]
        for k, items in KIND_IGNORES.items():
            out += [Ignore(paths.parse(p), why, k, p) for p, why in items]
    if not include_status:
        out.append(Ignore(paths.parse(STATUS_IGNORE[0]), STATUS_IGNORE[1], None, STATUS_IGNORE[0]))
    for p in extra:
        try:
            out.append(Ignore(paths.parse(p), "--ignore", None, p.strip()))
        except ValueError as e:
            raise UsageError(f"--ignore: {e}") from None
    return out


@dataclass(frozen=True)
class Settings:
    ignore: tuple[Ignore, ...] = ()
    scope: Scope = field(default_factory=Scope)  # the selection (diff has no --field-selector)
    secret_key: bytes | None = None  # to redact raw Secret values like an HMAC-keyed side
    sort_buffer: int = SORT_BUFFER  # bytes of lines sorted in memory at a time
    tmpdir: str | None = None
    show_api_version_changes: bool = False  # else a change of apiVersion alone is no change
    # two clusters (diff --live --context A --context B): uids never match across
    # clusters, so another uid is no recreation there
    same_cluster: bool = True


def parse_field_selector(text: str) -> tuple[tuple[paths.FieldPath, FieldRequirement], ...]:
    """A field selector in the server's grammar (kstream.selector), each term with its path."""
    try:
        reqs = parse_fields(text)
    except SelectorError as e:
        raise UsageError(f"field selector: {e}") from None
    return tuple((tuple(r.field.split(".")), r) for r in reqs)


def field_selector_matches(
    reqs: Iterable[tuple[paths.FieldPath, FieldRequirement]], obj: Any
) -> bool:
    """Evaluated on the object's own fields, as the server does for the fields
    it supports: an absent field is "", booleans are true/false."""
    for path, req in reqs:
        v: Any = obj
        for seg in path:
            v = v.get(seg) if isinstance(v, dict) else None
        if v is None:
            text = ""
        elif isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            text = deepjson.dumps(v)
        else:
            text = str(v)
        if not req.matches(text):
            return False
    return True


# DumpSelection field -> the dump option that sets it
DUMP_OPTIONS: tuple[tuple[str, str], ...] = (
    ("resources", "-r"),
    ("exclude", "--exclude"),
    ("namespaces", "-n"),
    ("label_selector", "-l"),
    ("field_selector", "--field-selector"),
    ("secrets", "--secrets"),
    ("strip", "--strip"),
)


@dataclass(frozen=True)
class DumpSelection:
    """What a snapshot's dump selected, from its manifest, in a comparable form
    (sorted, without repeats)."""

    resources: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    field_selector: str = ""
    secrets: str = "redact"
    strip: tuple[str, ...] = ()
    by_default: tuple[str, ...] = ()  # resources excluded by default (no -r)
    not_watchable: tuple[str, ...] = ()  # left out without -r (manifests since 0.x; may lack it)

    @classmethod
    def of(cls, manifest: Manifest | None) -> DumpSelection | None:
        if manifest is None:
            return None
        raw = manifest.options or DumpOptions()
        return cls(
            resources=tuple(sorted(set(raw.resources))),
            exclude=tuple(sorted(set(raw.exclude))),
            namespaces=tuple(sorted(set(raw.namespaces))),
            label_selector=raw.label_selector.strip(),
            field_selector=raw.field_selector.strip(),
            secrets=raw.secrets or "redact",
            strip=tuple(sorted(set(raw.strip))),
            by_default=manifest.excluded_by_default,
            not_watchable=manifest.not_watchable,
        )

    def option(self, name: str) -> Any:
        """The value of one of DUMP_OPTIONS."""
        return getattr(self, name)


def dump_like(
    snap: Snapshot, settings: Settings, live: LiveOptions, output: str
) -> tuple[DumpSettings, Settings, list[str]]:
    """`diff SNAPSHOT --live`: the dump that reads the cluster as the snapshot
    was dumped (into `output`, a temporary archive): the selection the command
    line makes, else the snapshot's own (-r, --exclude, -n, -l; its
    --field-selector always), its Secret handling and --strip. Returns that
    dump, the diff's settings with the selection it used, and what was taken
    from the snapshot (for a note). An interrupted snapshot is refused
    (SnapshotError), an HMAC one without the key too (UsageError)."""
    from dataclasses import replace
    from typing import cast

    from kstream.dump import DumpSettings

    if snap.problem:
        raise SnapshotError(f"{snap.path}: {snap.problem}")
    key = settings.secret_key
    opts = (snap.manifest.options if snap.manifest else None) or DumpOptions()
    secrets = opts.secrets or "redact"
    if secrets == "redact" and opts.secret_digest == "hmac-sha256" and key is None:
        raise UsageError(
            f"{snap.path} has HMAC-redacted Secrets: give the same key with --secret-key-file"
        )
    if secrets == "redact" and opts.secret_digest != "hmac-sha256":
        key = None  # plain sha256, like the snapshot
    # the user's selection, else the snapshot's own
    inherited = []
    chosen: dict[str, Any] = {}
    for k, values in (
        ("resources", opts.resources),
        ("exclude", opts.exclude),
        ("namespaces", opts.namespaces),
    ):
        if not getattr(settings.scope, k) and values:
            chosen[k] = values
            inherited.append(f"{k}={','.join(values)}")
    if not settings.scope.label_selector and opts.label_selector:
        chosen["label_selector"] = opts.label_selector
        inherited.append(f"selector={opts.label_selector}")
    held = () if snap.manifest or settings.scope.namespaces else namespaces_held(snap)
    if held:
        chosen["namespaces"] = held
    scope = replace(settings.scope, **chosen)
    try:
        strip = tuple(paths.parse(p) for p in opts.strip)
    except ValueError:
        strip = ()
    dump = DumpSettings(
        output=output,
        fmt="zst",
        scope=replace(scope, field_selector=opts.field_selector),
        live=live,
        force=False,
        level=1,
        secrets=cast("SecretsMode", secrets),  # as the snapshot's manifest says
        secret_key=key,
        strip=strip,
    )
    return dump, replace(settings, scope=scope), inherited


def namespaces_held(snap: Snapshot) -> tuple[str, ...]:
    """The namespaces of a snapshot without a manifest (a dump's NDJSON, a
    kubectl List) when every object it holds is in one: it was dumped with -n
    (or a namespaced selection), so reading the cluster elsewhere would report
    everything there as added. () when it holds a cluster-scoped object or
    nothing, and for stdin and object storage (read once only)."""
    if snap.path == "-" or snap.remote is not None:
        return ()
    held: set[str] = set()
    for line in snap.lines():
        doc = deepjson.loads(line)
        ns = (doc.get("metadata") or {}).get("namespace") if isinstance(doc, dict) else None
        if not ns or not isinstance(ns, str):
            return ()
        held.add(ns)
    return tuple(sorted(held))


# =========================================================================== resources


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


def _is_named(info: ResInfo, qualified: str) -> bool:
    """`resource.group` (bare `resource` for the core group), as manifests list them."""
    resource, _, group = qualified.partition(".")
    return info.group == group and resource.lower() in info.names()


def _sorted_entries(entries: list[Entry]) -> list[Entry]:
    # "ns/name" order across the per-namespace units of one resource
    return sorted(entries, key=lambda e: (e.namespace or "") + "/")


# =========================================================================== records


@dataclass
class FieldChange:
    path: str
    old: Any = MISSING
    new: Any = MISSING

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path}
        if self.old is not MISSING:
            d["old"] = self.old
        if self.new is not MISSING:
            d["new"] = self.new
        return d


@dataclass
class Change:
    change: ChangeKind
    group: str
    version: str
    resource: str
    kind: str
    namespace: str
    name: str
    fields: list[FieldChange] = field(default_factory=list)
    old_uid: str = ""
    new_uid: str = ""

    @property
    def resource_name(self) -> str:
        base = self.resource or self.kind
        return f"{base}.{self.group}" if self.group else base

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "change": self.change,
            "group": self.group,
            "version": self.version,
            "resource": self.resource,
            "kind": self.kind,
            "namespace": self.namespace or None,
            "name": self.name,
        }
        if self.change in ("modified", "recreated"):
            d["fields"] = [f.to_json() for f in self.fields]
        if self.change == "recreated":
            d["uid"] = {"old": self.old_uid, "new": self.new_uid}
        return d


@dataclass
class Counts:
    added: int = 0
    removed: int = 0
    modified: int = 0
    recreated: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> int:
        return self.added + self.removed + self.modified + self.recreated

    def add(self, other: Counts) -> None:
        for k in ("added", "removed", "modified", "recreated", "unchanged"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


# =========================================================================== temp files of (key, line)


class _KeyedFile:
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
        self._f.write(key.encode())
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
                yield k.decode(), line


def _external_sort(
    items: Iterable[tuple[str, bytes]], tmp: Path, stem: str, buffer: int
) -> _KeyedFile:
    """Sort (key, line) pairs with at most `buffer` bytes of lines in memory."""
    runs: list[_KeyedFile] = []
    batch: list[tuple[str, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        batch.sort(key=lambda kl: kl[0])
        run = _KeyedFile(tmp / f"{stem}.run{len(runs)}")
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
    out = _KeyedFile(tmp / f"{stem}.sorted")
    for k, line in heapq.merge(*(r.read() for r in runs), key=lambda kl: kl[0]):
        out.write(k, line)
    out.close()
    for r in runs:
        with contextlib.suppress(OSError):
            r.path.unlink()
    return out


# =========================================================================== one side


def _parse(line: bytes, where: str) -> dict[str, Any]:
    try:
        obj = deepjson.loads(line)
    except ValueError:
        raise SnapshotError(f"{where}: an object line is not valid JSON (corrupted)") from None
    if not isinstance(obj, dict):
        raise SnapshotError(f"{where}: an object line is not a JSON object")
    return obj


def name_key(obj: dict[str, Any]) -> str:
    """`namespace/name`: the server's (etcd's) order within a resource."""
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = {}
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"


Source = Callable[[], Iterator[tuple[str, bytes]]]


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
    ) -> dict[KindKey, _KeyedFile]:
        """Plain NDJSON: one pass, one keyed temp file per resource."""
        files: dict[KindKey, _KeyedFile] = {}
        try:
            for line in self.snap.lines():
                obj = _parse(line, self.where)
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
                if not accept(k, obj):
                    continue
                f = files.get(k)
                if f is None:
                    f = files[k] = _KeyedFile(tmp / f"{self.label}.part{len(files)}")
                f.write(name_key(obj), line)
        finally:
            for f in files.values():
                f.close()
        return files


# =========================================================================== comparing


def _same_leaf(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and a map never equals a list."""
    if type(a) is type(b):
        return bool(a == b)
    num = (int, float)
    return (
        isinstance(a, num)
        and isinstance(b, num)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


# A path while walking: (parent, segment), () at the top. Made into a tuple only
# for a difference, so that walking down N levels costs N, not N*N.
_Trail = tuple[Any, ...]


def _path(trail: _Trail) -> paths.FieldPath:
    segs: list[str] = []
    while trail:
        trail, seg = trail
        segs.append(seg)
    segs.reverse()
    return tuple(segs)


def _pairs(
    a: Any, b: Any, trail: _Trail, out: list[tuple[paths.FieldPath, Any, Any]]
) -> Iterator[tuple[Any, Any, _Trail]]:
    """The children of two maps or two lists to compare; what only one side
    has goes straight to out, in order."""
    if isinstance(a, dict):
        for k in a:
            if k in b:
                yield a[k], b[k], (trail, k)
            else:
                out.append((_path((trail, k)), a[k], MISSING))
        for k in b:
            if k not in a:
                out.append((_path((trail, k)), MISSING, b[k]))
    else:
        for i in range(max(len(a), len(b))):
            t = (trail, str(i))
            if i >= len(b):
                out.append((_path(t), a[i], MISSING))
            elif i >= len(a):
                out.append((_path(t), MISSING, b[i]))
            else:
                yield a[i], b[i], t


def field_changes(
    old: Any, new: Any, prefix: paths.FieldPath = ()
) -> list[tuple[paths.FieldPath, Any, Any]]:
    """Leaf-level differences: (path, old, new), MISSING for an absent side.
    Depth first, in document order; no recursion (objects may be 10,000 deep)."""
    out: list[tuple[paths.FieldPath, Any, Any]] = []
    top: _Trail = ()
    for seg in prefix:
        top = (top, seg)
    stack: list[Iterator[tuple[Any, Any, _Trail]]] = [iter([(old, new, top)])]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            continue
        a, b, trail = nxt
        if (isinstance(a, dict) and isinstance(b, dict)) or (
            isinstance(a, list) and isinstance(b, list)
        ):
            stack.append(_pairs(a, b, trail, out))
        elif not _same_leaf(a, b):
            out.append((_path(trail), a, b))
    return out


def _uid(obj: dict[str, Any]) -> str:
    md = obj.get("metadata")
    return str(md.get("uid") or "") if isinstance(md, dict) else ""


class SecretMasker:
    """diff's handling of Secret values, in one place: which objects and fields
    hold them, how a value is shown (a digest as it is, anything else as
    HIDDEN), and how raw values are redacted to compare with a redacted side."""

    @staticmethod
    def applies_to(k: KindKey) -> bool:
        return k == ("", "Secret")

    @staticmethod
    def sensitive(path: paths.FieldPath) -> bool:
        return bool(path) and (
            path[0] in ("data", "stringData")
            or (
                len(path) >= 3
                and path[:2] == ("metadata", "annotations")
                and path[2] == LAST_APPLIED
            )
        )

    @staticmethod
    def mask(v: Any) -> Any:
        """A Secret value as shown: digests as they are, anything else hidden, maps
        (of any depth) masked member by member."""

        def leaf(x: Any) -> Any:
            if x is MISSING or (isinstance(x, str) and x.startswith(DIGEST_PREFIXES)):
                return x
            return HIDDEN

        if not isinstance(v, dict):
            return leaf(v)
        top: dict[str, Any] = {}
        stack = [(v, top)]
        while stack:
            src, dst = stack.pop()
            for k, x in src.items():
                if isinstance(x, dict):
                    dst[k] = {}
                    stack.append((x, dst[k]))
                else:
                    dst[k] = leaf(x)
        return top

    @staticmethod
    def redactor(key: bytes | None) -> Callable[[dict[str, Any]], None]:
        """Redact a Secret's raw values as dump does (sha256, or HMAC under key);
        one already redacted is left as it is."""
        from kstream.transform import redact_secret

        def redact(obj: dict[str, Any]) -> None:
            data = obj.get("data")
            if isinstance(data, dict) and all(
                isinstance(v, str) and v.startswith(DIGEST_PREFIXES) for v in data.values()
            ):
                return  # already redacted
            redact_secret(obj, key)

        return redact


class Comparison:
    """Prepare both sides, then `changes()` yields one Change per differing
    object; `summary` is complete once `changes()` is exhausted.

    Use as a context manager: temporary files are removed on exit."""

    def __init__(
        self,
        old: Snapshot,
        new: Snapshot,
        settings: Settings,
        progress: Callable[[str], None] | None = None,
        live: str = "",
    ) -> None:
        self.settings = settings
        self.old = Side(old, "old")
        self.new = Side(new, "new")
        if live:  # "old" or "new": that side is a dump of the cluster just made
            (self.old if live == "old" else self.new).where = "the live cluster"
        self.progress = progress or (lambda _msg: None)
        self.labels = LabelSelector(settings.scope.label_selector)
        self.namespaces = frozenset(settings.scope.namespaces)
        self.resources: list[ResInfo] = []
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.summary: dict[str, Counts] = {}
        # resource -> objects unchanged but for apiVersion (counted as unchanged)
        self.api_version_only: dict[str, int] = {}
        self._tmp: Path | None = None
        self._prepared = False
        self._redact: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._sel_cache: dict[KindKey, bool] = {}
        # what the two dumps' selections leave out (see _selections)
        self.selection_note = ""
        self._filters: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], bool]]] = []
        self._left_objects: dict[str, int] = {}
        self._left_resources: dict[KindKey, tuple[ResInfo, str, str]] = {}  # (info, where, why)
        self._strip_ignores: list[paths.FieldPath] = []
        self._strip_note = ""
        self._differ: list[str] = []

    # -- lifecycle
    def __enter__(self) -> Comparison:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="kstream-diff-", dir=self.settings.tmpdir))
        return self._tmp

    @property
    def total(self) -> Counts:
        t = Counts()
        for c in self.summary.values():
            t.add(c)
        return t

    # -- selection
    def _merge_infos(self) -> None:
        """Share what one side's manifest knows (plural, scope) with the other."""
        for a, b in ((self.old, self.new), (self.new, self.old)):
            for k, info in a.infos.items():
                other = b.infos.get(k)
                if other is None:
                    continue
                if not info.resource and other.resource:
                    info.resource = other.resource
                if info.namespaced is None:
                    info.namespaced = other.namespaced

    def _selected(self, info: ResInfo) -> bool:
        s = self.settings.scope
        if s.resources:
            if not any(info.matches(t) for t in s.resources):
                return False
            info.explicit = True
        if any(info.matches(t) for t in s.exclude):
            return False
        for side in (self.old, self.new):
            why = self._outside(side, info)
            if why:
                if not (self.namespaces and info.namespaced is False and not info.explicit):
                    # (else this command's own -n leaves it out anyway: nothing to say)
                    self._left_resources[info.key] = (info, side.where, why)
                return False
        return True

    def _outside(self, side: Side, info: ResInfo) -> str:
        """Why `info` was not selected by `side`'s dump ("" when it was, or
        when it simply did not exist then: a real addition or removal)."""
        sel = side.selection
        if sel is None or info.key in side.infos:
            return ""
        if sel.resources:
            return f"-r {','.join(sel.resources)}"
        if any(info.matches(t) for t in sel.exclude):
            return f"--exclude {','.join(sel.exclude)}"
        if any(_is_named(info, n) for n in sel.by_default):
            return "excluded by default"
        if any(_is_named(info, n) for n in sel.not_watchable):
            return "cannot be watched, read only when named with -r"
        if sel.namespaces and info.namespaced is False:
            return "-n leaves cluster-scoped resources out"
        if SecretMasker.applies_to(info.key) and sel.secrets == "exclude":
            return "--secrets exclude"
        return ""

    def _accept(self, info: ResInfo, obj: dict[str, Any], tally: bool = False) -> bool:
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = {}
        if self.namespaces:
            ns = md.get("namespace")
            if ns:
                if ns not in self.namespaces:
                    return False
            elif not info.explicit:
                return False  # cluster-scoped: only when named with -r, as dump does
        if not self.labels.matches(md.get("labels")):
            return False
        for what, keep in self._filters:
            if not keep(md, obj):
                if tally:
                    self._left_objects[what] = self._left_objects.get(what, 0) + 1
                return False
        return True

    def _check_names(self) -> None:
        known = list(self.old.infos.values()) + list(self.new.infos.values())
        both_indexed = self.old.indexed and self.new.indexed
        for opt, tokens in (
            ("--resource", self.settings.scope.resources),
            ("--exclude", self.settings.scope.exclude),
        ):
            for t in tokens:
                if not any(i.matches(t) for i in known):
                    msg = f'{opt}: no resource "{t}" in either snapshot'
                    if both_indexed:
                        raise UsageError(msg)
                    self.warnings.append(msg)

    def _selections(self) -> None:
        """When the two dumps selected differently, compare only what both
        selected: each known side's -n, -l and --field-selector filter the
        objects of both, its --strip paths are ignored, and a resource only one
        side has is left out when the other's selection did not include it
        (`_outside`)."""
        for side, other in ((self.old, self.new), (self.new, self.old)):
            sel = side.selection
            if sel is None:
                continue
            osel = other.selection

            def differs(key: str, sel: DumpSelection = sel, osel: Any = osel) -> bool:
                return bool(sel.option(key)) and (
                    osel is None or osel.option(key) != sel.option(key)
                )

            if differs("namespaces"):

                def in_namespaces(
                    md: dict[str, Any], _o: Any, nss: frozenset[str] = frozenset(sel.namespaces)
                ) -> bool:
                    return not md.get("namespace") or md["namespace"] in nss

                self._filters.append(
                    (f"outside {side.where}'s -n {','.join(sel.namespaces)}", in_namespaces)
                )
            if differs("label_selector"):
                try:
                    reqs = LabelSelector(sel.label_selector)
                except UsageError:
                    self.warnings.append(
                        f"cannot evaluate {side.where}'s label selector {sel.label_selector!r}"
                    )
                else:

                    def by_labels(md: dict[str, Any], _o: Any, reqs: Any = reqs) -> bool:
                        return bool(reqs.matches(md.get("labels")))

                    self._filters.append(
                        (f"outside {side.where}'s -l {sel.label_selector}", by_labels)
                    )
            if differs("field_selector"):
                try:
                    freqs = parse_field_selector(sel.field_selector)
                except UsageError:
                    self.warnings.append(
                        f"cannot evaluate {side.where}'s field selector {sel.field_selector!r}"
                    )
                else:

                    def by_fields(_md: Any, o: dict[str, Any], freqs: Any = freqs) -> bool:
                        return field_selector_matches(freqs, o)

                    self._filters.append(
                        (
                            f"outside {side.where}'s --field-selector {sel.field_selector}",
                            by_fields,
                        )
                    )
            stripped = [p for p in sel.strip if osel is None or p not in osel.strip]
            for p in stripped:
                with contextlib.suppress(ValueError):
                    self._strip_ignores.append(paths.parse(p))
            if stripped and osel is not None:
                self._strip_note += (
                    f"{'; ' if self._strip_note else ''}fields {', '.join(stripped)} "
                    f"(--strip of {side.where})"
                )
        o, n = self.old.selection, self.new.selection
        if o is not None and n is not None:
            self._differ = [opt for key, opt in DUMP_OPTIONS if o.option(key) != n.option(key)]

    def _selection_note(self) -> str:
        """One line: what the dumps' different selections left out, and why."""
        left: list[str] = []
        by_why: dict[tuple[str, str], list[str]] = {}
        for info, where, why in sorted(self._left_resources.values(), key=lambda x: x[0].name):
            by_why.setdefault((where, why), []).append(info.name)
        for (where, why), names in by_why.items():
            left.append(f"{', '.join(names)} (not selected by {where}: {why})")
        for what, count in self._left_objects.items():
            left.append(f"{count} object{'s' if count != 1 else ''} {what}")
        if self._strip_note:
            left.append(self._strip_note)
        unknown = [s for s in (self.old, self.new) if s.selection is None]
        tail = f"left out: {'; '.join(left)}" if left else "nothing left out"
        if len(unknown) == 1:
            return (
                f"{unknown[0].where} has no manifest, so what its dump selected is unknown: "
                "only this command line's selection applies to it" + (f"; {tail}" if left else "")
            )
        if self._differ:
            return (
                f"the snapshots were dumped with different {', '.join(self._differ)}: "
                f"only what both selected is compared; {tail}"
            )
        return tail if left else ""

    def _secrets_policy(self) -> None:
        o, n = self.old, self.new
        for side, other in ((o, n), (n, o)):
            if side.secrets == "include" and other.secrets == "redact":
                if other.digest == "hmac-sha256" and not self.settings.secret_key:
                    self.warnings.append(
                        f"{other.where} has HMAC-keyed Secret digests and {side.where} raw values: "
                        "give --secret-key-file to compare them"
                    )
                    continue
                key = self.settings.secret_key if other.digest == "hmac-sha256" else None
                self._redact[side.label] = SecretMasker.redactor(key)
        if (
            o.secrets == n.secrets == "redact"
            and o.digest != n.digest
            and o.digest is not None
            and n.digest is not None
        ):
            self.warnings.append(
                f"the snapshots redact Secrets differently ({o.digest} vs {n.digest}): "
                "every Secret value will differ"
            )

    # -- preparation
    def prepare(self) -> None:
        """Read both snapshots through once: verify them, sort what needs it."""
        if self._prepared:
            return
        self._prepared = True
        self._selections()
        self._secrets_policy()
        # plain NDJSON sides learn their resources by reading; indexed ones from the manifest
        self._merge_infos()
        for side in (self.old, self.new):
            if not side.indexed:
                self.progress(f"reading {side.where}")

                def accept(k: KindKey, obj: dict[str, Any], side: Side = side) -> bool:
                    info = side.infos[k]
                    if k not in self._sel_cache:
                        self._merge_infos()
                        self._sel_cache[k] = self._selected(info)
                    return self._sel_cache[k] and self._accept(info, obj, tally=True)

                for k, f in side.partition(self.tmp, accept).items():
                    side.counts[k] = f.count
                    if not f.ordered:
                        self.progress(f"sorting {side.infos[k].name} of {side.where}")
                        f = _external_sort(
                            f.read(),
                            self.tmp,
                            f"{side.label}.{len(side.sources)}s",
                            self.settings.sort_buffer,
                        )
                    side.sources[k] = f.read
        self._merge_infos()
        self._check_names()
        keys = set(self.old.infos) | set(self.new.infos)
        infos: list[ResInfo] = []
        for k in keys:
            info = self.new.infos.get(k) or self.old.infos[k]
            other = self.old.infos.get(k)
            if other is not None and other is not info:
                info.explicit = info.explicit or other.explicit
            if not self._selected(info):
                continue
            why = self.old.incomplete.get(k) or self.new.incomplete.get(k)
            if why:
                which = self.old.where if k in self.old.incomplete else self.new.where
                self.skipped.append((info.name, f"incomplete in {which}: {why}"))
                continue
            # on one side only, and the other side's dump could not discover its
            # group: not known to be added or removed
            lacking = [sd for sd in (self.old, self.new) if k not in sd.infos]
            if lacking and info.group in lacking[0].undiscovered:
                sd = lacking[0]
                self.skipped.append(
                    (info.name, f"not in {sd.where}: {sd.undiscovered[info.group]}")
                )
                continue
            infos.append(info)
        infos.sort(key=lambda i: (i.group, i.resource or i.kind.lower()))
        for info in infos:
            for side in (self.old, self.new):
                if side.indexed and info.key in side.entries:
                    self.progress(f"checking {info.name} in {side.where}")
                    self._prepare_indexed(side, info)
        self.resources = infos
        self.selection_note = self._selection_note()

    def _items(self, side: Side, info: ResInfo, tally: bool = False) -> Iterator[tuple[str, bytes]]:
        where = f"{side.where} ({info.name})"
        for line in side.entry_lines(info.key):
            obj = _parse(line, where)
            if self._accept(info, obj, tally):
                yield name_key(obj), line

    def _prepare_indexed(self, side: Side, info: ResInfo) -> None:
        k = info.key
        last: str | None = None
        n = 0
        ordered = True
        for key, _ in self._items(side, info, tally=True):
            n += 1
            if last is not None and key <= last:
                ordered = False  # keep reading: the whole entry is verified here
            last = key
        side.counts[k] = n
        if ordered:
            side.sources[k] = lambda: self._items(side, info)
            return
        self.progress(f"sorting {info.name} of {side.where}")
        stem = f"{side.label}.{len(side.sources)}"
        f = _external_sort(self._items(side, info), self.tmp, stem, self.settings.sort_buffer)
        side.sources[k] = f.read

    # -- merging
    def changes(self) -> Iterator[Change]:
        self.prepare()
        for info in self.resources:
            counts = self.summary.setdefault(info.name, Counts())
            yield from self._diff_resource(info, counts)

    def _ignores(self, k: KindKey) -> list[paths.FieldPath]:
        out = [i.path for i in self.settings.ignore if i.kind is None or i.kind == k]
        return out + self._strip_ignores

    def _stream(self, side: Side, info: ResInfo) -> Iterator[tuple[str, bytes]]:
        src = side.sources.get(info.key)
        if src is None:
            return
        last: str | None = None
        for key, line in src():
            if last is not None and key <= last:
                if key == last:
                    ns, _, name = key.partition("/")
                    raise SnapshotError(
                        f"{side.where}: {info.name} {ns + '/' if ns else ''}{name} appears twice"
                    )
                raise SnapshotError(f"{side.where}: changed while being compared")
            last = key
            yield key, line

    def _diff_resource(self, info: ResInfo, counts: Counts) -> Iterator[Change]:
        ignores = self._ignores(info.key)
        secret = SecretMasker.applies_to(info.key)
        a = self._stream(self.old, info)
        b = self._stream(self.new, info)
        ka, la = next(a, (None, b""))
        kb, lb = next(b, (None, b""))
        while ka is not None or kb is not None:
            if kb is None or (ka is not None and ka < kb):
                assert ka is not None
                counts.removed += 1
                yield self._whole("removed", info, _parse(la, self.old.where), ka)
                ka, la = next(a, (None, b""))
            elif ka is None or kb < ka:
                counts.added += 1
                yield self._whole("added", info, _parse(lb, self.new.where), kb)
                kb, lb = next(b, (None, b""))
            else:
                if la == lb:
                    counts.unchanged += 1
                else:
                    ch = self._compare(info, ka, la, lb, ignores, secret)
                    if ch is None:
                        counts.unchanged += 1
                    else:
                        setattr(counts, ch.change, getattr(counts, ch.change) + 1)
                        yield ch
                ka, la = next(a, (None, b""))
                kb, lb = next(b, (None, b""))

    def _whole(self, change: ChangeKind, info: ResInfo, obj: dict[str, Any], key: str) -> Change:
        ns, _, name = key.partition("/")
        _, version = split_api_version(str(obj.get("apiVersion") or ""))
        uid = _uid(obj)
        return Change(
            change,
            info.group,
            version or info.version,
            info.resource,
            info.kind,
            ns,
            name,
            old_uid=uid if change == "removed" else "",
            new_uid=uid if change == "added" else "",
        )

    def _compare(
        self,
        info: ResInfo,
        key: str,
        la: bytes,
        lb: bytes,
        ignores: list[paths.FieldPath],
        secret: bool,
    ) -> Change | None:
        oa = _parse(la, self.old.where)
        ob = _parse(lb, self.new.where)
        ns, _, name = key.partition("/")
        _, version = split_api_version(str(ob.get("apiVersion") or ""))
        ua, ub = _uid(oa), _uid(ob)
        recreated = ua and ub and ua != ub and self.settings.same_cluster
        change: ChangeKind = "recreated" if recreated else "modified"
        if secret:
            for side, o in (("old", oa), ("new", ob)):
                r = self._redact.get(side)
                if r is not None:
                    r(o)
        for p in ignores:
            paths.delete(oa, p, prune=True)
            paths.delete(ob, p, prune=True)
        diffs = field_changes(oa, ob)
        if (
            not self.settings.show_api_version_changes
            and diffs
            and all(path == ("apiVersion",) for path, _, _ in diffs)
        ):
            # the same object read through another version (a CRD's preferred
            # version changed): no content change
            diffs = []
            if change == "modified":
                self.api_version_only[info.name] = self.api_version_only.get(info.name, 0) + 1
        if not diffs and change == "modified":
            return None
        fields = []
        for path, old, new in diffs:
            if secret and SecretMasker.sensitive(path):
                old, new = SecretMasker.mask(old), SecretMasker.mask(new)
            fields.append(FieldChange(paths.render(path), old, new))
        return Change(
            change,
            info.group,
            version or info.version,
            info.resource,
            info.kind,
            ns,
            name,
            fields,
            ua,
            ub,
        )
