"""kstream serve: a snapshot as a read-only API server for kubectl and k9s."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kstream.cli import common as c
from kstream.exitcodes import ExitCode

DISK_CHECK = 2.0  # seconds between looks at the served files on disk

EXAMPLES = """
Examples:

\b
  kstream serve snap.zst --kubeconfig-out snap.kubeconfig
  KUBECONFIG=snap.kubeconfig kubectl get pods -A     # in another terminal
  KUBECONFIG=snap.kubeconfig k9s
  kstream serve snap.zst --port 6443                # a fixed port (default: any free one)
"""


def serve(
    snapshot: Annotated[
        str,
        c.snapshot_argument(
            "SNAPSHOT",
            "The snapshot to serve (archive .zst, NDJSON file, zstd-compressed NDJSON, "
            "directory, a JSON List, or - for any of them on stdin).",
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
    """Serve a snapshot as a read-only Kubernetes API on 127.0.0.1 (HTTPS).

    kubectl, k9s and client-go informers read it as they read a cluster:
    discovery (aggregated and legacy), GET, LIST with label selectors,
    metadata.name/metadata.namespace field selectors and limit/continue, the
    Table format of `kubectl get`, watch and watch-list. Writes are refused (405).
    The server has its own throwaway CA and token, in the kubeconfig it writes
    (context named after the snapshot). Objects are read from the snapshot
    one resource at a time; only the resources asked for last are kept (on
    disk, their offsets in memory). Secrets are served as they were dumped.

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
    if bookmark_interval <= 0:
        from kstream.errors import UsageError

        raise UsageError("--bookmark-interval: must be more than 0 seconds")
    if kubeconfig_out is not None and os.path.exists(kubeconfig_out) and not force:
        from kstream.errors import OutputError

        raise OutputError(f"{kubeconfig_out}: exists (use --force to overwrite)")
    tmp = tempfile.mkdtemp(prefix="kstream-serve-")
    server = None
    api = None
    snap = None
    thread = None
    try:
        snap = open_source(snapshot)
        snap.hold()  # served as opened, whatever later happens to the files
        if snap.problem and not quiet:
            c.note(f"warning: {snapshot}: {snap.problem}")
        catalog = sc.open_catalog(snap, tmp)
        tls = ss.make_tls(tmp)
        token = ss.new_token()
        name = ss.context_name(snapshot)
        api = s.Api(catalog, name, bookmark_interval=bookmark_interval)
        prefix = ss.new_prefix()
        server = ss.make_server(api, token, tls, port, prefix)
        url = f"https://{api.server_address}"
        path = kubeconfig_out or os.path.join(tmp, "kubeconfig")
        ss.write_kubeconfig(path, ss.kubeconfig(name, url + prefix, tls.ca_pem, token), force=True)
        objects = sum(e.objects for r in catalog.resources for e in r.entries)
        held = f"{len(catalog.resources)} resources" + (f", {objects} objects" if objects else "")
        # Ctrl-C and SIGTERM only set `stop` from here on: no exception can cut
        # the clean-up, however many signals come (timeout(1) sends two)
        stop = threading.Event()
        with contextlib.suppress(ValueError):  # not the main thread (embedded use)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda signum, frame: stop.set())
        print(
            f"kstream: serving {snapshot} ({held}) on {url} (port {api.server_address.rsplit(':', 1)[1]})\n"
            f"kubeconfig: {path} (context {name})\n"
            f"  KUBECONFIG={path} kubectl get pods -A\n"
            f"  KUBECONFIG={path} k9s\n"
            "Read-only; Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        thread = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
        thread.start()
        changed = ""
        while not stop.wait(DISK_CHECK):
            if not changed:
                changed = catalog.disk_changes()
                if changed and not quiet:
                    print(f"kstream: warning: {changed}", file=sys.stderr, flush=True)  # once
        if not quiet:
            print("kstream: server stopped", file=sys.stderr, flush=True)
        raise typer.Exit(ExitCode.OK)
    finally:
        if api is not None:
            api.stopping.set()
        if server is not None:
            if thread is not None:
                server.shutdown()  # waits for serve_forever: only once it runs
            server.server_close()
        if snap is not None:
            snap.release()
        shutil.rmtree(tmp, ignore_errors=True)
