"""Values for shell completion: contexts, namespaces, resource names, snapshot paths.

A tab press must never wait on the network, so everything here reads local files:
the kubeconfig (read and merged by kstream.cluster.client, as kstream connects) and a
discovery cache, ~/.cache/kstream/discovery/<server-hash>.json. When the cache is
missing or older than CACHE_TTL, the cached (or built-in) names are returned at once
and a detached `python -m kstream.completion refresh` rewrites the cache for the next
tab press. `kstream dump` may also call `save_discovery_cache()` after discovery.

Core module: imports neither Typer nor rich. KSTREAM_COMPLETION_REFRESH=0 turns the
background refresh off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kstream.dataclass import dataclass

if TYPE_CHECKING:
    from kstream.resources import Resource

CACHE_VERSION = 1
CACHE_TTL = 10 * 60.0  # seconds before a background refresh is started
REFRESH_BACKOFF = 60.0  # at most one refresh per server in this many seconds
REFRESH_ENV = "KSTREAM_COMPLETION_REFRESH"
SNAPSHOT_SUFFIXES = (".zst", ".ndjson")

# Offered when no discovery cache exists yet: the resources most clusters serve.
COMMON_RESOURCES: tuple[tuple[str, str], ...] = (
    ("configmaps", "ConfigMap"),
    ("cronjobs", "CronJob (batch)"),
    ("customresourcedefinitions", "CustomResourceDefinition (apiextensions.k8s.io)"),
    ("daemonsets", "DaemonSet (apps)"),
    ("deployments", "Deployment (apps)"),
    ("endpoints", "Endpoints"),
    ("endpointslices", "EndpointSlice (discovery.k8s.io)"),
    ("events", "Event"),
    ("horizontalpodautoscalers", "HorizontalPodAutoscaler (autoscaling)"),
    ("ingresses", "Ingress (networking.k8s.io)"),
    ("jobs", "Job (batch)"),
    ("leases", "Lease (coordination.k8s.io)"),
    ("namespaces", "Namespace"),
    ("networkpolicies", "NetworkPolicy (networking.k8s.io)"),
    ("nodes", "Node"),
    ("persistentvolumeclaims", "PersistentVolumeClaim"),
    ("persistentvolumes", "PersistentVolume"),
    ("poddisruptionbudgets", "PodDisruptionBudget (policy)"),
    ("pods", "Pod"),
    ("replicasets", "ReplicaSet (apps)"),
    ("rolebindings", "RoleBinding (rbac.authorization.k8s.io)"),
    ("roles", "Role (rbac.authorization.k8s.io)"),
    ("clusterrolebindings", "ClusterRoleBinding (rbac.authorization.k8s.io)"),
    ("clusterroles", "ClusterRole (rbac.authorization.k8s.io)"),
    ("secrets", "Secret"),
    ("serviceaccounts", "ServiceAccount"),
    ("services", "Service"),
    ("statefulsets", "StatefulSet (apps)"),
    ("storageclasses", "StorageClass (storage.k8s.io)"),
)

Candidate = tuple[str, str]  # (value, description)


# ------------------------------------------------------------------ kubeconfig


@dataclass
class KubeconfigView:
    """The merged kubeconfig, as far as completion needs it (never credentials)."""

    contexts: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> cluster, namespace
    servers: dict[str, str] = field(default_factory=dict)  # cluster name -> server URL
    current: str = ""

    def server(self, context: str | None) -> str | None:
        ctx = self.contexts.get(context or self.current)
        if ctx is None:
            return None
        server = self.servers.get(ctx.get("cluster", ""))
        return server.rstrip("/") if server else None


def read_kubeconfig(kubeconfig: str | None = None) -> KubeconfigView:
    """The kubeconfig as kstream connects with it: the same files and merge
    (kstream.cluster.client: --kubeconfig is one file, $KUBECONFIG a list, no `~`
    expansion, client-go's rules). A kubeconfig kstream would refuse offers nothing."""
    from kstream.cluster.client import kubeconfig_files, merge_kubeconfigs
    from kstream.errors import ConfigError

    view = KubeconfigView()
    try:
        merged = merge_kubeconfigs(kubeconfig_files(kubeconfig))
    except (ConfigError, OSError):
        return view
    view.current = merged.current_context
    for name, (body, _) in merged.contexts.items():
        view.contexts[name] = {
            "cluster": str(body.get("cluster") or ""),
            "namespace": str(body.get("namespace") or ""),
        }
    for name, (body, _) in merged.clusters.items():
        if isinstance(body.get("server"), str):
            view.servers[name] = body["server"]
    return view


def context_names(kubeconfig: str | None = None) -> list[Candidate]:
    """Every context of the merged kubeconfig, with its cluster as description."""
    view = read_kubeconfig(kubeconfig)
    out = []
    for name, ctx in view.contexts.items():
        parts = [f"cluster {ctx['cluster']}"] if ctx["cluster"] else []
        if ctx["namespace"]:
            parts.append(f"namespace {ctx['namespace']}")
        if name == view.current:
            parts.append("current")
        out.append((name, ", ".join(parts)))
    return out


# ------------------------------------------------------------------ discovery cache


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "kstream" / "discovery"


def cache_file(server_url: str) -> Path:
    digest = hashlib.sha256(server_url.rstrip("/").encode()).hexdigest()[:16]
    return cache_dir() / f"{digest}.json"


def save_discovery_cache(
    server_url: str,
    resources: Iterable[Resource],
    namespaces: Iterable[str] | None = None,
) -> Path | None:
    """Write the discovery cache for this server (atomically). Namespaces already
    cached are kept when none are given. Returns the file written, or None when the
    cache cannot be written (never raises for that: it is only a cache)."""
    path = cache_file(server_url)
    old = load_cache(server_url) or {}
    doc = {
        "version": CACHE_VERSION,
        "server": server_url.rstrip("/"),
        "written": time.time(),
        "resources": [
            {
                "name": r.resource,
                "group": r.group,
                "version": r.version,
                "kind": r.kind,
                "namespaced": r.namespaced,
                "listable": "list" in r.verbs and "watch" in r.verbs,
            }
            for r in resources
            if "/" not in r.resource
        ],
        "namespaces": sorted(namespaces) if namespaces is not None else old.get("namespaces", []),
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # no indent: json's C encoder (with one, the pure-Python one: ~2 ms a dump)
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    return path


def load_cache(server_url: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(cache_file(server_url).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION:
        return None
    return doc


def _is_fresh(doc: dict[str, Any] | None) -> bool:
    if doc is None:
        return False
    written = doc.get("written")
    return isinstance(written, (int, float)) and time.time() - written < CACHE_TTL


def resource_candidates(doc: dict[str, Any] | None) -> list[Candidate]:
    """Resource names from a cache document (or the built-in list without one):
    plural names, plus plural.group where a plural name is served by several groups."""
    if doc is None:
        return sorted(COMMON_RESOURCES)
    rows = [r for r in doc.get("resources") or [] if isinstance(r, dict) and r.get("listable")]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r.get("name")), []).append(r)
    out: dict[str, str] = {}
    for name, rs in groups.items():
        for r in rs:
            group = str(r.get("group") or "")
            desc = str(r.get("kind") or "") + (f" ({group})" if group else "")
            out.setdefault(name, desc)
            if len(rs) > 1 and group:
                out.setdefault(f"{name}.{group}", desc)
    return sorted(out.items())


def resource_names(kubeconfig: str | None, context: str | None) -> list[Candidate]:
    """Resource names for --resource/--exclude, at once; refreshes in the background."""
    server = read_kubeconfig(kubeconfig).server(context)
    if server is None:
        return resource_candidates(None)
    doc = load_cache(server)
    if not _is_fresh(doc):
        refresh_in_background(server, kubeconfig, context)
    return resource_candidates(doc)


def namespace_names(kubeconfig: str | None, context: str | None) -> list[Candidate]:
    """Namespaces from the cache (none without one) and the context's namespace."""
    view = read_kubeconfig(kubeconfig)
    out: dict[str, str] = {}
    ctx = view.contexts.get(context or view.current)
    if ctx and ctx["namespace"]:
        out[ctx["namespace"]] = "the context's namespace"
    server = view.server(context)
    if server is not None:
        doc = load_cache(server)
        if not _is_fresh(doc):
            refresh_in_background(server, kubeconfig, context)
        for ns in (doc or {}).get("namespaces") or []:
            out.setdefault(str(ns), "")
    return sorted(out.items())


def refresh_in_background(server: str, kubeconfig: str | None, context: str | None) -> bool:
    """Start a detached `python -m kstream.completion refresh` unless one was started
    for this server in the last REFRESH_BACKOFF seconds. Never waits for it."""
    if os.environ.get(REFRESH_ENV, "1") in ("0", "false", "no", ""):
        return False
    marker = cache_file(server).with_suffix(".refresh")
    try:
        if time.time() - marker.stat().st_mtime < REFRESH_BACKOFF:
            return False
    except OSError:
        pass
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        cmd = [sys.executable, "-m", "kstream.completion", "refresh"]
        if kubeconfig:
            cmd += ["--kubeconfig", kubeconfig]
        if context:
            cmd += ["--context", context]
        subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return False
    return True


NAMESPACE_LIST_ACCEPT = (
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)


def refresh(kubeconfig: str | None, context: str | None, timeout: float = 15.0) -> Path | None:
    """Discover the server's resources and namespaces and write the cache (blocking;
    run by the background process, or by hand)."""
    from kstream.cluster.client import Client, ConnectSettings
    from kstream.cluster.discovery import discover
    from kstream.errors import KstreamError

    client = Client(
        ConnectSettings(
            kubeconfig=kubeconfig,
            context=context,
            connect_timeout=min(5.0, timeout),
            read_timeout=timeout,
            pool_size=2,
        )
    )
    found = discover(client)
    namespaces: list[str] | None = None
    try:
        doc = client.get_json(
            "/api/v1/namespaces",
            accept=NAMESPACE_LIST_ACCEPT,
            what="namespaces",
            query=[("limit", "1000")],
        )
        namespaces = [
            str(item["metadata"]["name"])
            for item in (doc.get("items") or [])
            if isinstance(item, dict) and "name" in (item.get("metadata") or {})
        ]
    except KstreamError:
        pass  # forbidden to list namespaces: keep what the cache had
    return save_discovery_cache(client.host, found.resources, namespaces)


# ------------------------------------------------------------------ snapshot paths


def snapshot_paths(incomplete: str) -> list[Candidate]:
    """Directories (with a trailing /) and *.zst / *.ndjson files starting with
    `incomplete`, as the user typed it (~ kept)."""
    head, sep, tail = incomplete.rpartition("/")
    base = head + sep  # "" or "some/dir/" or "/"
    where = Path(os.path.expanduser(base or "."))
    try:
        entries = sorted(os.scandir(where), key=lambda e: e.name)
    except OSError:
        return []
    out: list[Candidate] = []
    for e in entries:
        if not e.name.startswith(tail) or (e.name.startswith(".") and not tail.startswith(".")):
            continue
        try:
            is_dir = e.is_dir()
        except OSError:
            continue
        if is_dir:
            out.append((f"{base}{e.name}/", "directory"))
        elif e.name.endswith(SNAPSHOT_SUFFIXES):
            out.append((f"{base}{e.name}", "snapshot"))
    return out


def comma_list(incomplete: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Complete the last item of a comma-separated value, leaving out items already
    given: `configmaps,se` -> `configmaps,secrets`."""
    head, sep, last = incomplete.rpartition(",")
    given = {x for x in head.split(",") if x}
    prefix = head + sep
    return [(prefix + v, d) for v, d in candidates if v.startswith(last) and v not in given]


# ------------------------------------------------------------------ background entry point


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m kstream.completion")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("refresh", help="rewrite the discovery cache of a context's server")
    r.add_argument("--kubeconfig")
    r.add_argument("--context")
    r.add_argument("--timeout", type=float, default=15.0)
    args = p.parse_args(argv)
    from kstream.errors import KstreamError
    from kstream.exitcodes import ExitCode

    try:
        path = refresh(args.kubeconfig, args.context, args.timeout)
    except KstreamError as e:
        print(f"kstream.completion: {e.message}", file=sys.stderr)
        return int(e.exit_code)
    if path is None:
        print(f"kstream.completion: cannot write the cache in {cache_dir()}", file=sys.stderr)
        return int(ExitCode.OUTPUT)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
