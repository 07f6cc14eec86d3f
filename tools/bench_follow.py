"""`make bench-follow`: `kstream dump --follow` under a steady stream of changes.

A fresh local control plane, N ConfigMaps in one namespace; kstream follows
them (`dump --follow -n NS -r configmaps`) while T client threads PATCH them as
fast as the server takes it (or at `--rate` changes/s) for `--duration` seconds.
Measured from outside: kstream's CPU time (user + system, `wait4`) per change
event recorded, its RSS every second (flat or not) and its peak (VmHWM), the
load average every second; the events the journal holds are counted with the
journal reader, and must equal the changes the server accepted.

    python -m tools.bench_follow                      # 10 minutes, as fast as it goes
    python -m tools.bench_follow --duration 60 --rate 500
    python -m tools.bench_follow --s3 --rate 200      # to object storage
    python -m tools.bench_follow --s3 --also-local --rate 200

`--s3` follows to `s3://bench/bench/` on a local S3 server (SeaweedFS, started
by tests/s3server) with the default rotate interval for object storage (1m),
the open segment staged in the work directory. The bench lists the bucket every
second and notes when each segment's object first appears: a segment's
**upload lag** is that moment minus the time of its last event (the `last` of
the segment's manifest), also computed from the object's LastModified; the
upload alone is the listing moment minus the segment's `sealed` time. Once
the changes stop, it waits for the next sealed segment (the one holding the
last events) before stopping kstream, downloads the prefix and reads it with
the local journal reader. `--also-local` then runs the same load to a local
directory with `--rotate-interval 1m` (the same segments, no upload) on a fresh
control plane: the same-session comparison.

The local table goes into docs/benchmarks.md between `<!-- follow-bench -->`
and `<!-- /follow-bench -->`, the object-storage one between
`<!-- follow-s3-bench -->` and `<!-- /follow-s3-bench -->` (both kept by
`make bench`); raw results to bench-out/follow.json, bench-out/follow-s3.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.controlplane import ControlPlane
from tests.seed import Api, configmap, namespace
from tools.bench import CHILD_ENV, KSTREAM, log_line, machine, side_bench_start
from tools.bench_report import (
    FOLLOW_END,
    FOLLOW_S3_END,
    FOLLOW_S3_START,
    FOLLOW_START,
    block,
    put_section,
)

NS = "bench-follow"
MB = 2**20
BUCKET = "bench"
PREFIX = "bench/"
# seconds to wait, after the changes, for the segment holding the last events
WAIT_LAST_SEGMENT = 180.0


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


@dataclass
class Bucket:
    """The local S3 server, the bench's bucket, and a thread listing the
    journal's segments every second: when each key first appeared."""

    work: Path
    server: Any = None
    client: Any = None
    seen: dict[str, float] = field(default_factory=dict)  # key -> wall time first listed
    modified: dict[str, float] = field(default_factory=dict)  # key -> LastModified
    sizes: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        import botocore.session

        from tests.s3server import ADMIN, S3Server

        self.server = S3Server(self.work / "s3-follow")
        self.server.start()
        self.client = botocore.session.Session().create_client(
            "s3",
            endpoint_url=self.server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ADMIN.access_key,
            aws_secret_access_key=ADMIN.secret_key,
        )
        self.client.create_bucket(Bucket=BUCKET)
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()

    def env(self) -> dict[str, str]:
        return dict(self.server.env())

    def list(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=PREFIX
        ):
            for o in page.get("Contents") or []:
                out[o["Key"]] = o
        return out

    def _poll(self) -> None:
        while not self.stop.is_set():
            t = time.time()
            try:
                objs = self.list()
            except Exception as e:  # reported; the run goes on
                self.errors.append(str(e))
                objs = {}
            for key, o in objs.items():
                if key not in self.seen:
                    self.seen[key] = t
                    self.modified[key] = o["LastModified"].timestamp()
                    self.sizes[key] = int(o["Size"])
            self.stop.wait(max(0.0, 1.0 - (time.time() - t)))

    def download(self, to: Path) -> Path:
        shutil.rmtree(to, ignore_errors=True)
        for key in self.list():
            p = to / key[len(PREFIX) :]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        return to

    def close(self) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.stop()


