"""zstd level table: ratio and speed of each level on a dump's NDJSON, as the archive
writer compresses it (one frame per unit, zstd's worker threads for units over 1 MiB).

    python -m tools.bench_zstd FILE.ndjson [--levels=-5,-3,-1,1,2,3,5] [--threads 0,2] [--repeat 3]
    python -m tools.bench_zstd --synthetic 20000      # objects 0..N-1 of tools/bench_data.py

Prints a markdown table: level, worker threads (0: zstd compresses on the calling
thread, as for units under 1 MiB), compressed MB, ratio, wall seconds and MB/s of
input, CPU seconds (user + system of this process, worker threads included). The
input is read (or made) into memory first; what is timed is compression alone.
Each (level, threads) is run --repeat times, round-robin, and the median shown.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import zstandard

from kstream.store.writers import MT_JOB, MT_THREADS


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def compress(data: bytes, level: int, threads: int) -> tuple[int, float, float]:
    if threads > 0:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=MT_JOB, write_checksum=1
        )
        cctx = zstandard.ZstdCompressor(compression_params=params)
    else:
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    c0, t0 = cpu(), time.perf_counter()
    out = cctx.compress(data)
    return len(out), time.perf_counter() - t0, cpu() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_zstd")
    ap.add_argument("file", nargs="?")
    ap.add_argument("--synthetic", type=int, metavar="N", help="objects 0..N-1 of the benchmark")
    ap.add_argument("--levels", default="-5,-3,-1,1,2,3,5")
    ap.add_argument("--threads", default=str(MT_THREADS), help="worker threads to try, e.g. 0,2")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.synthetic:
        from tools.bench_data import server_line

        data = b"".join(server_line(i) + b"\n" for i in range(args.synthetic))
    elif args.file:
        data = Path(args.file).read_bytes()
    else:
        ap.error("a file or --synthetic N")
    mb = len(data) / 2**20
    cases = [(int(lv), int(th)) for lv in args.levels.split(",") for th in args.threads.split(",")]
    runs: dict[tuple[int, int], list[tuple[int, float, float]]] = {c: [] for c in cases}
    for _ in range(args.repeat):
        for level, threads in cases:
            runs[level, threads].append(compress(data, level, threads))
    print(f"{mb:.1f} MB of NDJSON, jobs of {MT_JOB // 2**20} MiB; median of {args.repeat}")
    print()
    print("| level | threads | compressed MB | ratio | wall s | MB/s | CPU s |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for level, threads in cases:
        got = runs[level, threads]
        size = got[0][0]
        wall = statistics.median(r[1] for r in got)
        used = statistics.median(r[2] for r in got)
        print(f"| {level} | {threads} | {size / 2**20:.1f} | {len(data) / size:.2f} | "
              f"{wall:.2f} | {mb / wall:.0f} | {used:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
