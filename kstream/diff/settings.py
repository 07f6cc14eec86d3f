"""What diff compares: the ignored paths (`ignore_list`), its `Settings`, field
selectors evaluated on objects, what a snapshot's dump selected (`DumpSelection`),
and the dump that reads the cluster as a snapshot was dumped (`dump_like`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from typing import TYPE_CHECKING, Any

from kstream import deepjson, paths
from kstream.dataclass import dataclass
from kstream.diff.fields import LAST_APPLIED
from kstream.diff.records import KindKey
from kstream.errors import SnapshotError, UsageError
from kstream.selector import (
    FieldRequirement,
    Scope,
    SelectorError,
    parse_fields,
)
from kstream.store.format import DumpOptions, Manifest
from kstream.store.snapshot import Snapshot

if TYPE_CHECKING:
    from kstream.cluster.plan import LiveOptions
    from kstream.dump import DumpSettings
    from kstream.transform import SecretsMode


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
SORT_BUFFER = 64 * 1024 * 1024
STATUS_IGNORE = ("status", "written by controllers, not users (--include-status compares it)")
# (group, kind) -> ((path, why), ...): server-maintained fields of one kind only.
KIND_IGNORES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("coordination.k8s.io", "Lease"): (("spec.renewTime", "leader-election heartbeat"),),
}


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
