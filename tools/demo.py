"""`make demo`: start a local control plane, seed it, run kstream on it, stop it.

Everything lands in ./demo-out/ (ignored by git): the kubeconfig while it runs,
the snapshots afterwards.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.seed import CRD_GROUP, configmap, secret, seed_demo, widget

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "demo-out"
BIN = Path(sys.executable).parent


def step(title: str) -> None:
    bold, off = (
        ("\033[1m", "\033[0m") if sys.stdout.isatty() and "NO_COLOR" not in os.environ else ("", "")
    )
    print(f"\n{bold}== {title}{off}", flush=True)


def run(*args: str, check_codes: tuple[int, ...] = (0,)) -> int:
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"$ {shown}", flush=True)
    env = {
        **os.environ,
        "KUBECONFIG": str(OUT / "cp" / "kubeconfig"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    code = subprocess.run(list(args), env=env, cwd=OUT).returncode
    if code not in check_codes:
        raise SystemExit(f"demo: `{shown}` exited {code}")
    return code


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
    finally:
        step("stopping the control plane")
        cp.stop()
    print(f"\nsnapshots are in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
