"""`kstream serve`'s memory on a big archive: `python -m tools.bench_serve [N]`
(`make bench-serve`).

Writes an archive of N ConfigMaps (default 100,000; 50 per namespace, 0.5-2 KB
of data each, object fields as the server writes them) with kstream's own
archive writer, serves it, then runs against it, while the server's RSS is
sampled every 20 ms:
1. `kubectl get cm -A` (Table, pages of 500: what a user types first);
2. the same again (the resource's index is cached);
3. `kubectl get cm -A -o json` and two watch-list streams of every ConfigMap
   at once (k9s-style informers starting).
Prints one JSON document: archive size, the server's RSS after start-up and its
peak during each step, the wall time of each step.
"""

from __future__ import annotations

import json
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

VENV_BIN = Path(sys.executable).parent
MB = 2**20


def make_archive(path: Path, n: int) -> None:
    from kstream.store.format import Entry, Manifest
    from kstream.store.writers import ArchiveWriter

    w = ArchiveWriter(str(path), force=True)
    spool = w.new_spool("configmaps", None)
    rng = random.Random(1)
    for i in range(n):
        ns, name = f"bench-{i // 50:05d}", f"cm-{i % 50:03d}"
        size = rng.randint(512, 2048)
        obj = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": f"00000000-0000-4000-8000-{i:012d}",
                "resourceVersion": str(1000 + i),
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": f"app-{i % 7}"},
            },
            "data": {"config": "".join(rng.choices("abcdefghij \n", k=size))},
        }
        spool.write(json.dumps(obj, separators=(",", ":")).encode())
    spool.finish()
    e = Entry("", "v1", "configmaps", "ConfigMap", True, None, "complete", "watch-list")
    e.resourceVersion = str(1000 + n)
    e.objects, e.bytes, e.sha256 = spool.objects, spool.size, spool.sha.hexdigest()
    w.append(e, spool)
    w.finish(Manifest("complete", tool="bench_serve", server_version="v1.36.3").to_json(), False)


class Sampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop_ = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def reset(self) -> int:
        now = self.proc.memory_info().rss
        self.peak = now
        return now

    def stop(self) -> None:
        self.stop_.set()
        self.thread.join()


def watch_list(kubeconfig: Path) -> int:
    kc = json.loads(kubeconfig.read_text())
    cl = kc["clusters"][0]["cluster"]
    import base64

    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cl["certificate-authority-data"]).decode()
    )
    url = (
        cl["server"] + "/api/v1/configmaps?watch=1&sendInitialEvents=true"
        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
    )
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {kc['users'][0]['user']['token']}"}
    )
    n = 0
    with urllib.request.urlopen(req, context=ctx, timeout=600) as resp:
        for line in resp:
            if b'"k8s.io/initial-events-end"' in line:
                return n
            n += 1
    return n


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 100_000
    out: dict[str, Any] = {"objects": n}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as d:
        snap = Path(d) / "big.zst"
        t = time.monotonic()
        make_archive(snap, n)
        out["archive_mb"] = round(snap.stat().st_size / MB, 1)
        out["archive_write_s"] = round(time.monotonic() - t, 1)
        kc = Path(d) / "kubeconfig"
        proc = subprocess.Popen(
            [str(VENV_BIN / "kstream"), "serve", str(snap), "--kubeconfig-out", str(kc)],
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"Ctrl-C" in line:
                break
        s = Sampler(proc.pid)
        try:
            out["rss_started_mb"] = round(s.reset() / MB, 1)
            kubectl = [str(VENV_BIN / "kubectl"), "--kubeconfig", str(kc)]
            for step in ("get_cm_table_first", "get_cm_table_cached"):
                s.reset()
                t = time.monotonic()
                p = subprocess.run(
                    [*kubectl, "get", "cm", "-A", "--no-headers"], capture_output=True, check=True
                )
                rows = p.stdout.count(b"\n")
                assert rows == n, rows
                out[step] = {
                    "s": round(time.monotonic() - t, 1),
                    "rss_peak_mb": round(s.peak / MB, 1),
                }
            s.reset()
            t = time.monotonic()
            got: list[int] = []
            threads = [
                threading.Thread(target=lambda: got.append(watch_list(kc))) for _ in range(2)
            ]
            for th in threads:
                th.start()
            p = subprocess.run(
                [*kubectl, "get", "cm", "-A", "-o", "json"], capture_output=True, check=True
            )
            for th in threads:
                th.join()
            assert got == [n, n], got
            assert len(json.loads(p.stdout)["items"]) == n
            out["json_and_2_watch_lists"] = {
                "s": round(time.monotonic() - t, 1),
                "rss_peak_mb": round(s.peak / MB, 1),
            }
        finally:
            s.stop()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        out["exit_code"] = proc.returncode
    print(json.dumps(out, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
