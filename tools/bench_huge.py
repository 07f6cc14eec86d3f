"""`make bench BENCH_ARGS=--huge`: the scale point, side by side in one run.

    python -m tools.bench --huge                          # 100k, then 300k
    python -m tools.bench --huge --huge-sizes 100000,300000 --huge-repeat 3

One control plane is seeded to the first N (object i is the same at every N,
tools/bench_data.py), the dump rows are measured, then it is seeded on to the
next N (only the new objects are created) and the same rows are measured again.
Rows: the raw socket reader and kstream's watch-list dump to NDJSON and to a
.zst archive, with Secrets redacted (default) and `--secrets include`; kubectl
and the Python client are not run (GBs of RSS and minutes per run at this
scale). The section between HUGE_START and HUGE_END of docs/benchmarks.md is
replaced; the rest of the file is left as it is (`make bench` keeps the section).

Seeding: `--seed-procs 1` (default) creates the objects from this process with
8 keep-alive connections (tests/seed.py), as `make bench` does; `--seed-procs P`
spreads them over P client processes (tools/bench_data.seed_parallel). On this
2-core machine kube-apiserver and etcd, not the client, are the bottleneck: with
one client process they used ~3x its CPU, and in a short trial (8k objects each,
load average 5-12 from other jobs) 2, 4 and 6 client processes seeded no faster
than one (190-240/s against 390/s), so the default stays at one.

etcd runs with --quota-backend-bytes=8 GiB (tests/controlplane): 300k objects
are ~1.6 GB of payload, well inside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from tests.controlplane import ControlPlane
from tests.seed import Api
from tools import bench_data as data
from tools.bench_report import HUGE_END, HUGE_START, put_section

MB = 2**20
ROWS = [
    ("raw socket reader (the limit)", "watch-list", "/dev/null"),
    ("kstream dump, Secrets redacted (default)", "watch-list", "NDJSON"),
    ("kstream dump --secrets include", "watch-list", "NDJSON"),
    ("kstream dump, Secrets redacted (default)", "watch-list", ".zst archive"),
    ("kstream dump --secrets include", "watch-list", ".zst archive"),
    # issue 26: the reader the CPU target is measured against, and the compiled peer
    ("raw socket reader, fresh 256 KiB per read (the limit before 2026-12-07)", "watch-list",
     "/dev/null"),
    ("Go client-go peer, server's bytes (json.RawMessage)", "watch-list", "NDJSON"),
]  # fmt: skip
FLAT_MB = 10  # "memory flat": peak RSS grows by less than this from the first N to the last
SAME = 1.10  # "time per object the same": the last N's per-object cost within 10 % of the first's


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def seed_to(
    cp: ControlPlane, api: Api, start: int, stop: int, procs: int, log: Callable[[str], None]
) -> None:
    if procs <= 1:
        for a in range(start, stop, 10_000):
            data.seed_range(api, a, min(stop, a + 10_000))
            log(f"  seeded {min(stop, a + 10_000):,} objects")
        return
    step = [start]

    def progress(done: int) -> None:
        if start + done >= step[0] + 10_000 or start + done == stop:
            step[0] = start + done
            log(f"  seeded {start + done:,} objects")

    data.seed_parallel(api, str(cp.dir), cp.url, start, stop, procs=procs, progress=progress)


def run(
    work: Path,
    out_md: Path,
    sizes: list[int],
    repeat: int,
    seed_procs: int,
    timeout: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from tools import bench as b
    from tools.bench_peer import build as build_peer

    # `python -m tools.bench` builds the peer into its own __main__ module's PEER, not
    # into this import of tools.bench (found cached after the first build)
    b.PEER = build_peer()
    res: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": b.machine(),
        "sizes": sizes,
        "repeat": repeat,
        "seed_procs": seed_procs,
        "load": {"start": os.getloadavg()},
        "points": [],
    }

    def publish() -> None:
        res["load"]["end"] = os.getloadavg()
        (work / "huge.json").write_text(json.dumps(res, indent=2))
        put_section(out_md, HUGE_START, HUGE_END, render(res))
        log(f"wrote {out_md} (scale point section)")

    cp = ControlPlane(work / "cp-huge")
    if cp.state_file.exists():
        cp.stop()
    shutil.rmtree(cp.dir, ignore_errors=True)
    try:
        cp.start()
        api = Api(cp)
        seeded = 0
        for n in sizes:
            log(f"huge: seeding objects {seeded:,}..{n:,} ({seed_procs} client process(es))")
            t0 = time.monotonic()
            seed_to(cp, api, seeded, n, seed_procs, log)
            took = time.monotonic() - t0
            point: dict[str, Any] = {
                "n": n,
                "shape": data.shape(n),
                "seeded_from": seeded,
                "seed_s": took,
                "seed_rate": (n - seeded) / took if took else 0.0,
                "load": {"seeding_end": os.getloadavg()},
            }
            log(f"huge: seeded {n - seeded:,} objects at {point['seed_rate']:,.0f}/s")
            seeded = n
            with tempfile.TemporaryDirectory(dir=work, prefix=f"huge-{n}-") as tmp:
                b.warm_up(cp, timeout=timeout)
                point["apiserver_rss"] = psutil.Process(b.apiserver_pid(cp)).memory_info().rss
                point["etcd_bytes"] = _dir_bytes(cp.dir / "etcd")
                cs = [
                    c
                    for c in b.contenders_watchlist_server(cp)
                    if (c.name, c.path, c.output) in ROWS
                ]
                point["load"]["before"] = os.getloadavg()
                log(f"huge: N={n:,}, {len(cs)} contenders x {repeat}")
                rows = b.run_contenders(
                    cs,
                    "WatchList on",
                    Path(tmp),
                    repeat,
                    timeout,
                    log,
                    server_pid=b.apiserver_pid(cp),
                )
                point["load"]["after"] = os.getloadavg()
            point["rows"] = [asdict(r) for r in rows]
            res["points"].append(point)
            publish()
    finally:
        cp.stop()
        shutil.rmtree(cp.dir, ignore_errors=True)
    res["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    publish()
    return res


# --------------------------------------------------------------------------- report


def _chosen(point: dict[str, Any], key: tuple[str, str, str]) -> dict[str, Any] | None:
    for r in point.get("rows", []):
        if (r["name"], r["path"], r["output"]) == key and not r["chosen"].get("error"):
            return r["chosen"]  # type: ignore[no-any-return]
    return None


def _k(n: int) -> str:
    return f"{n // 1000:,}k" if n % 1000 == 0 else f"{n:,}"


def _load(x: list[float] | None) -> str:
    return f"{x[0]:.2f}" if x else "-"


def render(res: dict[str, Any]) -> str:
    pts = res["points"]
    lo, hi = pts[0], pts[-1]
    a, z = _k(lo["n"]), _k(hi["n"])
    load = res["load"]
    L = [
        HUGE_START,
        "",
        f"## Scale point: {', '.join(_k(p['n']) for p in pts)} objects (`--huge`)",
        "",
        "Generated by `python -m tools.bench --huge` (`make bench BENCH_ARGS=--huge`, "
        "tools/bench_huge.py): one control plane, seeded to each N in turn (the objects of the "
        "smaller N are kept, only the rest is created; same data as the tables above), the same "
        f"rows measured at each N, {res['repeat']} run(s) each, round-robin, "
        f"{'the faster run' if res['repeat'] == 2 else 'the run with the median wall'} shown. "
        "kubectl and the Python client are not run at this scale; the Go client-go peer "
        "(server's bytes) and both raw readers are. "
        f"Run started {res['started']}"
        + (f", finished {res['finished']}" if res.get("finished") else " (partial)")
        + f"; load average (1 min) {_load(load['start'])} at the start, "
        f"{_load(load.get('end'))} at the end (2 cores shared with other jobs: wall times are noisy, "
        "CPU times are the steadier comparison).",
        "",
        "| N | payload MB | NDJSON dump MB | seeded | seeding objects/s | etcd data MB "
        "| kube-apiserver RSS MB | load before / after |",
        "|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for p in pts:
        inc = _chosen(p, ROWS[2])
        dump_mb = f"{inc['out_bytes'] / MB:,.0f}" if inc else "-"
        L.append(
            f"| {p['n']:,} | {p['shape']['payload_bytes'] / MB:,.0f} | {dump_mb} | "
            f"{p['seeded_from']:,}..{p['n']:,} | {p['seed_rate']:,.0f} | {p['etcd_bytes'] / MB:,.0f} | "
            f"{p['apiserver_rss'] / MB:,.0f} | {_load(p['load'].get('before'))} / {_load(p['load'].get('after'))} |"
        )
    if len(pts) < 2:
        L += [
            "",
            f"Only N = {lo['n']:,} measured so far.",
            "",
            "| contender | writes | wall s | CPU s | CPU µs/object | peak RSS MB |",
            "|---|---|--:|--:|--:|--:|",
        ]
        for key in ROWS:
            x = _chosen(lo, key)
            cells = (
                f"{x['wall']:.1f} | {x['cpu']:.1f} | {x['cpu'] / lo['n'] * 1e6:,.0f} | {x['rss'] / MB:,.1f}"
                if x
                else "failed | | |"
            )
            L.append(f"| {key[0]} | {key[2]} | {cells} |")
        L += ["", HUGE_END]
        return "\n".join(L)
    L += [
        "",
        f"| contender | writes | wall s {a} | wall s {z} | CPU s {a} | CPU s {z} "
        f"| CPU µs/object {a} | CPU µs/object {z} | peak RSS MB {a} | peak RSS MB {z} "
        f"| wall/object {z} ÷ {a} | CPU/object {z} ÷ {a} |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    growth: list[float] = []
    wall_r: list[float] = []
    cpu_r: list[float] = []
    for key in ROWS:
        x, y = _chosen(lo, key), _chosen(hi, key)
        name = f"**{key[0]}**" if key[0].startswith("kstream") else key[0]
        if not x or not y:
            L.append(f"| {name} | {key[2]} | not measured (failed or not run) |" + " |" * 10)
            continue
        rw = (y["wall"] / hi["n"]) / (x["wall"] / lo["n"])
        rc = (y["cpu"] / hi["n"]) / (x["cpu"] / lo["n"])
        if key[0].startswith("kstream"):
            growth.append(y["rss"] - x["rss"])
            wall_r.append(rw)
            cpu_r.append(rc)
        L.append(
            f"| {name} | {key[2]} | {x['wall']:.1f} | {y['wall']:.1f} | {x['cpu']:.1f} | {y['cpu']:.1f} | "
            f"{x['cpu'] / lo['n'] * 1e6:,.0f} | {y['cpu'] / hi['n'] * 1e6:,.0f} | "
            f"{x['rss'] / MB:,.1f} | {y['rss'] / MB:,.1f} | {rw:.2f} | {rc:.2f} |"
        )
    if growth and len(pts) >= 2:
        g = max(growth)
        L += [
            "",
            f"- **Memory flat: {'yes' if g < FLAT_MB * MB else 'no'}.** Largest growth of a kstream "
            f"row's peak RSS from {a} to {z}: {g / MB:+,.1f} MB (flat = less than {FLAT_MB} MB).",
            f"- **Time per object the same: CPU {'yes' if max(cpu_r) <= SAME else 'no'}, wall "
            f"{'yes' if max(wall_r) <= SAME else 'no'}.** kstream rows, {z} ÷ {a} per object: "
            f"CPU {min(cpu_r):.2f}–{max(cpu_r):.2f}, wall {min(wall_r):.2f}–{max(wall_r):.2f} "
            f"(the same = at most {SAME:.2f}: not dearer per object).",
        ]
    L += ["", HUGE_END]
    return "\n".join(L)
