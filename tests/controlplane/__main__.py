"""python -m tests.controlplane build | start DIR [--feature-gates G] | stop DIR | user DIR NAME"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.controlplane import ControlPlane, ControlPlaneError, build


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or find cached) etcd and kube-apiserver")
    s = sub.add_parser("start", help="start etcd + kube-apiserver in DIR, print the kubeconfig")
    s.add_argument("dir", type=Path)
    s.add_argument("--feature-gates", default="", help="passed to kube-apiserver")
    t = sub.add_parser("stop", help="stop the control plane running in DIR")
    t.add_argument("dir", type=Path)
    u = sub.add_parser("user", help="add a client-certificate identity, print its kubeconfig")
    u.add_argument("dir", type=Path)
    u.add_argument("name")
    u.add_argument("--group", action="append", default=[])
    a = p.parse_args(argv)
    try:
        if a.cmd == "build":
            for path in build().values():
                print(path)
        elif a.cmd == "start":
            print(ControlPlane(a.dir, feature_gates=a.feature_gates).start())
        elif a.cmd == "stop":
            cp = ControlPlane(a.dir.resolve())
            if not cp.state_file.exists():
                print(f"no control plane is running in {a.dir}", file=sys.stderr)
                return 1
            cp.stop()
        elif a.cmd == "user":
            cp = ControlPlane(a.dir.resolve())
            import json

            cp.url = json.loads(cp.state_file.read_text())["url"]
            print(cp.add_user(a.name, tuple(a.group)))
    except ControlPlaneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
