"""zstd level table: ratio and speed of each level on a dump's NDJSON, as the archive
writer compresses it (one frame per unit, zstd's worker threads for units over 1 MiB).

    python -m tools.bench_zstd FILE.ndjson [--levels -5,-3,-1,1,2,3,5] [--repeat 3]

Prints a markdown table: level, compressed MB, ratio, wall seconds and MB/s of input,
CPU seconds (user + system of this process, worker threads included). The input is
read into memory first; what is timed is compression alone.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import zstandard

from kstream.store.writers import MT_JOB, MT_THREADS


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def compress(data: bytes, level: int, threads: int) -> tuple[int, float, float]:
    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=threads, job_size=MT_JOB, write_checksum=1
    )
    cctx = zstandard.ZstdCompressor(compression_params=params)
    c0, t0 = cpu(), time.perf_counter()
    out = cctx.compress(data)
    return len(out), time.perf_counter() - t0, cpu() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_zstd")
    ap.add_argument("file")
    ap.add_argument("--levels", default="-5,-3,-1,1,2,3,5")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    data = Path(args.file).read_bytes()
    mb = len(data) / 2**20
    print(f"{mb:.1f} MB of NDJSON, {MT_THREADS} worker threads, jobs of {MT_JOB // 2**20} MiB; "
          f"best of {args.repeat}")  # fmt: skip
    print()
    print("| level | compressed MB | ratio | wall s | MB/s | CPU s |")
    print("|--:|--:|--:|--:|--:|--:|")
    for level in (int(v) for v in args.levels.split(",")):
        runs = [compress(data, level, MT_THREADS) for _ in range(args.repeat)]
        size = runs[0][0]
        wall = min(r[1] for r in runs)
        used = min(r[2] for r in runs)
        print(f"| {level} | {size / 2**20:.1f} | {len(data) / size:.2f} | {wall:.2f} | "
              f"{mb / wall:.0f} | {used:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
