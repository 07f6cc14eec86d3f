"""Benchmark: `count JOURNAL/@T` from object storage on a week-old journal, with
daily re-bases and without (issue #25, "Speed and scale").

    python -m tools.bench_instant [--objects 100000] [--events 1000000] [--days 7]
                                  [--rotate 3600] [--dir DIR] [--no-requests] [--out docs/benchmarks.md]

Writes a journal of N ConfigMaps of ~1 KiB (tools/bench_journal's objects and
change mix: 9 in 10 MODIFIED, the rest DELETED and ADDED again) and E events
spread evenly over D simulated days from midnight UTC, in sealed segments cut
every `--rotate` seconds (the epoch-aligned hour by default) and at each
midnight, in tests/journalmaker's writer (byte for byte the journal format).
Then kstream's own re-base (`kstream/journal/rebase.py`'s `Rebaser`, driven
with a simulated wall clock just after each midnight, folding in the
foreground) writes `bases/NNNNNN.ndjson.zst` for days 1..D-1: exactly what
`dump --follow --rebase-every 24h` writes (the journal is read late on day D,
before its own midnight base). The same journal without those bases is the
contrast.

Each instant is read from the journal as it stood then (a running recorder's
journal read for a recent instant): the segments sealed by T and, with bases,
the bases written by T, as two local directories of hard links and the same
uploaded to a local SeaweedFS (tests/s3server; `s3://bench/K-bases/` and
`s3://bench/K-none/`). `kstream count SOURCE/@T -o json` is timed as a
child process (tools/bench_measure: wall, CPU, peak RSS) for T = 01:00 on day 1,
23:00 on day 1 and 23:00 on each later day, from the four. Each s3:// read is
then run once more through a loopback counting proxy (tests/s3server.Proxy) for
its GET requests and the body bytes it fetched; `--no-requests` skips that
pass. Every run's object count is checked against the count the generator
knows for T (the bench fails on a mismatch), so the four sources are known to
give the same state.

The section between INSTANT_START and INSTANT_END of docs/benchmarks.md is
replaced (`make bench` keeps it); raw results go to bench-out/instant.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from kstream.journal.format import (
    BASE_NAME,
    BASES_DIR,
    META_NAME,
    SEGMENT_DIR,
    Event,
    base_name,
    format_time,
    segment_name,
)
from kstream.journal.rebase import Rebaser
from tests.journalmaker import Journal, segment_bytes, write_base
from tools.bench_journal import CM, change, cm, line
from tools.bench_report import INSTANT_END, INSTANT_START, put_section

MB = 2**20
DAY = 86_400
PER_FRAME = 5_000
START = datetime(2026, 11, 30, 0, 0, 0, tzinfo=timezone.utc)  # midnight UTC: day 1 begins
BUCKET = "bench"
FLAT = 1.5  # "does not grow": every later day's read within 1.5x of day 1's late read
SOURCES = ("local+bases", "s3+bases", "local", "s3")


def event_time(n: int, events: int, days: int) -> float:
    """Seconds after START of event n (evenly spread, none on a boundary)."""
    return (n + 0.5) * days * DAY / events


def events_upto(t: float, events: int, days: int) -> int:
    """How many events have a time <= t seconds after START."""
    step = days * DAY / events
    return max(0, min(events, int(t / step + 0.5)))


def instants(days: int) -> list[tuple[str, int, float]]:
    """(label, day, seconds after START) of the instants read."""
    out = [("day 1, 01:00", 1, 3600.0), ("day 1, 23:00", 1, DAY - 3600.0)]
    out += [(f"day {d}, 23:00", d, d * DAY - 3600.0) for d in range(2, days + 1)]
    return out


def at(sec: float) -> str:
    return format_time(START + timedelta(seconds=sec))


class _Writer:
    """What `Rebaser.step` looks at of the follow's writer: no open segment (the
    period's last one is sealed), and the number the next one would take."""

    current = None

    def __init__(self, next_segment: int) -> None:
        self.next_segment = next_segment


