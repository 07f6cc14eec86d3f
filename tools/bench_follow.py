"""`make bench-follow`: `kstream dump --follow` under a steady stream of changes.

A fresh local control plane, N ConfigMaps in one namespace; kstream follows
them (`dump --follow -n NS -r configmaps`) while T client threads PATCH them as
fast as the server takes it (or at `--rate` changes/s) for `--duration` seconds.
Measured from outside: kstream's CPU time (user + system, `wait4`) per change
event recorded, its RSS every second (flat or not) and its peak (VmHWM); the
events the journal holds are counted with the journal reader, and must equal
the changes the server accepted.

    python -m tools.bench_follow                      # 10 minutes, as fast as it goes
    python -m tools.bench_follow --duration 60 --rate 500

The table goes into docs/benchmarks.md between `<!-- follow-bench -->` and
`<!-- /follow-bench -->` (kept by `make bench`), raw results to
bench-out/follow.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from tests.controlplane import ControlPlane
from tests.seed import Api, configmap, namespace
from tools.bench import CHILD_ENV, KSTREAM, log_line, machine, side_bench_start
from tools.bench_report import FOLLOW_END, FOLLOW_START, put_section

NS = "bench-follow"
MB = 2**20


def churn(api: Api, names: list[str], stop: threading.Event, rate: float, done: list[int]) -> None:
    i = 0
    gap = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    while not stop.is_set():
        name = names[i % len(names)]
        api.call("PATCH", f"/api/v1/namespaces/{NS}/configmaps/{name}", {"data": {"n": str(i)}})
        done[0] += 1
        i += 1
        if gap:
            next_at += gap
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def journal_changes(j: Path) -> int:
    from kstream.journal.format import CHANGE_TYPES
    from kstream.journal.reader import open_journal

    return sum(1 for e in open_journal(str(j)).events() if e.type in CHANGE_TYPES)


def run(
    work: Path, objects: int, threads: int, duration: float, rate: float, log: Any
) -> dict[str, Any]:
    cp = ControlPlane(work / "cp-follow")
    j = work / "follow-journal"
    shutil.rmtree(j, ignore_errors=True)
    try:
        cp.start()
        api = Api(cp)
        api.create(*namespace(NS), exist_ok=True)
        names = [f"cm-{i:05d}" for i in range(objects)]
        api.create_many((configmap(NS, n, size=1000) for n in names), threads=8)
        log(f"seeded {objects} ConfigMaps")
        errf = open(work / "follow.log", "wb")  # noqa: SIM115
        p = subprocess.Popen(
            [KSTREAM, "dump", "--follow", "-q", "-o", str(j), "-n", NS, "-r", "configmaps",
             "--kubeconfig", str(cp.kubeconfig)],
            stdout=errf, stderr=errf, env=CHILD_ENV,
        )  # fmt: skip
        proc = psutil.Process(p.pid)
        deadline = time.monotonic() + 120
        while not (j / "base.ndjson.zst").exists():
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit(
                    f"kstream did not write its base: {(work / 'follow.log').read_text()}"
                )
            time.sleep(0.2)
        time.sleep(1)
        cpu0 = sum(proc.cpu_times()[:2])
        rss: list[int] = [proc.memory_info().rss]
        stop = threading.Event()
        done = [[0] for _ in range(threads)]
        per = [names[k::threads] for k in range(threads)]
        ts = [
            threading.Thread(
                target=churn, args=(Api(cp), per[k], stop, rate / threads, done[k]), daemon=True
            )
            for k in range(threads)
        ]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        while time.monotonic() - t0 < duration:
            time.sleep(1)
            rss.append(proc.memory_info().rss)
            if len(rss) % 60 == 0:
                log(
                    f"  {time.monotonic() - t0:.0f}s: {sum(d[0] for d in done):,} changes, RSS {rss[-1] / MB:.0f} MB"
                )
        stop.set()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        changes = sum(d[0] for d in done)
        deadline = time.monotonic() + 120
        recorded = 0
        while time.monotonic() < deadline:  # the last events reach the journal
            recorded = journal_changes(j)
            if recorded >= changes:
                break
            time.sleep(1)
        cpu1 = sum(proc.cpu_times()[:2])
        p.send_signal(signal.SIGINT)
        _, status, ru = os.wait4(p.pid, 0)
        errf.close()
        recorded = journal_changes(j)
        segs = sorted((j / "segments").glob("*.zst"))
        return {
            "objects": objects,
            "threads": threads,
            "duration": wall,
            "target_rate": rate,
            "changes": changes,
            "recorded": recorded,
            "rate": changes / wall,
            "cpu": cpu1 - cpu0,
            "cpu_per_event_us": (cpu1 - cpu0) / max(recorded, 1) * 1e6,
            "rss_first": rss[0],
            "rss_last": rss[-1],
            "rss_max_sampled": max(rss),
            "peak_rss": ru.ru_maxrss * 1024,
            "exit": os.waitstatus_to_exitcode(status),
            "segments": len(segs),
            "journal_bytes": sum(s.stat().st_size for s in segs),
        }
    finally:
        cp.stop()
        shutil.rmtree(cp.dir, ignore_errors=True)


def section(r: dict[str, Any], started: str, load: tuple[float, ...]) -> str:
    m = machine()
    return "\n".join([
        FOLLOW_START,
        "",
        "## Following: `kstream dump --follow` under steady changes",
        "",
        f"Generated by `make bench-follow` (`python -m tools.bench_follow`), run started {started}; "
        f"kube-apiserver {m['kube_apiserver']}; load average at the start {load[0]:.2f} (1 min). "
        f"{r['objects']:,} ConfigMaps of ~1 KB in one namespace, {r['threads']} client threads "
        "PATCHing them" + (f" at {r['target_rate']:,.0f} changes/s" if r["target_rate"] else " as fast as the server takes it")
        + "; kstream follows them (`dump --follow -n NS -r configmaps`). CPU = kstream's user + system "
        "time while the changes ran; RSS sampled every second.",
        "",
        "| duration s | changes accepted | recorded in the journal | changes/s | kstream CPU s | CPU per event µs | RSS first / last / max sampled MB | peak RSS (VmHWM) MB | segments | journal MB | exit |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        f"| {r['duration']:.0f} | {r['changes']:,} | {r['recorded']:,} | {r['rate']:,.0f} | {r['cpu']:.1f} | "
        f"{r['cpu_per_event_us']:.0f} | {r['rss_first'] / MB:.0f} / {r['rss_last'] / MB:.0f} / {r['rss_max_sampled'] / MB:.0f} | "
        f"{r['peak_rss'] / MB:.0f} | {r['segments']} | {r['journal_bytes'] / MB:.1f} | {r['exit']} |",
        "",
        FOLLOW_END,
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m tools.bench_follow", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of changes")
    ap.add_argument(
        "--rate", type=float, default=0.0, help="changes/s in all (0: as fast as it goes)"
    )
    args, work, started, load = side_bench_start(ap, argv)
    r = run(work, args.objects, args.threads, args.duration, args.rate, log_line)
    log_line(f"{r['changes']:,} changes, {r['recorded']:,} recorded, {r['cpu_per_event_us']:.0f} µs CPU/event, "
        f"peak RSS {r['peak_rss'] / MB:.0f} MB")  # fmt: skip
    (work / "follow.json").write_text(json.dumps({"started": started, "load": load, **r}, indent=2))
    out = Path(args.out)
    put_section(out, FOLLOW_START, FOLLOW_END, section(r, started, load))
    log_line(f"wrote {out}")


if __name__ == "__main__":
    main()
