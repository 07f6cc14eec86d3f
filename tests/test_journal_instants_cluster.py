"""Point in time, end to end: a journal that `kstream dump --follow` writes while
the cluster changes, read at two instants, equals two ordinary dumps taken at
those instants while it ran (counts, object by object, and the diff between them).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kstream.journal.format import CHANGE_TYPES, now_time
from kstream.journal.reader import open_journal
from tests.conftest import VENV_BIN, Cluster, kstream
from tests.seed import configmap, namespace, secret

pytestmark = pytest.mark.cluster

NS = "journal-instants"
SELECT = ("-n", NS, "-r", "configmaps,secrets")


def changes_in(j: Path) -> int:
    """Change events the journal holds so far (the open segment to its last flush)."""
    if not (j / "segments").exists():
        return 0
    journal = open_journal(str(j))
    return sum(1 for e in journal.events() if e.type in CHANGE_TYPES)


def wait_for(pred: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def count_rows(target: str) -> set[tuple[str, int, int]]:
    r = kstream("count", target, "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    return {(x["resource"], x["objects"], x["bytes"]) for x in doc["rows"]}


def test_instants_of_a_followed_journal_equal_dumps(cluster: Cluster, tmp_path: Path) -> None:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    secs = f"/api/v1/namespaces/{NS}/secrets"
    for i in range(4):
        api.create(*configmap(NS, f"cm-{i}"), exist_ok=True)
    api.create(*secret(NS, "s-0"), exist_ok=True)
    j = tmp_path / "journal"
    log = tmp_path / "follow.log"
    env = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin:/bin"}
    with open(log, "wb") as f:
        p = subprocess.Popen(
            [str(VENV_BIN / "kstream"), "dump", "--follow", "-o", str(j), *SELECT],
            stdout=f, stderr=f, env=env,
        )  # fmt: skip
    try:
        wait_for(lambda: (j / "base.ndjson.zst").exists(), "the base snapshot")
        # batch 1: modify, delete, add; a Secret changes too (redacted alike)
        api.call("PATCH", f"{cms}/cm-0", {"data": {"k": "one"}})
        api.call("DELETE", f"{cms}/cm-1")
        api.create(*configmap(NS, "cm-new"))
        api.call("PATCH", f"{secs}/s-0", {"stringData": {"password": "changed"}})
        wait_for(lambda: changes_in(j) >= 4, "batch 1 in the journal")
        t1 = now_time()
        d1 = tmp_path / "d1.ndjson.zst"
        assert (
            kstream("dump", "-q", "-o", str(d1), *SELECT, kubeconfig=cluster.kubeconfig).code == 0
        )
        time.sleep(0.01)  # the next events are received after t1
        # batch 2: the same object again, a delete of the new one, a recreate
        api.call("PATCH", f"{cms}/cm-0", {"data": {"k": "two"}})
        api.call("DELETE", f"{cms}/cm-new")
        api.create(*configmap(NS, "cm-1"))
        wait_for(lambda: changes_in(j) >= 7, "batch 2 in the journal")
        t2 = now_time()
        d2 = tmp_path / "d2.ndjson.zst"
        assert (
            kstream("dump", "-q", "-o", str(d2), *SELECT, kubeconfig=cluster.kubeconfig).code == 0
        )
    finally:
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=60)
    assert code == 0, log.read_text()
    try:
        for at, d in ((t1, d1), (t2, d2)):
            assert count_rows(f"{j}/@{at}") == count_rows(str(d)), at
            r = kstream("diff", f"{j}/@{at}", str(d))
            assert r.code == 0, (at, r.out, r.err)  # object by object
        a = kstream("diff", f"{j}/@{t1}", f"{j}/@{t2}", "-o", "ndjson")
        b = kstream("diff", str(d1), str(d2), "-o", "ndjson")
        assert (a.code, b.code) == (1, 1), (a.err, b.err)
        assert sorted(a.out.splitlines()) == sorted(b.out.splitlines())
        got = sorted((c["change"], c["name"]) for c in map(json.loads, a.out.splitlines()))
        assert got == [("added", "cm-1"), ("modified", "cm-0"), ("removed", "cm-new")], got
    finally:
        for name in ("cm-0", "cm-1", "cm-2", "cm-3", "cm-new"):
            api.call("DELETE", f"{cms}/{name}", ok=(200, 202, 404))
        api.call("DELETE", f"{secs}/s-0", ok=(200, 202, 404))
