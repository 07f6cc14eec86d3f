"""Starting a follow: the followers of a new journal (`base_follows`), and
`--resume JOURNAL/` (`resume`): the open tail sealed, the cluster checked to be
the journal's own (`cluster_identity`, resourceVersions not gone back), each unit
on from its last recorded resourceVersion, with the gap since the journal's
last durable instant opened for each (closed, as a GAP event, when its stream
delivers again).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kstream.cluster.stream import Reader, Unit
from kstream.dataclass import dataclass
from kstream.errors import ApiError, KstreamError, UsageError
from kstream.journal.crds import Replan
from kstream.journal.directory import JournalMeta
from kstream.journal.follower import UnitFollow
from kstream.journal.format import BASE_NAME, list_bases, position_key, unit_resource
from kstream.selector import Scope

if TYPE_CHECKING:
    from kstream.cluster.client import ApiTransport
    from kstream.cluster.plan import LiveOptions
    from kstream.journal.recovery import Positions
    from kstream.transform import SecretsMode, TransformOptions


def cluster_identity(client: ApiTransport) -> str | None:
    """The cluster's identity: the uid of its kube-system namespace (made once,
    when the cluster is; a new etcd makes a new one). None when it cannot be read."""
    try:
        ns = client.get_json("/api/v1/namespaces/kube-system", what="namespace kube-system")
    except ApiError:
        return None
    uid = ((ns or {}).get("metadata") or {}).get("uid") if isinstance(ns, dict) else None
    return str(uid) if uid else None


def current_rv(client: ApiTransport) -> str:
    """The server's resourceVersion now (a consistent LIST of one namespace)."""
    try:
        page = client.get_json("/api/v1/namespaces", what="list namespaces", query=[("limit", "1")])
    except KstreamError:
        return ""
    return str(((page or {}).get("metadata") or {}).get("resourceVersion") or "")


def rv_behind(now: str, recorded: list[str]) -> str:
    """The highest recorded resourceVersion when the server's `now` is below it
    (etcd restored from a backup behind the same URL), else "". resourceVersions
    are opaque to clients, but every kube-apiserver on etcd gives integers."""
    if not now.isdigit():
        return ""
    nums = [int(r) for r in recorded if r.isdigit()]
    top = max(nums, default=0)
    return str(top) if top > int(now) else ""


def base_follows(units: list[Unit], topts: TransformOptions) -> list[UnitFollow]:
    """A new journal's followers: each unit from the resourceVersion its base
    read ended at; a unit the base did not read completely is not followed."""
    from kstream.transform import make_transform

    out = []
    for u in units:
        uf = UnitFollow(u, u.resource_version, make_transform(u.resource, topts))
        if u.status != "complete":  # not followed; --resume tries it again (a resync)
            uf.state, uf.error = "failed", f"not in the base ({u.status or 'incomplete'})"
        elif not u.resource_version:  # a watch from "" would replay every object
            uf.needs_resync = True
        out.append(uf)
    return out


@dataclass
class Resumed:
    """A journal ready to be followed on (`resume`)."""

    reader: Reader
    units: list[UnitFollow]
    replan: Replan
    next_segment: int
    last_time: str  # the newest event time on disk
    identity: str | None  # the cluster's, when journal.json lacks it (to record)


