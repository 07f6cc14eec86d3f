"""deploy/recorder/ on the real control plane: the server validates its
Kustomization (server-side dry run); `dump --follow --health-port` answers 200
while it follows; and the container's own command (the rendered args, the
settings substituted) run here against the control plane and a real S3 server,
killed, run again: it resumed from the bucket (two runs' changes and a GAP)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kstream.journal.format import BASE_NAME, META_NAME, Event, list_segments
from kstream.journal.recovery import segment_events
from tests.conftest import KUBECTL, VENV_BIN, Cluster
from tests.controlplane import free_port
from tests.s3bucket import Bucket, serve_bucket
from tests.s3server import SERVERS
from tests.seed import configmap, namespace
from tests.test_recorder_unit import (
    RECORDER,
    container,
    expand,
    render,
    settings,
)

pytestmark = pytest.mark.cluster

NS = "kstream"  # deploy/base's namespace
RBAC = "/apis/rbac.authorization.k8s.io/v1"
WATCHED = "recorder-watched"  # the namespace the follow tests change
BUCKET = "kstream-recorder"
WAIT = 180.0  # seconds: how long a condition is waited for before the test fails


def _kubectl(kc: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), *args], capture_output=True, text=True, timeout=120
    )


def test_recorder_validated_by_the_server(cluster: Cluster) -> None:
    """`kubectl apply --dry-run=server -k deploy/recorder`: every object through the
    server's validation and admission, nothing stored (the namespace made first,
    as README says: a dry run creates none)."""
    cluster.api.create(*namespace(NS), exist_ok=True)
    r = _kubectl(cluster.kubeconfig, "apply", "--dry-run=server", "-k", str(RECORDER))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(line.endswith("(server dry run)") for line in lines), r.stdout
    assert sorted(line.split()[0].split("/")[0] for line in lines) == [
        "clusterrole.rbac.authorization.k8s.io",
        "clusterrolebinding.rbac.authorization.k8s.io",
        "configmap",
        "deployment.apps",
        "namespace",
        "serviceaccount",
    ], r.stdout
    got = cluster.api.call(
        "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/kstream-recorder", ok=(200, 404)
    )
    assert got.get("kind") == "Status" and got.get("code") == 404, got


# --------------------------------------------------------------------------- running it


def _env(cluster: Cluster, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR")}
    e.update(KUBECONFIG=str(cluster.kubeconfig), CI="true", **extra)
    return e


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen([str(VENV_BIN / "kstream"), *args], stdout=f, stderr=f, env=env)


def _healthz(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    except OSError as e:
        return 0, str(e)
    finally:
        conn.close()


def _until(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for `check()` to be true (the process still running), or fail saying what."""
    deadline = time.monotonic() + WAIT
    while not check():
        tail = log.read_text(errors="replace")[-3000:]
        assert proc.poll() is None, f"kstream ended ({proc.returncode}) before {what}:\n{tail}"
        assert time.monotonic() < deadline, f"no {what} after {WAIT:.0f}s:\n{tail}"
        time.sleep(0.5)


def _following(port: int) -> bool:
    status, body = _healthz(port)
    return status == 200 and body.startswith("ok: following")


