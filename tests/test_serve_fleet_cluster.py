"""kstream serve with two sources at once (issue 25 item 6), read by the pinned
kubectl through the two contexts of the one kubeconfig it writes: two dumps of
the real control plane, before and after a change, each served as its context."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KUBECTL, VENV_BIN, Cluster, kstream
from tests.seed import configmap, namespace, secret

pytestmark = pytest.mark.cluster

NS = "serve-fleet-t"
CMS = f"/api/v1/namespaces/{NS}/configmaps"


def kubectl(kubeconfig: Path, *args: str) -> str:
    cache = kubeconfig.parent / "kube-cache"  # kubectl's discovery cache, fresh for the test
    p = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_kubectl_reads_each_source_through_its_context(cluster: Cluster, tmp_path: Path) -> None:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    try:
        _, flags = configmap(NS, "flags")
        flags["data"] = {"mode": "before"}
        api.create(CMS, flags)
        before = tmp_path / "before.zst"  # ConfigMaps only
        r = kstream(
            "dump", "-q", "-n", NS, "-r", "cm", "-o", str(before), kubeconfig=cluster.kubeconfig
        )
        assert r.code == 0, r.err
        api.call("PATCH", f"{CMS}/flags", {"data": {"mode": "after"}})
        api.create(*configmap(NS, "added"))
        api.create(*secret(NS, "creds"))
        after = tmp_path / "after.ndjson"  # another format: no manifest
        r = kstream("dump", "-q", "-n", NS, "-o", str(after), kubeconfig=cluster.kubeconfig)
        assert r.code == 0, r.err
    finally:
        for name in ("flags", "added"):
            api.call("DELETE", f"{CMS}/{name}", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}/secrets/creds", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 404))

    kc = tmp_path / "fleet.kubeconfig"
    proc = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "serve", f"prod={after}", f"then={before}",
         "--kubeconfig-out", str(kc)],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        banner = []
        for raw in proc.stderr:
            banner.append(raw.decode())
            if "Ctrl-C" in banner[-1]:
                break
        text = "".join(banner)
        assert any(f"prod  {after}" in ln for ln in banner), text
        assert any(f"then  {before}" in ln for ln in banner), text

        names = kubectl(kc, "config", "get-contexts", "-o", "name").split()
        assert sorted(names) == ["prod", "then"]
        assert kubectl(kc, "config", "current-context").strip() == "prod"

        def state(*context: str) -> dict[str, str]:
            out = kubectl(kc, *context, "get", "configmaps", "-n", NS, "-o", "json")
            items = json.loads(out)["items"]
            return {o["metadata"]["name"]: o["data"].get("mode", "") for o in items}

        assert state("--context", "then") == {"flags": "before"}
        assert state("--context", "prod") == {"added": "", "flags": "after"}
        assert state() == state("--context", "prod")  # the current context: the first
        # discovery per context, though both share one host and port (kubectl keeps
        # discovery on disk by server URL): prod holds Secrets, then does not
        resources = "api-resources", "--namespaced", "-o", "name"
        assert "secrets" in kubectl(kc, "--context", "prod", *resources).split()
        assert "secrets" not in kubectl(kc, "--context", "then", *resources).split()
        assert "creds" in kubectl(kc, "--context", "prod", "get", "secrets", "-n", NS)
        jsonpath = "-o=jsonpath={.data.mode}"
        assert (
            kubectl(kc, "--context", "then", "get", "cm", "-n", NS, "flags", jsonpath) == "before"
        )
        table = kubectl(kc, "--context", "prod", "get", "cm", "-n", NS)
        assert "added" in table and "flags" in table
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
