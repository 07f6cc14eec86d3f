"""deploy/recorder/ as kustomize renders it (`kubectl kustomize`, no cluster):
one writer (replicas 1, Recreate), the shared list/watch role of deploy/base/,
the CronJob's securityContext, settings from the generated ConfigMap and the
credentials from the Secret, a liveness probe on `--health-port`, and a
container command that the real CLI parses. The server's validation of the same
manifests, and the command run for real: tests/test_recorder_cluster.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from kstream.cli.app import app
from kstream.cli.follow import parse_duration
from tests.conftest import KUBECTL, REPO

DEPLOY = REPO / "deploy"
RECORDER = DEPLOY / "recorder"


def render(path: Path) -> list[dict[str, Any]]:
    r = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, [d["kind"] for d in docs]
    return found[0]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render(RECORDER)


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def settings(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]  # type: ignore[no-any-return]


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """$(VAR) as the kubelet expands it (a variable it does not know stays as is)."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), a) for a in args]


def test_the_objects(docs: list[dict[str, Any]]) -> None:
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("ClusterRole", "kstream-reader"),
        ("ClusterRoleBinding", "kstream-reader"),
        ("ConfigMap", settings_name(docs)),
        ("Deployment", "kstream-recorder"),
        ("Namespace", "kstream"),
        ("ServiceAccount", "kstream"),
    ]
    assert settings_name(docs).startswith("kstream-recorder-settings-")  # hashed: a new pod
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] not in
            ("Namespace", "ClusterRole", "ClusterRoleBinding")} == {"kstream"}  # fmt: skip


def settings_name(docs: list[dict[str, Any]]) -> str:
    return str(one(docs, "ConfigMap")["metadata"]["name"])


def test_one_writer(docs: list[dict[str, Any]]) -> None:
    """A single replica, replaced by stopping it first: never two writers on one
    journal (the old pod seals and uploads its segment on SIGTERM)."""
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


def test_the_role_is_deploys_own_list_and_watch(docs: list[dict[str, Any]]) -> None:
    """The same namespace, ServiceAccount, ClusterRole and binding as deploy/ (one
    set of files, deploy/base/), the role granting list and watch only, bound to
    the ServiceAccount the pod runs as."""
    nightly = render(DEPLOY)
    for kind in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        assert one(docs, kind) == one(nightly, kind), kind
    assert one(docs, "ClusterRole")["rules"] == [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list", "watch"]}
    ]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "kstream-reader"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kstream",
                                    "namespace": "kstream"}]  # fmt: skip
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kstream"


def test_the_security_context_is_the_cronjobs(docs: list[dict[str, Any]]) -> None:
    cron = one(render(DEPLOY), "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == cron["securityContext"]
    assert container(docs)["securityContext"] == cron["containers"][0]["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container(docs)["securityContext"]["readOnlyRootFilesystem"] is True
    assert container(docs)["image"] == cron["containers"][0]["image"]
    res = container(docs)["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]


def test_settings_credentials_and_volumes(docs: list[dict[str, Any]]) -> None:
    """Every $(VAR) of the command comes from the generated ConfigMap; the
    credentials from the kstream-storage Secret (as the CronJob's); the stage and
    /tmp are emptyDirs (the root filesystem is read-only)."""
    c = container(docs)
    assert c["envFrom"] == [
        {"configMapRef": {"name": settings_name(docs)}},
        {"secretRef": {"name": "kstream-storage"}},
    ]
    used = {m for a in c["args"] for m in re.findall(r"\$\((\w+)\)", a)}
    assert used == set(settings(docs)) == {
        "BUCKET", "CLUSTER_NAME", "ROTATE_INTERVAL", "REBASE_EVERY", "RETAIN",
    }  # fmt: skip
    for name in ("ROTATE_INTERVAL", "REBASE_EVERY", "RETAIN"):
        assert parse_duration(settings(docs)[name], name) > 0
    args = c["args"]
    stage = args[args.index("--stage") + 1]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    for path in (stage, "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
    assert {"name": "TMPDIR", "value": "/tmp"} in c["env"]


def test_liveness_is_the_health_port(docs: list[dict[str, Any]]) -> None:
    c = container(docs)
    args = c["args"]
    port = int(args[args.index("--health-port") + 1])
    (named,) = [p for p in c["ports"] if p["containerPort"] == port]
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert probe["port"] in (port, named["name"])


def test_the_command_parses_with_the_real_cli(docs: list[dict[str, Any]]) -> None:
    """The container's args with the settings substituted, parsed by kstream's own
    command line (every option known, every value of its type and range)."""
    args = expand(container(docs)["args"], settings(docs))
    assert args[:4] == ["dump", "--follow", "-o", "s3://my-backups/my-cluster/"]
    assert not [a for a in args if "$(" in a]
    group = typer.main.get_command(app)
    dump = group.commands["dump"]  # type: ignore[attr-defined]
    known = {o for p in dump.params for o in p.opts}
    given = {a for a in args if a.startswith("-")}
    assert given <= known, given - known  # every option of the container is dump's
    ctx = dump.make_context("dump", args[1:])
    assert ctx.params["follow"] is True and ctx.params["health_port"] == 8080
    assert ctx.params["resume_or_start"] is True
    # re-basing and retention apply to the bucket's journal (no longer noted and dropped)
    from kstream.cli.follow import follow_options

    p = ctx.params
    fo = follow_options(None, "64MiB", None, 1, 60.0, p["output"], None, "auto",
                        rebase_every=p["rebase_every"], retain=p["retain"])  # fmt: skip
    assert fo.rebase_every == parse_duration(p["rebase_every"], "")
    assert fo.retain == parse_duration(p["retain"], "") and fo.retain >= fo.rebase_every