def upload_lags(bucket: Bucket, j: Path, stopped_at: float) -> list[dict[str, Any]]:
    """Each segment holding events: its last event's time, when its object was
    first listed and its LastModified, and the upload alone: from its sealing
    (`sealed` in its manifest) to its listing; `at_stop`: uploaded by the clean stop."""
    from kstream.journal.format import list_segments, parse_time
    from kstream.journal.recovery import read_sealed_manifest

    out = []
    for n, path in sorted(list_segments(j).items()):
        key = f"{PREFIX}segments/{path.name}"
        m = read_sealed_manifest(path)
        if m is None or not m.last or key not in bucket.seen:
            continue
        last = parse_time(m.last).timestamp()
        out.append({
            "segment": n,
            "events": m.events,
            "last": m.last,
            "lag_listed": bucket.seen[key] - last,
            "lag_modified": bucket.modified[key] - last,
            "sealed_to_listed": bucket.seen[key] - parse_time(m.sealed).timestamp(),
            "bytes": bucket.sizes[key],
            "at_stop": bucket.seen[key] >= stopped_at,
        })  # fmt: skip
    return out


def run(
    work: Path,
    objects: int,
    threads: int,
    duration: float,
    rate: float,
    log: Any,
    s3: bool = False,
    rotate: str = "",
) -> dict[str, Any]:
    cp = ControlPlane(work / "cp-follow")
    j = work / ("follow-s3-journal" if s3 else "follow-journal")
    stage = work / "follow-stage"
    shutil.rmtree(j, ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)
    bucket = Bucket(work)
    try:
        if s3:
            bucket.start()
            log(f"S3 server on {bucket.server.endpoint}, bucket {BUCKET}")
        cp.start()
        api = Api(cp)
        api.create(*namespace(NS), exist_ok=True)
        names = [f"cm-{i:05d}" for i in range(objects)]
        api.create_many((configmap(NS, n, size=1000) for n in names), threads=8)
        log(f"seeded {objects} ConfigMaps")
        errf = open(work / "follow.log", "wb")  # noqa: SIM115
        target = f"s3://{BUCKET}/{PREFIX}" if s3 else str(j)
        extra = ["--stage", str(stage)] if s3 else []
        if rotate:
            extra += ["--rotate-interval", rotate]
        p = subprocess.Popen(
            [KSTREAM, "dump", "--follow", "-q", "-o", target, *extra, "-n", NS, "-r", "configmaps",
             "--kubeconfig", str(cp.kubeconfig)],
            stdout=errf, stderr=errf, env=CHILD_ENV | (bucket.env() if s3 else {}),
        )  # fmt: skip
        proc = psutil.Process(p.pid)

        def started() -> bool:
            if s3:
                return f"{PREFIX}journal.json" in bucket.seen  # the commit point
            return (j / "base.ndjson.zst").exists()

        deadline = time.monotonic() + 120
        while not started():
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit(
                    f"kstream did not write its base: {(work / 'follow.log').read_text()}"
                )
            time.sleep(0.2)
        time.sleep(1)
        cpu0 = sum(proc.cpu_times()[:2])
        rss: list[int] = [proc.memory_info().rss]
        load: list[float] = [os.getloadavg()[0]]
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
            load.append(os.getloadavg()[0])
            if len(rss) % 60 == 0:
                log(
                    f"  {time.monotonic() - t0:.0f}s: {sum(d[0] for d in done):,} changes, "
                    f"RSS {rss[-1] / MB:.0f} MB, load {load[-1]:.1f}"
                    + (f", {sum(k.startswith(PREFIX + 'segments/') for k in bucket.seen)} segments uploaded" if s3 else "")
                )  # fmt: skip
        stop.set()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        ended = time.time()
        changes = sum(d[0] for d in done)
        recorded = 0
        if s3:  # the segment holding the last events is sealed and uploaded
            deadline = time.monotonic() + WAIT_LAST_SEGMENT
            while time.monotonic() < deadline and not any(
                k.startswith(PREFIX + "segments/") and t > ended + 3 for k, t in bucket.seen.items()
            ):
                time.sleep(1)
        else:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the last events reach the journal
                recorded = journal_changes(j)
                if recorded >= changes:
                    break
                time.sleep(1)
        cpu1 = sum(proc.cpu_times()[:2])
        stopped_at = time.time()
        p.send_signal(signal.SIGINT)
        _, status, ru = os.wait4(p.pid, 0)
        errf.close()
        lags: list[dict[str, Any]] = []
        if s3:
            time.sleep(2)  # the last listing
            bucket.stop.set()
            bucket.download(j)
            lags = upload_lags(bucket, j, stopped_at)
        recorded = journal_changes(j)
        segs = sorted((j / "segments").glob("*.zst"))
        minute = min(60, len(rss))
        timely = [x["lag_listed"] for x in lags if not x["at_stop"]]
        return {
            "mode": "s3" if s3 else "local",
            "rotate_interval": rotate or ("1m" if s3 else "1h"),
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
            "rss_first_minute": statistics.fmean(rss[:minute]),
            "rss_last_minute": statistics.fmean(rss[-minute:]),
            "rss_samples": rss,
            "peak_rss": ru.ru_maxrss * 1024,
            "load_start": load[0],
            "load_mean": statistics.fmean(load),
            "load_max": max(load),
            "exit": os.waitstatus_to_exitcode(status),
            "segments": len(segs),
            "journal_bytes": sum(s.stat().st_size for s in segs),
            "upload_lags": lags,
            "upload_lag_median": statistics.median(timely) if timely else None,
            "upload_lag_max": max(timely) if timely else None,
            "upload_max": max((x["sealed_to_listed"] for x in lags), default=None),
            "upload_lag_max_modified": max(
                (x["lag_modified"] for x in lags if not x["at_stop"]), default=None
            ),
            "list_errors": bucket.errors[:5],
            "log_tail": (work / "follow.log").read_text(errors="replace")[-2000:],
        }
    finally:
        bucket.close()
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