def resume(
    target: Path,
    meta: JournalMeta,
    live: LiveOptions,
    secret_key: bytes | None,
    warn: Callable[[str], None],
    pos: Positions | None = None,
    name: str = "",
) -> Resumed:
    """`--resume JOURNAL/` (the journal locked, its key checked): seal a tail
    left by a crash, connect, check the cluster is the journal's, and follow
    each unit on from its last recorded resourceVersion (a resync where there is
    none, or one was left open, or the server's resourceVersions went back),
    with the selection and rules the journal was written with. `pos`: the
    positions when the caller took them (a journal in object storage:
    `journal.remote.remote_positions`), `name`: the journal as messages say it."""
    from kstream import paths
    from kstream.cluster.plan import open_live
    from kstream.transform import TransformOptions

    opts = meta.options
    if pos is None:
        pos = positions(target)
    shown = name or str(target)
    if pos.sealed_tail is not None:
        warn(f"sealed segment {pos.sealed_tail:06d}, left open by the previous run")
    scope = Scope(
        opts.resources, opts.exclude, opts.namespaces, opts.label_selector, opts.field_selector
    )
    secrets = opts.secrets or "redact"
    plan, reader = open_live(scope, live, warn, skip_secrets=secrets == "exclude")
    identity = cluster_identity(reader.client)
    if meta.identity and identity and identity != meta.identity:
        raise UsageError(
            f"{shown} is the journal of another cluster (kube-system uid {meta.identity}, "
            f"written from {meta.server_url}); {plan.server} is cluster {identity}: "
            "start a new journal for it"
        )
    was = str(meta.server_url or "")
    if was and plan.server and was.rstrip("/") != plan.server.rstrip("/"):
        warn(f"note: {shown} was written from {was}; resuming against {plan.server}")
    behind = rv_behind(current_rv(reader.client), list(pos.rvs.values()))
    if behind:
        warn(
            f"warning: the server's resourceVersions went back (the journal has {behind}): "
            "an etcd restored from a backup? every resource is read again (a resync), "
            "and a gap recorded"
        )
    topts = TransformOptions(
        secrets=cast("SecretsMode", secrets),  # as the journal's journal.json says
        secret_key=secret_key,
        strip=tuple(paths.parse(p) for p in opts.strip),
    )
    return Resumed(
        reader,
        resume_units(plan.units, pos, topts, bool(behind)),
        Replan(reader, scope, secrets == "exclude", topts),
        pos.next_segment,
        pos.last_time,
        identity if identity and not meta.identity else None,
    )


def positions(target: Path) -> Positions:
    """Where each unit of the journal stands, the open tail sealed first
    (`recovery.recover`), and the journal's end (`Positions.last_time`: its
    newest event, or the end of its base)."""
    from kstream.journal.recovery import recover

    bases = list_bases(target)
    newest = max(bases, default=0)  # its positions are those after its segments
    base_rvs, finished = base_positions(str(bases.get(newest, target / BASE_NAME)))
    pos = recover(target, base_rvs, after=newest)
    if newest and not pos.last_time:
        pos.last_time = finished  # a later base's time: its last event's
    pos.end = pos.last_time or finished
    return pos


def base_positions(base: str) -> tuple[dict[str, str], str]:
    """Each unit's position in a base archive (a path, or an s3:// URL read by
    ranged GETs: only its manifest is read), and the time its dump finished."""
    from kstream.store.snapshot import open_snapshot

    snap = open_snapshot(base)
    rvs = {
        position_key(unit_resource(e.group, e.version, e.resource), e.namespace or ""): str(
            e.resourceVersion or ""
        )
        for e in snap.entries
        if e.status == "complete" and e.resourceVersion
    }
    return rvs, (snap.manifest.finished if snap.manifest else "")


def resume_units(
    units: list[Unit], pos: Positions, topts: TransformOptions, behind: bool = False
) -> list[UnitFollow]:
    """The followers of a resumed journal: each unit from its position (a
    resync when it has none, its resync was left open, or the server's
    resourceVersions went back), each with a gap open since the journal's end."""
    from kstream.transform import make_transform

    why = (
        "resourceVersions went back (etcd restored?): resynced"
        if behind
        else "no follower ran (the journal was stopped or cut)"
    )
    out = []
    for u in units:
        uf = UnitFollow(u, "", make_transform(u.resource, topts))
        uf.rv = "" if behind else pos.rvs.get(uf.key, "")
        uf.needs_resync = not uf.rv or uf.key in pos.open_resync
        uf.open_gap(pos.end, why)
        out.append(uf)
    return out


def identity_json(meta: dict[str, Any], identity: str) -> dict[str, Any]:
    """journal.json with the cluster's identity recorded (a journal written before it was)."""
    server = dict(meta.get("server") or {})
    server["identity"] = identity
    return {k: v for k, v in meta.items() if k not in ("format", "version")} | {"server": server}
