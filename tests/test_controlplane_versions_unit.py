"""The control plane's version matrix, without building anything: `versions`
prints it the default first, every version has its committed wrapper module
requiring that very release, and an unknown version is refused with the way
to add it."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO
from tests.controlplane.versions import (
    DEFAULT_KUBE_VERSION,
    GO_MODULES,
    KUBE_VERSIONS,
    OLDER_KUBE_VERSIONS,
    apiserver_module,
    bin_dir,
    watch_list_by_default,
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.controlplane", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "KSTREAM_KUBE_VERSION": ""},
    )


def test_versions_prints_the_matrix_default_first() -> None:
    p = run("versions")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[0] == DEFAULT_KUBE_VERSION == "v1.37.2"
    assert sorted(lines[1:]) == ["v1.34.4", "v1.35.4", "v1.36.3"]
    assert run("versions", "--make-test").stdout.split() == ["v1.34.4", "v1.36.3"]
    assert run("versions", "--others").stdout.split() == [
        *OLDER_KUBE_VERSIONS,
        "v1.34.4",
        "v1.35.4",
        "v1.36.3",
    ]


def test_each_version_has_its_wrapper_module_and_cache() -> None:
    dirs = set()
    for v in KUBE_VERSIONS + OLDER_KUBE_VERSIONS:
        gomod = (apiserver_module(v) / "go.mod").read_text()
        assert re.search(
            rf"^(require )?\s*k8s\.io/kubernetes {re.escape(v)}( // indirect)?$", gomod, re.M
        ), v
        staging = "v0." + v.split(".", 1)[1]
        replaced = re.findall(r"^\t(k8s\.io/\S+) => \S+ (\S+)$", gomod, re.M)
        assert replaced and all(r == staging for _, r in replaced), v
        assert (apiserver_module(v) / "go.sum").is_file()
        dirs.add(bin_dir(v))
    assert len(dirs) == len(KUBE_VERSIONS + OLDER_KUBE_VERSIONS)  # cached apart
    assert (GO_MODULES / "etcd" / "go.mod").is_file()


def test_an_unknown_version_is_refused_with_the_way_to_add_it() -> None:
    p = run("build", "--kube-version", "v1.29.0")
    assert p.returncode == 2
    assert "genmod --kube-version v1.29.0" in p.stderr


def test_watch_list_defaults() -> None:
    assert [watch_list_by_default(f"v1.{m}.0") for m in (31, 32, 33, 34, 37)] == [
        False,
        True,
        False,
        True,
        True,
    ]