def _lag(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def s3_section(rows: list[dict[str, Any]], started: str, m: dict[str, Any] | None = None) -> str:
    m = m or machine()
    r0 = rows[0]
    lines = [
        FOLLOW_S3_START,
        "",
        "## Following to object storage: `kstream dump --follow -o s3://BUCKET/PREFIX/`",
        "",
        f"Generated by `make bench-follow FOLLOW_ARGS=\"--s3 ...\"` (`python -m tools.bench_follow --s3`), "
        f"run started {started}; kube-apiserver {m['kube_apiserver']}; a local S3 server (SeaweedFS, "
        f"tests/s3server) on the same machine. {r0['objects']:,} ConfigMaps of ~1 KB in one namespace, "
        f"{r0['threads']} client threads PATCHing them"
        + (f" at {r0['target_rate']:,.0f} changes/s" if r0["target_rate"] else " as fast as the server takes it")
        + "; each row a fresh control plane. The s3:// row follows to `s3://bench/bench/` with the "
        "default rotate interval for object storage (1m), the local row (same session, if run) to a "
        "local directory with `--rotate-interval 1m`. RSS: the mean of the first and of the last "
        "minute's samples (one a second), and the largest sample. Upload lag: for each sealed segment, "
        "the moment its object first appeared in the bucket listing (listed every second) minus the "
        "time of its last event (`last` in the segment's manifest); the segment sealed by the final "
        "stop is left out. Upload: from the segment's sealing (`sealed` in its manifest) to its listing."
        " The lag by LastModified uses the object's LastModified instead of its listing (whole "
        "seconds on SeaweedFS: up to 1 s low). Load: the 1-minute load average sampled every second "
        "(2 cores shared with other jobs).",
        "",
        "| writes to | rotate | duration s | changes accepted | recorded in the journal | changes/s | kstream CPU s | CPU per event µs | RSS first min / last min / max sampled MB | peak RSS (VmHWM) MB | segments | journal MB | upload lag median / max s | max lag by LastModified s | upload max s | load start / mean / max | exit |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {'s3:// (SeaweedFS)' if r['mode'] == 's3' else 'local directory'} | {r['rotate_interval']} | "
            f"{r['duration']:.0f} | {r['changes']:,} | {r['recorded']:,} | {r['rate']:,.0f} | {r['cpu']:.1f} | "
            f"{r['cpu_per_event_us']:.0f} | {r['rss_first_minute'] / MB:.0f} / {r['rss_last_minute'] / MB:.0f} / "
            f"{r['rss_max_sampled'] / MB:.0f} | {r['peak_rss'] / MB:.0f} | {r['segments']} | "
            f"{r['journal_bytes'] / MB:.1f} | "
            + (f"{_lag(r['upload_lag_median'])} / {_lag(r['upload_lag_max'])} | {_lag(r['upload_lag_max_modified'])} | {_lag(r.get('upload_max'))}"
               if r["mode"] == "s3" else "- | - | -")
            + f" | {r['load_start']:.1f} / {r['load_mean']:.1f} / {r['load_max']:.1f} | {r['exit']} |"
        )  # fmt: skip
    return "\n".join([*lines, "", FOLLOW_S3_END])


def put_after_follow(out: Path, new: str) -> None:
    """The object-storage section in place of its old self, or right after the
    local follow section (at the end of the file if there is none)."""
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    if block(text, FOLLOW_S3_START, FOLLOW_S3_END) is None and FOLLOW_END in text:
        i = text.index(FOLLOW_END) + len(FOLLOW_END)
        out.write_text(text[:i] + "\n\n" + new + text[i:])
    else:
        put_section(out, FOLLOW_S3_START, FOLLOW_S3_END, new)


def summary(r: dict[str, Any]) -> str:
    s = (
        f"{r['mode']}: {r['changes']:,} changes, {r['recorded']:,} recorded, "
        f"{r['cpu_per_event_us']:.0f} µs CPU/event, RSS first/last minute "
        f"{r['rss_first_minute'] / MB:.0f}/{r['rss_last_minute'] / MB:.0f} MB, peak RSS {r['peak_rss'] / MB:.0f} MB, "
        f"load mean {r['load_mean']:.1f}, exit {r['exit']}"
    )
    if r["mode"] == "s3":
        s += (
            f", upload lag median {_lag(r['upload_lag_median'])} s, max {_lag(r['upload_lag_max'])} s"
            f", upload (sealed to listed) max {_lag(r.get('upload_max'))} s"
        )
    return s


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
    ap.add_argument(
        "--s3", action="store_true", help="follow to s3:// on a local S3 server (SeaweedFS)"
    )
    ap.add_argument(
        "--also-local",
        action="store_true",
        help="with --s3: then the same load to a local directory (--rotate-interval 1m)",
    )
    ap.add_argument(
        "--rotate-interval",
        default="",
        help="kstream's --rotate-interval (default: kstream's; 1m for --also-local's run)",
    )
    args, work, started, load = side_bench_start(ap, argv)
    rot = args.rotate_interval
    out = Path(args.out)
    if not args.s3:
        r = run(work, args.objects, args.threads, args.duration, args.rate, log_line, rotate=rot)
        log_line(summary(r))
        (work / "follow.json").write_text(
            json.dumps({"started": started, "load": load, **r}, indent=2)
        )
        put_section(out, FOLLOW_START, FOLLOW_END, section(r, started, load))
        log_line(f"wrote {out}")
        return
    rows = [run(work, args.objects, args.threads, args.duration, args.rate, log_line, True, rot)]
    log_line(summary(rows[0]))
    raw = work / "follow-s3.json"
    raw.write_text(json.dumps({"started": started, "load": load, "rows": rows}, indent=2))
    put_after_follow(out, s3_section(rows, started))
    if args.also_local:
        rows.append(
            run(
                work,
                args.objects,
                args.threads,
                args.duration,
                args.rate,
                log_line,
                False,
                rot or "1m",
            )
        )
        log_line(summary(rows[1]))
        raw.write_text(json.dumps({"started": started, "load": load, "rows": rows}, indent=2))
        put_after_follow(out, s3_section(rows, started))
    log_line(f"wrote {out}")


if __name__ == "__main__":
    main()