def test_health_port_answers_while_following(cluster: Cluster, tmp_path: Path) -> None:
    """`dump --follow --health-port`: 200 `ok: starting` or `ok: following` while the
    follow runs (changes made meanwhile), nothing listening once it ended (exit 0)."""
    api = cluster.api
    api.create(*namespace(WATCHED), exist_ok=True)
    port = free_port()
    log = tmp_path / "follow.log"
    proc = _spawn(["dump", "--follow", "-o", f"{tmp_path}/j/", "-n", WATCHED, "-r", "configmaps",
                   "--health-port", str(port)], _env(cluster), log)  # fmt: skip
    try:
        _until("/healthz answering", lambda: _healthz(port)[0] == 200, proc, log)
        _until("ok: following", lambda: _following(port), proc, log)
        for i in range(3):
            api.create(*configmap(WATCHED, f"health-{i}"), exist_ok=True)
        status, body = _healthz(port)
        assert status == 200, body
        assert body.startswith("ok: following, 1/1 streams connected, ") and body.endswith("\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    assert _healthz(port)[0] == 0  # closed with the command
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module", params=sorted(SERVERS))
def s3(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bucket]:
    """A real S3 server (SeaweedFS, moto) with the recorder's bucket, as in
    tests/test_objstore.py (no proxy: nothing here counts requests)."""
    server = SERVERS[request.param](tmp_path_factory.mktemp(request.param))
    with serve_bucket(server, BUCKET, versioned=False) as b:
        yield b


def _added(segments: Path) -> set[str]:
    """The names of the objects ADDED in the segments of a local copy."""
    return {
        json.loads(ev.object)["metadata"]["name"]
        for p in list_segments(segments.parent).values()
        for ev in map(Event.decode, segment_events(p))
        if ev.type == "ADDED" and ev.object
    }


def test_the_containers_command_resumes_from_the_bucket(
    cluster: Cluster, s3: Bucket, tmp_path: Path
) -> None:
    """The Deployment's args, its settings substituted (a 2 s rotate interval to see
    segments soon; the stage and the health port local), run against the control
    plane and the S3 server; SIGKILLed (a pod killed) once the changes made while
    it ran are in an uploaded segment; run again with a new, empty stage (a new
    pod): it resumes from the bucket. The journal then holds the changes made
    during each run, and a GAP for the time between."""
    api = cluster.api
    api.create(*namespace(WATCHED), exist_ok=True)
    docs = render(RECORDER)
    values = settings(docs) | {"BUCKET": BUCKET, "CLUSTER_NAME": "fleet-a",
                               "ROTATE_INTERVAL": "2s"}  # fmt: skip
    args = expand(container(docs)["args"], values)
    prefix = "fleet-a/"
    assert args[args.index("-o") + 1] == f"s3://{BUCKET}/{prefix}"
    env = _env(cluster, **s3.env)
    local = tmp_path / "journal"

    def uploaded(names: set[str]) -> bool:
        s3.download(prefix, local, new_only=True)  # a poll: what is new since
        return names <= _added(local / "segments")

    tag = os.urandom(3).hex()  # names of this test's objects (the cluster outlives it)
    for n, how in ((1, signal.SIGKILL), (2, signal.SIGTERM)):
        port, log, stage = free_port(), tmp_path / f"run{n}.log", tmp_path / f"stage{n}"
        stage.mkdir()  # an emptyDir: there, and empty
        a = list(args)
        a[a.index("--stage") + 1] = str(stage)
        a[a.index("--health-port") + 1] = str(port)
        proc = _spawn(a, env, log)
        try:
            _until("ok: following", lambda: _following(port), proc, log)  # noqa: B023
            names = {f"{tag}-run{n}-{i}" for i in range(3)}
            for name in sorted(names):
                api.create(*configmap(WATCHED, name))
            _until(f"{sorted(names)} uploaded", lambda: uploaded(names), proc, log)  # noqa: B023
        finally:
            proc.send_signal(how)
            code = proc.wait(120)
        assert code == (-signal.SIGKILL if n == 1 else 0), log.read_text()
    out = log.read_text()
    assert "Traceback" not in out, out
    s3.download(prefix, local, new_only=True)
    assert (local / META_NAME).is_file() and (local / BASE_NAME).is_file()
    events = [Event.decode(line) for p in list_segments(local).values()
              for line in segment_events(p)]  # fmt: skip
    assert {f"{tag}-run1-0", f"{tag}-run2-0"} <= _added(local / "segments")
    assert [ev for ev in events if ev.type == "GAP"], sorted({ev.type for ev in events})