def build(
    root: Path, objects: int, events: int, days: int, rotate: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """The journal with its daily bases under `root`; what the generator knows."""
    j = Journal(root)
    write_base(
        j.base,
        {CM: [cm(i, 1000 + i, 0) for i in range(objects)]},
        started=format_time(START),
        rvs={CM: "200000"},
    )
    points = instants(days)
    alive_at: dict[float, int] = {}
    rv = 200_000
    deleted: set[int] = set()
    seg, frames, frame = 1, [], []
    day_last: dict[int, int] = {}  # day -> its last segment
    seg_end: dict[int, float] = {}  # segment -> the end of its period (seconds after START)
    cur_slot = 0
    pi = 0

    def seal() -> None:
        nonlocal seg, frames, frame
        if frame:
            frames.append(frame)
            frame = []
        if frames:
            j.seg_path(seg).write_bytes(segment_bytes(seg, frames).data)
            day_last[cur_slot * rotate // DAY + 1] = seg
            seg_end[seg] = (cur_slot + 1) * rotate
            seg, frames = seg + 1, []

    for n in range(events):
        t = event_time(n, events, days)
        while pi < len(points) and points[pi][2] < t:
            alive_at[points[pi][2]] = objects - len(deleted)
            pi += 1
        slot = int(t // rotate)
        if slot != cur_slot:
            seal()
            cur_slot = slot
        rv += 1
        i, typ = change(n, objects, deleted)
        frame.append(
            Event(
                format_time(START + timedelta(seconds=t)), typ, CM, "", str(rv), line(cm(i, rv, n))
            )
        )
        if len(frame) == PER_FRAME:
            frames.append(frame)
            frame = []
        if n and n % 100_000 == 0:
            log(f"  {n:,} events written")
    seal()
    for p in points[pi:]:
        alive_at[p[2]] = objects - len(deleted)

    # the daily bases, by kstream's own re-base: just after each midnight (days 1..D-1)
    clock = [0.0]
    rb = Rebaser(root, DAY, None, background=False, wall=lambda: clock[0])
    for d in range(1, days):
        clock[0] = (START + timedelta(days=d, seconds=1)).timestamp()
        rb.step(cast(Any, _Writer(day_last[d] + 1)))
        log(f"  base after day {d} (segment {day_last[d]}): {rb.fold_seconds[-1]:.1f} s")
    return {
        "segments": seg - 1,
        "day_last_segment": day_last,
        "segment_end": seg_end,
        "bases": rb.written,
        "fold_s": [round(s, 2) for s in rb.fold_seconds],
        "alive": {p[0]: alive_at[p[2]] for p in points},
    }


def as_of(src: Path, dst: Path, sec: float, built: dict[str, Any], bases: bool) -> int:
    """The journal as it stood at `sec` (hard links into `dst`): the segments
    sealed by then (a segment is sealed at the end of its period) and, with
    `bases`, the bases written by then (just after each midnight); the number
    of segments."""
    shutil.rmtree(dst, ignore_errors=True)
    (dst / SEGMENT_DIR).mkdir(parents=True)
    for name in (META_NAME, BASE_NAME):
        os.link(src / name, dst / name)
    sealed = [n for n, end in built["segment_end"].items() if end <= sec]
    for n in sealed:
        os.link(src / SEGMENT_DIR / segment_name(n), dst / SEGMENT_DIR / segment_name(n))
    if bases:
        for d, last in built["day_last_segment"].items():
            if d * DAY < sec and last in built["bases"]:
                (dst / BASES_DIR).mkdir(exist_ok=True)
                os.link(src / base_name(last), dst / base_name(last))
    return len(sealed)


def files_of(root: Path) -> list[Path]:
    return sorted(f for f in root.rglob("*") if f.is_file())


def upload(client: Any, root: Path, prefix: str) -> None:
    for f in files_of(root):
        with open(f, "rb") as body:
            client.put_object(Bucket=BUCKET, Key=prefix + str(f.relative_to(root)), Body=body)


def count(source: str, env: dict[str, str], work: Path) -> dict[str, Any]:
    from tools.bench_measure import measure

    kstream = str(Path(sys.executable).parent / "kstream")
    out = work / "count.json"
    load = os.getloadavg()[0]
    m = measure([kstream, "count", source, "-o", "json"], stdout=out, env=env)
    if not m.ok:
        raise SystemExit(f"kstream count {source}: {m.error}")
    return {
        "wall": round(m.wall, 3),
        "cpu": round(m.cpu, 3),
        "rss": m.rss,
        "objects": json.loads(out.read_text())["total"]["objects"],
        "load1": round(load, 2),
    }


def run(
    work: Path,
    objects: int,
    events: int,
    days: int,
    rotate: int,
    requests: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    import botocore.session

    from tests.s3server import ADMIN, Proxy, S3Server
    from tools import bench as b

    res: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": b.machine(),
        "objects": objects,
        "events": events,
        "days": days,
        "rotate_s": rotate,
        "load": {"start": os.getloadavg()},
        "runs": [],
    }
    jb = work / "journal"
    shutil.rmtree(jb, ignore_errors=True)
    log(f"instant: writing {objects:,} objects, {events:,} events over {days} days")
    t0 = time.monotonic()
    built = build(jb, objects, events, days, rotate, log)
    res["journal"] = {k: v for k, v in built.items() if k != "segment_end"}
    res["build_s"] = round(time.monotonic() - t0, 1)
    res["bytes"] = {
        "segments": sum(f.stat().st_size for f in files_of(jb / SEGMENT_DIR)),
        "base0": (jb / BASE_NAME).stat().st_size,
        "bases": sum(f.stat().st_size for f in files_of(jb / BASES_DIR)),
    }
    server = S3Server(work / "s3-instant")
    proxy = None
    try:
        server.start()
        client = botocore.session.Session().create_client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ADMIN.access_key,
            aws_secret_access_key=ADMIN.secret_key,
        )
        client.create_bucket(Bucket=BUCKET)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = base_env | server.env()
        if requests:
            proxy = Proxy(server.port)
        for k, (label, day, sec) in enumerate(instants(days)):
            t = at(sec)
            row: dict[str, Any] = {"instant": label, "day": day, "time": t,
                                   "alive": built["alive"][label],
                                   "events_total": events_upto(sec, events, days),
                                   "events_since_base": events_upto(sec, events, days)
                                   - events_upto((day - 1) * DAY, events, days)}  # fmt: skip
            # the journal as it stood at T, with the daily bases and without: local
            # directories of hard links, and the same uploaded under their own prefix
            names = {}
            for with_bases, local, remote in ((True, "local+bases", "s3+bases"),
                                              (False, "local", "s3")):  # fmt: skip
                d = work / "as-of" / f"{k}-{'bases' if with_bases else 'none'}"
                row["segments"] = as_of(jb, d, sec, built, with_bases)
                if with_bases:
                    row["bases"] = len(files_of(d / BASES_DIR)) if (d / BASES_DIR).is_dir() else 0
                prefix = f"{k}-{'bases' if with_bases else 'none'}/"
                upload(client, d, prefix)
                names[local], names[remote] = str(d), f"s3://{BUCKET}/{prefix}"
            for src in SOURCES:
                r = count(f"{names[src]}@{t}" if src.startswith("s3") else f"{names[src]}/@{t}",
                          env, work)  # fmt: skip
                if r["objects"] != row["alive"]:
                    raise SystemExit(
                        f"{src} @{t}: {r['objects']:,} objects, the generator says {row['alive']:,}"
                    )
                if proxy is not None and src.startswith("s3"):
                    proxy.reset()
                    count(f"{names[src]}@{t}", base_env | server.env(endpoint=proxy.endpoint), work)
                    gets = [q for q in proxy.requests if q.method == "GET"]
                    r["gets"] = len(gets)
                    r["ranged"] = sum(1 for q in gets if q.range)
                    r["fetched"] = sum(q.body_bytes for q in gets)
                row[src] = r
                log(
                    f"instant: {label} {src}: {r['wall']:.2f} s, CPU {r['cpu']:.2f} s, "
                    f"{r['rss'] / MB:.0f} MB"
                    + (f", {r['gets']} GETs, {r['fetched'] / MB:.1f} MB" if "gets" in r else "")
                )
            res["runs"].append(row)
    finally:
        if proxy is not None:
            proxy.close()
        server.stop()
    res["load"]["end"] = os.getloadavg()
    res["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return res


# ------------------------------------------------------------------ the report


def _c(r: dict[str, Any] | None, reqs: bool = False) -> str:
    if not r:
        return "- | - | -" + (" | -" if reqs else "")
    cells = f"{r['wall']:.2f} | {r['cpu']:.2f} | {r['rss'] / MB:.0f}"
    if reqs:
        cells += f" | {r['gets']:,} / {r['fetched'] / MB:.1f}" if "gets" in r else " | -"
    return cells


def ratios(res: dict[str, Any], src: str, key: str) -> tuple[float, float]:
    """Of the reads at 23:00 (`key`: "cpu" or "wall"): the slowest one's over day 1's,
    and the last day's over day 1's."""
    late = [r for r in res["runs"] if r["instant"].endswith("23:00")]
    first = late[0][src][key]
    return max(r[src][key] for r in late) / first, late[-1][src][key] / first


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    j = res["journal"]
    by = res["bytes"]
    lo, hi = res["load"]["start"], res["load"]["end"]
    loads = [r[s]["load1"] for r in res["runs"] for s in SOURCES]
    L = [
        INSTANT_START,
        "## A journal's instant from object storage, a week of changes, with and without daily bases",
        "",
        f"Generated by `make bench-instant` (`python -m tools.bench_instant`), run started "
        f"{res['started']}, {m['nproc']} cores ({m['cpu_model']}), shared: load average "
        f"{lo[0]:.1f} / {lo[1]:.1f} / {lo[2]:.1f} at the start, {hi[0]:.1f} / {hi[1]:.1f} / "
        f"{hi[2]:.1f} at the end, 1-minute load {min(loads):.1f}–{max(loads):.1f} before the "
        "runs. "
        f"A journal of {res['objects']:,} ConfigMaps (~1 KiB) and {res['events']:,} change events "
        f"spread evenly over {res['days']} days ({res['events'] // res['days']:,} a day; 9 in 10 "
        f"MODIFIED, the rest DELETED and ADDED again), in {j['segments']} sealed segments "
        f"(one per {res['rotate_s'] // 60} min) of {by['segments'] / MB:.1f} MB; base 0 "
        f"{by['base0'] / MB:.1f} MB. The daily bases (`bases/`, {len(j['bases'])} of them, "
        f"{by['bases'] / MB:.1f} MB) were written by kstream's own re-base "
        "(`kstream/journal/rebase.py`, as `dump --follow --rebase-every 24h` does just after "
        f"each midnight; each fold {min(j['fold_s']):.1f}–{max(j['fold_s']):.1f} s); the "
        "contrast is the same journal without them (every read folds from base 0). Each T is "
        "read from the journal as it stood at T (as a running recorder's journal is read for a "
        "recent instant): the segments sealed by then and, with bases, the bases written by "
        "then, as local directories and uploaded under their own prefixes. Each cell: "
        "`kstream count SOURCE/@T -o json` as a child process, wall s | CPU s | peak RSS MB; "
        "s3:// reads are from a local SeaweedFS on the same machine (tests/s3server), and "
        "their GET requests (LIST, journal.json, ranged GETs) / MB fetched were counted in a second run through a loopback "
        "counting proxy (the timed run goes to the server directly). Every run's object count "
        "equals the generator's.",
        "",
        "| instant T | objects | segments / bases | events folded: bases / none "
        "| local+bases wall s | CPU s | RSS MB "
        "| s3+bases wall s | CPU s | RSS MB | GETs / MB "
        "| local wall s | CPU s | RSS MB "
        "| s3 wall s | CPU s | RSS MB | GETs / MB |",
        "|---|--:|--:|--:|" + "--:|" * 3 + "--:|" * 4 + "--:|" * 3 + "--:|" * 4,
    ]
    for r in res["runs"]:
        L.append(
            f"| {r['instant']} ({r['time'][:19]}Z) | {r['alive']:,} | {r['segments']} / {r['bases']} | "
            f"{r['events_since_base']:,} / {r['events_total']:,} | "
            f"{_c(r.get('local+bases'))} | {_c(r.get('s3+bases'), True)} | "
            f"{_c(r.get('local'))} | {_c(r.get('s3'), True)} |"
        )
    L.append("")
    verdicts = []
    days = res["days"]
    for src, what in (("s3+bases", "s3://, daily bases"), ("local+bases", "local, daily bases")):
        worst, last = ratios(res, src, "cpu")
        wworst, _ = ratios(res, src, "wall")
        verdicts.append(
            f"- **{what}: {'does not grow' if worst <= FLAT else 'grows'}** with the journal's "
            f"age: the costliest read at 23:00 (days 1..{days}) took {worst:.2f}× the CPU of "
            f"day 1's (wall {wworst:.2f}×; the verdict is on CPU, the threshold {FLAT}×; wall "
            "moves with the machine's load)."
        )
    for src, what in (("s3", "s3://, no bases"), ("local", "local, no bases")):
        _, last = ratios(res, src, "cpu")
        _, wlast = ratios(res, src, "wall")
        verdicts.append(
            f"- **{what}: {'grows' if last > FLAT else 'does not grow'}**: day {days}'s read at "
            f"23:00 took {last:.2f}× the CPU of day 1's (wall {wlast:.2f}×)."
        )
    L += verdicts
    L += ["", INSTANT_END]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument(
        "--rotate", type=int, default=3600, help="seconds per segment (divides an hour)"
    )
    ap.add_argument("--dir", help="work directory, kept (default: a temporary one, removed)")
    ap.add_argument("--no-requests", action="store_true", help="skip the counting-proxy pass")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--json", default="bench-out/instant.json")
    a = ap.parse_args(argv)
    if 3600 % a.rotate or a.days < 2:
        ap.error("--rotate must divide an hour (3600) and --days be at least 2")
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="kstream-bench-instant-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        res = run(work, a.objects, a.events, a.days, a.rotate, not a.no_requests,
                  lambda s: print(s, file=sys.stderr, flush=True))  # fmt: skip
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2))
    put_section(Path(a.out), INSTANT_START, INSTANT_END, render(res))
    print(f"wrote {a.out} (instant section) and {a.json}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
