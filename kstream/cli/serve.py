"""kstream serve: a snapshot as a read-only API server for kubectl and k9s."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kstream.cli import common as c
from kstream.exitcodes import ExitCode

if TYPE_CHECKING:
    from kstream.serve.server import Source
    from kstream.store.snapshot import Snapshot

DISK_CHECK = 2.0  # seconds between looks at the served files on disk

EXAMPLES = """
Examples:

\b
  kstream serve snap.zst --kubeconfig-out snap.kubeconfig
  KUBECONFIG=snap.kubeconfig kubectl get pods -A     # in another terminal
  KUBECONFIG=snap.kubeconfig k9s
  kstream serve snap.zst --port 6443                # a fixed port (default: any free one)
  kstream serve prod=journal/@2026-12-01T10:00:00Z staging=staging.ndjson.zst \\
      --kubeconfig-out fleet.kubeconfig               # a context per source
  KUBECONFIG=fleet.kubeconfig kubectl --context staging get pods -A
"""


def complete_source(incomplete: str) -> list[tuple[str, str]]:
    """Snapshot paths, also after `NAME=`."""
    name, eq, rest = incomplete.partition("=")
    if eq and "/" not in name:
        return [(f"{name}={path}", help) for path, help in c.complete_snapshot(rest)]
    return c.complete_snapshot(incomplete)


def serve(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="What to serve, each as a kubeconfig context of its own: SOURCE (a snapshot: "
            "archive .zst, NDJSON file, zstd-compressed NDJSON, directory, a JSON List, s3://, "
            "JOURNAL/ or JOURNAL/@TIME (a directory or s3://BUCKET/PREFIX/), or - for any of them on stdin; context kstream-NAME after "
            "its file name) or NAME=SOURCE (context NAME).",
            metavar="[NAME=]SOURCE",
            show_default=False,
            autocompletion=complete_source,
        ),
    ],
    port: Annotated[
        int,
        typer.Option(
            "--port",
            metavar="N",
            help="Port on 127.0.0.1 (0: any free port, printed on stderr).",
        ),
    ] = 0,
    kubeconfig_out: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig-out",
            metavar="FILE",
            help="Write the kubeconfig for the server here (mode 0600; default: a file in "
            "a temporary directory removed when the server stops).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="Overwrite the --kubeconfig-out file if it exists."),
    ] = False,
    bookmark_interval: Annotated[
        float,
        typer.Option(
            "--bookmark-interval",
            metavar="SECONDS",
            help="How often an open watch gets a BOOKMARK event (the API server: about a minute).",
        ),
    ] = 60.0,
    quiet: c.QuietOpt = False,
    debug: c.DebugOpt = False,
) -> None:
    """Serve snapshots as read-only Kubernetes APIs on 127.0.0.1 (HTTPS).

    kubectl, k9s and client-go informers read it as they read a cluster:
    discovery (aggregated and legacy), GET, LIST with label selectors,
    metadata.name/metadata.namespace field selectors and limit/continue, the
    Table format of `kubectl get`, watch and watch-list. Writes are refused (405).
    The server has its own throwaway CA and token, in the kubeconfig it writes:
    one context per source (named after the snapshot, or NAME for NAME=SOURCE;
    the first is the current one), all served by one HTTPS listener, each at a
    path of its own. Objects are read from each snapshot one resource at a
    time; only the resources asked for last are kept (on disk, their offsets in
    memory). Secrets are served as they were dumped.

    It runs until Ctrl-C or SIGTERM (exit 0).
    """
    import contextlib
    import os
    import shutil
    import signal
    import tempfile
    import threading

    from kstream.serve import api as s
    from kstream.serve import catalog as sc
    from kstream.serve import server as ss
    from kstream.sources import open_source

    ss.check_port(port)
    specs = ss.parse_sources(sources)
    if bookmark_interval <= 0:
        from kstream.errors import UsageError

        raise UsageError("--bookmark-interval: must be more than 0 seconds")
    if kubeconfig_out is not None and os.path.exists(kubeconfig_out) and not force:
        from kstream.errors import OutputError

        raise OutputError(f"{kubeconfig_out}: exists (use --force to overwrite)")
    tmp = tempfile.mkdtemp(prefix="kstream-serve-")
    server = None
    apis: list[s.Api] = []
    snaps: list[Snapshot] = []
    thread = None
    try:
        held: list[str] = []
        for i, spec in enumerate(specs):
            snap = open_source(spec.path)
            snaps.append(snap)
            snap.hold()  # served as opened, whatever later happens to the files
            if snap.problem and not quiet:
                c.note(f"warning: {spec.path}: {snap.problem}")
            spool = os.path.join(tmp, f"source-{i}")
            os.mkdir(spool)
            catalog = sc.open_catalog(snap, spool)
            apis.append(s.Api(catalog, spec.context, bookmark_interval=bookmark_interval))
            objects = sum(e.objects for r in catalog.resources for e in r.entries)
            held.append(
                f"{len(catalog.resources)} resources" + (f", {objects} objects" if objects else "")
            )
        tls = ss.make_tls(tmp)
        token = ss.new_token()
        routes = {ss.new_prefix(): api for api in apis}
        server = ss.make_server(routes, token, tls, port)
        url = f"https://{apis[0].server_address}"
        path = kubeconfig_out or os.path.join(tmp, "kubeconfig")
        contexts = [(spec.context, url + p) for spec, p in zip(specs, routes, strict=True)]
        ss.write_kubeconfig(path, ss.kubeconfig_of(contexts, tls.ca_pem, token), force=True)
        # Ctrl-C and SIGTERM only set `stop` from here on: no exception can cut
        # the clean-up, however many signals come (timeout(1) sends two)
        stop = threading.Event()
        with contextlib.suppress(ValueError):  # not the main thread (embedded use)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda signum, frame: stop.set())
        print(banner(specs, held, url, path), file=sys.stderr, flush=True)
        thread = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
        thread.start()
        changed = [""] * len(apis)
        while not stop.wait(DISK_CHECK):
            for i, api in enumerate(apis):
                if not changed[i]:
                    changed[i] = api.catalog.disk_changes()
                    if changed[i] and not quiet:  # once per source
                        where = f"{api.name}: " if len(apis) > 1 else ""
                        print(f"kstream: warning: {where}{changed[i]}", file=sys.stderr, flush=True)
        if not quiet:
            print("kstream: server stopped", file=sys.stderr, flush=True)
        raise typer.Exit(ExitCode.OK)
    finally:
        for api in apis:
            api.stopping.set()
        if server is not None:
            if thread is not None:
                server.shutdown()  # waits for serve_forever: only once it runs
            server.server_close()
        for snap in snaps:
            snap.release()
        shutil.rmtree(tmp, ignore_errors=True)


def banner(specs: list[Source], held: list[str], url: str, path: str) -> str:
    """What serve says on start-up: each context and its source, the kubeconfig."""
    port = url.rsplit(":", 1)[1]
    if len(specs) == 1:
        return (
            f"kstream: serving {specs[0].path} ({held[0]}) on {url} (port {port})\n"
            f"kubeconfig: {path} (context {specs[0].context})\n"
            f"  KUBECONFIG={path} kubectl get pods -A\n"
            f"  KUBECONFIG={path} k9s\n"
            "Read-only; Ctrl-C stops it."
        )
    width = max(len(spec.context) for spec in specs)
    lines = [f"kstream: serving {len(specs)} sources on {url} (port {port}), a context each:"]
    lines += [
        f"  {spec.context:<{width}}  {spec.path} ({what})"
        for spec, what in zip(specs, held, strict=True)
    ]
    lines += [
        f"kubeconfig: {path} (current context {specs[0].context})",
        f"  KUBECONFIG={path} kubectl --context {specs[-1].context} get pods -A",
        f"  KUBECONFIG={path} k9s      # :ctx switches between them",
        "Read-only; Ctrl-C stops it.",
    ]
    return "\n".join(lines)
