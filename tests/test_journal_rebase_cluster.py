"""Re-basing and retention end to end: `dump --follow --rebase-every 3s --retain 7s`
while ConfigMaps churn; every instant still retained reads (count, object by
object with diff) what the same journal without its later bases and without
retention reads (folded from base 0: a shadow copy of hard links made while it
ran keeps every file retention removed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kstream.journal.format import now_time
from tests.conftest import VENV_BIN, Cluster, kstream, one_line
from tests.seed import Api, configmap, namespace

pytestmark = pytest.mark.cluster

NS = "journal-rebase"
SELECT = ("-n", NS, "-r", "configmaps")


def churn(api: Api, ns: str, instants: list[str]) -> None:
    """~22 s of changes to the ConfigMaps cm-0..cm-4 of `ns` (patches, deletes,
    creations again): several re-base periods, retention at work; an instant
    noted every 2 s in `instants`."""
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    for n in range(44):
        i = n % 7
        if i == 5:
            api.call("DELETE", f"{cms}/cm-{n % 5}", ok=(200, 202, 404))
        elif i == 6:
            api.create(*configmap(ns, f"cm-{(n - 1) % 5}"), exist_ok=True)
        else:
            api.call("PATCH", f"{cms}/cm-{i}", {"data": {"k": str(n)}}, ok=(200, 404))
        time.sleep(0.5)
        if n % 4 == 3:
            instants.append(now_time())


def shadow(j: Path, copy: Path, stop: threading.Event) -> None:
    """Hard-link each file of the journal (but its later bases) into `copy` as
    it appears: the open segment grows in place (the same inode), and what
    retention unlinks stays in the copy."""
    while not stop.is_set():
        for sub in ("", "segments"):
            d = j / sub
            if not d.is_dir():
                continue
            (copy / sub).mkdir(parents=True, exist_ok=True)
            for p in d.iterdir():
                if (
                    p.is_file()
                    and not p.name.startswith(".")
                    and not (copy / sub / p.name).exists()
                ):
                    try:
                        os.link(p, copy / sub / p.name)
                    except FileNotFoundError:
                        pass
        stop.wait(0.1)


def counts(target: str, env: dict[str, str] | None = None) -> set[tuple[str, int, int]]:
    """(resource, objects, bytes) of each row of `kstream count TARGET` (`env`:
    more environment, e.g. an S3 server's)."""
    r = kstream("count", target, "-o", "json", env=env)
    assert r.code == 0, r.err
    return {(x["resource"], x["objects"], x["bytes"]) for x in json.loads(r.out)["rows"]}


def test_instants_after_rebase_and_retention_equal_the_fold_from_base_0(
    cluster: Cluster, tmp_path: Path
) -> None:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    for i in range(5):
        api.create(*configmap(NS, f"cm-{i}"), exist_ok=True)
    j, copy = tmp_path / "journal", tmp_path / "shadow"
    log = tmp_path / "follow.log"
    env = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # this checkout's code
    argv = [str(VENV_BIN / "kstream"), "dump", "--follow", "-o", str(j), *SELECT]
    argv += ["--rebase-every", "3s", "--retain", "7s"]
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=f, env=env)
    stop = threading.Event()
    linker = threading.Thread(target=shadow, args=(j, copy, stop), daemon=True)
    instants: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not (j / "journal.json").exists():
            assert time.monotonic() < deadline and p.poll() is None, log.read_text()
            time.sleep(0.1)
        linker.start()
        churn(api, NS, instants)
        time.sleep(1.5)  # the last changes flushed
    finally:
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=60)
        stop.set()
        if linker.is_alive():
            linker.join(5)
    assert code == 0, log.read_text()
    said = log.read_text()
    assert "new bases written" in said and "retention removed" in said, said
    import re

    bases = int(re.findall(r"(\d+) new bases written", said)[-1])
    assert 4 <= bases <= 10, said  # one per 3 s period of a ~25 s run, not one per step
    assert not (j / "base.ndjson.zst").exists()  # retention removed base 0
    assert (copy / "base.ndjson.zst").exists() and not (copy / "bases").exists()
    from kstream.journal.reader import open_journal

    start = open_journal(str(j)).start
    kept = [t for t in instants if t >= start]
    gone = [t for t in instants if t < start]
    assert len(kept) >= 3 and gone, (start, instants)
    for t in [*kept, start]:
        assert counts(f"{j}/@{t}") == counts(f"{copy}/@{t}"), t
        r = kstream("diff", f"{j}/@{t}", f"{copy}/@{t}")
        assert r.code == 0, (t, r.out, r.err)  # object by object
    assert counts(f"{j}/") == counts(f"{copy}/")
    one_line(kstream("count", f"{j}/@{gone[0]}"), 2, "before the journal starts", start)
    # the fold from base 0 (the copy) reads the removed instants still
    assert kstream("count", f"{copy}/@{gone[-1]}").code == 0
    api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 202, 404))
