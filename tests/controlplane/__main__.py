"""python -m tests.controlplane versions [--others | --make-test] | build [--kube-version V] |
start DIR [--kube-version V] [--feature-gates G] | stop DIR | user DIR NAME

--kube-version defaults to $KSTREAM_KUBE_VERSION, else the default version (the
first line of `versions`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.controlplane import ControlPlane, ControlPlaneError, build
from tests.controlplane.versions import (
    KUBE_VERSION,
    KUBE_VERSIONS,
    MAKE_TEST_KUBE_VERSIONS,
    OLDER_KUBE_VERSIONS,
    OTHER_KUBE_VERSIONS,
    check_kube_version,
)


def kube_version_arg(value: str) -> str:
    try:
        return check_kube_version(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    vs = sub.add_parser("versions", help="print the kube-apiserver matrix, the default first")
    which = vs.add_mutually_exclusive_group()
    which.add_argument(
        "--others",
        action="store_true",
        help="the versions other than the default, and the older ones tried beyond the "
        "matrix (what `make test-matrix` runs)",
    )
    which.add_argument(
        "--make-test",
        action="store_true",
        help="only the other versions `make test` runs the compatibility subset on",
    )
    b = sub.add_parser("build", help="build (or find cached) etcd and kube-apiserver")
    s = sub.add_parser("start", help="start etcd + kube-apiserver in DIR, print the kubeconfig")
    s.add_argument("dir", type=Path)
    s.add_argument("--feature-gates", default="", help="passed to kube-apiserver")
    for q in (b, s):
        q.add_argument(
            "--kube-version",
            type=kube_version_arg,
            default=KUBE_VERSION,
            help=f"kube-apiserver version (default {KUBE_VERSION})",
        )
    t = sub.add_parser("stop", help="stop the control plane running in DIR")
    t.add_argument("dir", type=Path)
    u = sub.add_parser("user", help="add a client-certificate identity, print its kubeconfig")
    u.add_argument("dir", type=Path)
    u.add_argument("name")
    u.add_argument("--group", action="append", default=[])
    a = p.parse_args(argv)
    try:
        if a.cmd == "versions":
            shown = (
                OLDER_KUBE_VERSIONS + OTHER_KUBE_VERSIONS
                if a.others
                else MAKE_TEST_KUBE_VERSIONS
                if a.make_test
                else KUBE_VERSIONS
            )
            for v in shown:
                print(v)
        elif a.cmd == "build":
            for path in build(version=a.kube_version).values():
                print(path)
        elif a.cmd == "start":
            cp = ControlPlane(a.dir, feature_gates=a.feature_gates, kube_version=a.kube_version)
            print(cp.start())
        elif a.cmd == "stop":
            cp = ControlPlane(a.dir.resolve())
            if not cp.state_file.exists():
                print(f"no control plane is running in {a.dir}", file=sys.stderr)
                return 1
            cp.stop()
        elif a.cmd == "user":
            cp = ControlPlane(a.dir.resolve())
            cp.url = json.loads(cp.state_file.read_text())["url"]
            print(cp.add_user(a.name, tuple(a.group)))
    except ControlPlaneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
