"""Benchmark: a new base (`dump --follow --rebase-every`) folded while the writer goes on.

Builds tools/bench_journal's journal (N ConfigMaps of ~1 KiB, E change events in
sealed segments), then drives a `JournalWriter` as the follow does (a batch of
events, `tick()`, `Rebaser.step()`, at a steady rate) while the first step's
fold runs on its background thread: how long the fold took, and how long the
writer's steps took meanwhile against the same steps without a fold (their
longest and their 99th percentile): the stall the follower sees.

    python -m tools.bench_rebase [--objects 20000] [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kstream.journal.format import Event, list_segments, now_time
from kstream.journal.rebase import Rebaser
from kstream.journal.recovery import seal_open_segment
from kstream.journal.writer import JournalWriter
from tools.bench_journal import CM, build, cm, line

BATCH = 50  # events per step (500/s at the follow's 0.1 s step)


def steps(writer: JournalWriter, rb: Rebaser | None, rv: int, until: Any) -> list[float]:
    """The writer's steps (a batch, tick, the rebaser) until `until()`; their durations."""
    out = []
    n = 0
    while not until():
        t0 = time.perf_counter()
        for _ in range(BATCH):
            rv += 1
            n += 1
            writer.write(Event(now_time(), "MODIFIED", CM, "", str(rv), line(cm(n % 1000, rv, n))))
        writer.tick()
        if rb is not None:
            rb.step(writer)
        out.append(time.perf_counter() - t0)
        time.sleep(max(0.0, 0.1 - out[-1]))
    return out


def stats(d: list[float]) -> dict[str, float]:
    s = sorted(d)
    return {
        "steps": len(s),
        "max_ms": round(s[-1] * 1000, 1),
        "p99_ms": round(s[int(len(s) * 0.99)] * 1000, 1),
        "median_ms": round(s[len(s) // 2] * 1000, 1),
    }


def run(work: Path, objects: int, events: int) -> dict[str, Any]:
    root = work / "journal"
    shutil.rmtree(root, ignore_errors=True)
    build(root, objects, events)
    segs = list_segments(root)
    seal_open_segment(segs[max(segs)])
    writer = JournalWriter(root, level=1, flush_interval=1.0, next_segment=max(segs) + 1)
    rb = Rebaser(root, 1e-6, None)
    rb.step(writer)  # nothing open: the fold of every segment starts
    assert rb.running
    t0 = time.monotonic()
    during = steps(writer, rb, 10**7, lambda: bool(rb.written))
    fold = time.monotonic() - t0
    t1 = time.monotonic()
    baseline = steps(writer, None, 2 * 10**7, lambda: time.monotonic() - t1 > min(fold, 20))
    writer.close()
    return {
        "objects": objects,
        "events": events,
        "segments_folded": max(segs),
        "base": rb.written,
        "fold_s": round(rb.fold_seconds[0], 2),
        "writer_during_fold": stats(during),
        "writer_without_fold": stats(baseline),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--objects", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=100_000)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kstream-bench-rebase-"))
    try:
        out = run(work, a.objects, a.events)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(out, sys.stdout, indent=2)
    print()
    return out


if __name__ == "__main__":
    main()
