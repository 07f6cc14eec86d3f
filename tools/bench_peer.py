"""The compiled peer of the benchmarks: a small Go program with client-go
(controlplane/benchpeer/, the same minor version as the default kube-apiserver),
built from the Go module proxy like the control plane, cached outside the
repository in ~/.cache/kstream/benchpeer/<client-go version>/ (or $KSTREAM_CACHE).

    python -m tools.bench_peer            # build (once), print the binary's path

Modes (see controlplane/benchpeer/main.go): `raw` writes each watch-list event's
object as the server's bytes (json.RawMessage); `dynamic` reads with the dynamic
client's watch-list (Watch with sendInitialEvents: events decoded into
Unstructured objects) and writes each with json.Marshal. (The dynamic client's
List is a plain LIST in client-go v0.37: WatchListClient is used by informers'
reflectors, not by List.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.controlplane import ControlPlaneError, go_build
from tests.controlplane.versions import CACHE_ROOT, GO_MODULES

MODULE = GO_MODULES / "benchpeer"


def client_go_version() -> str:
    m = re.search(r"^\s*k8s\.io/client-go (v\S+)", (MODULE / "go.mod").read_text(), re.M)
    if m is None:
        raise ControlPlaneError(f"no client-go in {MODULE}/go.mod")
    return m.group(1)


def build(verbose: bool = True) -> Path:
    """The peer's binary, built on first use."""
    version = client_go_version()
    out = CACHE_ROOT / "benchpeer" / version / "benchpeer"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    go_build(out, ".", "benchpeer", f"client-go {version}", "-s -w", verbose,
             ControlPlaneError, module=MODULE)  # fmt: skip
    return out


def main() -> None:
    print(build())


if __name__ == "__main__":
    sys.exit(main())
