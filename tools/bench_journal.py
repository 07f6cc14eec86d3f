"""Benchmark: the state at an instant of a big journal (issue 13's row).

Writes a journal of N objects (ConfigMaps of ~1 KiB, 10 namespaces) and E change
events over them (9 in 10 MODIFIED, the rest DELETED and ADDED again), in
sealed segments of 100k events, frames of 5k events (tests/journalmaker's
writer, byte for byte the journal format); then times `kstream count
JOURNAL/@T` (T: the middle of the events, so that the fold reads them all
but applies half) and `kstream count JOURNAL/` as child processes, with their
peak RSS.

    python -m tools.bench_journal [--objects 100000] [--events 1000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kstream.journal.format import Event, format_time
from tests.journalmaker import Journal, segment_bytes, write_base

CM = "v1/configmaps"
PER_SEGMENT = 100_000
PER_FRAME = 5_000


def cm(i: int, rv: int, gen: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"cm-{i:07d}",
            "namespace": f"ns-{i % 10}",
            "resourceVersion": str(rv),
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "creationTimestamp": "2026-11-29T12:00:00Z",
            "labels": {"app": f"app-{i % 50}", "tier": "web"},
            "managedFields": [
                {
                    "manager": f"controller-{i % 7}",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-29T13:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}, "f:payload": {}, "f:gen": {}}},
                }
            ],
        },
        "data": {"gen": str(gen), "payload": ("x" * 60 + "\n") * 12},
    }


def line(o: dict[str, Any]) -> bytes:
    return json.dumps(o, separators=(",", ":")).encode()


def change(n: int, objects: int, deleted: set[int]) -> tuple[int, str]:
    """Event n of the benchmark's journals: (the object it changes, its type): 9
    in 10 MODIFIED, the rest DELETED, and a deleted object's next event ADDED
    again (`deleted` follows along)."""
    i = (n * 7919) % objects
    if i in deleted:
        deleted.discard(i)
        return i, "ADDED"
    if n % 10 == 9:
        deleted.add(i)
        return i, "DELETED"
    return i, "MODIFIED"


def build(root: Path, objects: int, events: int) -> tuple[str, str]:
    """The journal; returns (the instant in the middle, the last event's time)."""
    j = Journal(root)
    write_base(j.base, {CM: [cm(i, 1000 + i, 0) for i in range(objects)]}, rvs={CM: "200000"})
    start = datetime(2026, 11, 29, 14, 0, 0, tzinfo=timezone.utc)
    rv = 200_000
    deleted: set[int] = set()
    seg, frames, frame = 1, [], []
    middle = last = ""
    for n in range(events):
        rv += 1
        i, typ = change(n, objects, deleted)
        t = format_time(start + timedelta(microseconds=n * 1000))
        frame.append(Event(t, typ, CM, "", str(rv), line(cm(i, rv, n))))
        if n == events // 2:
            middle = t
        last = t
        if len(frame) == PER_FRAME:
            frames.append(frame)
            frame = []
        if len(frames) * PER_FRAME == PER_SEGMENT:
            j.seg_path(seg).write_bytes(segment_bytes(seg, frames).data)
            seg, frames = seg + 1, []
    if frame:
        frames.append(frame)
    if frames:
        j.seg_path(seg).write_bytes(segment_bytes(seg, frames, sealed=False).data)
    return middle, last


def measure(args: list[str], work: Path) -> dict[str, Any]:
    """Wall time, CPU and peak RSS of one kstream command (tools/bench_measure)."""
    from tools.bench_measure import measure as run

    kstream = str(Path(sys.executable).parent / "kstream")
    out = work / "count.json"
    m = run([kstream, *args], stdout=out)
    if not m.ok:
        raise SystemExit(f"kstream {' '.join(args)}: {m.error}")
    return {
        "command": "kstream " + " ".join(args),
        "wall_s": round(m.wall, 2),
        "cpu_s": round(m.cpu, 2),
        "peak_rss_mib": round(m.rss / 2**20, 1),
        "objects": json.loads(out.read_text())["total"]["objects"],
    }


def run(
    work: Path, objects: int, events: int, log: Any = None, keep: bool = False
) -> dict[str, Any]:
    """Build the journal under `work`, measure the two states; the results."""
    root = work / "journal"
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.monotonic()
    middle, _ = build(root, objects, events)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    out: dict[str, Any] = {
        "objects": objects,
        "events": events,
        "journal_bytes": size,
        "build_s": round(time.monotonic() - t0, 1),
        "runs": [],
    }
    for what, args in (
        (f"state at {middle} (half the events)", ["count", f"{root}/@{middle}", "-o", "json"]),
        ("latest state (every event)", ["count", f"{root}/", "-o", "json"]),
    ):
        r = measure(args, work)
        r["what"] = what
        out["runs"].append(r)
        if log is not None:
            log(f"journal: {what}: {r['wall_s']} s, peak RSS {r['peak_rss_mib']} MiB")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--dir", help="where to write the journal (default: a temporary directory)")
    a = ap.parse_args(argv)
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="kstream-bench-journal-"))
    work.mkdir(parents=True, exist_ok=True)
    out = run(work, a.objects, a.events, lambda m: print(m, file=sys.stderr), keep=bool(a.dir))
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
