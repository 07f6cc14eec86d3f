"""`make demo`: start a local control plane, seed it, run kstream on it, stop it.

Everything lands in ./demo-out/ (ignored by git): the kubeconfig while it runs,
the snapshots and the journal afterwards.

The time machine at the end waits for what it can see (the journal's base on
disk, the change events counted in the journal, serve's banner), never for a
fixed time; each wait has a generous limit after which the demo fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.seed import CRD_GROUP, Api, configmap, secret, seed_demo, widget

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "demo-out"
BIN = Path(sys.executable).parent
KUBECONFIG: Path | None = None  # the cluster's; None: the demo's own (OUT/cp/kubeconfig)


def step(title: str) -> None:
    bold, off = (
        ("\033[1m", "\033[0m") if sys.stdout.isatty() and "NO_COLOR" not in os.environ else ("", "")
    )
    print(f"\n{bold}== {title}{off}", flush=True)


def env() -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(KUBECONFIG or OUT / "cp" / "kubeconfig"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }


def run(*args: str, check_codes: tuple[int, ...] = (0,)) -> int:
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"$ {shown}", flush=True)
    code = subprocess.run(list(args), env=env(), cwd=OUT).returncode
    if code not in check_codes:
        raise SystemExit(f"demo: `{shown}` exited {code}")
    return code


def background(*args: str, stderr: int | Path) -> subprocess.Popen[bytes]:
    """A command left running (shown with `&`); its stderr to a file or a pipe."""
    print("$ " + " ".join(shlex.quote(a) for a in args) + " &", flush=True)
    if isinstance(stderr, Path):
        with open(stderr, "wb") as log:
            return subprocess.Popen(list(args), env=env(), cwd=OUT, stderr=log)
    return subprocess.Popen(list(args), env=env(), cwd=OUT, stderr=stderr)


def wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    """Polls `ready` until it holds; fails if `proc` ends first or after 3 minutes."""
    deadline = time.monotonic() + 180
    while not ready():
        if proc.poll() is not None:
            raise SystemExit(f"demo: {what}: the command ended first (exit {proc.returncode})")
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what}: not seen within 3 minutes")
        time.sleep(0.2)


def change_events(journal: str) -> int:
    """The change events (ADDED, MODIFIED, DELETED) the journal holds so far."""
    p = subprocess.run(
        ["kstream", "count", journal, "--events", "-o", "json", "-q"],
        env=env(),
        cwd=OUT,
        capture_output=True,
        text=True,
    )
    return int(json.loads(p.stdout)["total"]["events"]) if p.returncode == 0 else 0


def stop(proc: subprocess.Popen[bytes], what: str) -> None:
    """Ctrl-C (SIGINT), as a user would; both commands end with exit 0."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"demo: {what} exited {proc.returncode}")


def time_machine(api: Api, ns: str = "demo-0") -> None:
    """Record changes with `dump --follow`, then serve an instant before them.
    `--follow-for` only bounds the follow: it is stopped (Ctrl-C) as soon as
    the journal holds the three changes."""
    step("the time machine: record every change with dump --follow ...")
    follow = background(
        "kstream", "dump", "--follow", "-o", "journal/", "-n", ns,
        "-r", "deployments,configmaps", "--follow-for", "5m",
        stderr=OUT / "follow.log",
    )  # fmt: skip
    try:
        wait_for("journal/base.ndjson.zst", (OUT / "journal" / "base.ndjson.zst").exists, follow)
        before = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        print(f"# the journal's base is written; the instant before the changes: {before}")
        print("# change: scale deployment api to 1, delete config-3, add config-new", flush=True)
        api.call(
            "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/api", {"spec": {"replicas": 1}}
        )
        api.call("DELETE", f"/api/v1/namespaces/{ns}/configmaps/config-3")
        api.create(*configmap(ns, "config-new", 100))
        wait_for("3 change events in journal/", lambda: change_events("journal/") >= 3, follow)
        stop(follow, "kstream dump --follow")
        print(
            "# Ctrl-C: the follow stops (exit 0); its progress and summary: follow.log", flush=True
        )
        run("kstream", "count", "journal/", "--events")
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()

    step("... and serve the cluster as it was before the changes, beside its latest state")
    served = background(
        "kstream", "serve", f"before=journal/@{before}", "now=journal/",
        "--kubeconfig-out", "timemachine.kubeconfig", stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert served.stderr is not None
        for raw in served.stderr:  # the banner, up to its last line
            print(raw.decode(), end="", flush=True)
            if b"Ctrl-C" in raw:
                break
        else:
            raise SystemExit(f"demo: kstream serve ended (exit {served.wait()})")
        for context in ("before", "now"):
            run(
                "kubectl", "--kubeconfig", "timemachine.kubeconfig", "--context", context,
                "get", "deployments,configmaps", "-n", ns,
            )  # fmt: skip
        stop(served, "kstream serve")
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    cp = ControlPlane(OUT / "cp")
    step("starting etcd + kube-apiserver on loopback")
    cp.start()
    try:
        step("seeding: namespaces, ConfigMaps, Secrets, Deployments, a CRD with custom resources")
        api = seed_demo(cp, namespaces=4, per_ns=8)
        run("kubectl", "get", "configmaps,secrets,deployments,widgets", "-A")

        step("dump the whole cluster into a zstd archive (one watch-list stream per resource)")
        run("kstream", "dump", "-o", "before.ndjson.zst")
        run("sh", "-c", "zstdcat before.ndjson.zst | head -c 400; echo ' ...'")

        step("dump one namespace to stdout, without managedFields")
        run("sh", "-c", "kstream dump -o - -n demo-0 -r cm --clean -q | head -n 2 | cut -c 1-200")

        step("count: live, by namespace, and from the archive")
        run("kstream", "count", "--by", "namespace")
        run("kstream", "count", "before.ndjson.zst")

        step("change the cluster: modify, delete, recreate, add")
        api.call(
            "PATCH", "/api/v1/namespaces/demo-1/configmaps/config-2", {"data": {"note": "changed"}}
        )
        api.call(
            "PATCH",
            "/api/v1/namespaces/demo-1/secrets/secret-1",
            {"stringData": {"password": "rotated"}},
        )
        api.call("DELETE", "/api/v1/namespaces/demo-2/configmaps/config-3")
        api.call("DELETE", f"/apis/{CRD_GROUP}/v1/namespaces/demo-0/widgets/widget-1")
        api.create(*widget("demo-0", "widget-1", color="purple"))
        api.create(*configmap("demo-3", "brand-new", 500))
        api.create(*secret("demo-3", "brand-new-secret"))

        step("dump again and diff the two snapshots (exit code 1: there are differences)")
        run("kstream", "dump", "-o", "after.ndjson.zst", "-q")
        run("kstream", "diff", "before.ndjson.zst", "after.ndjson.zst", check_codes=(1,))
        run("kstream", "diff", "--stat", "before.ndjson.zst", "after.ndjson.zst", check_codes=(1,))
        step("diff a snapshot against the live cluster: nothing changed since `after`")
        run("kstream", "diff", "after.ndjson.zst", "--live")

        time_machine(api)
    finally:
        step("stopping the control plane")
        cp.stop()
    print(f"\nsnapshots are in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
